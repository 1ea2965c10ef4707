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
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz",
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

/// Every operation of the document, as `(path, method, operation)`.
fn operations(doc: &serde_json::Value) -> Vec<(&str, &str, &serde_json::Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.as_str(), method.as_str(), op));
        }
    }
    ops
}

#[tokio::test]
async fn openapi_puts_query_parameters_in_the_query_and_declares_the_bearer_key() {
    let s = Server::start(Backend::Sqlite).await;
    let doc = s
        .send(s.client.get(format!("{}/openapi.json", s.base)))
        .await
        .json();
    let query_params = [
        "q",
        "from",
        "to",
        "limit",
        "cursor",
        "source",
        "timeout_ms",
        "memory_mb",
        "fuel",
        "format",
    ];
    let mut in_query = Vec::new();
    for (path, method, op) in operations(&doc) {
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            // `source` is also the path segment of /v1/schemas/{source}/{type}.
            let templated = path.contains(&format!("{{{name}}}"));
            if query_params.contains(&name) && !templated {
                assert_eq!(p["in"], "query", "{method} {path} {name}");
                assert_eq!(p["required"], false, "{method} {path} {name}");
                in_query.push(format!("{method} {path} {name}"));
            }
            if p["in"] == "path" {
                assert!(templated, "{method} {path} {name}");
                assert_eq!(p["required"], true, "{method} {path} {name}");
            }
        }
    }
    in_query.sort();
    assert_eq!(
        in_query,
        [
            "get /v1/buses/{bus}/dead-letters cursor",
            "get /v1/buses/{bus}/dead-letters limit",
            "get /v1/buses/{bus}/deliveries cursor",
            "get /v1/buses/{bus}/deliveries from",
            "get /v1/buses/{bus}/deliveries limit",
            "get /v1/buses/{bus}/deliveries q",
            "get /v1/buses/{bus}/deliveries to",
            "get /v1/buses/{bus}/events cursor",
            "get /v1/buses/{bus}/events from",
            "get /v1/buses/{bus}/events limit",
            "get /v1/buses/{bus}/events q",
            "get /v1/buses/{bus}/events to",
            "get /v1/buses/{bus}/events/{id} source",
            "get /v1/buses/{bus}/events/{id}/trace source",
            "get /v1/schemas/{source}/{type} format",
            "put /v1/functions/{name} fuel",
            "put /v1/functions/{name} memory_mb",
            "put /v1/functions/{name} timeout_ms",
        ]
    );
    let limit = &doc["paths"]["/v1/buses/{bus}/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"];
    assert_eq!(
        (&limit["type"], &limit["minimum"], &limit["maximum"]),
        (&json!("integer"), &json!(1), &json!(1000))
    );

    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer", "description": "an API key: the admin key in <data-dir>/admin.key, or one made with POST /v1/keys"})
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    let mut keyless = Vec::new();
    let mut scoped = Vec::new();
    for (path, method, op) in operations(&doc) {
        if op.get("security") == Some(&json!([])) {
            keyless.push(format!("{method} {path}"));
        } else {
            // Admin-only routes inherit the document's requirement; the others name the
            // roles' scopes that may also call them, which is what the server enforces.
            match op.get("security") {
                None => {}
                Some(s) if s == &json!([{"bearer": ["read"]}]) => {
                    scoped.push(format!("read {method} {path}"))
                }
                Some(s) if s == &json!([{"bearer": ["publish"]}]) => {
                    scoped.push(format!("publish {method} {path}"))
                }
                Some(other) => panic!("{method} {path}: security {other}"),
            }
            assert_eq!(
                op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorResponse",
                "{method} {path}"
            );
        }
    }
    assert!(scoped.contains(&"publish post /v1/buses/{bus}/events".to_owned()));
    assert!(scoped.contains(&"read get /v1/buses/{bus}/events/{id}/trace".to_owned()));
    assert!(scoped.contains(&"read post /v1/patterns/test".to_owned()));
    assert!(!scoped.iter().any(|s| s.contains("/v1/keys")), "{scoped:?}");
    assert_eq!(scoped.len(), 23, "{scoped:?}");
    keyless.sort();
    assert_eq!(
        keyless,
        [
            "get /healthz",
            "get /metrics",
            "get /openapi.json",
            "get /readyz",
            "post /v1/webhooks/{name}",
        ]
    );
}

/// What the document promises holds on the wire: the key-less routes answer without a key.
#[tokio::test]
async fn openapi_keyless_routes_answer_without_a_key() {
    let s = Server::start(Backend::Sqlite).await;
    let anon = |method: Method, path: &str| s.client.request(method, format!("{}{path}", s.base));
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(s.send(anon(Method::GET, path)).await.status, 200, "{path}");
    }
    // No such webhook: a 404 from the route, not a 401 from the key check.
    assert_error(
        &s.send(anon(Method::POST, "/v1/webhooks/nothing").body("{}"))
            .await,
        404,
        "not_found",
    );
}

/// A WASI command that prints `text` and exits.
fn printer(text: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const {len}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = text.len()
    )
}

/// The two try-it endpoints answer an array body (valid JSON, wrong shape) with a 422, and
/// any JSON a transform or function makes, `null` too, is an `output` the document allows.
#[tokio::test]
async fn try_it_endpoints_take_objects_and_return_any_json() {
    let s = Server::start(Backend::Sqlite).await;
    for (name, text) in [("nothing", "null"), ("pair", "[null, null]")] {
        let r = s
            .send(
                s.request(Method::PUT, &format!("/v1/functions/{name}"))
                    .header("content-type", "application/wasm")
                    .body(printer(text)),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let transform = json!({"kind": "function", "function": "nothing"});
    let out = s
        .call(
            Method::POST,
            "/v1/transforms/test",
            Some(json!({"transform": transform, "event": {"x": 1}})),
            200,
        )
        .await;
    assert_eq!(out, json!({"output": null}));
    let out = s
        .call(
            Method::POST,
            "/v1/functions/pair/invoke",
            Some(json!({})),
            200,
        )
        .await;
    assert_eq!(out["output"], json!([null, null]));

    for (path, body, code) in [
        (
            "/v1/transforms/test",
            json!([transform, {"x": 1}]),
            "invalid_body",
        ),
        (
            "/v1/patterns/test",
            json!([{"source": ["a"]}, {"source": "a"}]),
            "invalid_body",
        ),
        (
            "/v1/functions/pair/invoke",
            json!([{"x": 1}]),
            "invalid_event",
        ),
        (
            "/v1/transforms/test",
            json!({"transform": null, "event": [null, null]}),
            "invalid_event",
        ),
    ] {
        let r = s.send(s.request(Method::POST, path).json(&body)).await;
        assert_error(&r, 422, code);
    }

    let doc = s
        .send(s.client.get(format!("{}/openapi.json", s.base)))
        .await
        .json();
    let schemas = &doc["components"]["schemas"];
    // No `type`: any JSON value.
    assert_eq!(
        schemas["TransformTestResult"]["properties"]["output"].get("type"),
        None
    );
    assert_eq!(
        schemas["InvokeResult"]["properties"]["output"].get("type"),
        None
    );
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
        // Path segments that are not UTF-8: axum's own refusal, in the API's JSON shape.
        (s.request(Method::GET, "/v1/buses/%FF"), 400),
        (s.request(Method::GET, "/v1/buses/default/events/%C0"), 400),
        (s.client.post(format!("{}/v1/webhooks/%FF", s.base)).body("x"), 400),
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
