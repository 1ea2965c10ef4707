//! Hostile input through the binary: templates that would overflow the stack, stored rules
//! that break today's limits, panics inside a delivery attempt, endless error bodies,
//! slow and excess connections, errors made below the router, secrets and file modes.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::receiver::{Answer, Receiver};
use crate::support::{Backend, Server, assert_error, event};

const LOOPBACK: &[&str] = &["--target-allow-cidr", "127.0.0.0/8"];

fn recursive_partial() -> &'static str {
    r#"{{#*inline "p"}}x{{> p}}{{/inline}}{{> p}}"#
}

fn nested_ifs(n: usize) -> String {
    format!("{}x{}", "{{#if 1}}".repeat(n), "{{/if}}".repeat(n))
}

/// Each of these aborted the whole process (stack overflow) from a reader key's request.
#[tokio::test]
async fn templates_that_would_overflow_the_stack_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let refusals = [
        (
            recursive_partial().to_owned(),
            "transform: template: uses a partial or decorator ({{> …}}, {{#> …}}, {{#*inline …}}), which transform templates do not support",
        ),
        (
            r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#
                .to_owned(),
            "transform: template: uses a partial or decorator ({{> …}}, {{#> …}}, {{#*inline …}}), which transform templates do not support",
        ),
        (
            nested_ifs(1500),
            "transform: template: is longer than 16384 bytes",
        ),
        (
            nested_ifs(1000),
            "transform: template: nests blocks, subexpressions or literals deeper than 32",
        ),
    ];
    for (template, message) in refusals {
        let transform = json!({"kind": "template", "template": template});
        let reply = s
            .send(
                s.request(Method::POST, "/v1/transforms/test")
                    .json(&json!({"transform": transform, "event": {"a": 1}})),
            )
            .await;
        let body = assert_error(&reply, 422, "invalid_transform");
        assert_eq!(body["error"]["message"], message);
        let rule = json!({"pattern": {"type": ["t"]}, "targets": [
            {"id": "t1", "kind": "http", "http": {"url": "https://example.com/hook"}, "transform": transform}
        ]});
        let reply = s
            .send(
                s.request(Method::PUT, "/v1/buses/default/rules/r")
                    .json(&rule),
            )
            .await;
        let body = assert_error(&reply, 422, "invalid_target");
        assert_eq!(body["error"]["message"], format!("targets[0]: {message}"));
    }
    let path = json!({"kind": "jsonpath", "path": format!("$.a{}", "[?(@.b".repeat(20))});
    let reply = s
        .send(
            s.request(Method::POST, "/v1/transforms/test")
                .json(&json!({"transform": path, "event": {"a": 1}})),
        )
        .await;
    let body = assert_error(&reply, 422, "invalid_transform");
    assert_eq!(
        body["error"]["message"],
        "transform: path: JSONPath has a filter inside a filter, which is not supported"
    );
    // A pattern of 10,000 values (126 KiB) held a core for a quarter of a second.
    let values: Vec<String> = (0..10_000).map(|i| format!("value-{i}")).collect();
    let reply = s
        .send(s.request(Method::POST, "/v1/patterns/test").json(&json!({
            "pattern": {"type": values}, "event": {"type": "x"}
        })))
        .await;
    let body = assert_error(&reply, 422, "invalid_pattern");
    assert_eq!(
        body["error"]["message"],
        "pattern: is 128900 bytes; the limit is 65536"
    );
    s.call(Method::GET, "/v1/buses", None, 200).await;
}

