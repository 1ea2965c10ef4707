//! The state the server keeps per (source, type): the current schema, its version and the
//! shapes already known to be covered.

use std::collections::HashSet;

use serde_json::Value;

use crate::caps::Caps;
use crate::error::SchemaError;
use crate::schema::Schema;

/// Fingerprints remembered per (source, type). When full the set starts over, which costs
/// some repeated inference but keeps memory bounded against events whose shape never
/// repeats.
pub const MAX_FINGERPRINTS: usize = 1024;

/// A discovered schema and its version, maintained one observed event at a time.
#[derive(Debug, Clone)]
pub struct Discovered {
    schema: Option<Schema>,
    version: u32,
    fingerprints: HashSet<u64>,
    caps: Caps,
}

/// A schema version to store: returned when an observation changed the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// 1 for the first schema, then one more per change.
    pub version: u32,
    pub schema: Value,
}

impl Discovered {
    /// Nothing observed yet: version 0, no schema.
    pub fn new(caps: Caps) -> Self {
        Discovered {
            schema: None,
            version: 0,
            fingerprints: HashSet::new(),
            caps,
        }
    }

    /// Resumes from the latest stored version (as written by [`Schema::to_json`]).
    pub fn resume(version: u32, schema: &Value, caps: Caps) -> Result<Self, SchemaError> {
        Ok(Discovered {
            schema: Some(Schema::from_json(schema, &caps)?),
            version,
            fingerprints: HashSet::new(),
            caps,
        })
    }

    /// Merges the shape of one event's `data` into the schema. Returns the new version when
    /// the schema changed, `None` when it already covered the shape.
    ///
    /// A shape whose [fingerprint](Caps::fingerprint) was seen before is skipped without
    /// inference: merging is idempotent, and the schema only grows, so a shape that once
    /// left the schema unchanged (or was merged into it) always will.
    pub fn observe(&mut self, data: &Value) -> Option<NewVersion> {
        let fingerprint = self.caps.fingerprint(data);
        if self.fingerprints.contains(&fingerprint) {
            return None;
        }
        if self.fingerprints.len() >= MAX_FINGERPRINTS {
            self.fingerprints.clear();
        }
        self.fingerprints.insert(fingerprint);
        let observed = self.caps.infer(data);
        let merged = match &self.schema {
            Some(current) => {
                let merged = self.caps.merge(current.clone(), observed);
                if &merged == current {
                    return None;
                }
                merged
            }
            None => observed,
        };
        self.version += 1;
        let schema = merged.to_json();
        self.schema = Some(merged);
        Some(NewVersion {
            version: self.version,
            schema,
        })
    }

    /// The current version; 0 before the first observation.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The current schema; `None` before the first observation.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// How many distinct shapes are remembered as covered.
    pub fn fingerprints_seen(&self) -> usize {
        self.fingerprints.len()
    }
}
