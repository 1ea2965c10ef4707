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
