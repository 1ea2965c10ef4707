//! A deliberately simple matcher used only as a test oracle: it interprets the parsed
//! pattern directly over a naive flattening of the event, trying every combination. It
//! shares no code with the automaton beyond the pattern parser.

use serde_json::Value;

use crate::pattern::{AnythingBut, Condition, Literal, Pattern, ValueMatcher};

struct Leaf<'a> {
    path: String,
    value: &'a Value,
    /// Every `(array, index)` on the way down, arrays numbered in visiting order.
    trail: Vec<(usize, usize)>,
}

fn flatten<'a>(
    value: &'a Value,
    path: &str,
    trail: &mut Vec<(usize, usize)>,
    arrays: &mut usize,
    out: &mut Vec<Leaf<'a>>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &p, trail, arrays, out);
            }
        }
        Value::Array(items) => {
            let id = *arrays;
            *arrays += 1;
            for (i, item) in items.iter().enumerate() {
                trail.push((id, i));
                flatten(item, path, trail, arrays, out);
                trail.pop();
            }
        }
        scalar => out.push(Leaf {
            path: path.to_owned(),
            value: scalar,
            trail: trail.clone(),
        }),
    }
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn value_matches(m: &ValueMatcher, v: &Value) -> bool {
    let s = v.as_str();
    let n = if v.is_number() { v.as_f64() } else { None };
    match m {
        ValueMatcher::Exact(Literal::String(x)) => s == Some(x.as_str()),
        ValueMatcher::Exact(Literal::Number(x)) => n == Some(*x),
        ValueMatcher::Exact(Literal::Bool(b)) => v.as_bool() == Some(*b),
        ValueMatcher::Exact(Literal::Null) => v.is_null(),
        ValueMatcher::Prefix { value, ignore_case } => s.is_some_and(|s| {
            if *ignore_case {
                lower(s).starts_with(&lower(value))
            } else {
                s.starts_with(value.as_str())
            }
        }),
        ValueMatcher::Suffix { value, ignore_case } => s.is_some_and(|s| {
            if *ignore_case {
                lower(s).ends_with(&lower(value))
            } else {
                s.ends_with(value.as_str())
            }
        }),
        ValueMatcher::EqualsIgnoreCase(x) => s.is_some_and(|s| lower(s) == lower(x)),
        ValueMatcher::Wildcard(w) => s.is_some_and(|s| w.matches(s.as_bytes())),
        ValueMatcher::AnythingBut(ab) => !match ab {
            AnythingBut::Strings(list) => s.is_some_and(|s| list.iter().any(|x| x == s)),
            AnythingBut::Numbers(list) => n.is_some_and(|n| list.contains(&n)),
            AnythingBut::Prefixes(list) => {
                s.is_some_and(|s| list.iter().any(|x| s.starts_with(x.as_str())))
            }
            AnythingBut::Suffixes(list) => {
                s.is_some_and(|s| list.iter().any(|x| s.ends_with(x.as_str())))
            }
            AnythingBut::Wildcards(list) => {
                s.is_some_and(|s| list.iter().any(|w| w.matches(s.as_bytes())))
            }
            AnythingBut::IgnoreCase(list) => {
                s.is_some_and(|s| list.iter().any(|x| lower(x) == lower(s)))
            }
        },
        ValueMatcher::Numeric(r) => n.is_some_and(|n| {
            r.lower.is_none_or(|b| {
                if b.inclusive {
                    n >= b.value
                } else {
                    n > b.value
                }
            }) && r.upper.is_none_or(|b| {
                if b.inclusive {
                    n <= b.value
                } else {
                    n < b.value
                }
            })
        }),
        ValueMatcher::Cidr(range) => s.is_some_and(|s| range.contains(s)),
        ValueMatcher::Exists(present) => *present,
    }
}

