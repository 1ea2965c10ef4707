//! The reference evaluator: whether one event (CloudEvent JSON, `data` parsed) matches a
//! query. Simple and exact on purpose: it defines what an index-backed search must return.

use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::ast::{CompareOp, Field, Query, Value};
use crate::{text, time};

impl Query {
    /// Whether `event` matches. `event` is a CloudEvent in JSON format with `data` parsed
    /// (or any JSON record: attributes are its top-level members). The semantics are the
    /// crate docs' "Matching" section.
    pub fn matches(&self, event: &Json) -> bool {
        match self {
            Query::All => true,
            Query::Compare { field, op, value } => compare(event, field, *op, value),
            Query::Prefix { field, prefix } => values_at(event, field)
                .into_iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))),
            Query::In { field, values } => values
                .iter()
                .any(|v| compare(event, field, CompareOp::Eq, v)),
            Query::Exists { field } => exists(event, field),
            Query::Text { terms } => {
                let mut strings = Vec::new();
                if let Some(data) = event.get("data") {
                    collect_strings(data, &mut strings);
                }
                strings.into_iter().any(|s| text::contains_phrase(s, terms))
            }
            Query::And(items) => items.iter().all(|q| q.matches(event)),
            Query::Or(items) => items.iter().any(|q| q.matches(event)),
            Query::Not(inner) => !inner.matches(event),
        }
    }
}

/// The values a field holds in `event`: arrays on the way and at the end are looked
/// through, so `data.items.sku` yields every item's `sku`.
pub(crate) fn values_at<'a>(event: &'a Json, field: &Field) -> Vec<&'a Json> {
    let mut out = Vec::new();
    match field {
        Field::Attribute(name) => {
            if let Some(v) = event.get(name) {
                collect(v, &[], &mut out);
            }
        }
        Field::Data(path) => {
            if let Some(v) = event.get("data") {
                collect(v, path, &mut out);
            }
        }
    }
    out
}

fn collect<'a>(node: &'a Json, path: &[String], out: &mut Vec<&'a Json>) {
    match (node, path.split_first()) {
        (Json::Array(items), _) => items.iter().for_each(|item| collect(item, path, out)),
        (_, None) => out.push(node),
        (Json::Object(map), Some((key, rest))) => {
            if let Some(child) = map.get(key) {
                collect(child, rest, out);
            }
        }
        (_, Some(_)) => {}
    }
}

fn exists(event: &Json, field: &Field) -> bool {
    values_at(event, field).into_iter().any(has_scalar)
}

/// A string, number or boolean at or below `node`: something an index would hold.
fn has_scalar(node: &Json) -> bool {
    match node {
        Json::Null => false,
        Json::Bool(_) | Json::Number(_) | Json::String(_) => true,
        Json::Array(items) => items.iter().any(has_scalar),
        Json::Object(map) => map.values().any(has_scalar),
    }
}

fn collect_strings<'a>(node: &'a Json, out: &mut Vec<&'a str>) {
    match node {
        Json::String(s) => out.push(s),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        Json::Null | Json::Bool(_) | Json::Number(_) => {}
    }
}

fn compare(event: &Json, field: &Field, op: CompareOp, value: &Value) -> bool {
    match (op, value) {
        (CompareOp::Ne, _) => !compare(event, field, CompareOp::Eq, value),
        (CompareOp::Eq, Value::Null) => !exists(event, field),
        _ => {
            let time = field.is_time().then(|| time_of(value)).flatten();
            values_at(event, field).into_iter().any(|v| match time {
                Some(at) => v
                    .as_str()
                    .and_then(time::parse_timestamp_ms)
                    .is_some_and(|t| holds(op, t.cmp(&at))),
                None if op == CompareOp::Eq => equals(v, value),
                None => order(v, value).is_some_and(|o| holds(op, o)),
            })
        }
    }
}

fn time_of(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => time::parse_timestamp_ms(s),
        Value::Number(_) | Value::Bool(_) | Value::Null => None,
    }
}

fn holds(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
    }
}

/// Equality of an event's value and a query's: numbers by value, strings exactly,
/// booleans as booleans, and a query number also equals a string spelling it the way
/// `Display` writes the number (`id = 42` finds the id `"42"`).
fn equals(event: &Json, value: &Value) -> bool {
    match (event, value) {
        (Json::Number(a), Value::Number(b)) => a.as_f64() == Some(*b),
        (Json::String(a), Value::String(b)) => a == b,
        (Json::String(a), Value::Number(b)) => *a == b.to_string(),
        (Json::Bool(a), Value::Bool(b)) => a == b,
        _ => false,
    }
}

/// Order of an event's value against a query's: numbers with numbers, strings with strings
/// (by Unicode code point, the same as UTF-8 byte order); anything else does not compare.
fn order(event: &Json, value: &Value) -> Option<Ordering> {
    match (event, value) {
        (Json::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(b),
        (Json::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    }
}