/// A rule an older version stored with a template this one refuses: the server starts,
/// keeps delivering everything else, shows the rule inactive with the reason, and lets it
/// be deleted. Before, one matching event aborted the process on every restart.
#[tokio::test]
async fn a_stored_rule_that_breaks_the_limits_loads_inactive() {
    let receiver = Receiver::start(vec![]).await;
    let mut s = Server::start_with(Backend::Sqlite, LOOPBACK).await;
    let target = |template: &str| {
        json!([{"id": "t1", "kind": "http", "http": {"url": receiver.url},
                "transform": {"kind": "template", "template": template}}])
    };
    s.put_rule(
        "default",
        "bad",
        json!({"pattern": {"type": ["test.event"]}, "targets": target("ok")}),
    )
    .await;
    s.put_rule(
        "default",
        "good",
        json!({"pattern": {"type": ["test.event"]}, "targets": target("{\"fine\": true}")}),
    )
    .await;
    assert_eq!(s.stop().await, Some(0));
    // What an older version could have stored.
    {
        use sqlx::Connection as _;
        let url = format!("sqlite://{}", s.data_dir().join("meta.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE rules SET targets = $1 WHERE name = 'bad'")
            .bind(target(recursive_partial()).to_string())
            .execute(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
    s.start_again().await;
    let rule = s
        .call(Method::GET, "/v1/buses/default/rules/bad", None, 200)
        .await;
    assert_eq!(rule["enabled"], false);
    assert_eq!(
        rule["inactive_reason"],
        "targets[0]: transform: template: uses a partial or decorator ({{> …}}, {{#> …}}, {{#*inline …}}), which transform templates do not support"
    );
    assert_eq!(
        s.publish("default", &event("e1", json!({}))).await.status,
        200
    );
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json(), json!({"fine": true}));
    let trace = s
        .call(Method::GET, "/v1/buses/default/events/e1", None, 200)
        .await;
    assert_eq!(trace["matched_rules"], json!(["good"]));
    let reply = s
        .send(s.request(Method::POST, "/v1/buses/default/rules/bad/enable"))
        .await;
    assert_error(&reply, 422, "invalid_rule");
    s.call(Method::DELETE, "/v1/buses/default/rules/bad", None, 204)
        .await;
    assert_eq!(receiver.received().len(), 1);
}

/// A panic inside an attempt is a failed attempt with reason `internal`: retried under
/// the target's policy, its partition key released so the next event of the key follows.
#[tokio::test]
async fn a_panicking_attempt_fails_and_is_retried() {
    let receiver = Receiver::start(vec![]).await;
    let s = Server::start_with_env(
        Backend::Sqlite,
        // The IPv4-mapped form of the allow entry used to panic every IPv4 attempt.
        &["--target-allow-cidr", "::ffff:127.0.0.1/128"],
        &[("FAILPOINTS", "delivery-attempt=1*panic(injected fault)")],
    )
    .await;
    s.put_rule(
        "default",
        "r",
        json!({"pattern": {"type": ["test.event"]}, "targets": [
            {"id": "t1", "kind": "http", "http": {"url": receiver.url}, "ordering": "partition",
             "retry": {"initial_backoff_ms": 50, "max_backoff_ms": 100}}
        ]}),
    )
    .await;
    for id in ["p1", "p2"] {
        let mut e = event(id, json!({"n": id}));
        e["partitionkey"] = json!("k");
        assert_eq!(s.publish("default", &e).await.status, 200);
    }
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let order: Vec<Value> = got.iter().map(|r| r.json()["id"].clone()).collect();
    assert_eq!(order, vec![json!("p1"), json!("p2")]);
    let steps = s.timeline_until("p1", "delivered").await;
    let attempts: Vec<(Value, Value)> = steps
        .iter()
        .filter(|st| st["stage"] == "attempt")
        .map(|st| (st["attempt"].clone(), st["error"].clone()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (json!(1), json!("internal: injected fault")),
            (json!(2), Value::Null)
        ]
    );
    assert!(steps.iter().any(|st| st["stage"] == "retry_scheduled"));
}

/// A target that answers 500 with a body that never ends: the attempt fails with the
/// start of the body and the server reads no more than its cap.
#[tokio::test]
async fn endless_error_bodies_are_cut_off() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streamer = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = conn.read(&mut buf).await.unwrap();
        conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 8192, "e".repeat(8192));
        let mut sent: u64 = 0;
        while sent < 1 << 30 {
            if conn.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 8192;
        }
        sent
    });
    let s = Server::start_with(Backend::Sqlite, LOOPBACK).await;
    s.put_rule(
        "default",
        "r",
        json!({"pattern": {"type": ["test.event"]}, "targets": [
            {"id": "t1", "kind": "http", "http": {"url": format!("http://{addr}/hook")},
             "retry": {"max_attempts": 1}}
        ]}),
    )
    .await;
    assert_eq!(
        s.publish("default", &event("e1", json!({}))).await.status,
        200
    );
    let steps = s.timeline_until("e1", "dead_lettered").await;
    let attempt = steps.iter().find(|st| st["stage"] == "attempt").unwrap();
    assert_eq!(attempt["status"], 500);
    assert_eq!(attempt["error"], format!("HTTP 500: {}", "e".repeat(1024)));
    let sent = streamer.await.unwrap();
    assert!(
        sent < 64 << 20,
        "the target pushed {sent} bytes before the server hung up"
    );
}

