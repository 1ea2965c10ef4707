//! Properties of discovery that must hold for any events: the schema depends on the set of
//! shapes, not their order; it accepts every event it was inferred from; it survives a
//! store/resume round trip; and the fingerprint fast path loses nothing.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Map, Value};
use switchyard_schema_registry::{Caps, Discovered, Schema, Validator};

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "b", "c", "id", "ä", "日本", "🚀", "a/b", "~x", "long-key",
    ])
    .prop_map(String::from)
}

/// Strings near each detectable format, so detection is exercised on both sides of its edge.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,4}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,3})?(Z|[+-][0-2][0-9]:[0-5][0-9])?",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-fg]{12}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "[0-9a-f:]{2,16}",
        "[a-z0-9.+_-]{1,6}@[a-z0-9.-]{1,6}\\.[a-z]{1,3}",
        "(https?|ftp|urn|mailto|x)(:|://)[a-zA-Z0-9.@:_~%/?#-]{0,14}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6..1e6f64).prop_map(Value::from),
        string().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Default caps, and caps small enough that the generated events hit every one of them.
fn caps() -> impl Strategy<Value = Caps> {
    prop_oneof![
        Just(Caps::default()),
        (1u32..4, 1usize..12, 1usize..4).prop_map(|(max_depth, max_nodes, max_key_bytes)| Caps {
            max_depth,
            max_nodes,
            max_key_bytes,
            ..Caps::default()
        }),
    ]
}

fn fold(caps: &Caps, events: &[Value]) -> Schema {
    events
        .iter()
        .map(|event| caps.infer(event))
        .reduce(|a, b| caps.merge(a, b))
        .unwrap()
}

/// Merges as a balanced tree rather than left to right, to exercise associativity.
fn tree(caps: &Caps, events: &[Value]) -> Schema {
    match events {
        [one] => caps.infer(one),
        _ => {
            let (left, right) = events.split_at(events.len() / 2);
            caps.merge(tree(caps, right), tree(caps, left))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn order_does_not_matter(
        caps in caps(),
        (events, shuffled) in prop::collection::vec(value(), 1..7)
            .prop_flat_map(|events| (Just(events.clone()), Just(events).prop_shuffle())),
    ) {
        let expected = fold(&caps, &events);
        prop_assert_eq!(&fold(&caps, &shuffled), &expected);
        prop_assert_eq!(&tree(&caps, &shuffled), &expected);
        prop_assert_eq!(expected.to_json(), fold(&caps, &shuffled).to_json());
    }

    #[test]
    fn a_schema_accepts_every_event_it_was_inferred_from(
        caps in caps(),
        events in prop::collection::vec(value(), 1..6),
    ) {
        let schema = fold(&caps, &events).to_json();
        let validator = Validator::compile(&schema).unwrap();
        for event in &events {
            prop_assert_eq!(validator.validate(event), vec![], "{} against {}", event, schema);
        }
    }

    #[test]
    fn a_detected_format_is_one_the_validator_accepts(
        strings in prop::collection::vec(string(), 64),
    ) {
        for s in strings {
            let value = Value::from(s);
            let schema = Caps::default().infer(&value).to_json();
            let violations = Validator::compile(&schema).unwrap().validate(&value);
            prop_assert_eq!(violations, vec![], "{} against {}", value, schema);
        }
    }

    #[test]
    fn rendering_round_trips(caps in caps(), events in prop::collection::vec(value(), 1..6)) {
        let schema = fold(&caps, &events);
        prop_assert_eq!(Schema::from_json(&schema.to_json(), &caps).unwrap(), schema);
    }

    #[test]
    fn the_fingerprint_fast_path_loses_nothing(
        caps in caps(),
        events in prop::collection::vec(value(), 1..8),
    ) {
        let mut discovered = Discovered::new(caps);
        let mut versions = 0;
        for event in &events {
            if let Some(new) = discovered.observe(event) {
                versions += 1;
                prop_assert_eq!(new.version, versions);
            }
        }
        prop_assert_eq!(discovered.schema(), Some(&fold(&caps, &events)));
        // Seen again, in any order, the same events make no new version.
        for event in events.iter().rev() {
            prop_assert_eq!(discovered.observe(event), None);
        }
        prop_assert_eq!(discovered.version(), versions);
    }

    #[test]
    fn covers_says_whether_a_merge_would_change_the_schema(
        caps in caps(),
        events in prop::collection::vec(value(), 1..5),
        event in value(),
    ) {
        let schema = fold(&caps, &events);
        let observed = caps.infer(&event);
        let unchanged = caps.merge(schema.clone(), observed.clone()) == schema;
        prop_assert_eq!(schema.covers(&observed), unchanged);
        prop_assert!(schema.covers(&schema));
    }

    #[test]
    fn different_schemas_have_different_fingerprints(caps in caps(), a in value(), b in value()) {
        if caps.infer(&a) != caps.infer(&b) {
            prop_assert_ne!(caps.fingerprint(&a), caps.fingerprint(&b));
        }
    }
}
