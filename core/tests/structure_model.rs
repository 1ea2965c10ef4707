//! The structure check against a naive model: a serde visitor that walks the whole document
//! recursively, keeps every object's decoded keys in a `BTreeSet`, counts depth, and lets
//! serde_json decode every string (which refuses lone surrogates).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fmt;

use proptest::prelude::*;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use switchyard_core::MAX_EVENT_DEPTH;
use switchyard_core::cloudevent::structure::check_event;

#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    DuplicateKey(String),
    TooDeep,
    LoneSurrogate,
}

/// Walks one value at `depth` (the value's own level) and records the first problem.
struct Walk<'p> {
    depth: usize,
    problem: &'p mut Option<Verdict>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth > MAX_EVENT_DEPTH && self.problem.is_none() {
            *self.problem = Some(Verdict::TooDeep);
        }
        while seq
            .next_element_seed(Walk {
                depth: self.depth + 1,
                problem: &mut *self.problem,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_EVENT_DEPTH && self.problem.is_none() {
            *self.problem = Some(Verdict::TooDeep);
        }
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) && self.problem.is_none() {
                *self.problem = Some(Verdict::DuplicateKey(key));
            }
            map.next_value_seed(Walk {
                depth: self.depth + 1,
                problem: &mut *self.problem,
            })?;
        }
        Ok(())
    }
}

fn model(text: &str) -> Verdict {
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = Walk {
        depth: 1,
        problem: &mut problem,
    }
    .deserialize(&mut de);
    match (walked, problem) {
        // A problem recorded before serde_json gave up comes first in the document (its
        // recursion limit, 128, lies past a depth problem on the same path).
        (_, Some(p)) => p,
        // serde_json refuses a lone surrogate while decoding; generated text is otherwise valid.
        (Err(e), None) => {
            let e = e.to_string();
            assert!(
                e.contains("surrogate") || e.contains("hex escape"),
                "{e}: {text}"
            );
            Verdict::LoneSurrogate
        }
        (Ok(()), None) => Verdict::Ok,
    }
}

fn checked(text: &str) -> Verdict {
    use switchyard_core::StructureError as E;
    match check_event(text) {
        Ok(()) => Verdict::Ok,
        Err(E::DuplicateKey { key, .. }) => Verdict::DuplicateKey(key),
        Err(E::TooDeep { .. }) => Verdict::TooDeep,
        Err(E::LoneSurrogate { .. }) => Verdict::LoneSurrogate,
    }
}

/// A string literal as JSON text: few distinct spellings, some of them the same key.
fn string() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""a""#,
        r#""\u0061""#,
        r#""b""#,
        r#""a ""#,
        r#""\"""#,
        r#""\\""#,
        r#""\\u0061""#,
        r#""\ud83d\ude00""#,
        r#""😀""#,
        r#""long key long key long key long key""#,
        r#""\ud800""#,
        r#""x\udc00""#,
        r#""\ud800\u0041""#,
    ])
    .prop_map(str::to_owned)
}

/// JSON text, sometimes with a repeated key, a lone surrogate or too many levels.
fn text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        string(),
        Just("1".to_owned()),
        Just("-2.5e3".to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
    ];
    leaf.prop_recursive(8, 200, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((string(), inner.clone()), 0..4).prop_map(|members| {
                let m: Vec<String> = members.iter().map(|(k, v)| format!("{k} : {v}")).collect();
                format!("{{ {} }}", m.join(", "))
            }),
            // A long chain of one-member objects, to cross the depth limit.
            (inner, 50usize..70).prop_map(|(v, n)| format!(
                "{}{v}{}",
                r#"{"d":"#.repeat(n),
                "}".repeat(n)
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Both report the first problem in document order.
    #[test]
    fn agrees_with_the_model(text in text()) {
        prop_assert_eq!(checked(&text), model(&text), "{}", text);
    }
}
