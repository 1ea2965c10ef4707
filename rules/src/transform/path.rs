//! JSONPath expressions of transforms, bounded before they are parsed or run.
//!
//! The JSONPath parser recurses once per bracket, and the evaluator walks the event once
//! per `..` and once per filter: `..` inside a filter, or a filter inside a filter, makes
//! the work grow with a power of the event's size. Those shapes are refused on the text,
//! before the parser sees it, so no stored rule can make one event cost seconds.

use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use super::invalid;
use crate::error::TransformError;

/// Longest JSONPath expression accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Deepest nesting of brackets and parentheses in a JSONPath expression.
pub const MAX_PATH_NESTING: usize = 16;

/// A compiled JSONPath with its source text.
#[derive(Debug, Clone)]
pub(super) struct Path {
    pub(super) text: String,
    query: JpQuery,
}

impl Path {
    pub(super) fn parse(text: &str, field: &str) -> Result<Path, TransformError> {
        check_shape(text).map_err(|m| invalid(field, format!("JSONPath {m}")))?;
        let query = jsonpath_rust::parser::parse_json_path(text)
            .map_err(|e| invalid(field, format!("invalid JSONPath {text:?}: {e}")))?;
        Ok(Path {
            text: text.to_owned(),
            query,
        })
    }

    /// The selected value: the value itself when the path selects one, `null` when it
    /// selects nothing, an array when it selects several.
    pub(super) fn select(&self, event: &Value) -> Value {
        match jsonpath_rust::query::js_path_process(&self.query, event) {
            Ok(found) => match found.as_slice() {
                [] => Value::Null,
                [one] => one.val.clone(),
                many => Value::Array(many.iter().map(|r| r.val.clone()).collect()),
            },
            Err(_) => Value::Null,
        }
    }
}

/// Checks the limits above on the text; quoted strings are skipped.
fn check_shape(text: &str) -> Result<(), String> {
    if text.len() > MAX_PATH_LEN {
        return Err(format!("is longer than {MAX_PATH_LEN} bytes"));
    }
    let bytes = text.as_bytes();
    // Open brackets and parentheses; `?` marks a bracket that holds a filter.
    let mut open: Vec<u8> = Vec::new();
    let mut descendants = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b @ (b'(' | b'[') => {
                open.push(b);
                if open.len() > MAX_PATH_NESTING {
                    return Err(format!("nests brackets deeper than {MAX_PATH_NESTING}"));
                }
            }
            b')' | b']' => {
                open.pop();
            }
            b'?' => {
                if open.contains(&b'?') {
                    return Err("has a filter inside a filter, which is not supported".to_owned());
                }
                match open.last_mut() {
                    Some(innermost) => *innermost = b'?',
                    None => open.push(b'?'),
                }
            }
            b'.' if bytes.get(i + 1) == Some(&b'.') => {
                descendants += 1;
                if descendants > 1 {
                    return Err("may use `..` (all descendants) only once".to_owned());
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass() {
        for ok in [
            "$.data.total",
            "$..sku",
            "$.data.items[?(@.price > 10)].sku",
            "$.data.items[?@.name == 'a..b[?(']",
            "$['a.b']['c']",
            "$.a[0:2]",
        ] {
            assert_eq!(check_shape(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn costly_shapes_are_refused_before_parsing() {
        let deep = format!("$.a{}", "[".repeat(MAX_PATH_NESTING + 1));
        assert_eq!(
            check_shape(&deep),
            Err("nests brackets deeper than 16".to_owned())
        );
        assert_eq!(
            check_shape("$..a..b"),
            Err("may use `..` (all descendants) only once".to_owned())
        );
        assert_eq!(
            check_shape("$.a[?(@.b[?(@.c)])]"),
            Err("has a filter inside a filter, which is not supported".to_owned())
        );
        let long = format!("$.{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(
            check_shape(&long),
            Err("is longer than 1024 bytes".to_owned())
        );
    }
}
