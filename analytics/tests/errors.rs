//! Malformed queries: the exact message and position the API returns, and the limits
//! against hostile input.
#![allow(clippy::unwrap_used)]

use switchyard_analytics::{MAX_DEPTH, MAX_QUERY_BYTES, MAX_TERMS, Query, QueryError};
use switchyard_core::ErrorKind;

fn error(q: &str) -> QueryError {
    match Query::parse(q) {
        Ok(parsed) => panic!("{q:?} parsed as {parsed:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn check(q: &str, position: usize, message: &str) {
    let e = error(q);
    assert_eq!(
        (e.position, e.message.as_str()),
        (position, message),
        "{q:?}"
    );
    assert_eq!(e.to_string(), format!("{message} at position {position}"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn missing_values_terms_and_parentheses() {
    check(
        "type =",
        6,
        "expected a value after '=', got the end of the query",
    );
    check("type = )", 7, "expected a value after '=', got ')'");
    check("type == a", 6, "expected a value after '=', got '='");
    check(
        "data.total >= AND x",
        14,
        "expected a value after '>=', got AND (quote a keyword to use it as a value)",
    );
    check(
        "x IN (a, not)",
        9,
        "expected a value after ',', got NOT (quote a keyword to use it as a value)",
    );
    check(
        "(type = a",
        9,
        "expected ')' to close the '(' at position 0, got the end of the query",
    );
    check(
        "(a (b c)",
        8,
        "expected ')' to close the '(' at position 0, got the end of the query",
    );
    check("type = a)", 8, "unmatched ')': there is no '(' to close");
    check("()", 1, "expected a term after '(', got ')'");
    check(
        "a AND",
        5,
        "expected a term after AND, got the end of the query",
    );
    check(
        "a OR",
        4,
        "expected a term after OR, got the end of the query",
    );
    check("a AND OR b", 6, "expected a term after AND, got OR");
    check("AND a", 0, "expected a term, got AND");
    check(
        "NOT",
        3,
        "expected a term after NOT, got the end of the query",
    );
    check(
        "exists",
        6,
        "expected a field after EXISTS, got the end of the query",
    );
    check(
        r#"exists "x""#,
        7,
        r#"expected a field after EXISTS, got "x""#,
    );
    check(
        "a = b = c",
        6,
        "expected AND, OR or the end of the query, got '='",
    );
    check(
        "a , b",
        2,
        "expected AND, OR or the end of the query, got ','",
    );
    check(
        r#"data."a" b"#,
        9,
        r#"expected a comparison operator after the field data."a", got 'b'"#,
    );
    check(
        r#"data.x = data."y""#,
        9,
        r#"expected a value after '=', got 'data."y"'"#,
    );
}

#[test]
fn strings_and_words() {
    check(
        r#"type = "abc"#,
        7,
        r#"unterminated string: the closing '"' is missing"#,
    );
    check(
        r#"data."a = 1"#,
        5,
        r#"unterminated string: the closing '"' is missing"#,
    );
    check(
        r#"x = "a\qb""#,
        6,
        r#"unknown escape '\q' in a string (escapes are \" \\ \/ \b \f \n \r \t \uXXXX)"#,
    );
    check(
        r#"x = "\u00g1""#,
        5,
        r"expected four hex digits after '\u' in a string",
    );
    check(
        r#"x = "\ud83d""#,
        5,
        r"'\u' escape is an unpaired UTF-16 surrogate",
    );
    check(
        r#"x = a"b""#,
        5,
        r#"unexpected '"' inside a word; put a space before it, or quote the whole value"#,
    );
    check(
        r#"x = "a"b"#,
        7,
        "unexpected 'b' right after the closing quote; put a space before it",
    );
    check(
        r#""type" = a"#,
        0,
        r#"a field name cannot be quoted: write type = x, or quote only path segments as in data."a b" = x"#,
    );
    check(
        r#""type" IN (a)"#,
        0,
        r#"a field name cannot be quoted: write type = x, or quote only path segments as in data."a b" = x"#,
    );
    check(
        "---",
        0,
        "a full-text term needs at least one letter or digit",
    );
    check(
        r#"ok AND """#,
        7,
        "a full-text term needs at least one letter or digit",
    );
}

#[test]
fn fields() {
    check(
        "Type = x",
        0,
        "unknown field Type: attribute names are lowercase letters, digits and '_' (did you mean type?)",
    );
    check(
        "DATA = x",
        0,
        "unknown field DATA: attribute names are lowercase letters, digits and '_' (did you mean data?)",
    );
    check(
        "a-b = x",
        0,
        "unknown field a-b: attribute names are lowercase letters, digits and '_'",
    );
    check(
        "foo.bar = 1",
        0,
        "unknown field foo.bar: only data has nested fields (did you mean data.foo.bar?)",
    );
    check(
        "x AND data..x = 1",
        11,
        "empty segment in the field data..x",
    );
    check("data. = 1", 5, "empty segment in the field data.");
    check(".x = 1", 0, "empty segment in the field .x");
    check(
        "data.a* = 1",
        6,
        "'*' cannot appear in a field name (quote the segment to mean a literal '*')",
    );
    let e = switchyard_analytics::Field::parse("data.x y").unwrap_err();
    assert_eq!(
        (e.position, e.message.as_str()),
        (7, "expected the end of the field, got 'y'")
    );
    let e = switchyard_analytics::Field::parse("").unwrap_err();
    assert_eq!(
        (e.position, e.message.as_str()),
        (0, "expected a field, got the end of the query")
    );
}

#[test]
fn values() {
    check(
        "data.total > true",
        13,
        "'>' compares numbers or strings, not true",
    );
    check(
        "data.total <= null",
        14,
        "'<=' compares numbers or strings, not null",
    );
    check("x = 1e999", 4, "the number 1e999 is out of range");
    check("x = -1e400", 4, "the number -1e400 is out of range");
    check(
        "time > yesterday",
        7,
        "time takes an RFC 3339 timestamp such as 2024-01-31T12:00:00Z or a date such as 2024-01-31, got 'yesterday'",
    );
    check(
        "time = 5",
        7,
        "time takes an RFC 3339 timestamp such as 2024-01-31T12:00:00Z or a date such as 2024-01-31, got '5'",
    );
    check(
        "time IN (2024-01-31, true)",
        21,
        "time takes an RFC 3339 timestamp such as 2024-01-31T12:00:00Z or a date such as 2024-01-31, got 'true'",
    );
    check(
        "time = 2024-*",
        7,
        "time takes a timestamp, not a prefix (use time >= and time <)",
    );
    check(
        "type = a*b",
        8,
        "'*' is only supported at the end of a value, as a prefix (quote the value to mean a literal '*')",
    );
    check(
        "type > a*",
        7,
        "a prefix value (ending in '*') only works with '=' or '!=', not '>'",
    );
    check(
        "type = *",
        7,
        "expected text before '*' (to test that a field is present, use EXISTS field)",
    );
    check(
        r#"type = ""*"#,
        7,
        "expected text before '*' (to test that a field is present, use EXISTS field)",
    );
    check(
        "shop*",
        4,
        "wildcards are not supported in full-text terms, only as a prefix value such as type = com.shop.*",
    );
    check(
        r#""shop"*"#,
        0,
        "wildcards are not supported in full-text terms, only as a prefix value such as type = com.shop.*",
    );
}

#[test]
fn in_lists() {
    check("type IN ()", 9, "expected a value after '(', got ')'");
    check("type IN (a,)", 11, "expected a value after ',', got ')'");
    check(
        "type IN (a b)",
        11,
        "expected ',' or ')' in the IN list, got 'b'",
    );
    check(
        "type IN (a",
        10,
        "expected ',' or ')' in the IN list, got the end of the query",
    );
    check(
        "type IN (a*)",
        9,
        "a prefix value (ending in '*') cannot be used in an IN list",
    );
}

#[test]
fn length_limit() {
    let longest = format!("data.x = \"{}\"", "a".repeat(MAX_QUERY_BYTES - 11));
    assert_eq!(longest.len(), MAX_QUERY_BYTES);
    assert!(Query::parse(&longest).is_ok());
    let too_long = format!("{longest} ");
    check(
        &too_long,
        MAX_QUERY_BYTES,
        "the query is longer than 8192 bytes",
    );
    // The position stays on a character boundary.
    let e = error(&"é".repeat(MAX_QUERY_BYTES));
    assert_eq!(e.position, MAX_QUERY_BYTES);
    let e = error(&format!("a{}", "é".repeat(MAX_QUERY_BYTES / 2)));
    assert_eq!(e.position, MAX_QUERY_BYTES - 1);
}

#[test]
fn depth_limit() {
    let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert!(Query::parse(&nested(MAX_DEPTH)).is_ok());
    check(
        &nested(MAX_DEPTH + 1),
        MAX_DEPTH,
        "the query nests parentheses and NOT deeper than 32 levels",
    );
    let nots = |n: usize| format!("{}a", "NOT ".repeat(n));
    assert!(Query::parse(&nots(MAX_DEPTH)).is_ok());
    check(
        &nots(MAX_DEPTH + 1),
        4 * MAX_DEPTH,
        "the query nests parentheses and NOT deeper than 32 levels",
    );
    // Parentheses and NOT count together; siblings do not add up.
    let mixed = format!(
        "{}a{}",
        "NOT (".repeat(MAX_DEPTH / 2),
        ")".repeat(MAX_DEPTH / 2)
    );
    assert!(Query::parse(&mixed).is_ok());
    assert!(Query::parse(&format!("{} AND {}", nested(MAX_DEPTH), nested(MAX_DEPTH))).is_ok());
    // Far past the limit: an error, not a stack overflow.
    assert!(Query::parse(&"(".repeat(MAX_QUERY_BYTES)).is_err());
    assert!(Query::parse(&"NOT ".repeat(MAX_QUERY_BYTES / 4)).is_err());
}

#[test]
fn term_limit() {
    let words = |n: usize| vec!["a"; n].join(" ");
    assert!(Query::parse(&words(MAX_TERMS)).is_ok());
    check(
        &words(MAX_TERMS + 1),
        2 * MAX_TERMS,
        "the query has more than 512 terms",
    );
    let list = |n: usize| format!("x IN ({})", vec!["1"; n].join(","));
    assert!(Query::parse(&list(MAX_TERMS)).is_ok());
    check(
        &list(MAX_TERMS + 1),
        6 + 2 * MAX_TERMS,
        "the query has more than 512 terms",
    );
    let mixed = format!("{} AND x IN (1, 2)", words(MAX_TERMS - 2));
    assert!(Query::parse(&mixed).is_ok());
    assert!(Query::parse(&format!("{mixed} b")).is_err());
}
