//! Structured (`application/cloudevents+json`) and batched
//! (`application/cloudevents-batch+json`) modes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::attributes::{self, Required, Value};
use super::{BatchError, CloudEvent, EventError, Limits};

/// Parses and validates one event in structured mode.
pub fn parse_structured(body: &[u8], limits: &Limits) -> Result<CloudEvent, EventError> {
    let text = body.trim_ascii();
    if text.len() > limits.max_event_bytes {
        return Err(EventError::TooLarge {
            size: text.len(),
            limit: limits.max_event_bytes,
        });
    }
    let text = std::str::from_utf8(text).map_err(|e| EventError::NotAnObject {
        reason: format!("the body is not UTF-8 ({e})"),
    })?;
    parse_object(text)
}

/// Parses and validates a batch: every entry is checked, and every bad entry is reported.
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<Vec<CloudEvent>, BatchError> {
    let entries: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| BatchError::NotAnArray {
            reason: e.to_string(),
        })?;
    if entries.len() > limits.max_batch_events {
        return Err(BatchError::TooManyEvents {
            count: entries.len(),
            limit: limits.max_batch_events,
        });
    }
    let mut events = Vec::with_capacity(entries.len());
    let mut bad = Vec::new();
    for (i, raw) in entries.into_iter().enumerate() {
        let text = raw.get();
        let parsed = if text.len() > limits.max_event_bytes {
            Err(EventError::TooLarge {
                size: text.len(),
                limit: limits.max_event_bytes,
            })
        } else {
            parse_object(text)
        };
        match parsed {
            Ok(event) => events.push(event),
            Err(e) => bad.push((i, e)),
        }
    }
    if bad.is_empty() {
        Ok(events)
    } else {
        Err(BatchError::InvalidEntries { entries: bad })
    }
}

/// Validates one event object given as JSON text, in one pass over the text.
fn parse_object(text: &str) -> Result<CloudEvent, EventError> {
    let Members(members) = serde_json::from_str(text).map_err(|e| EventError::NotAnObject {
        reason: e.to_string(),
    })?;
    let mut req = Required::default();
    let mut problems = Vec::new();
    let mut has_data = false;
    let mut has_data_base64 = false;
    for (name, raw) in &members {
        let value = classify(raw);
        match name.as_ref() {
            "data" => has_data = true,
            "data_base64" => {
                has_data_base64 = true;
                check_base64(&value, &mut problems);
            }
            _ => {}
        }
        attributes::check(name, &value, &mut req, &mut problems);
    }
    if has_data && has_data_base64 {
        problems.push("data and data_base64 are mutually exclusive".to_owned());
    }
    let mut names: Vec<&str> = members.iter().map(|(n, _)| n.as_ref()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        problems.push(format!("member {} appears more than once", w[0]));
    }
    attributes::check_required(&req, &mut problems);
    match (req.id, req.source, req.ty) {
        (Some(id), Some(source), Some(ty)) if problems.is_empty() => Ok(CloudEvent {
            id,
            source,
            ty,
            json: text.as_bytes().to_vec(),
        }),
        _ => Err(EventError::Invalid { problems }),
    }
}

fn check_base64(value: &Value<'_>, problems: &mut Vec<String>) {
    use base64::Engine as _;
    match value {
        Value::Str(s) => {
            if base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .is_err()
            {
                problems.push("data_base64 is not valid base64".to_owned());
            }
        }
        _ => problems.push("data_base64 must be a base64 string".to_owned()),
    }
}

fn classify(raw: &RawValue) -> Value<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<CowStr<'_>>(text) {
            Ok(CowStr(s)) => Value::Str(s),
            // serde_json already validated the string while splitting members.
            Err(_) => Value::Composite,
        },
        Some(b't' | b'f') => Value::Bool,
        Some(b'n') => Value::Null,
        Some(b'{' | b'[') => Value::Composite,
        _ => Value::Number(text),
    }
}

