//! Properties: the parser never panics, whatever it accepts writes back (`Display`) to text
//! that parses to the same tree, and the normal form selects the same events.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use switchyard_analytics::{CompareOp, Field, Query, Value};

fn sample_events() -> Vec<Json> {
    vec![
        json!({"id": "1", "type": "a", "source": "/x", "in": 1, "not": "", "time": "2024-01-31T00:00:00Z",
               "data": {"a": 1, "b": "x y", "c": [1, "2", null, {"d": true}], "a.b": "and", "": ""}}),
        json!({"id": "42", "type": "com.shop.order", "data": "free text 42"}),
        json!({"data": [{"a": -1.5}, {"a": "1"}], "exists": false}),
        json!({}),
    ]
}

/// Query fragments, some valid, some not, joined with or without spaces.
const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    ",",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "*",
    "AND",
    "and",
    "OR",
    "Or",
    "NOT",
    "not",
    "EXISTS",
    "exists",
    "IN",
    "in",
    "type",
    "source",
    "id",
    "time",
    "data",
    "data.a",
    "data.c.d",
    "data.\"a.b\"",
    "data.\"\"",
    "data.",
    "x.y",
    "Type",
    "42",
    "-1.5e3",
    "1e999",
    "007",
    "true",
    "null",
    "false",
    "com.shop.*",
    "a*b",
    "\"quoted \\\" phrase\"",
    "\"x\"*",
    "\"\"",
    "\"\\u00e9\"",
    "\"unterminated",
    "\\",
    "2024-01-31",
    "2024-01-31T00:00:00Z",
    "free",
    "text",
    "é",
    "\u{a0}",
    "\n",
    "a\"b",
];

fn fragment_query() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(FRAGMENTS), prop::bool::ANY), 0..24).prop_map(
        |parts| {
            let mut q = String::new();
            for (fragment, space) in parts {
                q.push_str(fragment);
                if space {
                    q.push(' ');
                }
            }
            q
        },
    )
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "source",
            "id",
            "subject",
            "in",
            "not",
            "and",
            "exists",
            "latency_ms"
        ])
        .prop_map(|n| Field::Attribute(n.to_owned())),
        "[a-z0-9_]{1,6}"
            .prop_filter("data is a path", |n| n != "data")
            .prop_map(Field::Attribute),
        prop::collection::vec(
            prop_oneof![any::<String>(), "[a-z.]{0,4}", "[a-z]{1,4}"],
            0..4
        )
        .prop_map(Field::Data),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::String),
        "[a-z0-9.*!\"-]{0,6}".prop_map(Value::String),
        prop::sample::select(vec!["and", "IN", "true", "null", "42", "1e3", "007"])
            .prop_map(|s| Value::String(s.to_owned())),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Value::Number),
        (-1000i32..1000).prop_map(|n| Value::Number(f64::from(n) / 4.0)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ])
}

fn timestamp() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "2024-01-31",
        "2024-01-31T12:00:00Z",
        "2024-01-31T12:00:00.5+01:00",
    ])
    .prop_map(|s| Value::String(s.to_owned()))
}

fn leaf() -> impl Strategy<Value = Query> {
    prop_oneof![
        (field(), op(), value()).prop_map(|(field, op, value)| {
            // Booleans and null cannot be ordered: the parser refuses them.
            let op = if matches!(value, Value::Bool(_) | Value::Null) && op.is_ordering() {
                CompareOp::Eq
            } else {
                op
            };
            Query::Compare { field, op, value }
        }),
        (op(), timestamp()).prop_map(|(op, value)| Query::Compare {
            field: Field::Attribute("time".to_owned()),
            op,
            value
        }),
        (
            field(),
            any::<String>().prop_filter("non-empty", |s| !s.is_empty())
        )
            .prop_map(|(field, prefix)| Query::Prefix { field, prefix }),
        (field(), prop::collection::vec(value(), 1..4))
            .prop_map(|(field, values)| Query::In { field, values }),
        field().prop_map(|field| Query::Exists { field }),
        prop::collection::vec("[a-z0-9é]{1,6}|and|in|42", 1..4)
            .prop_map(|terms| Query::Text { terms }),
        Just(Query::All),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::and),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::or),
            inner.prop_map(|q| Query::Not(Box::new(q))),
        ]
    })
}

fn check_accepted(text: &str, parsed: &Query) -> Result<(), TestCaseError> {
    let canonical = parsed.to_string();
    let reparsed = Query::parse(&canonical)
        .map_err(|e| TestCaseError::fail(format!("{text:?} -> {canonical:?}: {e}")))?;
    prop_assert_eq!(&reparsed, parsed, "{:?} -> {:?}", text, canonical);
    prop_assert_eq!(reparsed.to_string(), canonical);
    let nnf = parsed.to_nnf();
    for event in sample_events() {
        prop_assert_eq!(
            nnf.matches(&event),
            parsed.matches(&event),
            "{:?} on {}",
            text,
            event
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(parsed) = Query::parse(&text) {
            check_accepted(&text, &parsed)?;
        }
    }

    #[test]
    fn arbitrary_token_sequences_never_panic(text in fragment_query()) {
        match Query::parse(&text) {
            Ok(parsed) => check_accepted(&text, &parsed)?,
            Err(e) => {
                prop_assert!(e.position <= text.len());
                prop_assert!(text.is_char_boundary(e.position));
                prop_assert!(!e.message.is_empty());
            }
        }
        let _ = Field::parse(&text);
    }

    #[test]
    fn display_parses_back_to_the_same_tree(q in query()) {
        let text = q.to_string();
        let parsed = Query::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(&parsed, &q, "{:?}", text);
        check_accepted(&text, &parsed)?;
    }

    #[test]
    fn fields_display_parses_back(f in field()) {
        prop_assert_eq!(Field::parse(&f.to_string()).unwrap(), f);
    }
}
