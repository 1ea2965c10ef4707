use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Server, assert_error, event};

fn big_orders() -> Value {
    json!({
        "description": "big orders",
        "pattern": {"type": ["com.shop.order.created"], "data": {"total": [{"numeric": [">", 100]}]}},
        "targets": [{"id": "crm", "kind": "http", "http": {"url": "http://127.0.0.1:9/hook"},
                     "transform": {"kind": "template", "vars": {"who": "$.data.customer"},
                                   "template": "{\"text\": \"order by {{who}}\"}"},
                     "retry": {"max_attempts": 185, "max_age_seconds": 86400},
                     "dead_letter": {"bus": "dlq"}}]
    })
}

async fn rules_lifecycle(backend: Backend) {
    let mut s = Server::start(backend).await;
    let created = s
        .call(
            Method::PUT,
            "/v1/buses/default/rules/big",
            Some(big_orders()),
            201,
        )
        .await;
    assert_eq!(created["name"], "big");
    assert_eq!(created["bus"], "default");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["pattern"], big_orders()["pattern"]);
    assert_eq!(created["targets"], big_orders()["targets"]);
    let mut all = big_orders();
    all["pattern"] = json!({"source": [{"prefix": ""}]});
    all["targets"] = json!([]);
    s.call(Method::PUT, "/v1/buses/default/rules/all", Some(all), 201)
        .await;
    s.call(
        Method::PUT,
        "/v1/buses/default/rules/big",
        Some(big_orders()),
        200,
    )
    .await;
    let disabled = s
        .call(
            Method::POST,
            "/v1/buses/default/rules/all/disable",
            None,
            200,
        )
        .await;
    assert_eq!(disabled["enabled"], false);
    s.restart().await;
    let list = s
        .call(Method::GET, "/v1/buses/default/rules", None, 200)
        .await;
    let names: Vec<(&str, bool)> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("all", false), ("big", true)]);
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default/rules/big", None, 200)
            .await["description"],
        "big orders"
    );
    s.call(
        Method::POST,
        "/v1/buses/default/rules/all/enable",
        None,
        200,
    )
    .await;
    s.call(Method::DELETE, "/v1/buses/default/rules/all", None, 204)
        .await;
    assert_error(
        &s.send(s.request(Method::GET, "/v1/buses/default/rules/all"))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.send(s.request(Method::DELETE, "/v1/buses/default/rules/all"))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.send(s.request(Method::GET, "/v1/buses/nope/rules")).await,
        404,
        "not_found",
    );
    // Deleting a bus deletes its rules.
    s.call(Method::PUT, "/v1/buses/tmp", None, 201).await;
    s.call(
        Method::PUT,
        "/v1/buses/tmp/rules/r",
        Some(big_orders()),
        201,
    )
    .await;
    s.call(Method::DELETE, "/v1/buses/tmp", None, 204).await;
    s.call(Method::PUT, "/v1/buses/tmp", None, 201).await;
    assert_eq!(
        s.call(Method::GET, "/v1/buses/tmp/rules", None, 200).await,
        json!({"rules": []})
    );
}
both_backends!(rules_lifecycle);

#[tokio::test]
async fn bad_rules_are_refused_with_the_offending_path() {
    let s = Server::start(Backend::Sqlite).await;
    let put = |body: Value| {
        s.request(Method::PUT, "/v1/buses/default/rules/r")
            .json(&body)
    };
    let bad = s
        .send(put(
            json!({"pattern": {"data": {"total": [{"numeric": [">", "x"]}]}}}),
        ))
        .await;
    let body = assert_error(&bad, 422, "invalid_pattern");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("pattern: data.total"),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["path"]
            .as_str()
            .unwrap()
            .split('[')
            .next(),
        Some("data.total")
    );
    assert_error(
        &s.send(put(json!({"pattern": {"type": []}}))).await,
        422,
        "invalid_pattern",
    );
    assert_error(
        &s.send(put(json!({"pattern": {}}))).await,
        422,
        "invalid_pattern",
    );
    assert_error(
        &s.send(put(json!({"pattern": "type"}))).await,
        422,
        "invalid_pattern",
    );
    assert_error(
        &s.send(put(json!({"targets": []}))).await,
        422,
        "invalid_field",
    );
    let no_url =
        json!({"pattern": {"source": ["a"]}, "targets": [{"id": "t", "kind": "http", "http": {}}]});
    assert_error(&s.send(put(no_url)).await, 422, "invalid_target");
    let dup = json!({"pattern": {"source": ["a"]}, "targets": [{"id": "t", "kind": "bus", "bus": "a"}, {"id": "t", "kind": "bus", "bus": "b"}]});
    assert_error(&s.send(put(dup)).await, 422, "invalid_target");
    let bad_transform = json!({"pattern": {"source": ["a"]}, "targets": [{"id": "t", "kind": "bus", "bus": "a", "transform": {"kind": "jsonpath", "path": "$$["}}]});
    assert_error(&s.send(put(bad_transform)).await, 422, "invalid_target");
    let unknown_kind =
        json!({"pattern": {"source": ["a"]}, "targets": [{"id": "t", "kind": "fax"}]});
    assert_error(&s.send(put(unknown_kind)).await, 422, "invalid_field");
    assert_error(
        &s.send(
            s.request(Method::PUT, "/v1/buses/default/rules/a%20b")
                .json(&big_orders()),
        )
        .await,
        400,
        "invalid_name",
    );
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default/rules", None, 200)
            .await,
        json!({"rules": []})
    );
}

