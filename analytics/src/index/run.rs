//! Analytics executed by the event index: the request as Tantivy aggregations (nested
//! `terms` per `group_by` field, then an optional `date_histogram` on receive time, the
//! metric inside each), run under the query's filter, read back into groups, and ranked
//! by [`AnalyticsRequest::answer`], the ranking the reference uses.

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};
use switchyard_core::ErrorKind;
use switchyard_event_store::aggregation::Key as IndexKey;
use switchyard_event_store::aggregation::agg_req::Aggregations;
use switchyard_event_store::aggregation::agg_result::{
    AggregationResult, AggregationResults, BucketEntry, BucketResult, MetricResult,
};
use switchyard_event_store::aggregation::metric::PercentileValues;
use switchyard_event_store::{EventIndex, FieldRef, Filter, IndexError, Scalar};

use super::{field_ref, filter_for};
use crate::aggregate::{Grouped, Key, nearest_rank};
use crate::{AnalyticsRequest, AnalyticsResult, Metric, Point};

/// The most groups one request may make (every combination of `group_by` values that some
/// record has). Grouping happens in the index, and every group is read so ranking is exact;
/// past this bound the request fails with [`RunError::TooManyGroups`] rather than rank a
/// sample.
pub const MAX_GROUPS: usize = 10_000;

/// The group key Tantivy reports for records without a value in a `group_by` field (its
/// `missing` bucket); read back as `null`. A request whose records hold this very string
/// is refused rather than merged with the records that have no value.
const NO_VALUE: &str = "\u{10FFFF}switchyard: no value\u{10FFFF}";

/// How often a percentile is recomputed when the index changed between its two passes.
const PERCENTILE_ATTEMPTS: usize = 3;

/// Why the index could not answer an analytics request.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request asks what the index cannot answer (a key holding a dot, `data` itself).
    #[error("{0}")]
    Unsupported(String),
    /// More groups than [`MAX_GROUPS`].
    #[error(
        "the request makes more than {limit} groups: narrow the query or the window, or group by fewer fields"
    )]
    TooManyGroups { limit: usize },
    /// More groups and time buckets together than the index computes in one request.
    #[error(
        "the request makes more than {limit} groups and time buckets together: use a longer interval, a shorter window or fewer groups"
    )]
    TooManyBuckets { limit: u32 },
    /// The index failed.
    #[error(transparent)]
    Index(IndexError),
    /// The index answered in a shape this reader does not know, or changed faster than a
    /// percentile could be read.
    #[error("analytics over the index: {0}")]
    Unexpected(String),
}

impl RunError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            RunError::Unsupported(_)
            | RunError::TooManyGroups { .. }
            | RunError::TooManyBuckets { .. } => ErrorKind::InvalidInput,
            RunError::Index(_) | RunError::Unexpected(_) => ErrorKind::Internal,
        }
    }
}

impl From<IndexError> for RunError {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Unsupported(m) => RunError::Unsupported(m),
            IndexError::TooManyBuckets { limit } => RunError::TooManyBuckets { limit },
            other @ (IndexError::Tantivy(_)
            | IndexError::Directory { .. }
            | IndexError::Unavailable(_)) => RunError::Index(other),
        }
    }
}

/// Computes `req` over the events (or delivery records) of `index`: the same answer as
/// [`AnalyticsRequest::compute`] over every record, with percentiles from a sketch (within
/// 1% of the nearest-rank value) and sums and means up to floating-point rounding.
pub fn run(index: &EventIndex, req: &AnalyticsRequest) -> Result<AnalyticsResult, RunError> {
    let plan = Plan::new(req)?;
    let query = filter_for(&req.query).map_err(|m| RunError::Unsupported(format!("query: {m}")))?;
    let filter = query.received_within(Some(req.from_ms), Some(req.to_ms));
    for field in &plan.group_by {
        let marker = Filter::And(vec![
            filter.clone(),
            Filter::Eq(field.clone(), Scalar::Str(NO_VALUE.to_owned())),
        ]);
        if index.count(&marker)? > 0 {
            return Err(RunError::Unsupported(format!(
                "group_by: a value of {} is the index's marker for no value",
                field.column()
            )));
        }
    }
    let groups = match &req.metric {
        Metric::Percentile { percent, .. } => plan.percentiles(index, &filter, *percent)?,
        Metric::Count | Metric::Avg(_) | Metric::Sum(_) | Metric::Min(_) | Metric::Max(_) => {
            let (total, results) = index.aggregate(&filter, plan.request(None)?)?;
            plan.read(&results, total, &mut |node| plan.stats_value(node))?
        }
    };
    Ok(req.answer(groups))
}

/// A request in the index's terms.
struct Plan<'a> {
    req: &'a AnalyticsRequest,
    group_by: Vec<FieldRef>,
    /// The metric's field; `None` for `count`.
    metric: Option<FieldRef>,
}

