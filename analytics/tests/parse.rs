//! The query language's syntax: every operator, precedence, parentheses, quoting, fields,
//! values, and the canonical text `Display` writes.
#![allow(clippy::unwrap_used)]

use switchyard_analytics::{CompareOp, Field, Query, Value};

fn parse(q: &str) -> Query {
    Query::parse(q).unwrap_or_else(|e| panic!("{q:?}: {e}"))
}

fn attr(name: &str) -> Field {
    Field::Attribute(name.to_owned())
}

fn data(path: &[&str]) -> Field {
    Field::Data(path.iter().map(|s| (*s).to_owned()).collect())
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn cmp(field: Field, op: CompareOp, value: Value) -> Query {
    Query::Compare { field, op, value }
}

fn eq(field: Field, value: Value) -> Query {
    cmp(field, CompareOp::Eq, value)
}

fn text(terms: &[&str]) -> Query {
    Query::Text {
        terms: terms.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn not(q: Query) -> Query {
    Query::Not(Box::new(q))
}

/// Parses, checks the tree, and checks that the canonical text is `canonical` and parses
/// back to the same tree.
fn check(q: &str, expected: Query, canonical: &str) {
    let parsed = parse(q);
    assert_eq!(parsed, expected, "{q:?}");
    assert_eq!(parsed.to_string(), canonical, "{q:?}");
    assert_eq!(parse(canonical), expected, "{canonical:?}");
}

#[test]
fn every_comparison_operator() {
    use CompareOp::*;
    for (symbol, op) in [
        ("=", Eq),
        ("!=", Ne),
        ("<", Lt),
        ("<=", Le),
        (">", Gt),
        (">=", Ge),
    ] {
        let expected = cmp(data(&["total"]), op, Value::Number(10.0));
        check(
            &format!("data.total {symbol} 10"),
            expected.clone(),
            &format!("data.total {symbol} 10"),
        );
        check(
            &format!("data.total{symbol}10"),
            expected,
            &format!("data.total {symbol} 10"),
        );
    }
}

#[test]
fn bare_values_are_typed() {
    check(
        "data.x = 42",
        eq(data(&["x"]), Value::Number(42.0)),
        "data.x = 42",
    );
    check(
        "data.x = -1.5e3",
        eq(data(&["x"]), Value::Number(-1500.0)),
        "data.x = -1500",
    );
    check(
        "data.x = 0.25",
        eq(data(&["x"]), Value::Number(0.25)),
        "data.x = 0.25",
    );
    check(
        "data.x = true",
        eq(data(&["x"]), Value::Bool(true)),
        "data.x = true",
    );
    check(
        "data.x = false",
        eq(data(&["x"]), Value::Bool(false)),
        "data.x = false",
    );
    check(
        "data.x = null",
        eq(data(&["x"]), Value::Null),
        "data.x = null",
    );
    // Not JSON numbers or not lowercase literals: strings.
    check("data.x = 007", eq(data(&["x"]), s("007")), "data.x = 007");
    check("data.x = .5", eq(data(&["x"]), s(".5")), "data.x = .5");
    check("data.x = +1", eq(data(&["x"]), s("+1")), "data.x = +1");
    check("data.x = 1.", eq(data(&["x"]), s("1.")), "data.x = 1.");
    check("data.x = inf", eq(data(&["x"]), s("inf")), "data.x = inf");
    check(
        "data.x = True",
        eq(data(&["x"]), s("True")),
        "data.x = True",
    );
    check(
        "data.x = NULL",
        eq(data(&["x"]), s("NULL")),
        "data.x = NULL",
    );
    // Quoted: always strings; Display keeps the quotes where a bare word would differ.
    check(
        r#"data.x = "42""#,
        eq(data(&["x"]), s("42")),
        r#"data.x = "42""#,
    );
    check(
        r#"data.x = "true""#,
        eq(data(&["x"]), s("true")),
        r#"data.x = "true""#,
    );
    check(
        r#"data.x = "gold""#,
        eq(data(&["x"]), s("gold")),
        "data.x = gold",
    );
    check(
        r#"data.x = "and""#,
        eq(data(&["x"]), s("and")),
        r#"data.x = "and""#,
    );
    check(r#"data.x = """#, eq(data(&["x"]), s("")), r#"data.x = """#);
}

#[test]
fn realistic_bare_values() {
    check(
        "type = com.shop.order.created source = /shop/eu-1 time >= 2024-01-31T12:00:00.5+01:00",
        Query::And(vec![
            eq(attr("type"), s("com.shop.order.created")),
            eq(attr("source"), s("/shop/eu-1")),
            cmp(
                attr("time"),
                CompareOp::Ge,
                s("2024-01-31T12:00:00.5+01:00"),
            ),
        ]),
        "type = com.shop.order.created AND source = /shop/eu-1 AND time >= 2024-01-31T12:00:00.5+01:00",
    );
    check(
        "data.email = a@b.example",
        eq(data(&["email"]), s("a@b.example")),
        "data.email = a@b.example",
    );
    check(
        "data.msg = wow!",
        eq(data(&["msg"]), s("wow!")),
        r#"data.msg = "wow!""#,
    );
}

#[test]
fn quoted_strings_and_escapes() {
    check(
        r#"data.note = "say \"hi\"\\ \/ \n\t\r\b\f \u00e9 \ud83d\ude00""#,
        eq(data(&["note"]), s("say \"hi\"\\ / \n\t\r\u{8}\u{c} é 😀")),
        r#"data.note = "say \"hi\"\\ / \n\t\r\u0008\u000c é 😀""#,
    );
    check(
        r#"data.name = "Jane Doe""#,
        eq(data(&["name"]), s("Jane Doe")),
        r#"data.name = "Jane Doe""#,
    );
    check(
        r#"data.x = "a(b)=c""#,
        eq(data(&["x"]), s("a(b)=c")),
        r#"data.x = "a(b)=c""#,
    );
    check(
        r#"data.x = "*""#,
        eq(data(&["x"]), s("*")),
        r#"data.x = "*""#,
    );
}

#[test]
fn fields() {
    check("type = x", eq(attr("type"), s("x")), "type = x");
    check(
        "latency_ms > 5",
        cmp(attr("latency_ms"), CompareOp::Gt, Value::Number(5.0)),
        "latency_ms > 5",
    );
    check("data = x", eq(data(&[]), s("x")), "data = x");
    check(
        "data.customer.tier = gold",
        eq(data(&["customer", "tier"]), s("gold")),
        "data.customer.tier = gold",
    );
    check(
        r#"data."a.b" = 1"#,
        eq(data(&["a.b"]), Value::Number(1.0)),
        r#"data."a.b" = 1"#,
    );
    check(
        r#"data."key with spaces"."x\"y".z."" = 1"#,
        eq(
            data(&["key with spaces", "x\"y", "z", ""]),
            Value::Number(1.0),
        ),
        r#"data."key with spaces"."x\"y".z."" = 1"#,
    );
    check(
        r#"data."plain" = 1"#,
        eq(data(&["plain"]), Value::Number(1.0)),
        "data.plain = 1",
    );
    check(
        "data.items.0 = 1",
        eq(data(&["items", "0"]), Value::Number(1.0)),
        "data.items.0 = 1",
    );
    assert_eq!(
        Field::parse(r#"data."a.b".c"#).unwrap(),
        data(&["a.b", "c"])
    );
    assert_eq!(Field::parse(" subject ").unwrap(), attr("subject"));
}

#[test]
fn keywords_are_case_insensitive() {
    let expected = Query::Or(vec![
        Query::And(vec![
            not(Query::Exists {
                field: attr("subject"),
            }),
            Query::In {
                field: attr("type"),
                values: vec![s("a")],
            },
        ]),
        text(&["x"]),
    ]);
    for q in [
        "NOT EXISTS subject AND type IN (a) OR x",
        "not exists subject and type in (a) or x",
        "Not Exists subject aNd type In (a) oR x",
    ] {
        check(
            q,
            expected.clone(),
            "NOT EXISTS subject AND type IN (a) OR x",
        );
    }
}

#[test]
fn precedence_not_and_or() {
    let (a, b, c) = (text(&["a"]), text(&["b"]), text(&["c"]));
    check(
        "a OR b AND c",
        Query::Or(vec![a.clone(), Query::And(vec![b.clone(), c.clone()])]),
        "a OR b AND c",
    );
    check(
        "a AND b OR c",
        Query::Or(vec![Query::And(vec![a.clone(), b.clone()]), c.clone()]),
        "a AND b OR c",
    );
    check(
        "NOT a AND b",
        Query::And(vec![not(a.clone()), b.clone()]),
        "NOT a AND b",
    );
    check(
        "NOT a OR b",
        Query::Or(vec![not(a.clone()), b.clone()]),
        "NOT a OR b",
    );
    check("NOT NOT a", not(not(a.clone())), "NOT NOT a");
    check(
        "NOT type = x",
        not(eq(attr("type"), s("x"))),
        "NOT type = x",
    );
    // Implicit AND binds like AND.
    check(
        "a b OR c",
        Query::Or(vec![Query::And(vec![a.clone(), b.clone()]), c.clone()]),
        "a AND b OR c",
    );
    check(
        "a OR b c",
        Query::Or(vec![a.clone(), Query::And(vec![b.clone(), c.clone()])]),
        "a OR b AND c",
    );
    check(
        "type = x data.n > 1",
        Query::And(vec![
            eq(attr("type"), s("x")),
            cmp(data(&["n"]), CompareOp::Gt, Value::Number(1.0)),
        ]),
        "type = x AND data.n > 1",
    );
}

#[test]
fn parentheses() {
    let (a, b, c) = (text(&["a"]), text(&["b"]), text(&["c"]));
    check(
        "(a OR b) AND c",
        Query::And(vec![Query::Or(vec![a.clone(), b.clone()]), c.clone()]),
        "(a OR b) AND c",
    );
    check(
        "(a OR b) c",
        Query::And(vec![Query::Or(vec![a.clone(), b.clone()]), c.clone()]),
        "(a OR b) AND c",
    );
    check(
        "NOT (a AND b)",
        not(Query::And(vec![a.clone(), b.clone()])),
        "NOT (a AND b)",
    );
    check(
        "NOT (a OR b)",
        not(Query::Or(vec![a.clone(), b.clone()])),
        "NOT (a OR b)",
    );
    check("(((a)))", a.clone(), "a");
    // Same-kind groups are flattened.
    check(
        "a AND (b AND c)",
        Query::And(vec![a.clone(), b.clone(), c.clone()]),
        "a AND b AND c",
    );
    check(
        "(a OR b) OR (c)",
        Query::Or(vec![a.clone(), b.clone(), c.clone()]),
        "a OR b OR c",
    );
    check("(a)(b)", Query::And(vec![a.clone(), b.clone()]), "a AND b");
}

#[test]
fn full_text_terms() {
    check("timeout", text(&["timeout"]), "timeout");
    check(
        "Card-Declined",
        text(&["card", "declined"]),
        r#""card declined""#,
    );
    check(
        r#""card declined""#,
        text(&["card", "declined"]),
        r#""card declined""#,
    );
    check(r#""AND""#, text(&["and"]), r#""and""#);
    check("42", text(&["42"]), "42");
    check("true", text(&["true"]), "true");
    check("wow!", text(&["wow"]), "wow");
    check(
        "payment failed",
        Query::And(vec![text(&["payment"]), text(&["failed"])]),
        "payment AND failed",
    );
    // `in` is only a keyword in `field IN (`.
    check(
        "rock in roll",
        Query::And(vec![text(&["rock"]), text(&["in"]), text(&["roll"])]),
        r#"rock AND "in" AND roll"#,
    );
}

#[test]
fn prefix_values() {
    let p = |field: Field, prefix: &str| Query::Prefix {
        field,
        prefix: prefix.to_owned(),
    };
    check(
        "type = com.shop.*",
        p(attr("type"), "com.shop."),
        "type = com.shop.*",
    );
    check(
        "type != com.shop.*",
        not(p(attr("type"), "com.shop.")),
        "NOT type = com.shop.*",
    );
    check(
        r#"data.name = "Jane D"*"#,
        p(data(&["name"]), "Jane D"),
        r#"data.name = "Jane D"*"#,
    );
    check(
        "data.code = 42*",
        p(data(&["code"]), "42"),
        "data.code = 42*",
    );
    check(
        "data.code = and*",
        p(data(&["code"]), "and"),
        "data.code = and*",
    );
}

#[test]
fn in_lists() {
    check(
        r#"data.country IN (DE, "US", 3, true, null)"#,
        Query::In {
            field: data(&["country"]),
            values: vec![
                s("DE"),
                s("US"),
                Value::Number(3.0),
                Value::Bool(true),
                Value::Null,
            ],
        },
        "data.country IN (DE, US, 3, true, null)",
    );
    check(
        "time in (2024-01-31,2024-02-01T00:00:00Z)",
        Query::In {
            field: attr("time"),
            values: vec![s("2024-01-31"), s("2024-02-01T00:00:00Z")],
        },
        "time IN (2024-01-31, 2024-02-01T00:00:00Z)",
    );
}

#[test]
fn exists_and_star() {
    check(
        "exists data.customer",
        Query::Exists {
            field: data(&["customer"]),
        },
        "EXISTS data.customer",
    );
    check(
        "EXISTS data",
        Query::Exists { field: data(&[]) },
        "EXISTS data",
    );
    check("*", Query::All, "*");
    check(
        "* AND a",
        Query::And(vec![Query::All, text(&["a"])]),
        "* AND a",
    );
    assert_eq!(parse(""), Query::All);
    assert_eq!(parse(" \n\t "), Query::All);
}

#[test]
fn fields_named_like_keywords() {
    check("in = 1", eq(attr("in"), Value::Number(1.0)), "in = 1");
    check("not = 1", eq(attr("not"), Value::Number(1.0)), "not = 1");
    check(
        "and = 1 and or = 2",
        Query::And(vec![
            eq(attr("and"), Value::Number(1.0)),
            eq(attr("or"), Value::Number(2.0)),
        ]),
        "and = 1 AND or = 2",
    );
    check(
        "exists exists",
        Query::Exists {
            field: attr("exists"),
        },
        "EXISTS exists",
    );
    check(
        "NOT not IN (1)",
        not(Query::In {
            field: attr("not"),
            values: vec![Value::Number(1.0)],
        }),
        "NOT not IN (1)",
    );
}

#[test]
fn fields_helper_lists_each_field_once_in_order() {
    let q = parse(
        "type = a (data.x > 1 OR NOT EXISTS subject) type IN (b) data.x < 5 word data.y = p*",
    );
    let fields: Vec<String> = q.fields().into_iter().map(ToString::to_string).collect();
    assert_eq!(fields, ["type", "data.x", "subject", "data.y"]);
    assert!(q.has_text());
    assert!(!parse("type = a").has_text());
}

#[test]
fn negation_normal_form() {
    let q = parse("NOT (type = a OR NOT (data.x != 1 AND b)) AND NOT NOT c");
    assert_eq!(
        q.to_nnf(),
        Query::And(vec![
            not(eq(attr("type"), s("a"))),
            not(eq(data(&["x"]), Value::Number(1.0))),
            text(&["b"]),
            text(&["c"]),
        ])
    );
    assert_eq!(parse("a != 1").to_nnf().to_string(), "NOT a = 1");
    assert_eq!(parse("NOT a != 1").to_nnf().to_string(), "a = 1");
}

#[test]
fn line_and_column_for_multiline_queries() {
    let e = Query::parse("type = a\nAND data.x >").unwrap_err();
    assert_eq!((e.position, e.line, e.column), (21, 2, 13));
}