/// `Retry-After` beyond the delivery's maximum age gives up with the reason instead of
/// overflowing the clock (which panicked the worker).
#[tokio::test]
async fn a_huge_retry_after_dead_letters() {
    let receiver = Receiver::start(vec![Answer {
        status: 503,
        retry_after: Some(u64::MAX),
        delay: Duration::ZERO,
    }])
    .await;
    let s = Server::start_with(Backend::Sqlite, LOOPBACK).await;
    s.put_rule(
        "default",
        "r",
        json!({"pattern": {"type": ["test.event"]}, "targets": [
            {"id": "t1", "kind": "http", "http": {"url": receiver.url}, "retry": {"max_age_seconds": 2592000}}
        ]}),
    )
    .await;
    assert_eq!(
        s.publish("default", &event("e1", json!({}))).await.status,
        200
    );
    let steps = s.timeline_until("e1", "dead_lettered").await;
    let dead = steps
        .iter()
        .find(|st| st["stage"] == "dead_lettered")
        .unwrap();
    assert_eq!(
        dead["error"],
        "gave up: the event would be older than 2592000 s before the next attempt; last error: HTTP 503: scripted"
    );
    let reply = s
        .send(s.request(Method::PUT, "/v1/buses/default/rules/r2").json(&json!({
            "pattern": {"type": ["x"]},
            "targets": [{"id": "t", "kind": "http", "http": {"url": receiver.url}, "retry": {"max_age_seconds": u64::MAX}}]
        })))
        .await;
    let body = assert_error(&reply, 422, "invalid_target");
    assert_eq!(
        body["error"]["message"],
        "targets[0]: retry.max_age_seconds must be 1 to 2592000"
    );
}

/// Reads what the server sends until it closes the connection (or 5 s pass).
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open: {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

fn addr(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// The JSON body of a raw HTTP response.
fn json_body(raw: &str) -> Value {
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--header-timeout-seconds",
            "1",
            "--body-timeout-seconds",
            "1",
        ],
    )
    .await;
    // Headers that never finish: closed after the header timeout.
    let mut half = TcpStream::connect(addr(&s)).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut half).await;
    // An idle keep-alive connection: one answer, then closed after the same timeout.
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut idle).await;
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    // A body that trickles: 408 once the body timeout has passed.
    let mut slow = TcpStream::connect(addr(&s)).await.unwrap();
    slow.write_all(
        format!(
            "POST /v1/buses/default/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/cloudevents+json\r\ncontent-length: 100\r\n\r\n{{",
            s.key
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let raw = read_until_closed(&mut slow).await;
    assert!(raw.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{raw}");
    assert_eq!(
        json_body(&raw)["error"],
        json!({"code": "request_timeout", "message": "the request body took longer than 1 s"})
    );
}

#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let s = Server::start_with(Backend::Sqlite, &["--max-connections", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        // One full exchange, so each connection is known to hold its slot.
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
        held.push(c);
    }
    let mut extra = TcpStream::connect(addr(&s)).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut extra).await;
    assert!(
        raw.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{raw}"
    );
    assert!(
        raw.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"),
        "{raw}"
    );
    assert_eq!(json_body(&raw)["error"]["code"], "unavailable");
    drop(held);
    // The slots come back when the connections go.
    crate::receiver::eventually(Duration::from_secs(5), || async {
        let r = s
            .client
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

/// Errors the HTTP parser and the router make, before any handler, are JSON too; a body
/// declared over the limit is refused before a byte of it is read.
#[tokio::test]
async fn errors_below_the_router_are_json() {
    let s = Server::start(Backend::Sqlite).await;
    let raw_request = |req: String| {
        let a = addr(&s);
        async move {
            let mut c = TcpStream::connect(a).await.unwrap();
            c.write_all(req.as_bytes()).await.unwrap();
            read_until_closed(&mut c).await
        }
    };
    let big_header = raw_request(format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100_000)
    ))
    .await;
    assert!(big_header.starts_with("HTTP/1.1 431 "), "{big_header}");
    assert_eq!(json_body(&big_header)["error"]["code"], "headers_too_large");
    let long_uri = raw_request(format!(
        "GET /{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(66_000)
    ))
    .await;
    assert!(long_uri.starts_with("HTTP/1.1 414 "), "{long_uri}");
    assert_eq!(json_body(&long_uri)["error"]["code"], "uri_too_long");
    let control = raw_request(
        "POST /v1/buses/default/events HTTP/1.1\r\nhost: x\r\ncontent-type: appl\x01ication/json\r\ncontent-length: 0\r\n\r\n"
            .to_owned(),
    )
    .await;
    assert!(control.starts_with("HTTP/1.1 400 "), "{control}");
    assert_eq!(json_body(&control)["error"]["code"], "bad_request");
    let reply = s.send(s.request(Method::GET, "/v1/buses/%ff/rules")).await;
    assert_eq!(reply.status.as_u16(), 400);
    assert_eq!(reply.json()["error"]["code"], "bad_request");
    // The key-less webhook route answers 413 from the declared length alone.
    s.call(
        Method::PUT,
        "/v1/webhooks/hook",
        Some(json!({"bus": "default", "source": "/hooks"})),
        201,
    )
    .await;
    let early = raw_request(
        "POST /v1/webhooks/hook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n"
            .to_owned(),
    );
    let early = tokio::time::timeout(Duration::from_secs(5), early)
        .await
        .expect("413 before the body");
    assert!(early.starts_with("HTTP/1.1 413 "), "{early}");
    // The unread body may still be coming: the connection is not reused.
    assert!(
        early
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{early}"
    );
    assert_eq!(json_body(&early)["error"]["code"], "too_large");
}

