//! The attribute rules shared by every binding mode.

use std::borrow::Cow;

/// An attribute value as it arrived, classified by JSON type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'a> {
    Str(Cow<'a, str>),
    Bool,
    /// A JSON number, as written.
    Number(&'a str),
    Null,
    /// An object or array.
    Composite,
}

impl Value<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Bool => "a boolean",
            Value::Number(_) => "a number",
            Value::Null => "null",
            Value::Composite => "an object or array",
        }
    }
}

/// What the checks learned about an event's required attributes.
#[derive(Debug, Default)]
pub(super) struct Required {
    pub id: Option<String>,
    pub source: Option<String>,
    pub ty: Option<String>,
    /// Which of specversion, id, source, type appeared at all (valid or not).
    pub present: [bool; 4],
}

const REQUIRED: [&str; 4] = ["specversion", "id", "source", "type"];

/// Names the CloudEvents spec gives to context attributes (and to the data members of the
/// JSON format). Everything else is an extension.
const DATA_MEMBERS: [&str; 2] = ["data", "data_base64"];

/// Checks one attribute and records problems in `problems`.
pub(super) fn check(name: &str, value: &Value<'_>, req: &mut Required, problems: &mut Vec<String>) {
    if let Some(i) = REQUIRED.iter().position(|r| *r == name) {
        req.present[i] = true;
    }
    if let Value::Str(v) = value
        && !DATA_MEMBERS.contains(&name)
        && let Some(c) = v.bytes().find(|b| is_forbidden_control(*b))
    {
        let what = if is_context_attribute(name) {
            "attribute"
        } else {
            "extension"
        };
        problems.push(format!(
            "{what} {name} contains the control character U+{:04X}; attribute values may not contain U+0000-U+001F or U+007F",
            c
        ));
        return;
    }
    match name {
        "specversion" => match value {
            Value::Str(v) if v == "1.0" => {}
            Value::Str(v) => problems.push(format!(
                "specversion {v:?} is not supported; only \"1.0\" is"
            )),
            other => problems.push(wrong_type(name, "the string \"1.0\"", other)),
        },
        "id" | "source" | "type" => match value {
            Value::Str(v) if v.is_empty() => {
                problems.push(format!("attribute {name} must not be empty"))
            }
            Value::Str(v) => {
                if name == "source" && !is_uri_reference(v) {
                    problems.push(format!(
                        "attribute source {v:?} is not a URI-reference (no spaces or control characters)"
                    ));
                }
                let slot = match name {
                    "id" => &mut req.id,
                    "source" => &mut req.source,
                    _ => &mut req.ty,
                };
                *slot = Some(v.to_string());
            }
            other => problems.push(wrong_type(name, "a non-empty string", other)),
        },
        "subject" | "datacontenttype" | "dataschema" => match value {
            Value::Null => {}
            Value::Str(v) if v.is_empty() => {
                problems.push(format!("attribute {name} must not be empty when present"))
            }
            Value::Str(v) => {
                if name == "datacontenttype" && !v.contains('/') {
                    problems.push(format!(
                        "attribute datacontenttype {v:?} is not a media type (type/subtype)"
                    ));
                }
                if name == "dataschema" && !is_absolute_uri(v) {
                    problems.push(format!("attribute dataschema {v:?} is not an absolute URI"));
                }
            }
            other => problems.push(wrong_type(name, "a non-empty string", other)),
        },
        "time" => match value {
            Value::Null => {}
            Value::Str(v) => {
                if crate::time::parse_rfc3339_ms(v).is_none() {
                    problems.push(format!("attribute time {v:?} is not an RFC 3339 timestamp"));
                }
            }
            other => problems.push(wrong_type(name, "an RFC 3339 timestamp string", other)),
        },
        _ if DATA_MEMBERS.contains(&name) => {}
        _ => check_extension(name, value, problems),
    }
}

/// C0 controls and DEL, which are ASCII: a byte test is exact on UTF-8. (C1 controls,
/// U+0080-U+009F, are left alone.)
fn is_forbidden_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn is_context_attribute(name: &str) -> bool {
    matches!(
        name,
        "specversion"
            | "id"
            | "source"
            | "type"
            | "subject"
            | "time"
            | "dataschema"
            | "datacontenttype"
    )
}

fn check_extension(name: &str, value: &Value<'_>, problems: &mut Vec<String>) {
    let valid_name = (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid_name {
        problems.push(format!(
            "extension name {name:?} is invalid: extension names are 1 to 20 characters from a-z and 0-9"
        ));
        return;
    }
    match value {
        Value::Str(_) | Value::Bool | Value::Null => {}
        Value::Number(n) => {
            if n.parse::<i32>().is_err() {
                problems.push(format!(
                    "extension {name} = {n} is not a CloudEvents Integer (a whole number within 32 bits); send it as a string"
                ));
            }
        }
        Value::Composite => problems.push(format!(
            "extension {name} must be a string, boolean or integer, not an object or array"
        )),
    }
}

/// Records the required attributes that never appeared.
pub(super) fn check_required(req: &Required, problems: &mut Vec<String>) {
    for (name, present) in REQUIRED.iter().zip(req.present) {
        if !present {
            problems.push(format!("missing required attribute {name}"));
        }
    }
}

fn wrong_type(name: &str, expected: &str, got: &Value<'_>) -> String {
    format!(
        "attribute {name} must be {expected}, not {}",
        got.type_name()
    )
}

fn is_uri_reference(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    is_uri_reference(s)
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}
