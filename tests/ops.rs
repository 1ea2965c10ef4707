use reqwest::Method;
use serde_json::json;

use crate::support::{Backend, Server, assert_error, event};

#[tokio::test]
async fn auth_is_required_on_v1_only() {
    let s = Server::start(Backend::Sqlite).await;
    let mode = std::fs::metadata(s.data_dir().join("admin.key")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    assert!(s.key.starts_with("sy_admin_"));

    let anon = |path: &str| s.client.get(format!("{}{path}", s.base));
    assert_error(&s.send(anon("/v1/buses")).await, 401, "unauthorized");
    assert_error(
        &s.send(anon("/v1/buses").bearer_auth("wrong")).await,
        401,
        "unauthorized",
    );
    assert_eq!(s.send(anon("/healthz")).await.status, 200);
    assert_eq!(
        s.send(anon("/readyz")).await.json(),
        json!({"status": "ready"})
    );
    assert_eq!(s.send(anon("/openapi.json")).await.status, 200);
    assert_eq!(s.send(anon("/metrics")).await.status, 200);
    assert_error(
        &s.send(s.request(Method::GET, "/v1/nothing-here")).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn the_admin_key_is_kept_across_restarts() {
    let mut s = Server::start(Backend::Sqlite).await;
    let key = s.key.clone();
    s.restart().await;
    assert_eq!(s.key, key);
    s.call(Method::GET, "/v1/buses", None, 200).await;
}

#[tokio::test]
async fn auth_disabled_is_refused_off_loopback_and_works_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "serve",
            "--auth",
            "disabled",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--auth disabled is refused on 0.0.0.0:0"),
        "{err}"
    );

    let s = Server::start_with(Backend::Sqlite, &["--auth", "disabled"]).await;
    assert!(!s.data_dir().join("admin.key").exists());
    let r = s.send(s.client.get(format!("{}/v1/buses", s.base))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn version_and_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("switchyard {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--auth",
        "SWITCHYARD_LISTEN",
    ] {
        assert!(help.contains(flag), "help lacks {flag}");
    }
}

#[tokio::test]
async fn metrics_count_ingested_events() {
    let s = Server::start(Backend::Sqlite).await;
    s.publish_batch(
        "default",
        &[
            event("m1", json!(1)),
            event("m2", json!(2)),
            event("m1", json!(1)),
        ],
    )
    .await;
    let text = s.metrics().await;
    assert!(
        text.contains("switchyard_events_ingested_total{bus=\"default\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_ingest_latency_seconds_count 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let s = Server::start(Backend::Sqlite).await;
    let doc = s
        .send(s.client.get(format!("{}/openapi.json", s.base)))
        .await
        .json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/v1/analytics/deliveries",
            "/v1/buses",
            "/v1/buses/{bus}",
            "/v1/buses/{bus}/analytics",
            "/v1/buses/{bus}/dead-letters",
            "/v1/buses/{bus}/dead-letters/redrive",
            "/v1/buses/{bus}/deliveries",
            "/v1/buses/{bus}/events",
            "/v1/buses/{bus}/events/{id}",
            "/v1/buses/{bus}/events/{id}/trace",
            "/v1/buses/{bus}/replays",
            "/v1/buses/{bus}/replays/{id}",
            "/v1/buses/{bus}/rules",
            "/v1/buses/{bus}/rules/{rule}",
            "/v1/buses/{bus}/rules/{rule}/disable",
            "/v1/buses/{bus}/rules/{rule}/enable",
            "/v1/functions",
            "/v1/functions/{name}",
            "/v1/functions/{name}/invoke",
            "/v1/keys",
            "/v1/keys/{name}",
            "/v1/patterns/test",
            "/v1/schemas",
            "/v1/schemas/{source}/{type}",
            "/v1/transforms/test",
            "/v1/webhooks",
            "/v1/webhooks/{name}",
        ]
    );
    assert!(doc["paths"]["/v1/buses/{bus}"]["put"].is_object());
    assert!(doc["paths"]["/v1/buses/{bus}"]["delete"].is_object());
}

/// Hostile or broken requests get a 4xx JSON error, never a 500 or a dead server.
#[tokio::test]
async fn malformed_requests_never_break_the_server() {
    let s = Server::start(Backend::Sqlite).await;
    let post = |ct: &str, body: Vec<u8>| {
        s.request(Method::POST, "/v1/buses/default/events")
            .header("content-type", ct)
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (post("application/cloudevents+json", b"".to_vec()), 400),
        (post("application/cloudevents+json", b"\xff\xfe".to_vec()), 400),
        (post("application/cloudevents+json", b"[[[[[[[[[[".to_vec()), 400),
        (post("application/cloudevents+json", "[".repeat(100_000).into_bytes()), 400),
        (post("application/cloudevents+json", b"{\"specversion\":\"1.0\"} trailing".to_vec()), 400),
        (post("application/cloudevents-batch+json", b"{}".to_vec()), 400),
        (post("application/cloudevents-batch+json", b"[1,".to_vec()), 400),
        (post("application/cloudevents+json", br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"2024-13-45T99:00:00Z"}"#.to_vec()), 400),
        (post("application/cloudevents+json", br#"{"specversion":1.0,"id":1,"source":null,"type":[]}"#.to_vec()), 400),
        (post("multipart/form-data", b"--x".to_vec()), 415),
        (s.request(Method::POST, "/v1/buses/default/events").header("ce-specversion", "1.0").header("ce-id", "%FF%FE").header("ce-source", "/s").header("ce-type", "t").body("x"), 400),
        (s.request(Method::PATCH, "/v1/buses/default"), 405),
    ];
    for (i, (req, status)) in cases.into_iter().enumerate() {
        let r = s.send(req).await;
        assert_eq!(r.status.as_u16(), status, "case {i}: {}", r.text());
        assert!(r.json()["error"]["code"].is_string(), "case {i}");
    }
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default", None, 200).await["events"],
        0
    );
    assert_eq!(
        s.send(s.client.get(format!("{}/healthz", s.base)))
            .await
            .status,
        200
    );
}
