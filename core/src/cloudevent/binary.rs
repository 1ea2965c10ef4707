//! Binary mode: attributes in `ce-*` headers, the body is `data`, `Content-Type` is
//! `datacontenttype`. The event is rendered into CloudEvents JSON format for storage.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::value::RawValue;

use super::attributes::{self, Required, Value};
use super::structure::{self, StructureError};
use super::{CloudEvent, EventError, Limits};

/// The parts of a binary-mode request.
#[derive(Debug, Clone, Copy)]
pub struct BinaryEvent<'a> {
    /// `(name without the "ce-" prefix, lower-case; raw header value)`, in arrival order.
    pub attributes: &'a [(&'a str, &'a [u8])],
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Validates a binary-mode event and renders it as CloudEvents JSON.
pub fn from_binary(event: BinaryEvent<'_>, limits: &Limits) -> Result<CloudEvent, EventError> {
    let size = event.body.len()
        + event
            .attributes
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    if size > limits.max_event_bytes {
        return Err(EventError::TooLarge {
            size,
            limit: limits.max_event_bytes,
        });
    }
    let mut req = Required::default();
    let mut problems = Vec::new();
    let mut decoded: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(event.attributes.len());
    for (name, raw) in event.attributes {
        let value = match percent_encoding::percent_decode(raw).decode_utf8() {
            Ok(v) => v,
            Err(_) => {
                problems.push(format!(
                    "header ce-{name} is not UTF-8 after percent-decoding"
                ));
                continue;
            }
        };
        match *name {
            "data" | "data_base64" => {
                problems.push(format!(
                    "header ce-{name} is not allowed: in binary mode the body is the data"
                ));
                continue;
            }
            "datacontenttype" => {
                problems.push(
                    "header ce-datacontenttype is not allowed: in binary mode Content-Type is the datacontenttype"
                        .to_owned(),
                );
                continue;
            }
            _ => {}
        }
        if decoded.iter().any(|(n, _)| n == name) {
            problems.push(format!("header ce-{name} appears more than once"));
            continue;
        }
        attributes::check(name, &Value::Str(value.clone()), &mut req, &mut problems);
        decoded.push((name, value));
    }
    if let Some(ct) = event.content_type {
        attributes::check(
            "datacontenttype",
            &Value::Str(Cow::Borrowed(ct)),
            &mut req,
            &mut problems,
        );
    }
    attributes::check_required(&req, &mut problems);
    let data = render_data(event.content_type, event.body, &mut problems)?;
    let (Some(id), Some(source), Some(ty)) = (req.id, req.source, req.ty) else {
        return Err(EventError::Invalid { problems });
    };
    if !problems.is_empty() {
        return Err(EventError::Invalid { problems });
    }

    let mut json = Vec::with_capacity(size + 64);
    json.push(b'{');
    // The spec's own attributes first, in a fixed order, then extensions as they arrived.
    let order = |n: &str| match n {
        "specversion" => 0,
        "id" => 1,
        "source" => 2,
        "type" => 3,
        "subject" => 4,
        "time" => 5,
        "dataschema" => 6,
        _ => 7,
    };
    decoded.sort_by_key(|(n, _)| order(n));
    for (i, (name, value)) in decoded.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        push_member(&mut json, name, value);
    }
    if let Some(ct) = event.content_type {
        json.push(b',');
        push_member(&mut json, "datacontenttype", ct);
    }
    match data {
        Data::None => {}
        Data::Json(text) => {
            json.extend_from_slice(b",\"data\":");
            json.extend_from_slice(text);
        }
        Data::Text(text) => {
            json.push(b',');
            push_member(&mut json, "data", text);
        }
        Data::Binary(bytes) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            json.push(b',');
            push_member(&mut json, "data_base64", &encoded);
        }
    }
    json.push(b'}');
    Ok(CloudEvent {
        id,
        source,
        ty,
        json,
    })
}

enum Data<'a> {
    None,
    Json(&'a [u8]),
    Text(&'a str),
    Binary(&'a [u8]),
}

/// Chooses how the body travels in JSON format: as JSON when the media type says JSON, as a
/// string when it is text, and as `data_base64` otherwise, so any bytes round-trip. JSON
/// bodies get the structure check of structured mode (as `data`).
fn render_data<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
    problems: &mut Vec<String>,
) -> Result<Data<'a>, StructureError> {
    if body.is_empty() {
        return Ok(Data::None);
    }
    let media = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let is_json = media == "application/json" || media == "text/json" || media.ends_with("+json");
    if is_json {
        let text = body.trim_ascii();
        // A raw value checks the grammar without serde_json's recursion limit, so that
        // deep bodies get the structure check's answer.
        return match serde_json::from_slice::<&RawValue>(text) {
            Ok(raw) => {
                structure::check_data(raw.get())?;
                Ok(Data::Json(text))
            }
            Err(e) => {
                problems.push(format!(
                    "the body is not valid JSON ({e}), but Content-Type {media} says it is"
                ));
                Ok(Data::None)
            }
        };
    }
    let is_text = media.starts_with("text/")
        || media == "application/xml"
        || media.ends_with("+xml")
        || media == "application/x-www-form-urlencoded";
    Ok(match std::str::from_utf8(body) {
        Ok(text) if is_text => Data::Text(text),
        _ => Data::Binary(body),
    })
}