impl<'a> Plan<'a> {
    fn new(req: &'a AnalyticsRequest) -> Result<Plan<'a>, RunError> {
        let group_by = req
            .group_by
            .iter()
            .map(|f| field_ref(f).map_err(|m| RunError::Unsupported(format!("group_by: {m}"))))
            .collect::<Result<_, _>>()?;
        let metric = req
            .metric
            .field()
            .map(|f| field_ref(f).map_err(|m| RunError::Unsupported(format!("metric: {m}"))))
            .transpose()?;
        Ok(Plan {
            req,
            group_by,
            metric,
        })
    }

    /// The aggregation request: `g0` → `g1` → … terms (every group, up to the bound, with
    /// records lacking a value under [`NO_VALUE`]), and in the innermost level `m` (the
    /// metric field's stats), `p` (its percentiles at `percents`, when given) and `h` (the
    /// histogram, with `m` and `p` per bucket).
    fn request(&self, percents: Option<&[f64]>) -> Result<Aggregations, RunError> {
        let mut leaf = Map::new();
        if let Some(field) = &self.metric {
            leaf.insert("m".into(), json!({"stats": {"field": field.column()}}));
            if let Some(percents) = percents {
                leaf.insert(
                    "p".into(),
                    json!({"percentiles": {"field": field.column(), "percents": percents, "keyed": false}}),
                );
            }
        }
        if let Some(interval) = self.req.interval {
            let mut histogram = json!({"date_histogram": {
                "field": FieldRef::ReceivedAt.column(),
                "fixed_interval": format!("{}ms", interval.as_ms()),
            }});
            if !leaf.is_empty() {
                histogram["aggs"] = Json::Object(leaf.clone());
            }
            leaf.insert("h".into(), histogram);
        }
        let mut level = Json::Object(leaf);
        for (depth, field) in self.group_by.iter().enumerate().rev() {
            let mut terms = json!({"terms": {
                "field": field.column(),
                // One more than the bound, so going past it shows.
                "size": MAX_GROUPS + 1,
                "missing": NO_VALUE,
            }});
            if level.as_object().is_some_and(|o| !o.is_empty()) {
                terms["aggs"] = level;
            }
            level = json!({ format!("g{depth}"): terms });
        }
        serde_json::from_value(level)
            .map_err(|e| RunError::Unsupported(format!("aggregation request: {e}")))
    }

    /// Walks the nested buckets into one group per combination of values; `value` reads
    /// the metric out of a group's (or a time bucket's) sub-results.
    fn read(
        &self,
        results: &AggregationResults,
        total: u64,
        value: &mut dyn FnMut(&AggregationResults) -> Result<Option<f64>, RunError>,
    ) -> Result<Vec<Grouped>, RunError> {
        let mut out = Vec::new();
        self.read_level(results, total, 0, &mut Vec::new(), value, &mut out)?;
        Ok(out)
    }

    fn read_level(
        &self,
        node: &AggregationResults,
        count: u64,
        depth: usize,
        key: &mut Vec<Key>,
        value: &mut dyn FnMut(&AggregationResults) -> Result<Option<f64>, RunError>,
        out: &mut Vec<Grouped>,
    ) -> Result<(), RunError> {
        if depth < self.group_by.len() {
            let buckets = terms(node, depth)?;
            if buckets.len() > MAX_GROUPS {
                return Err(RunError::TooManyGroups { limit: MAX_GROUPS });
            }
            for bucket in buckets {
                key.push(group_key(&bucket.key));
                self.read_level(
                    &bucket.sub_aggregation,
                    bucket.doc_count,
                    depth + 1,
                    key,
                    value,
                    out,
                )?;
                key.pop();
                if out.len() > MAX_GROUPS {
                    return Err(RunError::TooManyGroups { limit: MAX_GROUPS });
                }
            }
            return Ok(());
        }
        let mut points = Vec::new();
        if self.req.interval.is_some() {
            for bucket in histogram(node)? {
                if bucket.doc_count == 0 {
                    continue;
                }
                points.push(Point {
                    at_ms: bucket_start(&bucket.key)?,
                    count: bucket.doc_count,
                    value: value(&bucket.sub_aggregation)?,
                });
            }
        }
        out.push(Grouped {
            key: key.clone(),
            count,
            value: value(node)?,
            points,
        });
        Ok(())
    }

    /// The metric from a node's `m` stats: `None` when the group has no number.
    fn stats_value(&self, node: &AggregationResults) -> Result<Option<f64>, RunError> {
        let Some(stats) = stats(node)? else {
            return Ok(None);
        };
        if stats.count == 0 {
            return Ok(None);
        }
        Ok(match &self.req.metric {
            Metric::Count | Metric::Percentile { .. } => None,
            Metric::Sum(_) => Some(stats.sum),
            Metric::Avg(_) => stats.avg,
            Metric::Min(_) => stats.min,
            Metric::Max(_) => stats.max,
        })
    }

    /// Percentiles in two passes. The sketch answers "the value at fraction q", ranking
    /// `floor(q * (n - 1))` from 0, while a percentile is the nearest rank of the group's
    /// own `n`: the first pass counts each group's numbers, the second asks the sketch for
    /// the fraction that lands on that rank (exactly the minimum or maximum at the ends).
    /// Should the index change between the passes (a group with a count not asked for),
    /// the second pass runs again with the new counts.
    fn percentiles(
        &self,
        index: &EventIndex,
        filter: &Filter,
        percent: u8,
    ) -> Result<Vec<Grouped>, RunError> {
        let (total, results) = index.aggregate(filter, self.request(None)?)?;
        let mut counts = BTreeSet::new();
        self.read(&results, total, &mut |node| {
            if let Some(n) = stats(node)?.map(|s| s.count).filter(|n| *n > 0) {
                counts.insert(n);
            }
            Ok(None)
        })?;
        for _ in 0..PERCENTILE_ATTEMPTS {
            let percents: Vec<f64> = counts.iter().map(|n| sketch_percent(percent, *n)).collect();
            let (total, results) = index.aggregate(filter, self.request(Some(&percents))?)?;
            let mut unseen = BTreeSet::new();
            let groups = self.read(&results, total, &mut |node| {
                let Some(n) = stats(node)?.map(|s| s.count).filter(|n| *n > 0) else {
                    return Ok(None);
                };
                let at = sketch_percent(percent, n);
                let found = percentile(node, at)?;
                if found.is_none() {
                    unseen.insert(n);
                }
                Ok(found)
            })?;
            if unseen.is_empty() {
                return Ok(groups);
            }
            counts.extend(unseen);
        }
        Err(RunError::Unexpected(
            "the index changed during every attempt at a percentile".to_owned(),
        ))
    }
}

/// The sketch's fraction, as a percent, that lands on the nearest rank of `n` numbers.
fn sketch_percent(percent: u8, n: u64) -> f64 {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let rank = nearest_rank(percent, n);
    if rank == 0 {
        0.0
    } else if rank + 1 >= n {
        100.0
    } else {
        // Half a rank above: `floor` of `q * (n - 1)` is `rank` whatever the rounding.
        (rank as f64 + 0.5) / (n - 1) as f64 * 100.0
    }
}

fn group_key(key: &IndexKey) -> Key {
    match key {
        IndexKey::Str(s) if s == NO_VALUE => Key::Null,
        IndexKey::Str(s) => Key::String(s.clone()),
        // Numbers are indexed as f64; a bool column's terms come back as 0 and 1.
        IndexKey::F64(n) => Key::number(*n),
        IndexKey::I64(n) => Key::number(*n as f64),
        IndexKey::U64(b) => Key::Bool(*b != 0),
    }
}

fn bucket_start(key: &IndexKey) -> Result<i64, RunError> {
    match key {
        IndexKey::F64(ms) => Ok(*ms as i64),
        IndexKey::I64(ms) => Ok(*ms),
        IndexKey::U64(_) | IndexKey::Str(_) => {
            Err(unexpected(format!("a histogram bucket keyed {key:?}")))
        }
    }
}

fn terms(node: &AggregationResults, depth: usize) -> Result<&[BucketEntry], RunError> {
    match node.0.get(&format!("g{depth}")) {
        Some(AggregationResult::BucketResult(BucketResult::Terms { buckets, .. })) => Ok(buckets),
        other => Err(unexpected(format!("g{depth} is {other:?}"))),
    }
}

fn histogram(node: &AggregationResults) -> Result<Vec<&BucketEntry>, RunError> {
    match node.0.get("h") {
        Some(AggregationResult::BucketResult(BucketResult::Histogram { buckets })) => {
            Ok(buckets.iter().collect())
        }
        other => Err(unexpected(format!("h is {other:?}"))),
    }
}

fn stats(
    node: &AggregationResults,
) -> Result<Option<&switchyard_event_store::aggregation::metric::Stats>, RunError> {
    match node.0.get("m") {
        None => Ok(None),
        Some(AggregationResult::MetricResult(MetricResult::Stats(stats))) => Ok(Some(stats)),
        Some(other) => Err(unexpected(format!("m is {other:?}"))),
    }
}

fn percentile(node: &AggregationResults, at: f64) -> Result<Option<f64>, RunError> {
    match node.0.get("p") {
        Some(AggregationResult::MetricResult(MetricResult::Percentiles(p))) => {
            Ok(match &p.values {
                PercentileValues::Vec(entries) => entries
                    .iter()
                    .find(|e| e.key == at)
                    .map(|e| e.value)
                    .filter(|v| !v.is_nan()),
                PercentileValues::HashMap(_) => None,
            })
        }
        other => Err(unexpected(format!("p is {other:?}"))),
    }
}

fn unexpected(what: String) -> RunError {
    RunError::Unexpected(format!("unexpected result: {what}"))
}
