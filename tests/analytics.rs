use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::search::{corpus, wait_indexed};
use crate::support::{Backend, Server, assert_error};

fn body(extra: Value) -> Value {
    let mut b = json!({"q": "", "from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

async fn analytics(s: &Server, extra: Value) -> Value {
    s.call(
        Method::POST,
        "/v1/buses/default/analytics",
        Some(body(extra)),
        200,
    )
    .await
}

#[tokio::test]
async fn group_by_counts_and_metrics_match_an_independent_count() {
    let s = Server::start(Backend::Sqlite).await;
    s.publish_batch("default", &corpus()).await;
    wait_indexed(&s).await;

    // Counted here, from the corpus itself.
    let mut by_country: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for e in corpus().iter().filter(|e| e["type"] == "order.created") {
        let entry = by_country
            .entry(
                e["data"]["customer"]["country"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .or_default();
        entry.0 += 1;
        entry.1 += e["data"]["total"].as_f64().unwrap();
    }

    let rows = analytics(
        &s,
        json!({"q": "type = order.created", "group_by": ["data.customer.country"]}),
    )
    .await;
    let got: BTreeMap<String, u64> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["data.customer.country"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<String, u64> = by_country.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    assert_eq!(got, want);

    let avg = analytics(
        &s,
        json!({"q": "type = order.created", "group_by": ["data.customer.country"], "metric": "avg:data.total", "order": "asc"}),
    )
    .await;
    let got: Vec<(String, f64)> = avg["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["data.customer.country"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(String, f64)> = by_country
        .iter()
        .map(|(k, v)| (k.clone(), v.1 / v.0 as f64))
        .collect();
    want.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
    assert_eq!(got, want);

    let two = analytics(&s, json!({"group_by": ["source", "type"], "limit": 1})).await;
    assert_eq!(
        two["rows"],
        json!([{"group": {"source": "/shop", "type": "order.created"}, "count": 24}])
    );

    let total = analytics(&s, json!({"q": "data.total >= 100"})).await;
    let want = corpus()
        .iter()
        .filter(|e| e["data"]["total"].as_f64().is_some_and(|t| t >= 100.0))
        .count();
    assert_eq!(total["rows"], json!([{"group": {}, "count": want}]));

    // One batch, one receive time: a single point per series.
    let hour = |h: i64| (chrono::Utc::now() + chrono::Duration::hours(h)).to_rfc3339();
    let series = analytics(
        &s,
        json!({"group_by": ["source"], "interval": "1m", "from": hour(-1), "to": hour(1)}),
    )
    .await;
    let series = series["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["group"], json!({"source": "/shop"}));
    assert_eq!(series[0]["points"].as_array().unwrap().len(), 1);
    assert_eq!(series[0]["points"][0]["count"], 24);
    assert!(
        series[0]["points"][0]["at"]
            .as_str()
            .unwrap()
            .ends_with(":00.000Z")
    );

    let none = analytics(
        &s,
        json!({"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z", "group_by": ["type"]}),
    )
    .await;
    assert_eq!(none, json!({"rows": []}));
}

#[tokio::test]
async fn bad_analytics_requests_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let post = |b: Value| {
        s.request(Method::POST, "/v1/buses/default/analytics")
            .json(&b)
    };
    assert_error(
        &s.send(post(body(json!({"q": "type = "})))).await,
        400,
        "invalid_query",
    );
    assert_error(
        &s.send(post(body(json!({"metric": "median:data.x"})))).await,
        422,
        "invalid_field",
    );
    assert_error(
        &s.send(post(body(json!({"interval": "7 fortnights"}))))
            .await,
        422,
        "invalid_field",
    );
    assert_error(&s.send(post(json!({"q": ""}))).await, 400, "invalid_json");
    assert_error(
        &s.send(post(body(json!({"group_by": ["data"]})))).await,
        400,
        "unsupported_query",
    );
    assert_error(
        &s.send(
            s.request(Method::POST, "/v1/buses/nope/analytics")
                .json(&body(json!({}))),
        )
        .await,
        404,
        "not_found",
    );
}