/// The members of a JSON object in document order, values left unparsed.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some((CowStr(k), v)) = map.next_entry::<CowStr<'de>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(serde::de::Error::custom(
                    "found an array; send arrays of events as application/cloudevents-batch+json",
                ))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn problems(body: &str) -> Vec<String> {
        match parse_structured(body.as_bytes(), &limits()) {
            Ok(e) => panic!("accepted {e:?}"),
            Err(e) => e.problems(),
        }
    }

    const MINIMAL: &str = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;

    #[test]
    fn keeps_the_published_bytes() {
        let body = " {\"specversion\":\"1.0\", \"id\":\"a\\u0062\",\"source\":\"urn:x\",\"type\":\"t\",\"data\":{\"z\":1, \"a\":[1.50]}}\n";
        let e = parse_structured(body.as_bytes(), &limits()).unwrap();
        assert_eq!(e.id, "ab");
        assert_eq!(e.source, "urn:x");
        assert_eq!(e.ty, "t");
        assert_eq!(e.json, body.trim().as_bytes());
    }

    #[test]
    fn names_every_problem() {
        assert_eq!(
            problems(r#"{"specversion":"0.3","id":"","type":5,"time":"yesterday","Bad_Ext":1}"#),
            vec![
                "specversion \"0.3\" is not supported; only \"1.0\" is",
                "attribute id must not be empty",
                "attribute type must be a non-empty string, not a number",
                "attribute time \"yesterday\" is not an RFC 3339 timestamp",
                "extension name \"Bad_Ext\" is invalid: extension names are 1 to 20 characters from a-z and 0-9",
                "missing required attribute source",
            ]
        );
    }

    #[test]
    fn checks_data_members_and_extensions() {
        let body = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"!!","big":3000000000,"obj":{},"id":"2"}"#;
        assert_eq!(
            problems(body),
            vec![
                "data_base64 is not valid base64",
                "extension big = 3000000000 is not a CloudEvents Integer (a whole number within 32 bits); send it as a string",
                "extension obj must be a string, boolean or integer, not an object or array",
                "data and data_base64 are mutually exclusive",
                "member id appears more than once",
            ]
        );
    }

    #[test]
    fn rejects_non_objects_and_oversize() {
        assert!(matches!(
            parse_structured(b"[1]", &limits()),
            Err(EventError::NotAnObject { .. })
        ));
        assert!(matches!(
            parse_structured(b"{\"id\":", &limits()),
            Err(EventError::NotAnObject { .. })
        ));
        let small = Limits {
            max_event_bytes: 10,
            ..limits()
        };
        assert_eq!(
            parse_structured(MINIMAL.as_bytes(), &small),
            Err(EventError::TooLarge {
                size: MINIMAL.len(),
                limit: 10
            })
        );
    }

    #[test]
    fn batch_reports_each_bad_index() {
        let body = format!(r#"[{MINIMAL}, {{"id":"x"}}, 7, {MINIMAL}]"#);
        match parse_batch(body.as_bytes(), &limits()) {
            Err(BatchError::InvalidEntries { entries }) => {
                assert_eq!(
                    entries.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                    vec![1, 2]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let ok = parse_batch(format!("[{MINIMAL},{MINIMAL}]").as_bytes(), &limits()).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].json, MINIMAL.as_bytes());
        assert_eq!(parse_batch(b"[]", &limits()).unwrap(), vec![]);
        let few = Limits {
            max_batch_events: 1,
            ..limits()
        };
        assert_eq!(
            parse_batch(format!("[{MINIMAL},{MINIMAL}]").as_bytes(), &few),
            Err(BatchError::TooManyEvents { count: 2, limit: 1 })
        );
        assert!(matches!(
            parse_batch(MINIMAL.as_bytes(), &limits()),
            Err(BatchError::NotAnArray { .. })
        ));
    }
}
