//! The public schema type and the two operations that build it.

use serde_json::Value;

use crate::caps::Caps;
use crate::error::SchemaError;
use crate::inference::infer;
use crate::node::Node;
use crate::render;

/// The `$schema` of every schema this crate writes.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// A discovered JSON Schema of `data`: the merge of every shape observed so far.
///
/// How observations render:
/// - each place in `data` gets one subschema; values of several JSON types there give a type
///   list (`["object", "array", "string", "null"]`, `null` last) with each type's keywords
///   side by side (`properties`/`required`, `items`, `format`), which is exact because a
///   JSON Schema keyword only constrains instances of its own type; `anyOf` is never used;
/// - `required` lists the properties present in every object seen at that place;
/// - `integer` widens to `number` once a fraction is seen;
/// - `format` (date-time, date, uuid, ipv4, ipv6, email, uri) only while every string seen
///   there had that one format;
/// - an array's `items` merges all its elements; only empty arrays seen: no `items`;
/// - properties in sorted order; nothing is ever made `additionalProperties: false`, since
///   a discovered schema describes, it does not forbid.
///
/// Equal schemas render to equal JSON, and two schemas built from the same set of events
/// under the same [`Caps`] are equal whatever the order the events came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub(crate) root: Node,
}

impl Schema {
    /// The schema as JSON Schema draft 2020-12, properties in sorted order.
    pub fn to_json(&self) -> Value {
        render::to_json(&self.root)
    }

    /// Reads back a schema written by [`Schema::to_json`] (a stored version, after a
    /// restart), re-applying `caps` in case they changed since. Anything this crate would not
    /// have written, such as a hand-written explicit schema, is refused.
    pub fn from_json(schema: &Value, caps: &Caps) -> Result<Schema, SchemaError> {
        let mut root = render::from_json(schema)?;
        root.normalize(caps);
        Ok(Schema { root })
    }

    /// Whether merging `other` in would leave this schema unchanged.
    pub fn covers(&self, other: &Schema) -> bool {
        self.root.covers(&other.root)
    }

    /// Merges `other` into `self` in place.
    pub fn absorb(&mut self, other: Schema, caps: &Caps) {
        self.root.absorb(other.root);
        self.root.normalize(caps);
    }
}

impl Caps {
    /// The schema of one `data` value.
    pub fn infer(&self, data: &Value) -> Schema {
        let mut root = infer(data, 0, self);
        root.normalize(self);
        Schema { root }
    }

