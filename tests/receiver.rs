//! A real HTTP receiver for delivery tests: answers from a script, records every request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// One scripted answer: status, optional Retry-After seconds, delay before answering.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub delay: Duration,
}

pub fn status(status: u16) -> Answer {
    Answer {
        status,
        retry_after: None,
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Answer>,
    /// Used once the script runs out.
    fallback: Option<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Starts a receiver answering `script` in order, then `fallback` (200 by default).
    pub async fn start(script: Vec<Answer>) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            fallback: Some(status(200)),
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/hook", any(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, inner }
    }

    pub fn set_fallback(&self, answer: Answer) {
        self.inner.lock().unwrap().fallback = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits (polling, up to `within`) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} requests, expected {n} within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let answer = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            at: Instant::now(),
            headers,
            body: body.to_vec(),
        });
        inner
            .script
            .pop_front()
            .or(inner.fallback)
            .unwrap_or(status(200))
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut h = HeaderMap::new();
    if let Some(after) = answer.retry_after {
        h.insert("retry-after", after.to_string().parse().unwrap());
    }
    (StatusCode::from_u16(answer.status).unwrap(), h, "scripted")
}

/// Polls `f` until it returns `Some`, for up to `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
