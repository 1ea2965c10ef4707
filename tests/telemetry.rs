//! Trace context and OpenTelemetry export through the binary: a `traceparent` comes in with
//! a publish and goes out with the delivery, and with `OTEL_EXPORTER_OTLP_ENDPOINT` set the
//! publish and each delivery attempt arrive at an OTLP/HTTP collector as linked spans.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use reqwest::Method;
use serde_json::json;

use crate::receiver::{Receiver, eventually};
use crate::support::{Backend, Server, event};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A minimal OTLP/HTTP collector: keeps every span it is sent.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).unwrap();
                let mut all = kept.lock().unwrap();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        all.extend(ss.spans);
                    }
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn rule(url: &str) -> serde_json::Value {
    json!({"pattern": {"source": ["/tests"]}, "targets": [{"id": "hook", "kind": "http", "http": {"url": url}}]})
}

async fn publish_traced(s: &Server, id: &str) {
    let reply = s
        .send(
            s.request(Method::POST, "/v1/buses/default/events")
                .header("content-type", "application/cloudevents+json")
                .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
                .body(event(id, json!({"n": 1})).to_string()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn the_callers_traceparent_travels_to_the_delivery() {
    let rx = Receiver::start(vec![]).await;
    let s = Server::start_with(Backend::Sqlite, &["--target-allow-cidr", "127.0.0.0/8"]).await;
    s.put_rule("default", "r", rule(&rx.url)).await;
    publish_traced(&s, "t1").await;
    let tp = format!("00-{TRACE}-{CALLER_SPAN}-01");
    // Recorded on the event as the CloudEvents distributed-tracing extension…
    let record = s
        .call(Method::GET, "/v1/buses/default/events/t1", None, 200)
        .await;
    assert_eq!(record["event"]["traceparent"], tp.as_str());
    assert_eq!(record["event"]["id"], "t1");
    // …and sent on with the delivery.
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("traceparent"), tp);
    // An event with its own traceparent keeps it; one without a header gets none.
    let mut own = event("t2", json!({}));
    own["traceparent"] = json!(format!("00-{}-{CALLER_SPAN}-00", "1".repeat(32)));
    s.publish("default", &own).await;
    s.publish("default", &event("t3", json!({}))).await;
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    let by_id = |id: &str| got.iter().find(|r| r.json()["id"] == id).unwrap();
    assert_eq!(
        by_id("t2").header("traceparent"),
        own["traceparent"].as_str().unwrap()
    );
    assert_eq!(by_id("t3").header("traceparent"), "");
    assert!(by_id("t3").json().get("traceparent").is_none());
}

#[tokio::test]
async fn spans_are_exported_over_otlp_and_linked_from_publish_to_delivery() {
    let (otlp, spans) = collector().await;
    let rx = Receiver::start(vec![]).await;
    let s = Server::start_with_env(
        Backend::Sqlite,
        &["--target-allow-cidr", "127.0.0.0/8"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "switchyard-test"),
        ],
    )
    .await;
    s.put_rule("default", "r", rule(&rx.url)).await;
    publish_traced(&s, "x1").await;
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    let sent = got[0].header("traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], TRACE, "the delivery continues the caller's trace");
    let (publish, deliver) = eventually(Duration::from_secs(10), || async {
        let all = spans.lock().unwrap().clone();
        let find = |name: &str| all.iter().find(|s| s.name == name).cloned();
        Some((find("publish default")?, find("deliver r/hook")?))
    })
    .await;
    assert_eq!(hex(&publish.trace_id), TRACE);
    assert_eq!(hex(&publish.parent_span_id), CALLER_SPAN);
    assert_eq!(hex(&deliver.trace_id), TRACE);
    assert_eq!(
        hex(&deliver.parent_span_id),
        hex(&publish.span_id),
        "the delivery is a child of the publish"
    );
    assert_eq!(
        hex(&deliver.span_id),
        parts[2],
        "the receiver sees the delivery's span"
    );
    // The stored event carries the publish span's context.
    let record = s
        .call(Method::GET, "/v1/buses/default/events/x1", None, 200)
        .await;
    assert_eq!(
        record["event"]["traceparent"],
        format!("00-{TRACE}-{}-01", hex(&publish.span_id))
    );
    let attrs: Vec<(String, String)> = deliver
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
        .collect();
    for key in [
        "switchyard.bus",
        "switchyard.rule",
        "switchyard.target",
        "switchyard.attempt",
    ] {
        assert!(attrs.iter().any(|(k, _)| k == key), "{key} in {attrs:?}");
    }
}