/// Reader keys never see target secrets; the admin does (the console edits rules).
#[tokio::test]
async fn readers_see_secrets_masked() {
    let s = Server::start(Backend::Sqlite).await;
    let rule = json!({"pattern": {"type": ["t"]}, "targets": [
        {"id": "h", "kind": "http", "http": {
            "url": "https://user:pa55w0rd-very-secret@crm.example/hook",
            "headers": {"Authorization": "Bearer 0123456789abcdef"},
            "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
        {"id": "q", "kind": "amqp", "amqp": {"url": "amqp://guest:guest-password@127.0.0.1:5672/%2f", "exchange": "x", "routing_key": "k"}},
        {"id": "r", "kind": "redis", "redis": {"url": "redis://:hunter2hunter2@127.0.0.1:6379", "stream": "s"}}
    ]});
    s.put_rule("default", "secret", rule.clone()).await;
    let reader = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "dash", "role": "reader"})),
            201,
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/v1/buses/default/rules/secret", "/v1/buses/default/rules"] {
        let reply = s
            .send(
                s.client
                    .get(format!("{}{path}", s.base))
                    .bearer_auth(&reader),
            )
            .await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        let seen = if path.ends_with("rules") {
            body["rules"][0].clone()
        } else {
            body
        };
        assert_eq!(
            seen["targets"],
            json!([
                {"id": "h", "kind": "http", "http": {
                    "url": "https://user:…@crm.example/hook",
                    "headers": {"Authorization": "…cdef"},
                    "signing_secret": "whsec_…LaSw"}},
                {"id": "q", "kind": "amqp", "amqp": {"url": "amqp://guest:…@127.0.0.1:5672/%2f", "exchange": "x", "routing_key": "k"}},
                {"id": "r", "kind": "redis", "redis": {"url": "redis://:…@127.0.0.1:6379", "stream": "s"}}
            ])
        );
        let text = reply.text();
        for secret in [
            "pa55w0rd",
            "0123456789ab",
            "MfKQ9r8G",
            "guest-password",
            "hunter2",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    let admin = s
        .call(Method::GET, "/v1/buses/default/rules/secret", None, 200)
        .await;
    assert_eq!(admin["targets"], rule["targets"]);
    // The scheme is case-insensitive.
    let lower = s
        .send(
            s.client
                .get(format!("{}/v1/buses", s.base))
                .header("authorization", format!("bearer {reader}")),
        )
        .await;
    assert_eq!(lower.status, 200);
}

