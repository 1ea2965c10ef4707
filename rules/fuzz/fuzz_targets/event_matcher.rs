//! Any bytes as an event: matching must return hits or an `EventError`, never panic, and
//! agree with matching the same event parsed by serde_json whenever serde_json accepts it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard_rules::Matcher;

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let mut m = Matcher::new();
        for (name, pattern) in [
            ("exact", r#"{"a": ["b"]}"#),
            ("nested", r#"{"c": {"d": [null, {"numeric": [">", 0]}]}}"#),
            (
                "prefix",
                r#"{"a": [{"prefix": {"equals-ignore-case": "B"}}]}"#,
            ),
            (
                "wild",
                r#"{"a": [{"wildcard": "*x*"}], "e": [{"exists": false}]}"#,
            ),
            (
                "but",
                r#"{"c": {"d": [{"anything-but": {"suffix": "z"}}]}}"#,
            ),
        ] {
            m.add_rule(name, pattern).expect("valid fuzz pattern");
        }
        m
    })
}

fuzz_target!(|data: &[u8]| {
    let m = matcher();
    let from_bytes = m.matches_json(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if value.is_object() && !has_duplicate_keys(data) {
            let mut a = from_bytes.expect("valid JSON object must be accepted");
            let mut b = m.matches_value(&value).expect("object");
            a.sort();
            b.sort();
            assert_eq!(a, b);
        }
    }
});

/// Duplicate keys are read first-wins from bytes and last-wins by serde_json, so such
/// events are left out of the comparison.
fn has_duplicate_keys(data: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key) {
                    return Err(serde::de::Error::custom("duplicate key"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(data).is_err()
}
