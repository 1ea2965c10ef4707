//! Explicit schemas enforced on publish. Compilation happens once per schema version (the
//! caller caches the result); validation runs per event on the publish path, so it takes the
//! validator's allocation-free yes/no check first and lists errors only for a bad event.

use std::sync::Arc;

use jsonschema::PatternOptions;
use serde_json::Value;

use crate::error::SchemaError;

/// Longest violation message kept, in bytes. Validator messages quote the offending value,
/// which can be the whole event.
pub const MAX_MESSAGE_BYTES: usize = 256;

/// A compiled explicit schema of `data`. Cheap to clone (one `Arc`), `Send + Sync`.
///
/// Compiled with `format` asserted (a schema that says `"format": "email"` rejects a
/// non-email), `pattern` run by a linear-time regex engine (no look-around or
/// back-references, so no pattern can make validation slow), and no `$ref` resolution
/// outside the document itself (nothing is ever fetched).
#[derive(Clone)]
pub struct Validator {
    inner: Arc<jsonschema::Validator>,
}

/// One way an event breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the whole CloudEvent: the schema describes `data`, so every pointer
    /// starts with `/data` (`/data/total`, `/data/items/0/sku`).
    pub pointer: String,
    /// What is wrong, as the validator words it.
    pub message: String,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").finish_non_exhaustive()
    }
}

impl Validator {
    /// Checks `schema` against its draft's meta-schema (2020-12 unless `$schema` names
    /// another) and compiles it. A refusal says where in the schema and why.
    pub fn compile(schema: &Value) -> Result<Validator, SchemaError> {
        let validator = jsonschema::options()
            .offline()
            .should_validate_formats(true)
            .with_pattern_options(PatternOptions::regex())
            .build(schema)
            .map_err(|error| SchemaError::Invalid {
                pointer: error.instance_path().as_str().to_owned(),
                message: bounded(error.to_string()),
            })?;
        Ok(Validator {
            inner: Arc::new(validator),
        })
    }

    /// Every violation of the schema by `data` (pass `Value::Null` for an event without
    /// `data`); empty when the event is valid.
    pub fn validate(&self, data: &Value) -> Vec<Violation> {
        if self.inner.is_valid(data) {
            return Vec::new();
        }
        self.inner
            .iter_errors(data)
            .map(|error| Violation {
                pointer: format!("/data{}", error.instance_path().as_str()),
                message: bounded(error.to_string()),
            })
            .collect()
    }
}

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{MAX_MESSAGE_BYTES, Validator, Violation};
    use crate::error::SchemaError;

    fn order_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "total": {"type": "number", "minimum": 0},
                "currency": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}},
                        "required": ["sku"],
                    },
                },
            },
            "required": ["total", "email", "currency"],
            "additionalProperties": false,
        })
    }

    fn violation(pointer: &str, message: &str) -> Violation {
        Violation {
            pointer: pointer.to_owned(),
            message: message.to_owned(),
        }
    }

    fn sorted(mut violations: Vec<Violation>) -> Vec<Violation> {
        violations.sort_by(|a, b| (&a.pointer, &a.message).cmp(&(&b.pointer, &b.message)));
        violations
    }

    #[test]
    fn a_valid_event_has_no_violations() {
        let validator = Validator::compile(&order_schema()).unwrap();
        let data = json!({"total": 3.5, "email": "ana@example.com", "currency": "EUR", "items": [{"sku": "ABC-1"}]});
        assert_eq!(validator.validate(&data), vec![]);
    }

    #[test]
    fn every_violation_is_listed_with_its_pointer_under_data() {
        let validator = Validator::compile(&order_schema()).unwrap();
        let data = json!({
            "total": "12",
            "email": "not an email",
            "items": [{"sku": "ABC-1"}, {"sku": "abc"}, {}],
            "extra": 1,
        });
        assert_eq!(
            sorted(validator.validate(&data)),
            vec![
                violation("/data", "\"currency\" is a required property"),
                violation(
                    "/data",
                    "Additional properties are not allowed ('extra' was unexpected)"
                ),
                violation("/data/email", "\"not an email\" is not a \"email\""),
                violation(
                    "/data/items/1/sku",
                    "\"abc\" does not match \"^[A-Z]{3}-[0-9]+$\""
                ),
                violation("/data/items/2", "\"sku\" is a required property"),
                violation("/data/total", "\"12\" is not of type \"number\""),
            ]
        );
        let negative = json!({"total": -1, "email": "ana@example.com", "currency": "EUR"});
        assert_eq!(
            validator.validate(&negative),
            vec![violation("/data/total", "-1 is less than the minimum of 0")]
        );
    }

    #[test]
    fn pointers_escape_keys_and_an_absent_data_is_null() {
        let schema = json!({"properties": {"a/b~c": {"type": "integer"}}, "type": "object"});
        let validator = Validator::compile(&schema).unwrap();
        assert_eq!(
            validator.validate(&json!({"a/b~c": "x"})),
            vec![violation(
                "/data/a~1b~0c",
                "\"x\" is not of type \"integer\""
            )]
        );
        assert_eq!(
            validator.validate(&Value::Null),
            vec![violation("/data", "null is not of type \"object\"")]
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let validator = Validator::compile(&json!({"type": "string"})).unwrap();
        let violations = validator.validate(&json!(vec!["é"; 500]));
        assert_eq!(violations.len(), 1);
        let message = &violations[0].message;
        assert!(message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(message.starts_with("[\"é\",\"é\""), "{message}");
        assert!(message.ends_with('…'), "{message}");
    }

    #[test]
    fn a_bad_schema_is_refused_with_where_and_why() {
        let refused = |schema: Value| Validator::compile(&schema).unwrap_err();
        assert_eq!(
            refused(json!({"type": "object", "properties": {"n": {"type": "strin"}}})),
            SchemaError::Invalid {
                pointer: "/properties/n/type".to_owned(),
                message:
                    "\"strin\" is not valid under any of the schemas listed in the 'anyOf' keyword"
                        .to_owned(),
            }
        );
        assert_eq!(
            refused(json!({"minimum": "zero"})),
            SchemaError::Invalid {
                pointer: "/minimum".to_owned(),
                message: "\"zero\" is not of type \"number\"".to_owned(),
            }
        );
        assert_eq!(
            refused(json!(["not", "a", "schema"])).kind(),
            switchyard_core::ErrorKind::Unprocessable
        );
    }

    #[test]
    fn nothing_outside_the_schema_is_fetched_and_patterns_cannot_backtrack() {
        let remote =
            Validator::compile(&json!({"$ref": "https://example.com/order.json"})).unwrap_err();
        assert!(remote.to_string().contains("example.com"), "{remote}");
        let lookbehind =
            Validator::compile(&json!({"type": "string", "pattern": "(?<=a)b"})).unwrap_err();
        assert!(
            matches!(lookbehind, SchemaError::Invalid { .. }),
            "{lookbehind}"
        );
        // References inside the document still work.
        let local = json!({"$defs": {"id": {"type": "integer"}}, "properties": {"id": {"$ref": "#/$defs/id"}}});
        let validator = Validator::compile(&local).unwrap();
        assert_eq!(
            validator.validate(&json!({"id": "x"})),
            vec![violation("/data/id", "\"x\" is not of type \"integer\"")]
        );
    }

    #[test]
    fn validators_are_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Validator>();
    }
}