/// Everything in the data dir is for the server's user only.
#[tokio::test]
async fn the_data_dir_is_private() {
    let mut s = Server::start(Backend::Sqlite).await;
    assert_eq!(
        s.publish("default", &event("e1", json!({"a": 1})))
            .await
            .status,
        200
    );
    assert_eq!(s.stop().await, Some(0));
    let mut checked = 0;
    let mut dirs = vec![s.data_dir()];
    while let Some(dir) = dirs.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", entry.path().display());
                checked += 1;
            }
        }
    }
    // meta.db, admin.key, log segments, index files at least.
    assert!(checked >= 4, "only {checked} files");
}

/// Schema discovery tracks at most `--max-schema-subjects` (source, type) pairs: events of
/// further pairs are stored, not inferred, and counted.
#[tokio::test]
async fn schema_subjects_are_capped_and_refusals_counted() {
    let s = Server::start_with(Backend::Sqlite, &["--max-schema-subjects", "3"]).await;
    let events: Vec<Value> = (0..5)
        .map(|i| {
            let mut e = event(&format!("s{i}"), json!({"n": i}));
            e["type"] = json!(format!("type.{i}"));
            e
        })
        .collect();
    let reply = s.publish_batch("default", &events).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["accepted"], 5);
    let refused = crate::receiver::eventually(Duration::from_secs(10), || async {
        let metrics = s.metrics().await;
        metrics
            .lines()
            .find(|l| l.starts_with("switchyard_schema_subjects_refused_total "))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
            .filter(|n| n == "2")
    })
    .await;
    assert_eq!(refused, "2");
    let list = s.call(Method::GET, "/v1/schemas", None, 200).await;
    assert_eq!(list["schemas"].as_array().unwrap().len(), 3);
}

/// Finished replays are forgotten past the newest 100 of a bus.
#[tokio::test]
async fn finished_replays_are_pruned() {
    let s = Server::start(Backend::Sqlite).await;
    let window = json!({"from": "2000-01-01T00:00:00Z", "to": "2000-01-01T00:00:01Z"});
    for _ in 0..105 {
        let started = s
            .call(
                Method::POST,
                "/v1/buses/default/replays",
                Some(window.clone()),
                202,
            )
            .await;
        let id = started["id"].as_str().unwrap().to_owned();
        // Each finishes (an empty window) before the next starts, so only finished
        // ones are ever pruned.
        crate::receiver::eventually(Duration::from_secs(10), || async {
            let p = s
                .call(
                    Method::GET,
                    &format!("/v1/buses/default/replays/{id}"),
                    None,
                    200,
                )
                .await;
            (p["status"] == "done").then_some(())
        })
        .await;
    }
    let list = s
        .call(Method::GET, "/v1/buses/default/replays", None, 200)
        .await;
    assert_eq!(list["replays"].as_array().unwrap().len(), 100);
}

