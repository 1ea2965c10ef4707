//! Group-by, histograms and metrics over the index, computed by Tantivy's aggregations on
//! fast fields: no event is loaded.

use serde_json::{Value, json};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector};
use tantivy::collector::Count;

use super::filter::column;
use super::{EventIndex, FieldRef, Filter, IndexError};

/// What to compute per group.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Count,
    Avg(FieldRef),
    Sum(FieldRef),
    Min(FieldRef),
    Max(FieldRef),
    /// The value below which `percent`% of the values fall.
    Percentile(FieldRef, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// Nested groups, outermost first; empty for one group of everything.
    pub group_by: Vec<FieldRef>,
    /// Time buckets on receive time, in milliseconds.
    pub interval_ms: Option<i64>,
    pub metric: Metric,
    /// Most groups kept per level (the largest by count).
    pub size: usize,
}

/// One group: its key values (one per `group_by` field), how many events, the metric, and
/// with an interval the points of its time series.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupResult {
    pub keys: Vec<Value>,
    pub count: u64,
    pub value: Option<f64>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at_ms: i64,
    pub count: u64,
    pub value: Option<f64>,
}

impl EventIndex {
    /// Computes `spec` over the events matching `filter`.
    pub fn aggregate(
        &self,
        filter: &Filter,
        spec: &AggregateSpec,
    ) -> Result<Vec<GroupResult>, IndexError> {
        let request = request(spec, 0);
        let aggs: Aggregations = serde_json::from_value(request)
            .map_err(|e| IndexError::Unsupported(format!("aggregation request: {e}")))?;
        let collector = AggregationCollector::from_aggs(aggs, AggContextParams::default());
        let query = self.query(filter, None)?;
        let (total, result) = self.reader.searcher().search(&query, &(Count, collector))?;
        let mut result = serde_json::to_value(&result)
            .map_err(|e| IndexError::Unsupported(format!("aggregation result: {e}")))?;
        if let Some(root) = result.as_object_mut() {
            root.insert("doc_count".into(), Value::from(total as u64));
        }
        let mut out = Vec::new();
        collect(&result, spec, 0, &mut Vec::new(), &mut out);
        if spec.group_by.is_empty() && total == 0 {
            out.clear();
        }
        Ok(out)
    }
}

/// The Elasticsearch-style request Tantivy reads: nested `terms`, then an optional
/// `date_histogram`, then the metric.
fn request(spec: &AggregateSpec, level: usize) -> Value {
    let mut inner = serde_json::Map::new();
    if let Some(metric) = metric_request(&spec.metric) {
        inner.insert("m".into(), metric);
    }
    if level < spec.group_by.len() {
        let mut terms =
            json!({"terms": {"field": column(&spec.group_by[level]), "size": spec.size}});
        let sub = request(spec, level + 1);
        if sub.as_object().is_some_and(|o| !o.is_empty()) {
            terms["aggs"] = sub;
        }
        return json!({ format!("g{level}"): terms });
    }
    if let Some(ms) = spec.interval_ms {
        let mut hist = json!({"date_histogram": {"field": "received_at", "fixed_interval": format!("{ms}ms")}});
        if !inner.is_empty() {
            hist["aggs"] = Value::Object(inner.clone());
        }
        inner.insert("h".into(), hist);
    }
    Value::Object(inner)
}

fn metric_request(metric: &Metric) -> Option<Value> {
    Some(match metric {
        Metric::Count => return None,
        Metric::Avg(f) => json!({"avg": {"field": column(f)}}),
        Metric::Sum(f) => json!({"sum": {"field": column(f)}}),
        Metric::Min(f) => json!({"min": {"field": column(f)}}),
        Metric::Max(f) => json!({"max": {"field": column(f)}}),
        Metric::Percentile(f, p) => {
            json!({"percentiles": {"field": column(f), "percents": [p], "keyed": false}})
        }
    })
}

/// Reads a metric's value out of its result object.
fn metric_value(node: &Value, metric: &Metric) -> Option<f64> {
    let m = node.get("m")?;
    match metric {
        Metric::Count => None,
        Metric::Percentile(..) => m
            .get("values")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(|v| v.get("value"))
            .and_then(Value::as_f64),
        Metric::Avg(_) | Metric::Sum(_) | Metric::Min(_) | Metric::Max(_) => {
            m.get("value").and_then(Value::as_f64)
        }
    }
}

/// Walks the nested buckets, one `GroupResult` per leaf group.
fn collect(
    node: &Value,
    spec: &AggregateSpec,
    level: usize,
    keys: &mut Vec<Value>,
    out: &mut Vec<GroupResult>,
) {
    if level < spec.group_by.len() {
        let buckets = node
            .get(format!("g{level}"))
            .and_then(|g| g.get("buckets"))
            .and_then(Value::as_array);
        for bucket in buckets.into_iter().flatten() {
            keys.push(bucket.get("key").cloned().unwrap_or(Value::Null));
            collect_leaf_or_deeper(bucket, spec, level + 1, keys, out);
            keys.pop();
        }
        return;
    }
    collect_leaf_or_deeper(node, spec, level, keys, out);
}

fn collect_leaf_or_deeper(
    node: &Value,
    spec: &AggregateSpec,
    level: usize,
    keys: &mut Vec<Value>,
    out: &mut Vec<GroupResult>,
) {
    if level < spec.group_by.len() {
        collect(node, spec, level, keys, out);
        return;
    }
    let points = match spec.interval_ms {
        None => Vec::new(),
        Some(_) => node
            .get("h")
            .and_then(|h| h.get("buckets"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| {
                let count = b.get("doc_count").and_then(Value::as_u64)?;
                (count > 0).then(|| Point {
                    at_ms: b.get("key").and_then(Value::as_f64).unwrap_or(0.0) as i64,
                    count,
                    value: metric_value(b, &spec.metric),
                })
            })
            .collect(),
    };
    let count = node
        .get("doc_count")
        .and_then(Value::as_u64)
        .unwrap_or_else(|| points.iter().map(|p| p.count).sum());
    out.push(GroupResult {
        keys: keys.clone(),
        count,
        value: metric_value(node, &spec.metric),
        points,
    });
}