    /// The schema describing every value that `a` or `b` describes: a property is required
    /// only if both require it, `integer` with `number` is `number`, a `format` stays only if
    /// both have the same one.
    pub fn merge(&self, mut a: Schema, b: Schema) -> Schema {
        a.absorb(b, self);
        a
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::Schema;
    use crate::caps::Caps;

    fn infer_all(events: &[Value]) -> Value {
        infer_all_with(events, &Caps::default())
    }

    fn infer_all_with(events: &[Value], caps: &Caps) -> Value {
        let mut schemas = events.iter().map(|event| caps.infer(event));
        let first = schemas.next().unwrap();
        schemas.fold(first, |a, b| caps.merge(a, b)).to_json()
    }

    /// The expected rendering, with `$schema` added at the root.
    fn doc(mut body: Value) -> Value {
        body["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        body
    }

    #[test]
    fn scalars_and_required_properties() {
        let schema =
            infer_all(&[json!({"id": 1, "price": 2.5, "name": "x", "ok": true, "gone": null})]);
        assert_eq!(
            schema,
            doc(json!({
                "type": "object",
                "properties": {
                    "gone": {"type": "null"},
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "price": {"type": "number"},
                },
                "required": ["gone", "id", "name", "ok", "price"],
            }))
        );
    }

    #[test]
    fn a_field_missing_from_some_events_is_optional() {
        let schema = infer_all(&[
            json!({"a": 1, "b": 1}),
            json!({"a": 2}),
            json!({"a": 3, "c": "x"}),
        ]);
        assert_eq!(
            schema,
            doc(json!({
                "type": "object",
                "properties": {
                    "a": {"type": "integer"},
                    "b": {"type": "integer"},
                    "c": {"type": "string"},
                },
                "required": ["a"],
            }))
        );
    }

    #[test]
    fn integer_merged_with_number_is_number() {
        let schema = infer_all(&[json!({"n": 1}), json!({"n": 1.5}), json!({"n": -7})]);
        assert_eq!(schema["properties"]["n"], json!({"type": "number"}));
        let big = infer_all(&[json!({"n": u64::MAX}), json!({"n": i64::MIN})]);
        assert_eq!(big["properties"]["n"], json!({"type": "integer"}));
    }

    #[test]
    fn sometimes_null_is_nullable() {
        let schema = infer_all(&[json!({"s": "x"}), json!({"s": null}), json!({"s": "y"})]);
        assert_eq!(
            schema["properties"]["s"],
            json!({"type": ["string", "null"]})
        );
        assert_eq!(schema["required"], json!(["s"]));
    }

    #[test]
    fn heterogeneous_arrays_get_a_type_list_with_each_types_keywords() {
        let schema = infer_all(&[json!([1, "a", null, {"k": true}, [2.5], {"k": false, "j": 1}])]);
        assert_eq!(
            schema,
            doc(json!({
                "type": "array",
                "items": {
                    "type": ["object", "array", "string", "integer", "null"],
                    "properties": {
                        "j": {"type": "integer"},
                        "k": {"type": "boolean"},
                    },
                    "required": ["k"],
                    "items": {"type": "number"},
                },
            }))
        );
    }

    #[test]
    fn array_items_merge_across_events_and_empty_arrays_add_nothing() {
        let schema = infer_all(&[
            json!({"xs": []}),
            json!({"xs": [{"a": 1}]}),
            json!({"xs": [{"a": 2, "b": "x"}, {"a": 3}]}),
        ]);
        assert_eq!(
            schema["properties"]["xs"],
            json!({
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                    "required": ["a"],
                },
            })
        );
        assert_eq!(infer_all(&[json!([])]), doc(json!({"type": "array"})));
    }

    #[test]
    fn empty_objects_and_mixed_kinds() {
        assert_eq!(infer_all(&[json!({})]), doc(json!({"type": "object"})));
        let schema = infer_all(&[json!({"v": {}}), json!({"v": [1]}), json!({"v": 3})]);
        assert_eq!(
            schema["properties"]["v"],
            json!({"type": ["object", "array", "integer"], "items": {"type": "integer"}})
        );
    }

    #[test]
    fn deep_nesting_and_unicode_keys() {
        let schema = infer_all(&[json!({"ä": {"日本": {"🚀": {"deep": [{"x": "2024-01-02"}]}}}})]);
        assert_eq!(
            schema["properties"]["ä"]["properties"]["日本"]["properties"]["🚀"]["properties"]["deep"],
            json!({
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"x": {"type": "string", "format": "date"}},
                    "required": ["x"],
                },
            })
        );
        assert_eq!(schema["required"], json!(["ä"]));
    }

    #[test]
    fn a_format_survives_only_while_every_value_has_it() {
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let same = infer_all(&[
            json!({"id": uuid}),
            json!({"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}),
        ]);
        assert_eq!(
            same["properties"]["id"],
            json!({"type": "string", "format": "uuid"})
        );
        let mixed = infer_all(&[json!({"id": uuid}), json!({"id": "not-a-uuid"})]);
        assert_eq!(mixed["properties"]["id"], json!({"type": "string"}));
        let nullable = infer_all(&[json!({"at": "2024-05-01T12:00:00Z"}), json!({"at": null})]);
        assert_eq!(
            nullable["properties"]["at"],
            json!({"type": ["string", "null"], "format": "date-time"})
        );
        let kinds = infer_all(&[json!([
            "ana@example.com",
            "https://example.com",
            "10.0.0.1",
            "::1"
        ])]);
        assert_eq!(kinds["items"], json!({"type": "string"}));
    }

    #[test]
    fn depth_cap_keeps_types_and_says_what_was_cut() {
        let caps = Caps {
            max_depth: 2,
            ..Caps::default()
        };
        let schema = infer_all_with(&[json!({"a": {"b": {"c": 1}, "e": {}, "l": [[1]]}})], &caps);
        assert_eq!(
            schema["properties"]["a"]["properties"],
            json!({
                "b": {"type": "object", "$comment": "properties not inferred: over the schema size caps"},
                "e": {"type": "object"},
                "l": {"type": "array", "$comment": "items not inferred: over the schema size caps"},
            })
        );
        // A later, shallower event cannot bring back what the cap dropped.
        let merged = infer_all_with(
            &[json!({"a": {"b": {"c": 1}}}), json!({"a": {"b": {}}})],
            &caps,
        );
        assert_eq!(
            merged["properties"]["a"]["properties"]["b"],
            json!({"type": "object", "$comment": "properties not inferred: over the schema size caps"})
        );
    }

    #[test]
    fn size_cap_drops_whole_levels_from_the_bottom() {
        let caps = Caps {
            max_nodes: 4,
            ..Caps::default()
        };
        // Level 1: a, b (2). Level 2: a.x, a.y, b.z (3): 5 > 4, so level 2 goes.
        let schema = infer_all_with(&[json!({"a": {"x": 1, "y": 2}, "b": {"z": 3}})], &caps);
        let cut = json!({"type": "object", "$comment": "properties not inferred: over the schema size caps"});
        assert_eq!(schema["properties"], json!({"a": cut, "b": cut}));
        // The same fields arriving over several events end in the same place.
        let spread = infer_all_with(
            &[
                json!({"a": {"x": 1}, "b": {}}),
                json!({"a": {"y": 2}, "b": {"z": 3}}),
            ],
            &caps,
        );
        assert_eq!(spread["properties"], json!({"a": cut, "b": cut}));
        // An object wider than the whole budget cuts at its own level.
        let wide: serde_json::Map<String, Value> =
            (0..5).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            infer_all_with(&[Value::Object(wide)], &caps),
            doc(
                json!({"type": "object", "$comment": "properties not inferred: over the schema size caps"})
            )
        );
    }

    #[test]
    fn caps_without_practical_limits_still_work() {
        let caps = Caps {
            max_depth: u32::MAX,
            max_nodes: usize::MAX,
            max_key_bytes: usize::MAX,
            max_format_bytes: usize::MAX,
        };
        let event = json!({"a": [{"b": {"c": "ana@example.com"}}]});
        assert_eq!(
            infer_all_with(std::slice::from_ref(&event), &caps),
            infer_all(&[event])
        );
    }

    #[test]
    fn over_long_keys_are_not_listed() {
        let caps = Caps {
            max_key_bytes: 4,
            ..Caps::default()
        };
        let schema = infer_all_with(&[json!({"short": 1, "ok": 2})], &caps);
        assert_eq!(
            schema,
            doc(json!({
                "type": "object",
                "properties": {"ok": {"type": "integer"}},
                "required": ["ok"],
                "$comment": "properties with over-long names not listed",
            }))
        );
    }

    #[test]
    fn merge_is_idempotent_and_renders_round_trip() {
        let caps = Caps {
            max_depth: 3,
            max_key_bytes: 8,
            ..Caps::default()
        };
        let events = [
            json!({"a": [1, {"b": {"c": {"d": 1}}}], "very-long-key": 1, "n": null}),
            json!({"a": "2024-01-01", "n": 2.5}),
        ];
        let schema = events
            .iter()
            .map(|e| caps.infer(e))
            .reduce(|a, b| caps.merge(a, b))
            .unwrap();
        assert_eq!(caps.merge(schema.clone(), schema.clone()), schema);
        let read = Schema::from_json(&schema.to_json(), &caps).unwrap();
        assert_eq!(read, schema);
        // Read back under tighter caps, the schema is re-capped.
        let tighter = Caps {
            max_depth: 1,
            ..caps
        };
        assert_eq!(
            Schema::from_json(&schema.to_json(), &tighter).unwrap(),
            events
                .iter()
                .map(|e| tighter.infer(e))
                .reduce(|a, b| tighter.merge(a, b))
                .unwrap()
        );
    }
}