/// `Retry-After` given as an HTTP date is honoured (it was ignored: the retry came at the
/// policy's backoff).
#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    use axum::http::{HeaderMap, StatusCode};
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                let mut h = HeaderMap::new();
                if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    let at = std::time::SystemTime::now() + Duration::from_secs(3);
                    h.insert("retry-after", httpdate::fmt_http_date(at).parse().unwrap());
                    (StatusCode::SERVICE_UNAVAILABLE, h)
                } else {
                    (StatusCode::OK, h)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let s = Server::start_with(Backend::Sqlite, LOOPBACK).await;
    s.put_rule(
        "default",
        "r",
        json!({"pattern": {"type": ["test.event"]}, "targets": [
            {"id": "t1", "kind": "http", "http": {"url": url},
             "retry": {"initial_backoff_ms": 10, "max_backoff_ms": 20}}
        ]}),
    )
    .await;
    assert_eq!(
        s.publish("default", &event("e1", json!({}))).await.status,
        200
    );
    let steps = s.timeline_until("e1", "delivered").await;
    let retry = steps
        .iter()
        .find(|st| st["stage"] == "retry_scheduled")
        .unwrap();
    // The date has one-second resolution and was taken a moment before the answer.
    let wait = retry["retry_in_ms"].as_u64().unwrap();
    assert!((1_000..=3_000).contains(&wait), "retry in {wait} ms");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Redriving every dead letter answers at once (202) and hands them back page by page in
/// the background; letters of a deleted rule stay, counted.
#[tokio::test]
async fn redrive_all_runs_in_the_background() {
    use crate::receiver::status;
    let rx = Receiver::start(vec![]).await;
    rx.set_fallback(status(400));
    let s = Server::start_with(Backend::Sqlite, LOOPBACK).await;
    let rule = |ty: &str| {
        json!({"pattern": {"type": [ty]}, "targets": [
            {"id": "hook", "kind": "http", "http": {"url": rx.url}}
        ]})
    };
    s.put_rule("default", "r", rule("test.event")).await;
    s.put_rule("default", "gone", rule("other")).await;
    let events: Vec<Value> = (0..300)
        .map(|i| event(&format!("d{i}"), json!({"n": i})))
        .collect();
    assert_eq!(s.publish_batch("default", &events).await.status, 200);
    let mut other = event("o1", json!({}));
    other["type"] = json!("other");
    assert_eq!(s.publish("default", &other).await.status, 200);
    let count = || async {
        let mut n = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => "/v1/buses/default/dead-letters?limit=1000".to_owned(),
                Some(c) => format!("/v1/buses/default/dead-letters?limit=1000&cursor={c}"),
            };
            let page = s.call(Method::GET, &path, None, 200).await;
            n += page["dead_letters"].as_array().unwrap().len();
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return n,
            }
        }
    };
    crate::receiver::eventually(Duration::from_secs(20), || async {
        (count().await == 301).then_some(())
    })
    .await;
    s.call(Method::DELETE, "/v1/buses/default/rules/gone", None, 204)
        .await;
    rx.set_fallback(status(200));
    let answer = s
        .call(
            Method::POST,
            "/v1/buses/default/dead-letters/redrive",
            Some(json!({"all": true})),
            202,
        )
        .await;
    assert_eq!(
        answer,
        json!({"redriven": 300, "not_found": [], "no_target": [], "no_target_count": 1})
    );
    // Every one leaves the list (a page at a time, each page moved into the delivery
    // ledger in one transaction) and is delivered; the orphan stays.
    crate::receiver::eventually(Duration::from_secs(30), || async {
        (count().await == 1).then_some(())
    })
    .await;
    let delivered = || {
        rx.received()
            .iter()
            .filter(|r| r.json()["type"] == "test.event")
            .count()
    };
    crate::receiver::eventually(Duration::from_secs(30), || async {
        (delivered() >= 600).then_some(())
    })
    .await;
    assert_eq!(delivered(), 600);
    assert_eq!(count().await, 1);
}

/// An IPv6 address that embeds an internal IPv4 address is internal too: IPv4-compatible
/// (`::127.0.0.1`, which some stacks still route to 127.0.0.1), IPv4-mapped, NAT64.
#[tokio::test]
async fn embedded_internal_addresses_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let hosts = ["[::127.0.0.1]", "[::ffff:127.0.0.1]", "[64:ff9b::a00:1]"];
    let targets: Vec<Value> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            json!({"id": format!("t{i}"), "kind": "http", "http": {"url": format!("http://{host}:9/hook")}})
        })
        .collect();
    s.put_rule(
        "default",
        "r",
        json!({"pattern": {"type": ["test.event"]}, "targets": targets}),
    )
    .await;
    assert_eq!(
        s.publish("default", &event("e1", json!({}))).await.status,
        200
    );
    let steps = crate::receiver::eventually(Duration::from_secs(10), || async {
        let t = s
            .call(Method::GET, "/v1/buses/default/events/e1/trace", None, 200)
            .await;
        let steps = t["timeline"].as_array().cloned().unwrap_or_default();
        let dead = steps
            .iter()
            .filter(|st| st["stage"] == "dead_lettered")
            .count();
        (dead == hosts.len()).then_some(steps)
    })
    .await;
    let mut errors: Vec<String> = steps
        .iter()
        .filter(|st| st["stage"] == "dead_lettered")
        .map(|st| st["error"].as_str().unwrap().to_owned())
        .collect();
    errors.sort();
    // Rust writes the IPv4-compatible form in hex.
    let mut expected: Vec<String> = ["::7f00:1", "::ffff:127.0.0.1", "64:ff9b::a00:1"]
        .iter()
        .map(|ip| format!("not retryable: refused to connect to {ip}: loopback, private and link-local addresses need --target-allow-cidr"))
        .collect();
    expected.sort();
    assert_eq!(errors, expected);
}
