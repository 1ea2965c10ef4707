//! API keys with roles through the binary: a publisher key publishes and nothing else, a
//! reader key reads, revoked keys stop working, and keys are never shown twice.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Reply, Server, assert_error, event};

async fn with_key(s: &Server, key: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    s.send(req).await
}

async fn create(s: &Server, name: &str, role: &str) -> String {
    let k = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": name, "role": role})),
            201,
        )
        .await;
    assert_eq!(k["role"], role);
    let key = k["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(k["prefix"].as_str().unwrap()), "{k}");
    key
}

async fn roles(backend: Backend) {
    let mut s = Server::start(backend).await;
    let publisher = create(&s, "shop-producer", "publisher").await;
    let reader = create(&s, "dashboards", "reader").await;

    // The publisher publishes, and can do nothing else.
    let ev = event("k1", json!({"n": 1}));
    let reply = s
        .send(
            s.client
                .post(format!("{}/v1/buses/default/events", s.base))
                .bearer_auth(&publisher)
                .header("content-type", "application/cloudevents+json")
                .body(ev.to_string()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let err = assert_error(
        &with_key(
            &s,
            &publisher,
            Method::GET,
            "/v1/buses/default/events",
            None,
        )
        .await,
        403,
        "forbidden",
    );
    assert_eq!(
        err["error"]["message"],
        "the key \"shop-producer\" has the publisher role, which does not allow GET /v1/buses/default/events"
    );
    let rule = json!({"pattern": {"source": ["/tests"]}});
    for (method, path, body) in [
        (Method::PUT, "/v1/buses/default/rules/r", Some(rule.clone())),
        (
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "x", "role": "admin"})),
        ),
        (Method::DELETE, "/v1/buses/default", None),
    ] {
        assert_error(
            &with_key(&s, &publisher, method, path, body).await,
            403,
            "forbidden",
        );
    }

    // The reader reads, searches and counts, and changes nothing.
    let page = with_key(&s, &reader, Method::GET, "/v1/buses/default/events", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.json()["events"][0]["event"]["id"], "k1");
    let analytics = json!({"q": "", "from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"});
    let counted = with_key(
        &s,
        &reader,
        Method::POST,
        "/v1/buses/default/analytics",
        Some(analytics),
    )
    .await;
    assert_eq!(counted.status, 200, "{}", counted.text());
    for (method, path, body) in [
        (Method::PUT, "/v1/buses/default/rules/r", Some(rule.clone())),
        (Method::POST, "/v1/buses/default/events", Some(ev.clone())),
        (Method::GET, "/v1/keys", None),
    ] {
        assert_error(
            &with_key(&s, &reader, method, path, body).await,
            403,
            "forbidden",
        );
    }

    // Listing never shows a key; bad requests are refused clearly.
    let list = s.call(Method::GET, "/v1/keys", None, 200).await;
    let names: Vec<&str> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dashboards", "shop-producer"]);
    assert!(!list.to_string().contains(&publisher) && !list.to_string().contains("\"key\""));
    let dup = s
        .send(
            s.request(Method::POST, "/v1/keys")
                .json(&json!({"name": "dashboards", "role": "reader"})),
        )
        .await;
    assert_error(&dup, 409, "key_exists");
    let bad = s
        .send(
            s.request(Method::POST, "/v1/keys")
                .json(&json!({"name": "x", "role": "owner"})),
        )
        .await;
    let err = assert_error(&bad, 422, "invalid_field");
    assert_eq!(
        err["error"]["message"],
        "role: \"owner\" is not one of admin, publisher, reader"
    );

    // Keys survive a restart; a revoked key is refused at once.
    s.restart().await;
    let again = with_key(&s, &reader, Method::GET, "/v1/buses", None).await;
    assert_eq!(again.status, 200);
    s.call(Method::DELETE, "/v1/keys/dashboards", None, 204)
        .await;
    s.call(Method::DELETE, "/v1/keys/dashboards", None, 404)
        .await;
    assert_error(
        &with_key(&s, &reader, Method::GET, "/v1/buses", None).await,
        401,
        "unauthorized",
    );
    // An admin-role key can manage keys.
    let admin = create(&s, "ops", "admin").await;
    let created = with_key(
        &s,
        &admin,
        Method::POST,
        "/v1/keys",
        Some(json!({"name": "ci", "role": "publisher"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
}
both_backends!(roles);

/// Creating and revoking the same key at once: each request gets its own clear answer
/// (201 or 409, 204 or 404), never a 500 from the store.
#[tokio::test]
async fn concurrent_creates_and_revokes_never_fail() {
    let s = Server::start(Backend::Sqlite).await;
    for _ in 0..60 {
        let create = || {
            s.send(
                s.request(Method::POST, "/v1/keys")
                    .json(&json!({"name": "k", "role": "reader"})),
            )
        };
        let revoke = s.send(s.request(Method::DELETE, "/v1/keys/k"));
        let (a, r, b) = tokio::join!(create(), revoke, create());
        for c in [&a, &b] {
            assert!([201, 409].contains(&c.status.as_u16()), "{}", c.text());
        }
        assert!([204, 404].contains(&r.status.as_u16()), "{}", r.text());
    }
}
