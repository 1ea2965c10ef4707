//! The `http` target against an in-process axum receiver.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::json;
use switchyard_targets::http::{HttpConfig, HttpTarget, client};
use switchyard_targets::{AddressPolicy, Target};
use tokio::sync::mpsc;

use crate::contract::{self, Carries, READ_DEADLINE, Received};

const TIMEOUT_MS: u64 = 2000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Structured mode; `signed` adds a signing secret, the only way an HTTP delivery carries
/// its delivery id (the Standard Webhooks `webhook-id` header).
struct Http {
    signed: bool,
}

fn target(url: &str, signed: bool, policy: AddressPolicy) -> Arc<dyn Target> {
    let mut config = json!({"url": url, "timeout_ms": TIMEOUT_MS, "content_mode": "structured"});
    if signed {
        config["signing_secret"] = json!(SECRET);
    }
    Arc::new(HttpTarget::new(
        HttpConfig::parse(&config).unwrap(),
        client(policy.clone()).unwrap(),
        policy,
    ))
}

struct Receiver {
    url: String,
    signed: bool,
    seen: mpsc::UnboundedReceiver<(HeaderMap, Vec<u8>)>,
    server: tokio::task::JoinHandle<()>,
}

impl contract::Harness for Http {
    type Destination = Receiver;

    fn carries(&self) -> Carries {
        Carries {
            delivery_id: self.signed,
            event_content_type: Some("application/cloudevents+json"),
        }
    }

    async fn destination(&self) -> Receiver {
        let (tx, seen) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            post(
                move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    let _ = tx.send((headers, body.to_vec()));
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hook"),
            signed: self.signed,
            seen,
            server,
        }
    }

    fn unreachable(&self, port: u16) -> (Arc<dyn Target>, Duration) {
        let url = format!("http://127.0.0.1:{port}/hook");
        (
            target(&url, self.signed, contract::loopback()),
            Duration::from_millis(TIMEOUT_MS),
        )
    }
}

impl contract::Destination for Receiver {
    fn target(&self, policy: AddressPolicy) -> Arc<dyn Target> {
        target(&self.url, self.signed, policy)
    }

    async fn next(&mut self, n: usize) -> Vec<Received> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let (headers, body) = tokio::time::timeout(READ_DEADLINE, self.seen.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: {} of {n} requests arrived", self.url, got.len()))
                .expect("the receiver runs");
            let header = |name: &str| {
                headers
                    .get(name)
                    .map(|v| v.to_str().expect("a text header").to_owned())
            };
            got.push(Received {
                delivery_id: header("webhook-id"),
                content_type: header("content-type"),
                body,
            });
        }
        got
    }

    async fn finish(self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn meets_the_contract() {
    contract::run(&Http { signed: false }).await;
}

#[tokio::test]
async fn meets_the_contract_signed() {
    contract::run(&Http { signed: true }).await;
}