fn consistent(a: &[(usize, usize)], b: &[(usize, usize)]) -> bool {
    a.iter()
        .all(|(x, i)| b.iter().all(|(y, j)| x != y || i == j))
}

fn satisfy(conditions: &[Condition], leaves: &[Leaf<'_>], held: &[(usize, usize)]) -> bool {
    let Some((first, rest)) = conditions.split_first() else {
        return true;
    };
    let at: Vec<&Leaf<'_>> = leaves.iter().filter(|l| l.path == first.path).collect();
    first.alternatives.iter().any(|m| {
        if let ValueMatcher::Exists(false) = m {
            return at.is_empty() && satisfy(rest, leaves, held);
        }
        at.iter().any(|leaf| {
            if !consistent(held, &leaf.trail) || !value_matches(m, leaf.value) {
                return false;
            }
            let mut joined = held.to_vec();
            joined.extend_from_slice(&leaf.trail);
            satisfy(rest, leaves, &joined)
        })
    })
}

/// Whether `pattern` matches `event`, by brute force.
pub(crate) fn matches(pattern: &Pattern, event: &Value) -> bool {
    if !event.is_object() {
        return false;
    }
    let mut leaves = Vec::new();
    flatten(event, "", &mut Vec::new(), &mut 0, &mut leaves);
    pattern
        .conjunctions()
        .unwrap_or_default()
        .iter()
        .any(|c| satisfy(c, &leaves, &[]))
}

#[cfg(test)]
mod tests {
    //! The automaton against the reference on generated patterns and events.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::{Matcher, Pattern};

    const KEYS: &[&str] = &["a", "b", "c"];
    const WORDS: &[&str] = &[
        "",
        "x",
        "xy",
        "Xy",
        "yx",
        "xyz",
        "a.b",
        "10.0.0.7",
        "2001:db8::1",
    ];
    const NUMBERS: &[f64] = &[-1.0, 0.0, 1.0, 1.5, 2.0, 100.0];

    fn word() -> impl Strategy<Value = Value> {
        prop::sample::select(WORDS).prop_map(|w| json!(w))
    }

    fn num() -> impl Strategy<Value = Value> {
        prop::sample::select(NUMBERS).prop_map(|n| json!(n))
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => word(),
            3 => num(),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => Just(Value::Null),
        ]
    }

    fn event_value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..4).prop_map(
                    |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                ),
            ]
        })
    }

    fn event() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(prop::sample::select(KEYS), event_value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    fn wildcard() -> impl Strategy<Value = Value> {
        prop::sample::select(&["x*", "*y", "x*z", "*", "", "*x*", "X*"][..]).prop_map(|w| json!(w))
    }

    fn strings_or_one(s: impl Strategy<Value = Value> + Clone) -> impl Strategy<Value = Value> {
        prop_oneof![
            s.clone(),
            prop::collection::vec(s, 1..3).prop_map(Value::Array)
        ]
    }

    fn nonempty_word() -> impl Strategy<Value = Value> {
        prop::sample::select(&WORDS[1..]).prop_map(|w| json!(w))
    }

    fn matcher() -> impl Strategy<Value = Value> {
        let op =
            |name: &'static str, s: BoxedStrategy<Value>| s.prop_map(move |v| json!({ name: v }));
        prop_oneof![
            4 => scalar(),
            1 => op("prefix", word().boxed()),
            1 => op("suffix", word().boxed()),
            1 => op("prefix", word().prop_map(|w| json!({"equals-ignore-case": w})).boxed()),
            1 => op("suffix", word().prop_map(|w| json!({"equals-ignore-case": w})).boxed()),
            1 => op("equals-ignore-case", word().boxed()),
            1 => op("wildcard", wildcard().boxed()),
            1 => op("anything-but", strings_or_one(word().boxed()).boxed()),
            1 => op("anything-but", strings_or_one(num().boxed()).boxed()),
            1 => op("anything-but", strings_or_one(nonempty_word().boxed()).prop_map(|v| json!({"prefix": v})).boxed()),
            1 => op("anything-but", strings_or_one(nonempty_word().boxed()).prop_map(|v| json!({"suffix": v})).boxed()),
            1 => op("anything-but", strings_or_one(wildcard().boxed()).prop_map(|v| json!({"wildcard": v})).boxed()),
            1 => op("anything-but", strings_or_one(word().boxed()).prop_map(|v| json!({"equals-ignore-case": v})).boxed()),
            2 => (prop::sample::select(&[">", ">=", "<", "<=", "="][..]), num()).prop_map(|(o, n)| json!({"numeric": [o, n]})),
            1 => (prop::sample::select(&[">", ">="][..]), num(), prop::sample::select(&["<", "<="][..]), num())
                .prop_map(|(a, x, b, y)| json!({"numeric": [a, x, b, y]})),
            1 => prop::sample::select(&["10.0.0.0/24", "10.0.0.7/32", "2001:db8::/32", "0.0.0.0/0"][..]).prop_map(|c| json!({"cidr": c})),
            2 => any::<bool>().prop_map(|b| json!({"exists": b})),
        ]
    }

    fn object_pattern(depth: u32) -> BoxedStrategy<Value> {
        let field = if depth == 0 {
            prop::collection::vec(matcher(), 1..3)
                .prop_map(Value::Array)
                .boxed()
        } else {
            prop_oneof![
                3 => prop::collection::vec(matcher(), 1..3).prop_map(Value::Array),
                1 => object_pattern(depth - 1),
            ]
            .boxed()
        };
        let fields = prop::collection::btree_map(prop::sample::select(KEYS), field, 1..3);
        let ors = if depth == 0 {
            Just(None).boxed()
        } else {
            prop::option::weighted(0.2, prop::collection::vec(object_pattern(depth - 1), 2..4))
                .boxed()
        };
        (fields, ors)
            .prop_map(|(fields, or)| {
                let mut map: serde_json::Map<String, Value> =
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                if let Some(branches) = or {
                    map.insert("$or".to_owned(), Value::Array(branches));
                }
                Value::Object(map)
            })
            .boxed()
    }

    fn names(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn automaton_agrees_with_reference(
            patterns in prop::collection::vec(object_pattern(2), 1..6),
            events in prop::collection::vec(event(), 1..6),
            removed in prop::collection::vec(any::<bool>(), 6),
        ) {
            let parsed: Vec<(String, Pattern)> = patterns
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Pattern::from_value(p).ok().map(|p| (format!("r{i}"), p)))
                .collect();
            let mut matcher = Matcher::new();
            for (name, p) in &parsed {
                matcher.add_pattern(name, p).unwrap();
            }
            let check = |matcher: &Matcher, live: &[&(String, Pattern)]| {
                for event in &events {
                    let expected: Vec<String> = live
                        .iter()
                        .filter(|(_, p)| super::matches(p, event))
                        .map(|(n, _)| n.clone())
                        .collect();
                    let bytes = serde_json::to_vec(event).unwrap();
                    let got = names(matcher.matches_json(&bytes).unwrap());
                    prop_assert_eq!(&got, &expected, "event {}", event);
                    // Whitespace everywhere, and every character of keys and strings escaped.
                    let pretty = escape_everything(&serde_json::to_string_pretty(event).unwrap());
                    let got_pretty = names(matcher.matches_json(pretty.as_bytes()).unwrap());
                    prop_assert_eq!(&got_pretty, &expected, "event {}", pretty);
                    let got_value = names(matcher.matches_value(event).unwrap());
                    prop_assert_eq!(&got_value, &expected, "event {} (value)", event);
                }
                Ok(())
            };
            let all: Vec<&(String, Pattern)> = parsed.iter().collect();
            check(&matcher, &all)?;
            let mut live = Vec::new();
            for (i, rule) in parsed.iter().enumerate() {
                if removed[i] {
                    matcher.remove_rule(&rule.0);
                } else {
                    live.push(rule);
                }
            }
            check(&matcher, &live)?;
        }

        #[test]
        fn arrays_of_objects_agree_with_reference(
            conditions in prop::collection::vec((prop::sample::select(&["b", "c", "d.e"][..]), matcher()), 2..4),
            elements in prop::collection::vec(
                prop::collection::btree_map(prop::sample::select(&["b", "c", "d"][..]), prop_oneof![
                    3 => scalar(),
                    1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::Array),
                    1 => prop::collection::btree_map(prop::sample::select(&["e"][..]), scalar(), 1..2)
                        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
                ], 0..4),
                0..4,
            ),
            nest in any::<bool>(),
        ) {
            let mut inner = serde_json::Map::new();
            for (key, m) in &conditions {
                inner.insert((*key).to_owned(), json!([m]));
            }
            let pattern = json!({"x": {"a": Value::Object(inner)}, "top": [{"exists": false}]});
            let Ok(pattern) = Pattern::from_value(&pattern) else { return Ok(()) };
            let items: Vec<Value> = elements
                .into_iter()
                .map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
                .collect();
            let a = if nest { json!([items, [{"b": "x", "c": 1}]]) } else { Value::Array(items) };
            let event = json!({"x": [{"a": a}]});
            let mut matcher = Matcher::new();
            matcher.add_pattern("r", &pattern).unwrap();
            let expected = super::matches(&pattern, &event);
            let got = !matcher.matches_json(&serde_json::to_vec(&event).unwrap()).unwrap().is_empty();
            prop_assert_eq!(got, expected, "event {}", event);
        }

        #[test]
        fn parser_never_panics_on_json(value in any_json()) {
            let _ = Pattern::from_value(&value);
            let _ = Pattern::parse(&value.to_string());
        }

        #[test]
        fn parser_never_panics_on_text(text in ".{0,64}") {
            let _ = Pattern::parse(&text);
        }

        #[test]
        fn matcher_never_panics_on_event_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut m = Matcher::new();
            m.add_rule("r", r#"{"a": [{"prefix": "x"}], "b": {"c": [{"numeric": [">", 1]}]}}"#).unwrap();
            let _ = m.matches_json(&bytes);
            let mut with_object = b"{\"a\":".to_vec();
            with_object.extend_from_slice(&bytes);
            let _ = m.matches_json(&with_object);
        }
    }

    /// Rewrites every character inside JSON strings as a `\uXXXX` escape (surrogate pairs
    /// beyond the BMP), leaving the document's meaning unchanged.
    fn escape_everything(json: &str) -> String {
        let mut out = String::with_capacity(json.len() * 6);
        let mut in_string = false;
        let mut chars = json.chars();
        while let Some(c) = chars.next() {
            if !in_string {
                in_string = c == '"';
                out.push(c);
                continue;
            }
            match c {
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                '\\' => {
                    // Keep existing escapes as they are.
                    out.push('\\');
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
                other => {
                    let mut units = [0u16; 2];
                    for unit in other.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out
    }

    /// Arbitrary JSON biased towards pattern syntax: operator names as keys, operator-ish
    /// strings as values.
    fn any_json() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(
            &[
                "a",
                "$or",
                "prefix",
                "suffix",
                "anything-but",
                "numeric",
                "exists",
                "cidr",
                "wildcard",
                "equals-ignore-case",
                "EXISTS",
                "",
            ][..],
        );
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<i64>().prop_map(|i| json!(i)),
            prop::sample::select(
                &[
                    "<",
                    ">=",
                    "=",
                    "*",
                    "**",
                    "\\",
                    "a*b",
                    "1.2.3.4/33",
                    "::/0",
                    ""
                ][..]
            )
            .prop_map(|s| json!(s)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..4).prop_map(|m| {
                    Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }
}
