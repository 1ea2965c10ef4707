//! The reference evaluator on realistic CloudEvents: which events each query selects.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use switchyard_analytics::Query;

fn events() -> Vec<Value> {
    vec![
        json!({
            "specversion": "1.0", "id": "1", "source": "/shop/eu", "type": "com.shop.order.created",
            "time": "2024-01-31T10:00:00Z", "subject": "order/1", "datacontenttype": "application/json",
            "tenant": "acme", "priority": 3, "traced": true,
            "data": {"total": 120.5, "currency": "EUR", "country": "DE",
                     "customer": {"tier": "gold", "name": "Jane Doe"},
                     "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
                     "tags": ["new", "promo"], "note": "Leave at the BACK door", "coupon": null}
        }),
        json!({
            "specversion": "1.0", "id": "2", "source": "/shop/us", "type": "com.shop.order.created",
            "time": "2024-01-31T11:30:00.250+01:00",
            "data": {"total": 80, "currency": "USD", "country": "US",
                     "customer": {"tier": "silver", "name": "John Smith"},
                     "items": [{"sku": "C-3", "qty": 5}], "tags": [], "note": "back-door please"}
        }),
        json!({
            "specversion": "1.0", "id": "42", "source": "/billing", "type": "com.billing.payment.failed",
            "time": "2024-02-01T00:00:00Z", "tenant": "globex", "priority": "3",
            "data": {"amount": 99.99, "reason": "Card declined by issuer", "code": "card_declined",
                     "a.b": "dotted", "key with spaces": 7, "total": "100"}
        }),
        json!({
            "specversion": "1.0", "id": "4", "source": "/legacy", "type": "com.legacy.ping",
            "datacontenttype": "text/plain", "time": "not a time",
            "data": "Plain TEXT payload, 100% legacy"
        }),
        json!({
            "specversion": "1.0", "id": "5", "source": "/blob", "type": "com.blob.uploaded",
            "data_base64": "AAEC"
        }),
    ]
}

