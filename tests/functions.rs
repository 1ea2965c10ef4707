//! WebAssembly functions through the binary: the `/v1/functions` API, the sandbox's failure
//! codes, and functions as transform and as target of a rule. The modules are the WAT files
//! in `functions/wat/`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::receiver::{Receiver, eventually};
use crate::support::{Backend, Server, assert_error, event};

fn module(name: &str) -> Vec<u8> {
    let path = format!("{}/../functions/wat/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `PUT /v1/functions/{path}` with a module body.
async fn deploy(s: &Server, path: &str, body: Vec<u8>) -> crate::support::Reply {
    s.send(
        s.request(Method::PUT, &format!("/v1/functions/{path}"))
            .header("content-type", "application/wasm")
            .body(body),
    )
    .await
}

async fn invoke(s: &Server, name: &str, body: &str) -> Value {
    let reply = s
        .send(
            s.request(Method::POST, &format!("/v1/functions/{name}/invoke"))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn functions_api(backend: Backend) {
    let mut s = Server::start(backend).await;
    let wrap = module("wrap");
    let created = deploy(&s, "wrap?timeout_ms=500&memory_mb=8", wrap.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let f = created.json();
    assert_eq!(f["name"], "wrap");
    assert_eq!(f["size_bytes"], wrap.len());
    assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        (
            f["timeout_ms"].clone(),
            f["memory_mb"].clone(),
            f["fuel"].clone()
        ),
        (json!(500), json!(8), json!(1_000_000_000u64))
    );
    let out = invoke(&s, "wrap", r#"{"a": [1, 2]}"#).await;
    assert_eq!(out["output"], json!({"wrapped": {"a": [1, 2]}}));
    assert!(out["duration_ms"].as_f64().is_some_and(|d| d > 0.0));
    assert!(out["fuel_used"].as_u64().is_some_and(|f| f > 0));
    assert!(out.get("error").is_none());

    // A binary module deploys as well as WAT text; replacing keeps created_at.
    let binary = wat::parse_bytes(&module("echo")).unwrap().into_owned();
    assert_eq!(deploy(&s, "echo", binary.clone()).await.status, 201);
    let replaced = deploy(&s, "echo?fuel=5000000", binary).await;
    assert_eq!(replaced.status, 200);
    let replaced = replaced.json();
    assert_eq!(replaced["fuel"], 5_000_000);
    let echo = s.call(Method::GET, "/v1/functions/echo", None, 200).await;
    assert_eq!(echo, replaced);
    assert_eq!(
        invoke(&s, "echo", r#"{"t": "text"}"#).await["output"],
        json!({"t": "text"})
    );

    // Bad input: clear errors, and nothing stored changes.
    let before = s.call(Method::GET, "/v1/functions", None, 200).await;
    assert_error(
        &deploy(&s, "wrap", module("not-a-command")).await,
        422,
        "invalid_module",
    );
    assert_error(
        &deploy(&s, "wrap", module("imports-env")).await,
        422,
        "invalid_module",
    );
    assert_error(
        &deploy(&s, "wrap", b"(module".to_vec()).await,
        422,
        "invalid_module",
    );
    assert_error(&deploy(&s, "wrap", Vec::new()).await, 422, "invalid_module");
    assert_error(
        &deploy(&s, "wrap?timeout_ms=0", module("echo")).await,
        422,
        "invalid_limits",
    );
    assert_error(
        &deploy(&s, "wrap?memory_mb=99999", module("echo")).await,
        422,
        "invalid_limits",
    );
    assert_error(
        &deploy(&s, "wrap?nonsense=1", module("echo")).await,
        400,
        "invalid_query",
    );
    assert_error(
        &deploy(&s, "bad%20name", module("echo")).await,
        400,
        "invalid_name",
    );
    let json_body = s
        .send(
            s.request(Method::PUT, "/v1/functions/wrap")
                .json(&json!({"module": "x"})),
        )
        .await;
    assert_error(&json_body, 415, "unsupported_media_type");
    assert_eq!(
        s.call(Method::GET, "/v1/functions", None, 200).await,
        before
    );
    assert_eq!(
        invoke(&s, "wrap", r#"{"n": 1}"#).await["output"],
        json!({"wrapped": {"n": 1}})
    );
    let missing = s
        .send(
            s.request(Method::POST, "/v1/functions/nope/invoke")
                .json(&json!({})),
        )
        .await;
    assert_error(&missing, 404, "not_found");
    let not_json = s
        .send(
            s.request(Method::POST, "/v1/functions/wrap/invoke")
                .body("{not json"),
        )
        .await;
    assert_error(&not_json, 400, "invalid_json");

    // Functions survive a restart: stored in SQL, compiled again at start.
    s.restart().await;
    assert_eq!(
        s.call(Method::GET, "/v1/functions", None, 200).await,
        before
    );
    assert_eq!(
        invoke(&s, "wrap", r#"{"n": 2}"#).await["output"],
        json!({"wrapped": {"n": 2}})
    );

    // A function a rule uses cannot be deleted until the rule lets go of it.
    let rule = json!({"pattern": {"source": ["/tests"]}, "targets": [
        {"id": "t", "kind": "function", "function": "echo",
         "transform": {"kind": "function", "function": "wrap"}}]});
    s.put_rule("default", "uses", rule).await;
    let in_use = s
        .send(s.request(Method::DELETE, "/v1/functions/wrap"))
        .await;
    let body = assert_error(&in_use, 409, "function_in_use");
    assert_eq!(body["error"]["details"]["rules"], json!(["default/uses"]));
    s.call(Method::DELETE, "/v1/buses/default/rules/uses", None, 204)
        .await;
    s.call(Method::DELETE, "/v1/functions/wrap", None, 204)
        .await;
    s.call(Method::DELETE, "/v1/functions/wrap", None, 404)
        .await;
    let names: Vec<Value> = s.call(Method::GET, "/v1/functions", None, 200).await["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(names, [json!("echo")]);
}
both_backends!(functions_api);

#[tokio::test]
async fn invoke_reports_every_way_a_run_can_fail() {
    let s = Server::start(Backend::Sqlite).await;
    let cases = [
        (
            "slow",
            "spin",
            "?timeout_ms=50&fuel=1000000000000",
            "timeout",
        ),
        (
            "thirsty",
            "spin",
            "?timeout_ms=60000&fuel=100000",
            "fuel_exhausted",
        ),
        ("hog", "hog", "?memory_mb=2", "memory"),
        ("crash", "trap", "", "trap"),
        ("reject", "reject", "", "exit"),
    ];
    for (name, wat, query, code) in cases {
        let reply = deploy(&s, &format!("{name}{query}"), module(wat)).await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        let out = invoke(&s, name, "{}").await;
        assert_eq!(out["error"]["code"], code, "{name}: {out}");
        assert!(out.get("output").is_none(), "{name}: {out}");
        assert!(out["duration_ms"].is_number(), "{name}: {out}");
    }
    assert_eq!(
        invoke(&s, "slow", "{}").await["error"]["message"],
        "still running after 50 ms"
    );
    assert_eq!(
        invoke(&s, "reject", "{}").await["error"]["message"],
        "exited with code 3; stderr: customer id missing"
    );
    assert_eq!(
        invoke(&s, "hog", "{}").await["error"]["message"],
        "linear memory would grow from 1114112 to 2162688 bytes, over the limit of 2 MiB"
    );
    // Every run is counted by outcome.
    let metrics = s.metrics().await;
    for line in [
        "switchyard_function_invocations_total{function=\"slow\",outcome=\"timeout\"} 2\n",
        "switchyard_function_invocations_total{function=\"crash\",outcome=\"trap\"} 1\n",
        "switchyard_function_invocations_total{function=\"hog\",outcome=\"memory\"} 2\n",
        "switchyard_function_duration_seconds_count 8\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    // The server is unharmed: a good function still runs.
    assert_eq!(deploy(&s, "echo", module("echo")).await.status, 201);
    assert_eq!(
        invoke(&s, "echo", r#"{"a": [1]}"#).await["output"],
        json!({"a": [1]})
    );
}

#[tokio::test]
async fn transforms_test_runs_functions() {
    let s = Server::start(Backend::Sqlite).await;
    assert_eq!(deploy(&s, "wrap", module("wrap")).await.status, 201);
    let out = s
        .call(
            Method::POST,
            "/v1/transforms/test",
            Some(json!({"transform": {"kind": "function", "function": "wrap"}, "event": {"x": 1}})),
            200,
        )
        .await;
    assert_eq!(out, json!({"output": {"wrapped": {"x": 1}}}));
    let missing = s
        .send(
            s.request(Method::POST, "/v1/transforms/test")
                .json(&json!({"transform": {"kind": "function", "function": "nope"}, "event": {}})),
        )
        .await;
    let body = assert_error(&missing, 422, "transform_failed");
    assert_eq!(
        body["error"]["message"],
        "function \"nope\" is not deployed"
    );
}

/// The (stage, error) pairs of an event's trace once `done` is in it.
async fn stages(s: &Server, id: &str, done: &str) -> Vec<(String, Option<String>)> {
    s.timeline_until(id, done)
        .await
        .iter()
        .map(|st| {
            (
                st["stage"].as_str().unwrap().to_owned(),
                st["error"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn step(stage: &str) -> (String, Option<String>) {
    (stage.to_owned(), None)
}

#[tokio::test]
async fn rules_run_functions_as_transform_and_as_target() {
    let rx = Receiver::start(vec![]).await;
    let s = Server::start_with(Backend::Sqlite, &["--target-allow-cidr", "127.0.0.0/8"]).await;
    assert_eq!(deploy(&s, "wrap", module("wrap")).await.status, 201);
    assert_eq!(deploy(&s, "echo", module("echo")).await.status, 201);
    // A function transform's output is what the HTTP target receives.
    s.put_rule(
        "default",
        "shaped",
        json!({"pattern": {"type": ["shape.me"]}, "targets": [
            {"id": "hook", "kind": "http", "http": {"url": rx.url},
             "transform": {"kind": "function", "function": "wrap"}}]}),
    )
    .await;
    // A function target takes the event itself.
    s.put_rule(
        "default",
        "run",
        json!({"pattern": {"type": ["run.me"]}, "targets": [
            {"id": "fn", "kind": "function", "function": "echo"}]}),
    )
    .await;
    let mut shaped = event("s1", json!({"n": 1}));
    shaped["type"] = json!("shape.me");
    assert_eq!(s.publish("default", &shaped).await.status, 200);
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json(), json!({"wrapped": shaped}));
    assert_eq!(
        stages(&s, "s1", "delivered").await,
        [
            step("received"),
            step("stored"),
            step("matched"),
            step("transformed"),
            step("attempt"),
            step("delivered")
        ]
    );
    let mut run = event("r1", json!({"n": 2}));
    run["type"] = json!("run.me");
    assert_eq!(s.publish("default", &run).await.status, 200);
    // The function target's output is on the delivered step.
    let steps = s.timeline_until("r1", "delivered").await;
    let trace = steps.iter().find(|st| st["stage"] == "delivered").unwrap();
    let echoed: Value = serde_json::from_str(trace["output"].as_str().unwrap()).unwrap();
    assert_eq!(echoed, run);
    assert_eq!(
        stages(&s, "r1", "delivered").await,
        [
            step("received"),
            step("stored"),
            step("matched"),
            step("attempt"),
            step("delivered")
        ]
    );
}

#[tokio::test]
async fn failing_functions_are_retried_and_dead_lettered_with_the_reason() {
    let s = Server::start(Backend::Sqlite).await;
    assert_eq!(deploy(&s, "reject", module("reject")).await.status, 201);
    assert_eq!(
        deploy(&s, "slow?timeout_ms=20&fuel=1000000000000", module("spin"))
            .await
            .status,
        201
    );
    assert_eq!(deploy(&s, "echo", module("echo")).await.status, 201);
    let retry = json!({"initial_backoff_ms": 10, "max_backoff_ms": 20, "max_attempts": 2});
    s.put_rule(
        "default",
        "r",
        json!({"pattern": {"source": ["/tests"]}, "targets": [
            {"id": "refuses", "kind": "function", "function": "reject", "retry": retry},
            {"id": "too-slow", "kind": "function", "function": "echo", "retry": retry,
             "transform": {"kind": "function", "function": "slow"}}]}),
    )
    .await;
    assert_eq!(
        s.publish("default", &event("f1", json!({}))).await.status,
        200
    );
    let dead = eventually(Duration::from_secs(10), || async {
        let page = s
            .call(Method::GET, "/v1/buses/default/dead-letters", None, 200)
            .await;
        let mut dls: Vec<(String, u64, String)> = page["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["target"].as_str().unwrap().to_owned(),
                    d["attempts"].as_u64().unwrap(),
                    d["last_error"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        dls.sort();
        (dls.len() == 2).then_some(dls)
    })
    .await;
    let exit = "function \"reject\" failed: exit: exited with code 3; stderr: customer id missing";
    let timeout = "transform: function \"slow\" failed: timeout: still running after 20 ms";
    assert_eq!(dead[0].0, "refuses");
    assert_eq!(dead[0].1, 2);
    assert_eq!(dead[0].2, format!("gave up after 2 attempts: {exit}"));
    assert_eq!(dead[1].0, "too-slow");
    assert_eq!(dead[1].1, 2);
    assert_eq!(dead[1].2, format!("gave up after 2 attempts: {timeout}"));
    // The trace says why each attempt failed.
    let steps = stages(&s, "f1", "dead_lettered").await;
    let errors: Vec<&str> = steps
        .iter()
        .filter(|(stage, _)| stage == "attempt")
        .filter_map(|(_, e)| e.as_deref())
        .collect();
    assert_eq!(errors.len(), 4, "{steps:?}");
    assert_eq!(
        errors.iter().filter(|e| **e == exit).count(),
        2,
        "{steps:?}"
    );
    assert_eq!(
        errors.iter().filter(|e| **e == timeout).count(),
        2,
        "{steps:?}"
    );
}
