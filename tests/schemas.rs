use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::receiver::eventually;
use crate::support::{Backend, Server, assert_error};

fn order(id: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/shop", "type": "order.created", "data": data})
}

const SCHEMA_PATH: &str = "/v1/schemas/%2Fshop/order.created";

fn declared() -> Value {
    json!({"schema": {"type": "object", "required": ["total"],
        "properties": {"total": {"type": "number", "minimum": 0}, "customer": {"type": "string"}}}})
}

async fn discovered_schemas_are_versioned(backend: Backend) {
    let mut s = Server::start(backend).await;
    s.publish(
        "default",
        &order("1", json!({"total": 10, "customer": "ada"})),
    )
    .await;
    s.publish(
        "default",
        &order(
            "2",
            json!({"total": 12.5, "customer": "bob", "coupon": "X"}),
        ),
    )
    .await;
    let versions = eventually(Duration::from_secs(10), || async {
        let v = s.call(Method::GET, SCHEMA_PATH, None, 200).await;
        (v["versions"].as_array().map_or(0, Vec::len) >= 2).then_some(v)
    })
    .await;
    let latest = &versions["versions"][1];
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["explicit"], false);
    assert_eq!(latest["schema"]["properties"]["total"]["type"], "number");
    assert_eq!(latest["schema"]["properties"]["coupon"]["type"], "string");
    assert_eq!(latest["schema"]["required"], json!(["customer", "total"]));
    // The same shapes again make no new version.
    s.publish(
        "default",
        &order("3", json!({"total": 1, "customer": "cy"})),
    )
    .await;
    let list = eventually(Duration::from_secs(10), || async {
        let l = s.call(Method::GET, "/v1/schemas", None, 200).await;
        (l["schemas"][0]["events"] == 3).then_some(l)
    })
    .await;
    let entry = &list["schemas"][0];
    assert_eq!(
        (entry["source"].clone(), entry["type"].clone()),
        (json!("/shop"), json!("order.created"))
    );
    assert_eq!(entry["latest_version"], 2);
    assert_eq!(entry["explicit"], false);
    // A graceful stop saves the counters.
    s.restart().await;
    let again = s.call(Method::GET, SCHEMA_PATH, None, 200).await;
    assert_eq!(again["versions"], versions["versions"]);
    assert_eq!(
        s.call(Method::GET, "/v1/schemas", None, 200).await["schemas"][0]["events"],
        3
    );
}
both_backends!(discovered_schemas_are_versioned);

#[tokio::test]
async fn enforce_rejects_every_violation_and_stores_nothing() {
    let s = Server::start(Backend::Sqlite).await;
    s.call(
        Method::PUT,
        "/v1/buses/default",
        Some(json!({"schema_validation": "enforce"})),
        200,
    )
    .await;
    let created = s
        .call(Method::PUT, SCHEMA_PATH, Some(declared()), 201)
        .await;
    assert_eq!(
        created,
        json!({"source": "/shop", "type": "order.created", "version": 1})
    );
    let bad = s
        .publish("default", &order("b1", json!({"total": -5, "customer": 7})))
        .await;
    let body = assert_error(&bad, 422, "schema_violation");
    let mut pointers: Vec<String> = body["error"]["details"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap().to_owned())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/data/customer", "/data/total"]);
    let batch = s
        .publish_batch(
            "default",
            &[
                order("g1", json!({"total": 3})),
                order("b2", json!({"customer": "x"})),
            ],
        )
        .await;
    let body = assert_error(&batch, 422, "schema_violation");
    assert_eq!(body["error"]["details"]["violations"][0]["index"], 1);
    assert_eq!(
        body["error"]["details"]["violations"][0]["pointer"],
        "/data"
    );
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default", None, 200).await["events"],
        0
    );
    // Other types are not checked; good events pass.
    assert_eq!(
        s.publish("default", &order("g2", json!({"total": 3})))
            .await
            .status,
        200
    );
    let mut other = order("o1", json!("anything"));
    other["type"] = json!("order.other");
    assert_eq!(s.publish("default", &other).await.status, 200);
    // Without the declared schema the bus accepts anything again.
    s.call(Method::DELETE, SCHEMA_PATH, None, 204).await;
    assert_error(
        &s.send(s.request(Method::DELETE, SCHEMA_PATH)).await,
        404,
        "not_found",
    );
    assert_eq!(
        s.publish("default", &order("b3", json!({"total": -1})))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn warn_accepts_and_puts_violations_on_the_trace() {
    let s = Server::start(Backend::Sqlite).await;
    s.call(
        Method::PUT,
        "/v1/buses/default",
        Some(json!({"schema_validation": "warn"})),
        200,
    )
    .await;
    s.call(Method::PUT, SCHEMA_PATH, Some(declared()), 201)
        .await;
    assert_eq!(
        s.publish("default", &order("w1", json!({"total": "ten"})))
            .await
            .status,
        200
    );
    let trace = eventually(Duration::from_secs(5), || async {
        let t = s
            .call(Method::GET, "/v1/buses/default/events/w1/trace", None, 200)
            .await;
        t["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["stage"] == "schema_violation")
            .cloned()
    })
    .await;
    assert!(
        trace["error"]
            .as_str()
            .unwrap()
            .starts_with("/data/total: "),
        "{trace}"
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(
            "switchyard_schema_violations_total{bus=\"default\",type=\"order.created\"} 1\n"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn declared_schemas_are_checked_and_exported() {
    let s = Server::start(Backend::Sqlite).await;
    let bad = s
        .send(
            s.request(Method::PUT, SCHEMA_PATH)
                .json(&json!({"schema": {"type": "nope"}})),
        )
        .await;
    assert_error(&bad, 422, "invalid_schema");
    assert_error(
        &s.send(s.request(Method::GET, SCHEMA_PATH)).await,
        404,
        "not_found",
    );
    s.call(Method::PUT, SCHEMA_PATH, Some(declared()), 201)
        .await;
    let raw = s
        .call(
            Method::GET,
            &format!("{SCHEMA_PATH}?format=jsonschema"),
            None,
            200,
        )
        .await;
    assert_eq!(raw, declared()["schema"]);
    let openapi = s
        .call(
            Method::GET,
            &format!("{SCHEMA_PATH}?format=openapi"),
            None,
            200,
        )
        .await;
    assert_eq!(openapi["openapi"], "3.1.0");
    assert_eq!(
        openapi["components"]["schemas"]["order_created"],
        declared()["schema"]
    );
    let r = s
        .send(s.request(Method::GET, &format!("{SCHEMA_PATH}?format=xml")))
        .await;
    assert_error(&r, 400, "invalid_query");
    let list = s.call(Method::GET, "/v1/schemas", None, 200).await;
    assert_eq!(list["schemas"][0]["explicit"], true);
}

/// Declaring and undeclaring the same schema at once never trips over a version number:
/// every declare is a 201, every undeclare a 204 or a 404.
#[tokio::test]
async fn concurrent_declares_and_undeclares_never_fail() {
    let s = Server::start(Backend::Sqlite).await;
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let put = s.send(
            s.request(Method::PUT, SCHEMA_PATH)
                .json(&json!({"schema": {"type": "object"}})),
        );
        let delete = s.send(s.request(Method::DELETE, SCHEMA_PATH));
        let (put, delete) = tokio::join!(put, delete);
        assert_eq!(put.status, 201, "{}", put.text());
        statuses.push(delete.status.as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 204 || *s == 404),
        "{statuses:?}"
    );
}