/// The ids of the events the query selects.
#[track_caller]
fn ids(q: &str) -> Vec<String> {
    let query = Query::parse(q).unwrap_or_else(|e| panic!("{q:?}: {e}"));
    let nnf = query.to_nnf();
    let reparsed = Query::parse(&query.to_string()).unwrap();
    events()
        .iter()
        .filter(|e| {
            let hit = query.matches(e);
            assert_eq!(nnf.matches(e), hit, "{q:?}: normal form disagrees");
            assert_eq!(reparsed.matches(e), hit, "{q:?}: canonical text disagrees");
            hit
        })
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn equality_on_attributes_and_data() {
    assert_eq!(ids("type = com.shop.order.created"), ["1", "2"]);
    assert_eq!(ids("source = /billing"), ["42"]);
    assert_eq!(ids("data.customer.tier = gold"), ["1"]);
    assert_eq!(ids("data.customer.tier = Gold"), Vec::<String>::new());
    assert_eq!(ids(r#"data.customer.name = "Jane Doe""#), ["1"]);
    assert_eq!(ids("data.total = 80"), ["2"]);
    assert_eq!(ids("data.total = 80.0"), ["2"]);
    assert_eq!(ids("traced = true"), ["1"]);
    assert_eq!(ids("traced = false"), Vec::<String>::new());
    // Whole data when it is a string.
    assert_eq!(ids(r#"data = "Plain TEXT payload, 100% legacy""#), ["4"]);
}

#[test]
fn numbers_and_strings() {
    // A query number also equals a string spelling it: ids are strings.
    assert_eq!(ids("id = 42"), ["42"]);
    assert_eq!(ids("priority = 3"), ["1", "42"]);
    assert_eq!(ids("data.total = 100"), ["42"]);
    // A quoted string never equals a number.
    assert_eq!(ids(r#"priority = "3""#), ["42"]);
    assert_eq!(ids(r#"data.total = "80""#), Vec::<String>::new());
    // Ordering: numbers with numbers, strings with strings.
    assert_eq!(ids("data.total > 100"), ["1"]);
    assert_eq!(ids("data.total >= 80"), ["1", "2"]);
    assert_eq!(ids("data.total < 100"), ["2"]);
    assert_eq!(ids("data.total <= 80"), ["2"]);
    assert_eq!(ids(r#"data.total > "0""#), ["42"]);
    assert_eq!(ids("data.currency < F"), ["1"]);
    assert_eq!(ids("source >= /shop"), ["1", "2"]);
}

#[test]
fn not_equal_and_missing_fields() {
    // `!=` holds when the field is missing: it is exactly NOT `=`.
    assert_eq!(ids("data.country != DE"), ["2", "42", "4", "5"]);
    assert_eq!(ids("NOT data.country = DE"), ["2", "42", "4", "5"]);
    assert_eq!(ids("tenant != acme"), ["2", "42", "4", "5"]);
    // Ordering never holds on a missing field, and NOT of it does.
    assert_eq!(ids("data.total > 1000"), Vec::<String>::new());
    assert_eq!(ids("NOT data.total > 90"), ["2", "42", "4", "5"]);
}

#[test]
fn null_and_exists() {
    assert_eq!(ids("EXISTS tenant"), ["1", "42"]);
    assert_eq!(ids("EXISTS data"), ["1", "2", "42", "4"]);
    assert_eq!(ids("EXISTS data.customer"), ["1", "2"]);
    // null and [] are no value.
    assert_eq!(ids("EXISTS data.coupon"), Vec::<String>::new());
    assert_eq!(ids("EXISTS data.tags"), ["1"]);
    assert_eq!(ids("data.coupon = null"), ["1", "2", "42", "4", "5"]);
    assert_eq!(ids("data.tags = null"), ["2", "42", "4", "5"]);
    assert_eq!(ids("data.tags != null"), ["1"]);
    assert_eq!(ids("data.items.sku = null"), ["42", "4", "5"]);
}

#[test]
fn arrays_match_any_element() {
    assert_eq!(ids("data.tags = promo"), ["1"]);
    assert_eq!(ids("data.items.sku = B-2"), ["1"]);
    assert_eq!(ids("data.items.qty > 4"), ["2"]);
    assert_eq!(ids("data.items.qty < 2"), ["1"]);
    // Each comparison picks its own element: no element has both.
    assert_eq!(ids("data.items.sku = A-1 AND data.items.qty = 1"), ["1"]);
    assert_eq!(ids("data.tags != new"), ["2", "42", "4", "5"]);
}

#[test]
fn quoted_path_segments() {
    assert_eq!(ids(r#"data."a.b" = dotted"#), ["42"]);
    assert_eq!(ids("data.a.b = dotted"), Vec::<String>::new());
    assert_eq!(ids(r#"data."key with spaces" >= 7"#), ["42"]);
}

#[test]
fn prefix_and_in() {
    assert_eq!(ids("type = com.shop.*"), ["1", "2"]);
    assert_eq!(ids("type != com.shop.*"), ["42", "4", "5"]);
    assert_eq!(ids(r#"data.customer.name = "J"*"#), ["1", "2"]);
    assert_eq!(ids("data.customer.name = j*"), Vec::<String>::new());
    // A prefix only matches strings.
    assert_eq!(ids("data.total = 1*"), ["42"]);
    assert_eq!(ids("data.country IN (US, FR)"), ["2"]);
    assert_eq!(ids("NOT data.country IN (US, FR)"), ["1", "42", "4", "5"]);
    assert_eq!(ids("id IN (1, 42, 99)"), ["1", "42"]);
    assert_eq!(ids("data.coupon IN (x, null)"), ["1", "2", "42", "4", "5"]);
}

#[test]
fn time_compares_as_an_instant() {
    // 11:30:00.250+01:00 is 10:30:00.250Z: after 10:00Z although it sorts before as text.
    assert_eq!(ids("time > 2024-01-31T10:00:00Z"), ["2", "42"]);
    assert_eq!(ids("time >= 2024-01-31T10:00:00Z"), ["1", "2", "42"]);
    assert_eq!(ids("time = 2024-01-31T10:30:00.250Z"), ["2"]);
    assert_eq!(ids("time < 2024-02-01"), ["1", "2"]);
    assert_eq!(ids("time >= 2024-02-01"), ["42"]);
    assert_eq!(
        ids("time IN (2024-02-01, 2024-01-31T11:00:00+01:00)"),
        ["1", "42"]
    );
    // An unparseable or missing time never satisfies a comparison.
    assert_eq!(ids("time != 2024-02-01"), ["1", "2", "4", "5"]);
    assert_eq!(ids("time = null"), ["5"]);
}

#[test]
fn full_text_on_data() {
    assert_eq!(ids("declined"), ["42"]);
    assert_eq!(ids("DECLINED"), ["42"]);
    assert_eq!(ids(r#""card declined""#), ["42"]);
    assert_eq!(ids(r#""declined card""#), Vec::<String>::new());
    // Also found inside an underscore-joined value, since `_` separates tokens.
    assert_eq!(ids("card"), ["42"]);
    assert_eq!(ids("back-door"), ["1", "2"]);
    assert_eq!(ids(r#""back door""#), ["1", "2"]);
    assert_eq!(ids("back door"), ["1", "2"]);
    assert_eq!(ids("legacy"), ["4"]);
    assert_eq!(ids("100"), ["42", "4"]);
    // Nested strings and array elements are searched; keys, numbers and attributes not.
    assert_eq!(ids("jane"), ["1"]);
    assert_eq!(ids("promo"), ["1"]);
    assert_eq!(ids("currency"), Vec::<String>::new());
    assert_eq!(ids("120"), Vec::<String>::new());
    assert_eq!(ids("shop"), Vec::<String>::new());
    // A phrase stays inside one string.
    assert_eq!(ids(r#""new promo""#), Vec::<String>::new());
}

#[test]
fn boolean_structure() {
    assert_eq!(
        ids("type = com.shop.order.created AND data.total > 100"),
        ["1"]
    );
    assert_eq!(ids("data.country = US OR source = /billing"), ["2", "42"]);
    assert_eq!(
        ids("data.country = US OR source = /billing data.amount > 100"),
        ["2"]
    );
    assert_eq!(
        ids("(data.country = US OR source = /billing) data.amount > 50"),
        ["42"]
    );
    assert_eq!(
        ids("NOT (type = com.shop.* OR EXISTS data_base64)"),
        ["42", "4"]
    );
    assert_eq!(ids("*"), ["1", "2", "42", "4", "5"]);
    assert_eq!(ids(""), ["1", "2", "42", "4", "5"]);
    assert_eq!(ids("NOT *"), Vec::<String>::new());
}

#[test]
fn the_issue_question() {
    // "Order events over 100 from Germany."
    assert_eq!(
        ids("type = com.shop.order.* data.total > 100 data.country = DE"),
        ["1"]
    );
}

#[test]
fn non_object_events_match_nothing_but_negations() {
    let q = Query::parse("type = x").unwrap();
    assert!(!q.matches(&json!([1, 2])));
    assert!(!q.matches(&json!("type")));
    assert!(Query::parse("type != x").unwrap().matches(&json!(null)));
    assert!(
        !Query::parse("word")
            .unwrap()
            .matches(&json!({"data": {"word": 1}}))
    );
}
