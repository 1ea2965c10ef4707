//! Analytics requests: reading and validating the body, and the reference computation of
//! rows and series against counts worked out by hand.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value as Json, json};
use switchyard_analytics::{
    AnalyticsError, AnalyticsRequest, AnalyticsResult, Field, Interval, MAX_BUCKETS, Metric, Order,
    Query, parse_timestamp_ms,
};
use switchyard_core::ErrorKind;

const DAY: &str = r#""from": "2024-01-31T00:00:00Z", "to": "2024-02-01T00:00:00Z""#;

fn request(members: &str) -> AnalyticsRequest {
    let body = format!(
        "{{{DAY}{}{members}}}",
        if members.is_empty() { "" } else { ", " }
    );
    AnalyticsRequest::from_json(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
}

#[track_caller]
fn invalid(body: &str) -> (String, String) {
    match AnalyticsRequest::from_json(body.as_bytes()) {
        Err(AnalyticsError::Invalid { field, message }) => (field, message),
        other => panic!("{body}: {other:?}"),
    }
}

#[track_caller]
fn invalid_member(members: &str) -> (String, String) {
    invalid(&format!("{{{DAY}, {members}}}"))
}

fn at(time: &str) -> i64 {
    parse_timestamp_ms(time).unwrap()
}

#[test]
fn a_full_body() {
    let r = request(
        r#""q": "type = com.shop.*", "group_by": ["type", "data.\"a.b\""], "interval": "5m",
           "metric": "p95:data.total", "order": "asc", "limit": 3"#,
    );
    assert_eq!(
        r,
        AnalyticsRequest {
            query: Query::parse("type = com.shop.*").unwrap(),
            from_ms: at("2024-01-31T00:00:00Z"),
            to_ms: at("2024-02-01T00:00:00Z"),
            group_by: vec![
                Field::Attribute("type".into()),
                Field::Data(vec!["a.b".into()])
            ],
            interval: Interval::from_ms(300_000),
            metric: Metric::Percentile {
                field: Field::Data(vec!["total".into()]),
                percent: 95
            },
            order: Order::Asc,
            limit: 3,
        }
    );
}

#[test]
fn defaults() {
    let r = request("");
    assert_eq!(
        (r.query, r.group_by, r.interval, r.metric, r.order, r.limit),
        (Query::All, vec![], None, Metric::Count, Order::Desc, 10)
    );
}

#[test]
fn intervals() {
    for (text, ms, shown) in [
        ("30s", 30_000, "30s"),
        ("1m", 60_000, "1m"),
        ("5m", 300_000, "5m"),
        ("90s", 90_000, "90s"),
        ("60m", 3_600_000, "1h"),
        ("1h", 3_600_000, "1h"),
        ("1d", 86_400_000, "1d"),
        ("365d", 365 * 86_400_000, "365d"),
    ] {
        let interval = Interval::parse(text).unwrap();
        assert_eq!(
            (interval.as_ms(), interval.to_string()),
            (ms, shown.to_owned()),
            "{text}"
        );
    }
    let expected =
        |t: &str| format!("expected a duration such as 30s, 1m, 5m, 1h or 1d, got {t:?}");
    for text in [
        "",
        "m",
        "1",
        "1x",
        "1.5m",
        "-1m",
        " 1m",
        "1 m",
        "1M",
        "1ms",
        "99999999999999999999s",
    ] {
        assert_eq!(Interval::parse(text), Err(expected(text)), "{text}");
    }
    assert_eq!(
        Interval::parse("0s"),
        Err("must be at least 1s, got \"0s\"".to_owned())
    );
    assert_eq!(
        Interval::parse("366d"),
        Err("must be at most 365d, got \"366d\"".to_owned())
    );
    assert_eq!(
        Interval::parse("9999999999999999h"),
        Err("must be at most 365d, got \"9999999999999999h\"".to_owned())
    );
    assert_eq!(Interval::from_ms(1_500), None);
    let m = Interval::parse("1m").unwrap();
    assert_eq!(
        (m.bucket_start(119_999), m.bucket_start(-1)),
        (60_000, -60_000)
    );
    assert_eq!(
        (m.bucket_count(0, 60_000), m.bucket_count(59_999, 60_001)),
        (1, 2)
    );
    assert_eq!(m.bucket_start(i64::MIN), i64::MIN);
    assert_eq!(m.bucket_start(i64::MAX), i64::MAX - i64::MAX % 60_000);
}

#[test]
fn metrics() {
    let total = || Field::Data(vec!["total".into()]);
    for (text, metric) in [
        ("count", Metric::Count),
        ("avg:data.total", Metric::Avg(total())),
        ("sum:data.total", Metric::Sum(total())),
        ("min:data.total", Metric::Min(total())),
        ("max:data.total", Metric::Max(total())),
        (
            "p50:data.total",
            Metric::Percentile {
                field: total(),
                percent: 50,
            },
        ),
        (
            "p99:data.total",
            Metric::Percentile {
                field: total(),
                percent: 99,
            },
        ),
        (
            "p1:latency_ms",
            Metric::Percentile {
                field: Field::Attribute("latency_ms".into()),
                percent: 1,
            },
        ),
    ] {
        assert_eq!(Metric::parse(text).as_ref(), Ok(&metric), "{text}");
        assert_eq!(metric.to_string(), text);
    }
    let expected = |t: &str| {
        format!(
            "expected count, avg:FIELD, sum:FIELD, min:FIELD, max:FIELD or pNN:FIELD (p50, p95, p99), got {t:?}"
        )
    };
    for text in [
        "",
        "Count",
        "avg",
        "mean:data.x",
        "p0:data.x",
        "p100:data.x",
        "p05:data.x",
        "p:data.x",
        "p9x:data.x",
    ] {
        assert_eq!(Metric::parse(text), Err(expected(text)), "{text}");
    }
    assert_eq!(
        Metric::parse("avg:Data.x"),
        Err("unknown field Data.x: only data has nested fields (did you mean data.x?) at position 0".to_owned())
    );
}

#[test]
fn validation_errors_name_the_member() {
    let check = |members: &str, field: &str, message: &str| {
        assert_eq!(
            invalid_member(members),
            (field.to_owned(), message.to_owned()),
            "{members}"
        );
    };
    check(
        r#""group_by": ["type", "Type"]"#,
        "group_by[1]",
        "unknown field Type: attribute names are lowercase letters, digits and '_' (did you mean type?) at position 0",
    );
    check(
        r#""group_by": ["type", "type"]"#,
        "group_by[1]",
        "type is already grouped by",
    );
    check(
        r#""group_by": ["a", "b", "c", "d", "e"]"#,
        "group_by",
        "at most 4 fields, got 5",
    );
    check(
        r#""interval": "1w""#,
        "interval",
        r#"expected a duration such as 30s, 1m, 5m, 1h or 1d, got "1w""#,
    );
    check(
        r#""interval": "1s""#,
        "interval",
        "1s buckets from 2024-01-31T00:00:00Z to 2024-02-01T00:00:00Z make 86400 points per series, more than 10000: use a longer interval or a shorter window",
    );
    check(
        r#""metric": "median:data.x""#,
        "metric",
        r#"expected count, avg:FIELD, sum:FIELD, min:FIELD, max:FIELD or pNN:FIELD (p50, p95, p99), got "median:data.x""#,
    );
    check(
        r#""order": "DESC""#,
        "order",
        r#"expected desc or asc, got "DESC""#,
    );
    check(
        r#""limit": 0"#,
        "limit",
        "must be between 1 and 1000, got 0",
    );
    check(
        r#""limit": 1001"#,
        "limit",
        "must be between 1 and 1000, got 1001",
    );
    assert_eq!(
        invalid(r#"{"from": "yesterday", "to": "2024-02-01"}"#),
        ("from".to_owned(), r#"expected an RFC 3339 timestamp such as 2024-01-31T12:00:00Z or a date such as 2024-01-31, got "yesterday""#.to_owned())
    );
    assert_eq!(
        invalid(r#"{"from": "2024-02-01", "to": "2024-02-01T00:00:00Z"}"#),
        (
            "to".to_owned(),
            "must be after from (2024-02-01)".to_owned()
        )
    );
    // The largest histogram accepted: 10000 one-second buckets.
    let window = |to: &str| {
        format!(r#"{{"from": "1970-01-01", "to": "1970-01-01T{to}Z", "interval": "1s"}}"#)
    };
    assert_eq!(MAX_BUCKETS, 10_000);
    assert!(AnalyticsRequest::from_json(window("02:46:40").as_bytes()).is_ok());
    assert_eq!(invalid(&window("02:46:40.001")).0, "interval");
}

#[test]
fn query_and_body_errors() {
    let e =
        AnalyticsRequest::from_json(format!(r#"{{{DAY}, "q": "type ="}}"#).as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "q: expected a value after '=', got the end of the query at position 6"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let body_error = |body: &str| match AnalyticsRequest::from_json(body.as_bytes()) {
        Err(AnalyticsError::Body(message)) => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        body_error(r#"{"to": "2024-02-01"}"#),
        "missing field `from` at line 1 column 20"
    );
    assert!(
        body_error(&format!(r#"{{{DAY}, "groupby": []}}"#)).starts_with("unknown field `groupby`")
    );
    assert!(
        body_error(&format!(r#"{{{DAY}, "limit": -1}}"#))
            .starts_with("invalid value: integer `-1`")
    );
    assert!(body_error(r#""x""#).starts_with("invalid type: string"));
    assert_eq!(
        AnalyticsError::Body(String::new()).kind(),
        ErrorKind::InvalidInput
    );
}

/// Orders at known times: (minute after midnight, type, country, total, tags).
fn orders() -> Vec<(i64, Json)> {
    let base = at("2024-01-31T00:00:00Z");
    [
        (0, "created", Some("DE"), json!(100), json!(["a"])),
        (1, "created", Some("DE"), json!(300), json!(["a", "b", "a"])),
        (1, "created", Some("US"), json!(50), json!([])),
        (2, "paid", Some("DE"), json!(10), json!("b")),
        (7, "paid", None, json!("n/a"), json!(null)),
        (9, "created", Some("FR"), json!([20, 40]), json!(["c"])),
        (-1, "created", Some("DE"), json!(1000), json!(["a"])),
        (1440, "created", Some("DE"), json!(1000), json!(["a"])),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (minute, kind, country, total, tags))| {
        let mut data = json!({"total": total, "tags": tags});
        if let Some(country) = country {
            data["country"] = json!(country);
        }
        (
            base + minute * 60_000,
            json!({"id": i.to_string(), "type": format!("com.shop.order.{kind}"), "data": data}),
        )
    })
    .collect()
}

fn compute(members: &str) -> Json {
    let records = orders();
    let result = request(members).compute(records.iter().map(|(t, e)| (*t, e)));
    serde_json::to_value(&result).unwrap()
}

#[test]
fn rows_group_and_count() {
    // The records at minute -1 and 1440 are outside the window.
    assert_eq!(
        compute(r#""group_by": ["data.country"]"#),
        json!({"rows": [
            {"group": {"data.country": "DE"}, "count": 3},
            {"group": {"data.country": null}, "count": 1},
            {"group": {"data.country": "FR"}, "count": 1},
            {"group": {"data.country": "US"}, "count": 1},
        ]})
    );
    assert_eq!(
        compute(r#""group_by": ["type", "data.country"], "q": "data.total >= 50", "limit": 2"#),
        json!({"rows": [
            {"group": {"type": "com.shop.order.created", "data.country": "DE"}, "count": 2},
            {"group": {"type": "com.shop.order.created", "data.country": "US"}, "count": 1},
        ]})
    );
    assert_eq!(compute(""), json!({"rows": [{"group": {}, "count": 6}]}));
    assert_eq!(
        compute(r#""q": "nothing""#),
        json!({"rows": [{"group": {}, "count": 0}]})
    );
    assert_eq!(
        compute(r#""q": "nothing", "group_by": ["type"]"#),
        json!({"rows": []})
    );
}

#[test]
fn arrays_count_once_per_distinct_element() {
    assert_eq!(
        compute(r#""group_by": ["data.tags"], "order": "asc""#),
        json!({"rows": [
            {"group": {"data.tags": "c"}, "count": 1},
            {"group": {"data.tags": null}, "count": 2},
            {"group": {"data.tags": "a"}, "count": 2},
            {"group": {"data.tags": "b"}, "count": 2},
        ]})
    );
    assert_eq!(
        compute(r#""group_by": ["data.tags", "data.country"], "q": "data.tags = b""#),
        json!({"rows": [
            {"group": {"data.tags": "b", "data.country": "DE"}, "count": 2},
            {"group": {"data.tags": "a", "data.country": "DE"}, "count": 1},
        ]})
    );
}

#[test]
fn metrics_over_numbers() {
    let by_type = |metric: &str| compute(&format!(r#""group_by": ["type"], "metric": "{metric}""#));
    // created in window: totals 100, 300, 50, [20, 40]; paid: 10, "n/a".
    assert_eq!(
        by_type("sum:data.total"),
        json!({"rows": [
            {"group": {"type": "com.shop.order.created"}, "count": 4, "value": 510.0},
            {"group": {"type": "com.shop.order.paid"}, "count": 2, "value": 10.0},
        ]})
    );
    assert_eq!(by_type("avg:data.total")["rows"][0]["value"], json!(102.0));
    assert_eq!(by_type("min:data.total")["rows"][0]["value"], json!(20.0));
    assert_eq!(by_type("max:data.total")["rows"][0]["value"], json!(300.0));
    // Sorted: 20, 40, 50, 100, 300. Nearest rank: ceil(p * 5 / 100).
    assert_eq!(by_type("p50:data.total")["rows"][0]["value"], json!(50.0));
    assert_eq!(by_type("p95:data.total")["rows"][0]["value"], json!(300.0));
    assert_eq!(by_type("p20:data.total")["rows"][0]["value"], json!(20.0));
    assert_eq!(by_type("p21:data.total")["rows"][0]["value"], json!(40.0));
    assert_eq!(by_type("p1:data.total")["rows"][0]["value"], json!(20.0));
    // Ascending by value; a group without numbers has no value and comes last.
    assert_eq!(
        compute(r#""group_by": ["data.country"], "metric": "max:data.total", "order": "asc""#),
        json!({"rows": [
            {"group": {"data.country": "FR"}, "count": 1, "value": 40.0},
            {"group": {"data.country": "US"}, "count": 1, "value": 50.0},
            {"group": {"data.country": "DE"}, "count": 3, "value": 300.0},
            {"group": {"data.country": null}, "count": 1},
        ]})
    );
}

#[test]
fn series_per_bucket() {
    assert_eq!(
        compute(r#""group_by": ["type"], "interval": "5m", "metric": "sum:data.total""#),
        json!({"series": [
            {"group": {"type": "com.shop.order.created"}, "points": [
                {"at": "2024-01-31T00:00:00.000Z", "count": 3, "value": 450.0},
                {"at": "2024-01-31T00:05:00.000Z", "count": 1, "value": 60.0},
            ]},
            {"group": {"type": "com.shop.order.paid"}, "points": [
                {"at": "2024-01-31T00:00:00.000Z", "count": 1, "value": 10.0},
                {"at": "2024-01-31T00:05:00.000Z", "count": 1},
            ]},
        ]})
    );
    assert_eq!(
        compute(r#""interval": "1h", "q": "nothing""#),
        json!({"series": [{"group": {}, "points": []}]})
    );
    // Series are ranked by their totals and cut to the limit.
    assert_eq!(
        compute(r#""group_by": ["data.country"], "interval": "1d", "limit": 1"#),
        json!({"series": [{"group": {"data.country": "DE"}, "points": [{"at": "2024-01-31T00:00:00.000Z", "count": 3}]}]})
    );
}

#[test]
fn numbers_group_by_value() {
    let records = [
        json!({"n": 1}),
        json!({"n": 1.0}),
        json!({"n": -0.0}),
        json!({"n": 0}),
        json!({"n": "1"}),
        json!({"n": true}),
    ];
    let r = request(r#""group_by": ["n"], "order": "asc""#);
    let result = r.compute(records.iter().map(|e| (r.from_ms, e)));
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        json!({"rows": [
            {"group": {"n": true}, "count": 1},
            {"group": {"n": "1"}, "count": 1},
            {"group": {"n": 0}, "count": 2},
            {"group": {"n": 1}, "count": 2},
        ]})
    );
    let AnalyticsResult::Rows(rows) = result else {
        unreachable!()
    };
    assert_eq!(rows.len(), 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// With scalar group fields, rows partition the matching records, and each series'
    /// points add up to its row.
    #[test]
    fn rows_partition_and_series_add_up(
        records in prop::collection::vec((0i64..3_600_000, 0u8..4, prop::option::of(0u8..3), -50i32..50), 0..60),
        interval in prop::sample::select(vec!["1m", "7m", "1h"]),
    ) {
        let events: Vec<(i64, Json)> = records
            .iter()
            .map(|(t, kind, country, total)| {
                let mut data = json!({"total": total});
                if let Some(c) = country { data["country"] = json!(format!("c{c}")); }
                (*t, json!({"type": format!("t{kind}"), "data": data}))
            })
            .collect();
        let window = r#""from": "1970-01-01T00:00:00Z", "to": "1970-01-01T01:00:00Z""#;
        let body = |extra: &str| format!(r#"{{{window}, "group_by": ["type", "data.country"], "q": "data.total > -40", "metric": "sum:data.total", "limit": 1000{extra}}}"#);
        let rows = AnalyticsRequest::from_json(body("").as_bytes()).unwrap().compute(events.iter().map(|(t, e)| (*t, e)));
        let series = AnalyticsRequest::from_json(body(&format!(r#", "interval": "{interval}""#)).as_bytes()).unwrap().compute(events.iter().map(|(t, e)| (*t, e)));
        let (AnalyticsResult::Rows(rows), AnalyticsResult::Series(series)) = (rows, series) else { unreachable!() };
        let matching: Vec<&(i64, u8, Option<u8>, i32)> = records.iter().filter(|r| r.3 > -40).collect();
        prop_assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), matching.len() as u64);
        prop_assert_eq!(rows.len(), series.len());
        for (row, series) in rows.iter().zip(&series) {
            prop_assert_eq!(&row.group, &series.group);
            prop_assert_eq!(series.points.iter().map(|p| p.count).sum::<u64>(), row.count);
            let sum: f64 = series.points.iter().filter_map(|p| p.value).sum();
            prop_assert_eq!(Some(sum), row.value);
            prop_assert!(series.points.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        }
        for pair in rows.windows(2) {
            prop_assert!(pair[0].value >= pair[1].value);
        }
    }
}
