use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::receiver::eventually;
use crate::support::{Backend, Server, assert_error};

/// Orders from a few countries and tiers, and some payments; ids say what they are.
pub fn corpus() -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..24 {
        let country = ["DE", "US", "FR"][i % 3];
        let tier = if i % 4 == 0 { "gold" } else { "silver" };
        events.push(json!({"specversion": "1.0", "id": format!("o{i}"), "source": "/shop", "type": "order.created",
            "time": format!("2024-05-01T10:{i:02}:00Z"), "region": if i < 12 { "eu" } else { "us" },
            "data": {"total": i * 10, "customer": {"country": country, "tier": tier},
                     "note": if i == 7 { "Gift wrapping please" } else { "standard" },
                     "items": [{"sku": format!("S{}", i % 5)}]}}));
    }
    for i in 0..6 {
        events.push(json!({"specversion": "1.0", "id": format!("p{i}"), "source": "/billing", "type": "payment.received",
            "data": {"amount": 5.5 + i as f64, "paid": i % 2 == 0}}));
    }
    events
}

/// Expected ids of the corpus events matching `pred`, as a sorted set.
fn expect(pred: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    corpus()
        .iter()
        .filter(|e| pred(e))
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn wait_indexed(s: &Server) {
    eventually(Duration::from_secs(10), || async {
        let m = s.metrics().await;
        m.contains("switchyard_index_lag_events{bus=\"default\"} 0\n")
            .then_some(())
    })
    .await;
}

async fn ids(s: &Server, q: &str) -> BTreeSet<String> {
    let path = format!("/v1/buses/default/events?limit=1000&q={}", urlencode(q));
    let page = s.call(Method::GET, &path, None, 200).await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn every_operator_finds_exactly_the_matching_events() {
    let s = Server::start(Backend::Sqlite).await;
    assert_eq!(s.publish_batch("default", &corpus()).await.status, 200);
    wait_indexed(&s).await;
    let total = |e: &Value| e["data"]["total"].as_f64();
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        (
            "type = order.created",
            expect(|e| e["type"] == "order.created"),
        ),
        ("source != /shop", expect(|e| e["source"] != "/shop")),
        (
            "data.total > 100",
            expect(|e| total(e).is_some_and(|t| t > 100.0)),
        ),
        (
            "data.total >= 100",
            expect(|e| total(e).is_some_and(|t| t >= 100.0)),
        ),
        (
            "data.total < 30",
            expect(|e| total(e).is_some_and(|t| t < 30.0)),
        ),
        (
            "data.total <= 30",
            expect(|e| total(e).is_some_and(|t| t <= 30.0)),
        ),
        ("data.total = 50", expect(|e| total(e) == Some(50.0))),
        ("data.amount = 6.5", expect(|e| e["data"]["amount"] == 6.5)),
        (
            "type = pay*",
            expect(|e| e["type"].as_str().unwrap().starts_with("pay")),
        ),
        (
            "data.items.sku = S1* OR source = /bill*",
            expect(|e| e["data"]["items"][0]["sku"] == "S1" || e["source"] == "/billing"),
        ),
        (
            "type > order.created",
            expect(|e| e["type"].as_str().unwrap() > "order.created"),
        ),
        (
            "data.customer.country < FR",
            expect(|e| {
                e["data"]["customer"]["country"]
                    .as_str()
                    .is_some_and(|c| c < "FR")
            }),
        ),
        (
            "data.customer.tier = gold AND data.customer.country = DE",
            expect(|e| {
                e["data"]["customer"]["tier"] == "gold" && e["data"]["customer"]["country"] == "DE"
            }),
        ),
        (
            "data.customer.country = FR OR data.paid = true",
            expect(|e| e["data"]["customer"]["country"] == "FR" || e["data"]["paid"] == true),
        ),
        (
            "NOT (type = order.created)",
            expect(|e| e["type"] != "order.created"),
        ),
        (
            "exists data.amount",
            expect(|e| e["data"].get("amount").is_some()),
        ),
        (
            "exists region AND region = us",
            expect(|e| e["region"] == "us"),
        ),
        (
            "data.items.sku = S3",
            expect(|e| e["data"]["items"][0]["sku"] == "S3"),
        ),
        ("wrapping", expect(|e| e["id"] == "o7")),
        ("\"gift wrapping\"", expect(|e| e["id"] == "o7")),
        (
            "time >= \"2024-05-01T10:20:00Z\"",
            expect(|e| {
                e["id"].as_str().unwrap().starts_with('o')
                    && e["id"].as_str().unwrap()[1..].parse::<u32>().unwrap() >= 20
            }),
        ),
        (
            "(data.total > 200 OR data.total < 10) AND region = us",
            expect(|e| {
                e["region"] == "us" && total(e).is_some_and(|t| !(10.0..=200.0).contains(&t))
            }),
        ),
    ];
    for (q, want) in cases {
        assert!(!want.is_empty() || q.is_empty(), "case {q} expects nothing");
        assert_eq!(ids(&s, q).await, want, "query {q}");
    }
}

#[tokio::test]
async fn search_pages_without_gaps_and_rebuilds_after_the_index_is_deleted() {
    let mut s = Server::start(Backend::Sqlite).await;
    s.publish_batch("default", &corpus()).await;
    wait_indexed(&s).await;
    let q = urlencode("type = order.created");
    let seen = s
        .all_offsets(&format!("/v1/buses/default/events?limit=5&q={q}"))
        .await;
    assert_eq!(seen, (0..24).rev().collect::<Vec<u64>>());
    let before = ids(&s, "data.customer.country = DE").await;
    s.stop().await;
    std::fs::remove_dir_all(s.data_dir().join("buses/default/index")).unwrap();
    s.start_again().await;
    wait_indexed(&s).await;
    assert_eq!(ids(&s, "data.customer.country = DE").await, before);
    assert_eq!(before.len(), 8);
}

#[tokio::test]
async fn a_number_finds_the_string_that_spells_it() {
    let s = Server::start(Backend::Sqlite).await;
    let events = vec![
        json!({"specversion": "1.0", "id": "42", "source": "/s", "type": "t", "data": {"zip": "01234", "n": 42}}),
        json!({"specversion": "1.0", "id": "43", "source": "/s", "type": "t", "data": {"zip": "1234", "n": "42.5"}}),
    ];
    assert_eq!(s.publish_batch("default", &events).await.status, 200);
    wait_indexed(&s).await;
    let set = |ids: &[&str]| ids.iter().map(|i| i.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&s, "id = 42").await, set(&["42"]));
    assert_eq!(ids(&s, "data.zip = 1234").await, set(&["43"]));
    assert_eq!(ids(&s, "data.n = 42").await, set(&["42"]));
    assert_eq!(ids(&s, "data.n = 42.5").await, set(&["43"]));
    assert_eq!(ids(&s, "id != 42").await, set(&["43"]));
}

#[tokio::test]
async fn bad_queries_say_where() {
    let s = Server::start(Backend::Sqlite).await;
    for (q, position) in [("type = ", 7), ("(type = a", 9), ("data.total >", 12)] {
        let r = s
            .send(s.request(
                Method::GET,
                &format!("/v1/buses/default/events?q={}", urlencode(q)),
            ))
            .await;
        let body = assert_error(&r, 400, "invalid_query");
        assert_eq!(
            body["error"]["details"]["position"], position,
            "{q}: {body}"
        );
    }
    let r = s
        .send(s.request(
            Method::GET,
            &format!(
                "/v1/buses/default/events?q={}",
                urlencode("data.paid > true")
            ),
        ))
        .await;
    let body = assert_error(&r, 400, "invalid_query");
    assert_eq!(
        body["error"]["message"],
        "query: '>' compares numbers or strings, not true (at position 12)"
    );
}
