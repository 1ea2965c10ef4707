//! Structured (`application/cloudevents+json`) and batched
//! (`application/cloudevents-batch+json`) modes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::attributes::{self, Required, Value};
use super::structure;
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

/// Validates one event object given as JSON text: serde_json splits its members (leaving
/// values unparsed), then one structure pass over the text, then the attribute checks.
fn parse_object(text: &str) -> Result<CloudEvent, EventError> {
    let members = match serde_json::from_str::<Members<'_>>(text) {
        Ok(Members(members)) => members,
        Err(e) => {
            // serde_json decodes the envelope's keys and refuses a lone surrogate in one in
            // its own words; an object that is otherwise valid JSON gets ours.
            if text.starts_with('{') && serde_json::from_str::<&RawValue>(text).is_ok() {
                structure::check_event(text)?;
            }
            return Err(EventError::NotAnObject {
                reason: e.to_string(),
            });
        }
    };
    structure::check_event(text)?;
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
    use super::super::{MAX_EVENT_DEPTH, StructureError};
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
        let body = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"!!","big":3000000000,"obj":{}}"#;
        assert_eq!(
            problems(body),
            vec![
                "data_base64 is not valid base64",
                "extension big = 3000000000 is not a CloudEvents Integer (a whole number within 32 bits); send it as a string",
                "extension obj must be a string, boolean or integer, not an object or array",
                "data and data_base64 are mutually exclusive",
            ]
        );
    }

    #[test]
    fn refuses_repeated_keys_deep_nesting_and_lone_surrogates() {
        let refused = |body: &str| parse_structured(body.as_bytes(), &limits()).unwrap_err();
        assert_eq!(
            refused(
                r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"role":"admin","role":"user"}}"#
            )
            .to_string(),
            r#"duplicate key "role" in data"#
        );
        assert_eq!(
            refused(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","id":"2"}"#),
            EventError::Structure(StructureError::DuplicateKey {
                key: "id".into(),
                path: "the event".into()
            })
        );
        let deep = |levels: usize| {
            format!(
                r#"{{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{}{}}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(parse_structured(deep(MAX_EVENT_DEPTH).as_bytes(), &limits()).is_ok());
        assert_eq!(
            refused(&deep(MAX_EVENT_DEPTH + 1)),
            EventError::Structure(StructureError::TooDeep {
                limit: MAX_EVENT_DEPTH
            })
        );
        // Deeper than serde_json's own recursion limit: still our answer.
        assert_eq!(
            refused(&deep(300)),
            EventError::Structure(StructureError::TooDeep {
                limit: MAX_EVENT_DEPTH
            })
        );
        assert_eq!(
            refused(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"\ud800"}"#)
                .problems(),
            vec![
                r#"lone surrogate \ud800 in a string at data: \uD800-\uDFFF escapes must come in high-low pairs"#
            ]
        );
        // In an attribute, and in a key of the envelope (which serde_json decodes first).
        assert_eq!(
            refused(r#"{"specversion":"1.0","id":"\udc00","source":"/s","type":"t"}"#).to_string(),
            r#"lone surrogate \udc00 in a string at id: \uD800-\uDFFF escapes must come in high-low pairs"#
        );
        assert_eq!(
            refused(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","x\ud800":1}"#)
                .to_string(),
            r#"lone surrogate \ud800 in a key in the event: \uD800-\uDFFF escapes must come in high-low pairs"#
        );
    }

    #[test]
    fn refuses_control_characters_in_attributes() {
        assert_eq!(
            problems(
                r#"{"specversion":"1.0","id":"nul\u0000id","source":"/s\u007f","type":"t\n","subject":"a\tb","ext":"\u001f","data":"\u0000 is fine in data"}"#
            ),
            vec![
                "attribute id contains the control character U+0000; attribute values may not contain U+0000-U+001F or U+007F",
                "attribute source contains the control character U+007F; attribute values may not contain U+0000-U+001F or U+007F",
                "attribute type contains the control character U+000A; attribute values may not contain U+0000-U+001F or U+007F",
                "attribute subject contains the control character U+0009; attribute values may not contain U+0000-U+001F or U+007F",
                "extension ext contains the control character U+001F; attribute values may not contain U+0000-U+001F or U+007F",
            ]
        );
        for attr in ["time", "dataschema", "datacontenttype"] {
            let body = format!(
                r#"{{"specversion":"1.0","id":"1","source":"/s","type":"t","{attr}":"x\u0001"}}"#
            );
            assert_eq!(
                problems(&body),
                vec![format!(
                    "attribute {attr} contains the control character U+0001; attribute values may not contain U+0000-U+001F or U+007F"
                )]
            );
        }
        let body = r#"{"specversion":"1.0\r","id":"1","source":"/s","type":"t"}"#;
        assert_eq!(
            problems(body),
            vec![
                "attribute specversion contains the control character U+000D; attribute values may not contain U+0000-U+001F or U+007F"
            ]
        );
    }

    #[test]
    fn batch_names_structure_problems_per_entry() {
        let dup =
            r#"{"specversion":"1.0","id":"2","source":"/s","type":"t","data":{"a":{"b":1,"b":2}}}"#;
        let nul = r#"{"specversion":"1.0","id":"\u0000","source":"/s","type":"t"}"#;
        let body = format!("[{MINIMAL},{dup},{nul}]");
        match parse_batch(body.as_bytes(), &limits()) {
            Err(BatchError::InvalidEntries { entries }) => {
                let got: Vec<(usize, Vec<String>)> =
                    entries.iter().map(|(i, e)| (*i, e.problems())).collect();
                assert_eq!(
                    got,
                    vec![
                        (1, vec![r#"duplicate key "b" in data.a"#.to_owned()]),
                        (2, vec!["attribute id contains the control character U+0000; attribute values may not contain U+0000-U+001F or U+007F".to_owned()]),
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
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
