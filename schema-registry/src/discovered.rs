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

impl Default for Discovered {
    /// Nothing observed yet, under the default caps.
    fn default() -> Self {
        Discovered::new(Caps::default())
    }
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
            Some(current) if current.covers(&observed) => return None,
            Some(current) => {
                // Rare (it makes a version, almost always), so the clone is affordable.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Discovered, MAX_FINGERPRINTS, NewVersion};
    use crate::caps::Caps;
    use crate::error::SchemaError;

    #[test]
    fn a_new_version_only_when_the_schema_changes() {
        let mut discovered = Discovered::new(Caps::default());
        assert_eq!((discovered.version(), discovered.schema()), (0, None));
        let first = discovered.observe(&json!({"id": 1, "total": 2}));
        assert_eq!(
            first,
            Some(NewVersion {
                version: 1,
                schema: json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {"id": {"type": "integer"}, "total": {"type": "integer"}},
                    "required": ["id", "total"],
                }),
            })
        );
        // Same shape, other values and key order: the fast path, no inference.
        assert_eq!(discovered.observe(&json!({"total": 9, "id": 7})), None);
        assert_eq!(discovered.fingerprints_seen(), 1);
        let second = discovered.observe(&json!({"id": "x", "total": 2})).unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(
            second.schema["properties"]["id"],
            json!({"type": ["string", "integer"]})
        );
        // A new shape the schema already covers (a string with a format, where strings
        // had none): inference runs, but no version.
        assert_eq!(
            discovered.observe(&json!({"id": "2024-01-01", "total": 2})),
            None
        );
        assert_eq!(discovered.fingerprints_seen(), 3);
        let third = discovered.observe(&json!({"id": 1, "total": 2.5})).unwrap();
        assert_eq!(third.version, 3);
        assert_eq!(
            third.schema["properties"]["total"],
            json!({"type": "number"})
        );
        assert_eq!(third.schema["required"], json!(["id", "total"]));
        assert_eq!(discovered.version(), 3);
    }

    #[test]
    fn resumes_from_a_stored_version() {
        let mut before = Discovered::new(Caps::default());
        let events = [json!({"a": "2024-01-01"}), json!({"a": null, "b": [1]})];
        let stored = events
            .iter()
            .filter_map(|e| before.observe(e))
            .last()
            .unwrap();
        let mut after =
            Discovered::resume(stored.version, &stored.schema, Caps::default()).unwrap();
        assert_eq!(after.schema(), before.schema());
        assert_eq!(after.version(), 2);
        for event in &events {
            assert_eq!(after.observe(event), None);
        }
        assert_eq!(after.observe(&json!({"c": 1})).map(|v| v.version), Some(3));

        let explicit = json!({"type": "object", "minProperties": 1});
        assert!(matches!(
            Discovered::resume(1, &explicit, Caps::default()),
            Err(SchemaError::NotDiscovered { .. })
        ));
    }

    #[test]
    fn the_fingerprint_set_is_bounded() {
        let mut discovered = Discovered::new(Caps::default());
        for i in 0..=MAX_FINGERPRINTS {
            discovered.observe(&json!({ format!("k{i}"): 1 }));
        }
        assert_eq!(discovered.fingerprints_seen(), 1);
        assert_eq!(discovered.version(), MAX_FINGERPRINTS as u32 + 1);
    }
}
