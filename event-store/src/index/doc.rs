//! One event as an index document.

use serde_json::Value;
use tantivy::TantivyDocument;
use tantivy::schema::OwnedValue;

use super::Fields;

/// What the index needs of a stored event.
pub struct IndexDoc<'a> {
    pub offset: u64,
    pub received_at_ms: i64,
    /// The CloudEvent in JSON form, `data` parsed when it is JSON.
    pub event: &'a Value,
    pub matched_rules: &'a [String],
}

/// How deep into `data` the index follows: as deep as an accepted event can nest
/// (`switchyard_core::MAX_EVENT_DEPTH`, 64 with the event object as level 1), so no stored
/// value is out of reach of search.
const MAX_DEPTH: usize = 64;

/// Tantivy keeps dates in i64 nanoseconds (years 1678 to 2262); clients can send any
/// RFC 3339 time, so clamp into that range rather than overflow.
pub(crate) fn timestamp_ms(ms: i64) -> tantivy::DateTime {
    const LIMIT_MS: i64 = i64::MAX / 1_000_000;
    tantivy::DateTime::from_timestamp_millis(ms.clamp(-LIMIT_MS, LIMIT_MS))
}

impl IndexDoc<'_> {
    pub(crate) fn to_document(&self, f: &Fields) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.offset, self.offset);
        doc.add_date(f.received_at, timestamp_ms(self.received_at_ms));
        for rule in self.matched_rules {
            doc.add_text(f.rules, rule);
        }
        let Some(event) = self.event.as_object() else {
            return doc;
        };
        let mut attrs = Vec::with_capacity(event.len());
        for (name, value) in event {
            match name.as_str() {
                "data" | "data_base64" => continue,
                "time" => {
                    // Read as queries read it (a bare date is midnight UTC).
                    if let Some(ms) = value
                        .as_str()
                        .and_then(switchyard_core::time::parse_instant_ms)
                    {
                        doc.add_date(f.time, timestamp_ms(ms));
                    }
                }
                _ => {}
            }
            if let Some(v) = scalar(value) {
                attrs.push((name.clone(), v));
            }
        }
        doc.add_field_value(f.attrs, &OwnedValue::Object(attrs));
        if let Some(data) = event.get("data") {
            // One value per string: Tantivy leaves a position gap between values, so a
            // phrase never spans the end of one string and the start of the next.
            let mut strings = Vec::new();
            collect_text(data, &mut strings, 0);
            for s in strings {
                doc.add_text(f.text, s);
            }
            if let Value::Object(_) = data {
                doc.add_field_value(f.data, &owned(data, 0));
            }
        }
        doc
    }
}

fn scalar(v: &Value) -> Option<OwnedValue> {
    match v {
        Value::String(s) => Some(OwnedValue::Str(s.clone())),
        // `+ 0.0` folds -0 into 0: they are equal numbers, one term and one group.
        Value::Number(n) => n.as_f64().map(|n| OwnedValue::F64(n + 0.0)),
        Value::Bool(b) => Some(OwnedValue::Bool(*b)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// `data` as an index value: every number as f64, nulls left out.
fn owned(v: &Value, depth: usize) -> OwnedValue {
    match v {
        Value::Object(map) if depth < MAX_DEPTH => OwnedValue::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), owned(v, depth + 1)))
                .collect(),
        ),
        Value::Array(items) if depth < MAX_DEPTH => OwnedValue::Array(
            items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| owned(v, depth + 1))
                .collect(),
        ),
        Value::Object(_) | Value::Array(_) | Value::Null => OwnedValue::Null,
        other => scalar(other).unwrap_or(OwnedValue::Null),
    }
}

/// The string values of `data`, for full-text search.
fn collect_text<'a>(v: &'a Value, out: &mut Vec<&'a str>, depth: usize) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) if depth < MAX_DEPTH => {
            items.iter().for_each(|i| collect_text(i, out, depth + 1))
        }
        Value::Object(map) if depth < MAX_DEPTH => {
            map.values().for_each(|i| collect_text(i, out, depth + 1))
        }
        _ => {}
    }
}
