use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, Server, assert_error};

async fn buses_lifecycle(backend: Backend) {
    let s = Server::start(backend).await;
    let list = s.call(Method::GET, "/v1/buses", None, 200).await;
    assert_eq!(list["buses"].as_array().unwrap().len(), 1);
    assert_eq!(list["buses"][0]["name"], "default");

    let created = s
        .call(
            Method::PUT,
            "/v1/buses/orders",
            Some(json!({"description": "shop orders", "retention_hours": 24})),
            201,
        )
        .await;
    assert_eq!(
        created,
        json!({"name": "orders", "description": "shop orders", "retention_hours": 24,
               "schema_validation": "off", "events": 0, "first_offset": null, "last_offset": null})
    );
    let updated = s
        .call(
            Method::PUT,
            "/v1/buses/orders",
            Some(json!({"schema_validation": "warn"})),
            200,
        )
        .await;
    assert_eq!(updated["schema_validation"], "warn");
    assert_eq!(updated["retention_hours"], 168);
    assert_eq!(
        s.call(Method::GET, "/v1/buses/orders", None, 200).await,
        updated
    );
    let names: Vec<String> = s.call(Method::GET, "/v1/buses", None, 200).await["buses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "orders"]);

    s.call(Method::DELETE, "/v1/buses/orders", None, 204).await;
    assert_error(
        &s.send(s.request(Method::GET, "/v1/buses/orders")).await,
        404,
        "not_found",
    );
    assert_error(
        &s.send(s.request(Method::DELETE, "/v1/buses/orders")).await,
        404,
        "not_found",
    );
    assert_error(
        &s.send(s.request(Method::DELETE, "/v1/buses/default")).await,
        409,
        "conflict",
    );
}
both_backends!(buses_lifecycle);

async fn bus_settings_survive_restart(backend: Backend) {
    let mut s = Server::start(backend).await;
    s.call(
        Method::PUT,
        "/v1/buses/keep",
        Some(json!({"retention_hours": 30, "schema_validation": "enforce"})),
        201,
    )
    .await;
    s.restart().await;
    let bus = s.call(Method::GET, "/v1/buses/keep", None, 200).await;
    assert_eq!(bus["retention_hours"], 30);
    assert_eq!(bus["schema_validation"], "enforce");
}
both_backends!(bus_settings_survive_restart);

#[tokio::test]
async fn bad_bus_requests_get_clear_errors() {
    let s = Server::start(Backend::Sqlite).await;
    let put = |path: &str, body: &str| {
        s.request(Method::PUT, path)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    assert_error(
        &s.send(put("/v1/buses/bad%20name", "{}")).await,
        400,
        "invalid_name",
    );
    assert_error(
        &s.send(put(&format!("/v1/buses/{}", "x".repeat(65)), "{}"))
            .await,
        400,
        "invalid_name",
    );
    assert_error(
        &s.send(put("/v1/buses/b", "{nope")).await,
        400,
        "invalid_json",
    );
    assert_error(
        &s.send(put("/v1/buses/b", r#"{"retention_hours": 0}"#))
            .await,
        422,
        "invalid_field",
    );
    // Shorter than the dedup window (24 h): a removed event could be published again.
    let short = assert_error(
        &s.send(put("/v1/buses/b", r#"{"retention_hours": 23}"#))
            .await,
        422,
        "invalid_field",
    );
    assert!(
        short.to_string().contains("between 24 (the dedup window)"),
        "{short}"
    );
    assert_error(
        &s.send(put("/v1/buses/b", r#"{"retention_hours": "x"}"#))
            .await,
        422,
        "invalid_field",
    );
    assert_error(
        &s.send(put("/v1/buses/b", r#"{"colour": "red"}"#)).await,
        422,
        "invalid_field",
    );
    assert_error(
        &s.send(put("/v1/buses/b", r#"{"schema_validation": "maybe"}"#))
            .await,
        422,
        "invalid_field",
    );
    let xml = s
        .request(Method::PUT, "/v1/buses/b")
        .header("content-type", "text/xml")
        .body("<a/>");
    assert_error(&s.send(xml).await, 415, "unsupported_media_type");
    // None of that created anything.
    assert_eq!(
        s.call(Method::GET, "/v1/buses", None, 200).await["buses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Creating and deleting the same bus at once: every request answers (no wait on workers
/// that never started) with its own clear status, never a 500 from a half-closed bus.
#[tokio::test]
async fn concurrent_puts_and_deletes_of_a_bus_never_fail() {
    let s = Server::start(Backend::Sqlite).await;
    let put = || s.send(s.request(Method::PUT, "/v1/buses/b").json(&json!({})));
    for _ in 0..20 {
        let delete = s.send(s.request(Method::DELETE, "/v1/buses/b"));
        let all = async { tokio::join!(put(), delete, put()) };
        let (a, d, b) = tokio::time::timeout(std::time::Duration::from_secs(30), all)
            .await
            .expect("a PUT or DELETE of the bus never answered");
        for p in [&a, &b] {
            assert!([200, 201].contains(&p.status.as_u16()), "{}", p.text());
        }
        assert!([204, 404].contains(&d.status.as_u16()), "{}", d.text());
    }
    let last = put().await;
    assert!(
        [200, 201].contains(&last.status.as_u16()),
        "{}",
        last.text()
    );
    s.call(Method::DELETE, "/v1/buses/b", None, 204).await;
}