fn push_member(out: &mut Vec<u8>, name: &str, value: &str) {
    push_string(out, name);
    out.push(b':');
    push_string(out, value);
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::super::MAX_EVENT_DEPTH;
    use super::*;

    fn required() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("specversion", b"1.0"),
            ("id", b"42"),
            ("source", b"/shop"),
            ("type", b"order.created"),
        ]
    }

    fn render(
        attrs: &[(&str, &[u8])],
        ct: Option<&str>,
        body: &[u8],
    ) -> Result<String, EventError> {
        from_binary(
            BinaryEvent {
                attributes: attrs,
                content_type: ct,
                body,
            },
            &Limits::default(),
        )
        .map(|e| String::from_utf8(e.json).unwrap())
    }

    #[test]
    fn json_body_stays_json() {
        let mut attrs = required();
        attrs.push(("traceparent", b"00-abc"));
        attrs.push(("time", b"2024-01-02T03:04:05Z"));
        attrs.push(("subject", b"caf%C3%A9"));
        assert_eq!(
            render(
                &attrs,
                Some("application/json; charset=utf-8"),
                b" {\"total\": 12.50}\n"
            )
            .unwrap(),
            r#"{"specversion":"1.0","id":"42","source":"/shop","type":"order.created","subject":"café","time":"2024-01-02T03:04:05Z","traceparent":"00-abc","datacontenttype":"application/json; charset=utf-8","data":{"total": 12.50}}"#
        );
    }

    #[test]
    fn binary_body_becomes_base64_and_text_a_string() {
        assert_eq!(
            render(
                &required(),
                Some("application/octet-stream"),
                &[0, 159, 255]
            )
            .unwrap(),
            r#"{"specversion":"1.0","id":"42","source":"/shop","type":"order.created","datacontenttype":"application/octet-stream","data_base64":"AJ//"}"#
        );
        assert_eq!(
            render(&required(), Some("text/plain"), "héllo \"x\"".as_bytes()).unwrap(),
            r#"{"specversion":"1.0","id":"42","source":"/shop","type":"order.created","datacontenttype":"text/plain","data":"héllo \"x\""}"#
        );
        assert_eq!(
            render(&required(), None, b"").unwrap(),
            r#"{"specversion":"1.0","id":"42","source":"/shop","type":"order.created"}"#
        );
    }

    #[test]
    fn json_bodies_get_the_structure_check() {
        let refused = |body: &[u8]| {
            render(&required(), Some("application/json"), body)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(br#"{"role":"admin","role":"user"}"#),
            r#"duplicate key "role" in data"#
        );
        assert_eq!(
            refused(br#"["\ud800"]"#),
            r#"lone surrogate \ud800 in a string at data[0]: \uD800-\uDFFF escapes must come in high-low pairs"#
        );
        // The body is level 2 of the event.
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        assert!(
            render(
                &required(),
                Some("application/json"),
                &nest(MAX_EVENT_DEPTH - 1)
            )
            .is_ok()
        );
        assert_eq!(
            refused(&nest(MAX_EVENT_DEPTH)),
            "the event nests deeper than the limit of 64 levels (the event object is level 1)"
        );
        assert_eq!(
            refused(&nest(500)),
            "the event nests deeper than the limit of 64 levels (the event object is level 1)"
        );
        // Not JSON by its media type: text, not checked.
        assert!(render(&required(), Some("text/plain"), br#"{"a":1,"a":2}"#).is_ok());
    }

    #[test]
    fn attribute_headers_refuse_control_characters() {
        let mut attrs = required();
        attrs[1] = ("id", b"nul%00id");
        attrs.push(("subject", b"a\tb"));
        attrs.push(("traceparent", b"x%7F"));
        assert_eq!(
            render(&attrs, None, b"").unwrap_err().problems(),
            vec![
                "attribute id contains the control character U+0000; attribute values may not contain U+0000-U+001F or U+007F",
                "attribute subject contains the control character U+0009; attribute values may not contain U+0000-U+001F or U+007F",
                "extension traceparent contains the control character U+007F; attribute values may not contain U+0000-U+001F or U+007F",
            ]
        );
    }

    #[test]
    fn reports_problems() {
        let attrs: Vec<(&str, &[u8])> = vec![
            ("specversion", b"1.0"),
            ("id", b"1"),
            ("data", b"x"),
            ("id", b"2"),
        ];
        assert_eq!(
            render(&attrs, Some("application/json"), b"{nope")
                .unwrap_err()
                .problems(),
            vec![
                "header ce-data is not allowed: in binary mode the body is the data",
                "header ce-id appears more than once",
                "missing required attribute source",
                "missing required attribute type",
                "the body is not valid JSON (key must be a string at line 1 column 2), but Content-Type application/json says it is",
            ]
        );
    }
}