#[tokio::test]
async fn events_record_the_rules_they_matched_at_publish_time() {
    let s = Server::start(Backend::Sqlite).await;
    let order = |id: &str, total: f64| {
        json!({"specversion": "1.0", "id": id, "source": "/shop", "type": "com.shop.order.created",
               "data": {"total": total, "customer": "ada"}})
    };
    s.publish("default", &order("before-rule", 500.0)).await;
    s.call(
        Method::PUT,
        "/v1/buses/default/rules/big",
        Some(big_orders()),
        201,
    )
    .await;
    s.call(
        Method::PUT,
        "/v1/buses/default/rules/any-order",
        Some(json!({"pattern": {"type": [{"prefix": "com.shop.order."}]}})),
        201,
    )
    .await;
    let r = s
        .publish_batch(
            "default",
            &[
                order("small", 20.0),
                order("large", 120.5),
                order("large", 120.5),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    let s = &s;
    let matched = |id: &str| {
        let path = format!("/v1/buses/default/events/{id}");
        async move { s.call(Method::GET, &path, None, 200).await["matched_rules"].clone() }
    };
    assert_eq!(matched("before-rule").await, json!([]));
    assert_eq!(matched("small").await, json!(["any-order"]));
    let mut large: Vec<String> = serde_json::from_value(matched("large").await).unwrap();
    large.sort();
    assert_eq!(large, ["any-order", "big"]);
    s.call(
        Method::POST,
        "/v1/buses/default/rules/big/disable",
        None,
        200,
    )
    .await;
    s.publish("default", &order("after-disable", 999.0)).await;
    assert_eq!(matched("after-disable").await, json!(["any-order"]));
    let text = s.metrics().await;
    assert!(
        text.contains("switchyard_rule_matches_total{bus=\"default\",rule=\"big\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_rule_matches_total{bus=\"default\",rule=\"any-order\"} 3\n"),
        "{text}"
    );
}

/// The 155 AWS-checked conformance cases, through the HTTP API of the real binary.
#[tokio::test]
async fn pattern_test_endpoint_passes_the_conformance_corpus() {
    // As in rules/tests/conformance.rs: `SWITCHYARD_CONFORMANCE`, else ../shared beside
    // the repository.
    let path = std::env::var("SWITCHYARD_CONFORMANCE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/conformance/event-patterns.jsonl"
            )
            .to_owned()
        });
    let corpus = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("conformance corpus at {path}: {e}; set SWITCHYARD_CONFORMANCE")
    });
    let s = Server::start(Backend::Sqlite).await;
    let mut misses = Vec::new();
    let mut count = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        count += 1;
        let r = s
            .send(
                s.request(Method::POST, "/v1/patterns/test")
                    .json(&json!({"pattern": case["pattern"], "event": case["event"]})),
            )
            .await;
        let got = match (r.status.as_u16(), r.json()["matches"].as_bool()) {
            (200, Some(true)) => "match",
            (200, Some(false)) => "no_match",
            (422, _) => "invalid",
            (status, _) => panic!("{}: status {status}: {}", case["name"], r.text()),
        };
        if got != case["expect"] {
            misses.push(format!(
                "{} expected {} got {got}",
                case["name"], case["expect"]
            ));
        }
    }
    assert_eq!(count, 155);
    assert!(misses.is_empty(), "{misses:#?}");
}

#[tokio::test]
async fn transform_test_endpoint() {
    let s = Server::start(Backend::Sqlite).await;
    let ev = event(
        "t1",
        json!({"customer": {"name": "ada", "tier": "gold"}, "total": 12}),
    );
    let run = |transform: Value| {
        s.request(Method::POST, "/v1/transforms/test")
            .json(&json!({"transform": transform, "event": ev}))
    };
    let out = |r: crate::support::Reply| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["output"].clone()
    };
    assert_eq!(out(s.send(run(json!({"kind": "complete"}))).await), ev);
    assert_eq!(
        out(s
            .send(run(
                json!({"kind": "jsonpath", "path": "$.data.customer.name"})
            ))
            .await),
        json!("ada")
    );
    assert_eq!(
        out(s
            .send(run(json!({"kind": "constant", "value": {"ping": true}})))
            .await),
        json!({"ping": true})
    );
    let template = json!({"kind": "template", "vars": {"who": "$.data.customer.name", "gone": "$.data.nope"},
                          "template": "{\"text\": \"order by {{who}} ({{gone}})\"}"});
    assert_eq!(
        out(s.send(run(template)).await),
        json!({"text": "order by ada (null)"})
    );
    let text =
        json!({"kind": "template", "vars": {"t": "$.data.total"}, "template": "total={{t}}"});
    assert_eq!(out(s.send(run(text)).await), json!("total=12"));
    assert_error(
        &s.send(run(json!({"kind": "function", "function": "f"})))
            .await,
        422,
        "transform_failed",
    );
    assert_error(
        &s.send(run(json!({"kind": "jsonpath"}))).await,
        422,
        "invalid_transform",
    );
    assert_error(
        &s.send(run(json!({"kind": "template", "template": "{{#if}}"})))
            .await,
        422,
        "invalid_transform",
    );
    assert_error(
        &s.send(run(json!({"kind": "teleport"}))).await,
        422,
        "invalid_transform",
    );
}
