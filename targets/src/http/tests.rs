use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use serde_json::json;
use switchyard_core::signature::{Signature, standard_webhooks_key};

use super::*;

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver answering `status` (with `Retry-After: 3` on 429), recording what it got.
async fn receiver(status: u16) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            any(
                |State((seen, status)): State<(Seen, u16)>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    seen.lock().unwrap().push((headers, body.to_vec()));
                    let mut h = HeaderMap::new();
                    if status == 429 {
                        h.insert("retry-after", "3".parse().unwrap());
                    }
                    (StatusCode::from_u16(status).unwrap(), h, "nope")
                },
            ),
        )
        .with_state((seen.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

fn loopback() -> AddressPolicy {
    AddressPolicy {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
    }
}

fn target(config: Value, policy: AddressPolicy) -> HttpTarget {
    HttpTarget::new(
        HttpConfig::parse(&config).unwrap(),
        client(policy.clone()).unwrap(),
        policy,
    )
}

const EVENT: &str = r#"{"specversion":"1.0","id":"e1","source":"/s","type":"t","subject":"café","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","datacontenttype":"application/json","data":{"n": 1}}"#;

fn delivery<'a>(event: &'a Value, payload: Option<&'a Value>) -> Delivery<'a> {
    Delivery {
        event_json: EVENT.as_bytes(),
        event,
        payload,
        delivery_id: "bus:7:r:t",
        attempt: 1,
        traceparent: event.get("traceparent").and_then(Value::as_str),
    }
}

#[tokio::test]
async fn structured_mode_sends_the_event_as_published() {
    let (url, seen) = receiver(200).await;
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let t = target(
        json!({"url": url, "headers": {"x-team": "crm"}}),
        loopback(),
    );
    assert_eq!(
        t.deliver(delivery(&event, None)).await,
        Ok(Delivered {
            status: Some(200),
            output: None
        })
    );
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(body, EVENT.as_bytes());
    assert_eq!(headers["content-type"], "application/cloudevents+json");
    assert_eq!(headers["x-team"], "crm");
    assert_eq!(
        headers["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
}

#[tokio::test]
async fn binary_mode_and_transformed_payloads() {
    let (url, seen) = receiver(204).await;
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let t = target(
        json!({"url": url, "content_mode": "binary", "method": "put"}),
        loopback(),
    );
    t.deliver(delivery(&event, None)).await.unwrap();
    let text = json!("order by ada");
    t.deliver(delivery(&event, Some(&text))).await.unwrap();
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(headers["ce-id"], "e1");
    assert_eq!(headers["ce-subject"], "caf%C3%A9");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(body).unwrap(),
        json!({"n": 1})
    );
    let (headers, body) = &seen[1];
    assert_eq!(body, b"order by ada");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert!(headers.get("ce-id").is_none());
}

#[tokio::test]
async fn failures_are_classified() {
    let event: Value = serde_json::from_str(EVENT).unwrap();
    for (status, retryable, after) in [
        (500, true, None),
        (503, true, None),
        (408, true, None),
        (429, true, Some(3)),
        (400, false, None),
        (404, false, None),
    ] {
        let (url, _) = receiver(status).await;
        let err = target(json!({"url": url}), loopback())
            .deliver(delivery(&event, None))
            .await
            .unwrap_err();
        assert_eq!(err.status, Some(status));
        assert_eq!(err.is_retryable(), retryable, "{status}");
        assert_eq!(
            err.retry_after(),
            after.map(Duration::from_secs),
            "{status}"
        );
        assert_eq!(err.message, format!("HTTP {status}: nope"));
    }
}

#[tokio::test]
async fn internal_addresses_are_refused_without_an_allowance() {
    let (url, seen) = receiver(200).await;
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let err = target(json!({"url": url}), AddressPolicy::default())
        .deliver(delivery(&event, None))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.message.contains("refused to connect to 127.0.0.1"),
        "{}",
        err.message
    );
    let by_name = url.replace("127.0.0.1", "localhost");
    let err = target(json!({"url": by_name}), AddressPolicy::default())
        .deliver(delivery(&event, None))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        err.message.contains("refused to connect"),
        "{}",
        err.message
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn connection_refused_and_timeouts_are_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let err = target(
        json!({"url": format!("http://127.0.0.1:{port}/")}),
        loopback(),
    )
    .deliver(delivery(&event, None))
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    assert!(err.message.starts_with("connect error"), "{}", err.message);
    // A listener that never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let err = target(json!({"url": url, "timeout_ms": 50}), loopback())
        .deliver(delivery(&event, None))
        .await
        .unwrap_err();
    assert_eq!(err, DeliveryError::retryable("timed out after 50 ms"));
}

#[tokio::test]
async fn signed_requests_carry_standard_webhooks_headers() {
    let (url, seen) = receiver(200).await;
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    target(json!({"url": url, "signing_secret": secret}), loopback())
        .deliver(delivery(&event, None))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(headers["webhook-id"], "bus:7:r:t");
    let ts: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The receiver's check, as an inbound Standard Webhooks endpoint makes it.
    let key = standard_webhooks_key(secret).unwrap();
    let presented = headers["webhook-signature"].to_str().unwrap();
    let presented = base64::engine::general_purpose::STANDARD
        .decode(presented.strip_prefix("v1,").unwrap())
        .unwrap();
    let expected = Signature::standard_webhooks(&key, "bus:7:r:t", &ts.to_string(), body);
    assert!(expected.unwrap().matches(&presented));
}

#[test]
fn bad_configs_name_the_field() {
    let err = |v: Value| HttpConfig::parse(&v).unwrap_err();
    assert!(err(json!({})).contains("url"));
    assert!(err(json!({"url": "ftp://x"})).contains("http:// or https://"));
    assert!(err(json!({"url": "http://x", "method": "GET POST"})).contains("http.method"));
    assert!(err(json!({"url": "http://x", "timeout_ms": 0})).contains("timeout_ms"));
    assert!(
        err(json!({"url": "http://x", "signing_secret": "whsec_!!"})).contains("signing_secret")
    );
    assert!(
        err(json!({"url": "http://x", "content_mode": "carrier-pigeon"}))
            .contains("expected `structured` or `binary`")
    );
    assert!(err(json!({"url": "http://x", "headers": {"bad name": "v"}})).contains("header name"));
}

/// A target answering 500 with a body that never ends: the error is read up to the cap and
/// the connection dropped, so memory stays flat however long the target keeps talking.
#[tokio::test]
async fn endless_error_bodies_are_read_up_to_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = conn.read(&mut buf).await.unwrap();
        conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 8192, "e".repeat(8192));
        let mut sent: u64 = 0;
        // Bounded: 1 GiB at most, far beyond anything a capped reader takes.
        while sent < 1 << 30 {
            if conn.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 8192;
        }
        sent
    });
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let t = target(json!({"url": format!("http://{addr}/hook")}), loopback());
    let err = t.deliver(delivery(&event, None)).await.unwrap_err();
    assert_eq!(err.status, Some(500));
    assert!(err.is_retryable());
    assert_eq!(
        err.message,
        format!("HTTP 500: {}", "e".repeat(ERROR_SNIPPET_CHARS))
    );
    drop(t);
    let sent = server.await.unwrap();
    // What the server pushed before the reader hung up: the cap plus socket buffers.
    assert!(
        sent < 64 << 20,
        "the server sent {sent} bytes before the reader hung up"
    );
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 GMT
    assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(
        parse_retry_after("18446744073709551615", now),
        Some(Duration::from_secs(u64::MAX))
    );
}
