//! Analytics answers: the result types, the reference implementation (rows or series
//! computed by reading every record; simple and exact on purpose, it defines what the
//! index must return), and the ranking both the reference and the index path finish with
//! ([`AnalyticsRequest::answer`]), so the two cannot rank differently.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use crate::ast::number_json;
use crate::eval::values_at;
use crate::request::{AnalyticsRequest, Metric, Order};
use crate::{Field, format_timestamp_ms};

/// What an analytics request returns: rows without an interval, series with one.
/// Serializes as SPEC §7 has it: `{"rows": […]}` or `{"series": […]}`.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyticsResult {
    /// One row per group.
    Rows(Vec<Row>),
    /// One series per group, each with a point per non-empty bucket.
    Series(Vec<Series>),
}

/// One group's totals: `{"group": {…}, "count": N, "value"?: x}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The group's values.
    pub group: Group,
    /// How many records fall in the group.
    pub count: u64,
    /// The metric; absent for `count`, and when no record in the group has a number in
    /// the metric's field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// One group's histogram: `{"group": {…}, "points": […]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The group's values.
    pub group: Group,
    /// Non-empty buckets, oldest first. Empty buckets are left out; a chart fills them
    /// with zeros.
    pub points: Vec<Point>,
}

/// One bucket: `{"at": "2024-01-31T12:00:00.000Z", "count": N, "value"?: x}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Start of the bucket, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// How many records of the group fall in the bucket.
    pub count: u64,
    /// The metric over those records, as in [`Row::value`].
    pub value: Option<f64>,
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut point = serializer.serialize_struct("Point", 3)?;
        point.serialize_field("at", &format_timestamp_ms(self.at_ms))?;
        point.serialize_field("count", &self.count)?;
        if let Some(value) = self.value {
            point.serialize_field("value", &value)?;
        } else {
            point.skip_field("value")?;
        }
        point.end()
    }
}

/// A group's value for each `group_by` field, in request order; serializes as a JSON
/// object keyed by the fields as written (`{"type": "x", "data.country": "DE"}`). A
/// record without a value for a field is grouped under `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group(pub Vec<(Field, Json)>);

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(&field.to_string(), value)?;
        }
        map.end()
    }
}

impl Serialize for AnalyticsResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            AnalyticsResult::Rows(rows) => map.serialize_entry("rows", rows)?,
            AnalyticsResult::Series(series) => map.serialize_entry("series", series)?,
        }
        map.end()
    }
}

/// A group value with a total order, so groups sort and compare exactly:
/// null < booleans < numbers < strings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

