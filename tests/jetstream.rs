//! Bus logs on NATS JetStream (`--log nats://…`), through the binary: events are stored,
//! deduplicated and delivered; a SIGKILL loses nothing acknowledged and offsets continue;
//! deleting a bus deletes its stream; and while NATS is down, publishing answers 503 and
//! `/readyz` says unready, and everything acknowledged before and after is kept.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::durability::stored_ids;
use crate::receiver::{Receiver, eventually};
use crate::support::{Backend, Server, event};

/// The machine's NATS, with JetStream.
pub(crate) const NATS: &str = "nats://127.0.0.1:4222";

/// A stream prefix no other test (or run) uses.
pub(crate) fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sy-test-{}-{nanos}", std::process::id())
}

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    let client = async_nats::connect(url)
        .await
        .unwrap_or_else(|e| panic!("NATS must run at {url} for these tests: {e}"));
    async_nats::jetstream::new(client)
}

/// Deletes the streams a test made (bus names given).
pub(crate) async fn delete_streams(url: &str, prefix: &str, buses: &[&str]) {
    let js = jetstream(url).await;
    for bus in buses {
        let _ = js.delete_stream(format!("{prefix}_{bus}")).await;
    }
}

fn rule_to(url: &str) -> Value {
    json!({"pattern": {"source": ["/tests"]},
           "targets": [{"id": "hook", "kind": "http", "http": {"url": url}}]})
}

async fn publish_all(s: &Server, bus: &str, prefix: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| event(&format!("{prefix}{i}"), json!(i)))
        .collect();
    for chunk in events.chunks(50) {
        let r = s.publish_batch(bus, chunk).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test]
async fn a_jetstream_log_stores_dedups_delivers_and_survives_sigkill() {
    let prefix = unique_prefix();
    let rx = Receiver::start(vec![]).await;
    let args = [
        "--log",
        NATS,
        "--log-prefix",
        &prefix,
        "--target-allow-cidr",
        "127.0.0.0/8",
    ];
    let mut s = Server::start_with(Backend::Sqlite, &args).await;
    s.put_rule("default", "r", rule_to(&rx.url)).await;
    publish_all(&s, "default", "j", 100).await;
    // A repeat within the dedup window is acknowledged as the duplicate it is.
    let r = s.publish("default", &event("j7", json!(7))).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["events"][0],
        json!({"id": "j7", "source": "/tests", "offset": 7, "duplicate": true})
    );
    let got = rx.wait_for(100, Duration::from_secs(20)).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each event delivered");
    // The stream is the bus's log: a SIGKILL loses nothing, offsets continue.
    s.kill().await;
    s.start_again().await;
    let mut stored = stored_ids(&s, "default").await;
    stored.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("j{i}")).collect();
    want.sort();
    assert_eq!(stored, want);
    let r = s.publish("default", &event("after", json!(0))).await;
    assert_eq!(r.json()["events"][0]["offset"], 100);
    let found = s
        .call(Method::GET, "/v1/buses/default/events/j42", None, 200)
        .await;
    assert_eq!(found["offset"], 42, "{found}");
    // A bus of its own is a stream of its own, deleted with the bus.
    s.call(
        Method::PUT,
        "/v1/buses/orders",
        Some(json!({"retention_hours": 24})),
        201,
    )
    .await;
    publish_all(&s, "orders", "o", 3).await;
    let js = jetstream(NATS).await;
    let mut orders = js
        .get_stream(format!("{prefix}_orders"))
        .await
        .expect("the bus's stream");
    assert_eq!(orders.info().await.unwrap().state.messages, 3);
    s.call(Method::DELETE, "/v1/buses/orders", None, 204).await;
    assert!(
        js.get_stream(format!("{prefix}_orders")).await.is_err(),
        "the stream is deleted with its bus"
    );
    assert!(
        js.get_stream(format!("{prefix}-journal_orders"))
            .await
            .is_err(),
        "and so is its journal's"
    );
    delete_streams(NATS, &prefix, &["default"]).await;
    delete_streams(NATS, &format!("{prefix}-journal"), &["default"]).await;
}

/// A NATS server of the test's own, on a free port, keeping JetStream in `dir`.
struct OwnNats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnNats {
    async fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = OwnNats {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        nats.launch().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server must be installed (scripts/services.sh)");
        self.child = Some(child);
        let url = self.url();
        eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move { async_nats::connect(url).await.ok().map(|_| ()) }
        })
        .await;
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

async fn ready(s: &Server) -> u16 {
    s.send(s.request(Method::GET, "/readyz"))
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn while_nats_is_down_publishing_answers_503_and_nothing_acknowledged_is_lost() {
    let mut nats = OwnNats::start().await;
    let prefix = unique_prefix();
    let rx = Receiver::start(vec![]).await;
    let url = nats.url();
    let args = [
        "--log",
        &url,
        "--log-prefix",
        &prefix,
        "--target-allow-cidr",
        "127.0.0.0/8",
    ];
    let s = Server::start_with(Backend::Sqlite, &args).await;
    s.put_rule("default", "r", rule_to(&rx.url)).await;
    publish_all(&s, "default", "before", 20).await;
    assert_eq!(ready(&s).await, 200);
    nats.kill().await;
    // Unready, and a publish is refused (not queued, not hung) while NATS is away.
    eventually(Duration::from_secs(10), || async {
        (ready(&s).await == 503).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let r = s.publish("default", &event("during", json!(0))).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "unavailable", "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the refusal took {:?}",
        started.elapsed()
    );
    nats.launch().await;
    eventually(Duration::from_secs(15), || async {
        (ready(&s).await == 200).then_some(())
    })
    .await;
    publish_all(&s, "default", "after", 20).await;
    let got = rx.wait_for(40, Duration::from_secs(20)).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    let mut want: Vec<String> = (0..20)
        .flat_map(|i| [format!("before{i}"), format!("after{i}")])
        .collect();
    want.sort();
    assert_eq!(ids, want, "everything acknowledged is delivered");
    let mut stored = stored_ids(&s, "default").await;
    stored.sort();
    assert_eq!(stored, want, "and stored, the refused one not");
}
