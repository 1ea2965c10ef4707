//! Cross-checks against the official CloudEvents SDK, and robustness on arbitrary input.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use switchyard_core::Limits;
use switchyard_core::cloudevent::{BinaryEvent, from_binary, parse_batch, parse_structured};

fn attr_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-zA-Z0-9/:._-]{1,12}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
    ]
}

/// Valid events with random optional attributes, extensions and data.
fn valid_event() -> impl Strategy<Value = Value> {
    (
        "[a-zA-Z0-9._-]{1,16}",
        "(/|urn:)[a-z0-9/._-]{1,16}",
        "[a-z.]{1,16}",
        proptest::option::of("[a-z]{1,8}"),
        proptest::option::of(
            (2000i32..2100, 1u32..13, 1u32..29, 0u32..24)
                .prop_map(|(y, mo, d, h)| format!("{y}-{mo:02}-{d:02}T{h:02}:30:00Z")),
        ),
        proptest::collection::btree_map("[a-z0-9]{1,20}", attr_value(), 0..4),
        proptest::option::of(prop_oneof![
            any::<i64>().prop_map(|n| json!({"n": n})),
            "[ -~]{0,20}".prop_map(Value::from),
        ]),
    )
        .prop_map(|(id, source, ty, subject, time, exts, data)| {
            let mut m = Map::new();
            for (k, v) in exts {
                m.insert(k, v);
            }
            m.insert("specversion".into(), json!("1.0"));
            m.insert("id".into(), json!(id));
            m.insert("source".into(), json!(source));
            m.insert("type".into(), json!(ty));
            if let Some(s) = subject {
                m.insert("subject".into(), json!(s));
            }
            if let Some(t) = time {
                m.insert("time".into(), json!(t));
            }
            if let Some(d) = data {
                m.insert("data".into(), d);
            }
            Value::Object(m)
        })
}

proptest! {
    /// Whatever we accept, the official SDK parses too, with the same id, source and type.
    #[test]
    fn accepted_events_parse_in_the_official_sdk(ev in valid_event()) {
        use cloudevents::AttributesReader as _;
        let text = ev.to_string();
        let ours = parse_structured(text.as_bytes(), &Limits::default()).unwrap();
        let sdk: cloudevents::Event = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(ours.id.as_str(), sdk.id());
        prop_assert_eq!(ours.source.as_str(), sdk.source().as_str());
        prop_assert_eq!(ours.ty.as_str(), sdk.ty());
        prop_assert_eq!(ours.json, text.into_bytes());
    }

    /// Dropping a required attribute makes both refuse the event.
    #[test]
    fn missing_required_attributes_are_refused_by_both(ev in valid_event(), which in 0usize..4) {
        let mut ev = ev;
        let name = ["specversion", "id", "source", "type"][which];
        ev.as_object_mut().unwrap().remove(name);
        let text = ev.to_string();
        prop_assert!(parse_structured(text.as_bytes(), &Limits::default()).is_err());
        prop_assert!(serde_json::from_str::<cloudevents::Event>(&text).is_err());
    }

    /// No input makes the parsers panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = Limits { max_event_bytes: 200, max_batch_events: 3 };
        let _ = parse_structured(&bytes, &limits);
        let _ = parse_batch(&bytes, &limits);
        let attrs: Vec<(&str, &[u8])> = vec![("specversion", b"1.0"), ("id", &bytes), ("source", &bytes), ("type", b"t")];
        let _ = from_binary(BinaryEvent { attributes: &attrs, content_type: Some("application/json"), body: &bytes }, &limits);
    }

    /// Structured text built from arbitrary JSON values never panics either.
    #[test]
    fn arbitrary_json_objects_never_panic(keys in proptest::collection::vec("[a-z_A-Z]{0,22}", 0..8), vals in proptest::collection::vec(attr_value(), 8)) {
        let m: Map<String, Value> = keys.into_iter().zip(vals).collect();
        let text = Value::Object(m).to_string();
        let _ = parse_structured(text.as_bytes(), &Limits::default());
    }
}