impl Eq for Key {}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        let rank = |k: &Key| match k {
            Key::Null => 0,
            Key::Bool(_) => 1,
            Key::Number(_) => 2,
            Key::String(_) => 3,
        };
        match (self, other) {
            (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
            (Key::Number(a), Key::Number(b)) => a.total_cmp(b),
            (Key::String(a), Key::String(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Key {
    fn of(value: &Json) -> Option<Key> {
        Some(match value {
            Json::Bool(b) => Key::Bool(*b),
            Json::Number(n) => Key::number(n.as_f64()?),
            Json::String(s) => Key::String(s.clone()),
            Json::Null | Json::Array(_) | Json::Object(_) => return None,
        })
    }

    /// A number's key; `+ 0.0` folds -0 into 0: one group for both.
    pub(crate) fn number(n: f64) -> Key {
        Key::Number(n + 0.0)
    }

    fn to_json(&self) -> Json {
        match self {
            Key::Null => Json::Null,
            Key::Bool(b) => Json::Bool(*b),
            Key::Number(n) => number_json(*n),
            Key::String(s) => Json::String(s.clone()),
        }
    }
}

/// One group as an evaluator found it, before ranking: its values (one per `group_by`
/// field), how many records, the metric over them, and (with an interval) its non-empty
/// buckets, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grouped {
    pub key: Vec<Key>,
    pub count: u64,
    pub value: Option<f64>,
    pub points: Vec<Point>,
}

/// A group's count and metric inputs, overall and per bucket.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    numbers: Vec<f64>,
    buckets: BTreeMap<i64, (u64, Vec<f64>)>,
}

impl AnalyticsRequest {
    /// Computes the result over `records`, each a record's time (milliseconds since the
    /// Unix epoch; for events their `received_at`) and its JSON (for events, the CloudEvent
    /// with `data` parsed).
    ///
    /// Records outside `[from_ms, to_ms)` or not matching the query are skipped. A record
    /// counts once in each group its values make: a field holding an array puts it in one
    /// group per distinct element (and several such fields in every combination); a field
    /// with no value puts it under `null`. The metric reads every number in its field
    /// (arrays included). Without `group_by` there is exactly one row (or series), even
    /// when nothing matches. Rows (series) are ordered by value (by count for `count`),
    /// rows without a value last, ties by group values ascending, then cut to `limit`; a
    /// series is ranked by its totals over the whole window.
    pub fn compute<'a>(
        &self,
        records: impl IntoIterator<Item = (i64, &'a Json)>,
    ) -> AnalyticsResult {
        let mut tallies: BTreeMap<Vec<Key>, Tally> = BTreeMap::new();
        if self.group_by.is_empty() {
            tallies.insert(Vec::new(), Tally::default());
        }
        for (at_ms, record) in records {
            if at_ms < self.from_ms || at_ms >= self.to_ms || !self.query.matches(record) {
                continue;
            }
            let numbers: Vec<f64> = match self.metric.field() {
                Some(field) => values_at(record, field)
                    .into_iter()
                    .filter_map(Json::as_f64)
                    // One zero, as the index keeps it: `-0` sums and ranks as `0`.
                    .map(|n| n + 0.0)
                    .collect(),
                None => Vec::new(),
            };
            for key in self.group_keys(record) {
                let tally = tallies.entry(key).or_default();
                tally.count += 1;
                tally.numbers.extend_from_slice(&numbers);
                if let Some(interval) = self.interval {
                    let bucket = tally
                        .buckets
                        .entry(interval.bucket_start(at_ms))
                        .or_default();
                    bucket.0 += 1;
                    bucket.1.extend_from_slice(&numbers);
                }
            }
        }
        let groups = tallies
            .into_iter()
            .map(|(key, tally)| Grouped {
                key,
                count: tally.count,
                value: self.metric_value(&tally.numbers),
                points: match self.interval {
                    None => Vec::new(),
                    Some(_) => tally
                        .buckets
                        .into_iter()
                        .map(|(at_ms, (count, numbers))| Point {
                            at_ms,
                            count,
                            value: self.metric_value(&numbers),
                        })
                        .collect(),
                },
            })
            .collect();
        self.answer(groups)
    }

    /// Ranks groups and shapes the answer: by value (by count for `count`) in the
    /// requested order, groups without a value last, ties by group values ascending, then
    /// cut to `limit`; rows without an interval, series with one.
    pub(crate) fn answer(&self, mut groups: Vec<Grouped>) -> AnalyticsResult {
        groups.sort_by(|a, b| {
            self.rank(a.count, a.value, b.count, b.value)
                .then_with(|| a.key.cmp(&b.key))
        });
        groups.truncate(self.limit);
        let group = |key: &[Key]| {
            Group(
                self.group_by
                    .iter()
                    .cloned()
                    .zip(key.iter().map(Key::to_json))
                    .collect(),
            )
        };
        if self.interval.is_none() {
            return AnalyticsResult::Rows(
                groups
                    .into_iter()
                    .map(|g| Row {
                        group: group(&g.key),
                        count: g.count,
                        value: g.value,
                    })
                    .collect(),
            );
        }
        AnalyticsResult::Series(
            groups
                .into_iter()
                .map(|g| Series {
                    group: group(&g.key),
                    points: g.points,
                })
                .collect(),
        )
    }

    /// Every combination of the record's distinct values over the `group_by` fields.
    fn group_keys(&self, record: &Json) -> Vec<Vec<Key>> {
        let mut keys: Vec<Vec<Key>> = vec![Vec::new()];
        for field in &self.group_by {
            let mut values: Vec<Key> = values_at(record, field)
                .into_iter()
                .filter_map(Key::of)
                .collect();
            values.sort();
            values.dedup();
            if values.is_empty() {
                values.push(Key::Null);
            }
            keys = keys
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut key = prefix.clone();
                        key.push(v.clone());
                        key
                    })
                })
                .collect();
        }
        keys
    }

    /// The metric over a group's numbers; `None` for `count` and when there are none.
    fn metric_value(&self, numbers: &[f64]) -> Option<f64> {
        if numbers.is_empty() {
            return None;
        }
        match &self.metric {
            Metric::Count => None,
            Metric::Sum(_) => Some(numbers.iter().sum()),
            Metric::Avg(_) => Some(numbers.iter().sum::<f64>() / numbers.len() as f64),
            Metric::Min(_) => numbers.iter().copied().reduce(f64::min),
            Metric::Max(_) => numbers.iter().copied().reduce(f64::max),
            Metric::Percentile { percent, .. } => {
                let mut sorted = numbers.to_vec();
                sorted.sort_by(f64::total_cmp);
                sorted.get(nearest_rank(*percent, sorted.len())).copied()
            }
        }
    }

    /// How two groups order: by value (by count for `count`) in the requested direction,
    /// groups without a value last.
    fn rank(
        &self,
        count_a: u64,
        value_a: Option<f64>,
        count_b: u64,
        value_b: Option<f64>,
    ) -> Ordering {
        let ordering = match (&self.metric, value_a, value_b) {
            (Metric::Count, _, _) => count_a.cmp(&count_b),
            (_, Some(a), Some(b)) => a.total_cmp(&b),
            (_, Some(_), None) => return Ordering::Less,
            (_, None, Some(_)) => return Ordering::Greater,
            (_, None, None) => Ordering::Equal,
        };
        match self.order {
            Order::Asc => ordering,
            Order::Desc => ordering.reverse(),
        }
    }
}

/// Where the `percent`th percentile of `n` sorted values is, from 0: nearest rank,
/// `ceil(percent/100 * n)` counted from 1, in integer arithmetic so it is exact.
pub(crate) fn nearest_rank(percent: u8, n: usize) -> usize {
    (usize::from(percent) * n).div_ceil(100).max(1) - 1
}
