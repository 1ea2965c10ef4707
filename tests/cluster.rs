//! Several nodes sharing the buses (JetStream logs, one PostgreSQL): each subscription is
//! delivered by one node, the work is spread over the nodes, and when a node is SIGKILLed
//! the others take its subscriptions over once its leases expire, losing nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::durability::stored_ids;
use crate::jetstream::{NATS, delete_streams, unique_prefix};
use crate::receiver::{Receiver, eventually};
use crate::support::{Backend, Server, event};

const RULES: usize = 4;

fn node_args<'a>(prefix: &'a str, node: &'a str, db: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "--log",
        NATS,
        "--log-prefix",
        prefix,
        "--node-id",
        node,
        "--lease-seconds",
        "3",
        "--target-allow-cidr",
        "127.0.0.0/8",
    ];
    if let Some(db) = db {
        args.extend(["--database-url", db]);
    }
    args
}

/// How many subscriptions of the default bus the node delivers (its backlog lines).
async fn delivering(s: &Server) -> usize {
    s.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("switchyard_backlog_events{bus=\"default\""))
        .count()
}

/// Deliveries the node made (summed over its rules and targets).
async fn delivered_by(s: &Server) -> u64 {
    s.metrics()
        .await
        .lines()
        .filter(|l| {
            l.starts_with("switchyard_deliveries_total{bus=\"default\"")
                && l.contains("outcome=\"delivered\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Another node joining `a`'s cluster: its database, its admin key.
async fn join(a: &Server, prefix: &str, node: &str) -> Server {
    let db = a.db_url().unwrap();
    let admin_key = std::fs::read_to_string(a.data_dir().join("admin.key")).unwrap();
    Server::start_seeded(
        Backend::Sqlite,
        &node_args(prefix, node, Some(&db)),
        &[],
        &[("admin.key", admin_key)],
    )
    .await
}

/// The default bus's streams (log and journal) a test made.
async fn remove_streams(prefix: &str) {
    delete_streams(NATS, prefix, &["default"]).await;
    delete_streams(NATS, &format!("{prefix}-journal"), &["default"]).await;
}

fn ids_of(rx: &Receiver) -> BTreeSet<String> {
    rx.received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn publish(s: &Server, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    let events: Vec<Value> = ids.iter().map(|id| event(id, json!(1))).collect();
    let r = s.publish_batch("default", &events).await;
    assert_eq!(r.status, 200, "{}", r.text());
    ids
}

#[tokio::test]
async fn nodes_share_delivery_and_take_over_from_a_killed_one() {
    let prefix = unique_prefix();
    let mut receivers = Vec::new();
    for _ in 0..RULES {
        receivers.push(Receiver::start(vec![]).await);
    }
    let mut a = Server::start_with(Backend::Postgres, &node_args(&prefix, "node-a", None)).await;
    for (i, rx) in receivers.iter().enumerate() {
        a.put_rule(
            "default",
            &format!("r{i}"),
            json!({"pattern": {"source": ["/tests"]},
                   "targets": [{"id": "hook", "kind": "http", "http": {"url": rx.url}}]}),
        )
        .await;
    }
    // Alone, a node delivers everything.
    eventually(Duration::from_secs(10), || async {
        (delivering(&a).await == RULES).then_some(())
    })
    .await;
    let b = join(&a, &prefix, "node-b").await;
    // Two nodes: two subscriptions each.
    eventually(Duration::from_secs(10), || async {
        (delivering(&a).await == RULES / 2 && delivering(&b).await == RULES / 2).then_some(())
    })
    .await;
    let mut want: BTreeSet<String> = BTreeSet::new();
    want.extend(publish(&a, "a", 50).await);
    want.extend(publish(&b, "b", 50).await);
    for rx in &receivers {
        eventually(Duration::from_secs(20), || async {
            (ids_of(rx) == want).then_some(())
        })
        .await;
    }
    // Each delivered its share (counted once the receiver's answer is back; a lease lost
    // under load moves a subscription, and what was in flight may then be made again).
    let (by_a, by_b) = eventually(Duration::from_secs(10), || async {
        let counts = (delivered_by(&a).await, delivered_by(&b).await);
        (counts.0 + counts.1 >= 400).then_some(counts)
    })
    .await;
    assert!(
        by_a >= 100 && by_b >= 100,
        "each node delivers its subscriptions: a {by_a}, b {by_b}"
    );
    // An event's trace shows every delivery, whichever node made it, on either node.
    for s in [&a, &b] {
        eventually(Duration::from_secs(10), || async {
            let trace = s
                .call(
                    reqwest::Method::GET,
                    "/v1/buses/default/events/b7/trace",
                    None,
                    200,
                )
                .await;
            let delivered: BTreeSet<String> = trace["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|st| st["stage"] == "delivered")
                .map(|st| st["rule"].as_str().unwrap().to_owned())
                .collect();
            (delivered.len() == RULES).then_some(())
        })
        .await;
    }
    // Node a dies: b takes its subscriptions once a's leases expire, and delivers
    // everything published meanwhile.
    a.kill().await;
    want.extend(publish(&b, "c", 50).await);
    eventually(Duration::from_secs(15), || async {
        (delivering(&b).await == RULES).then_some(())
    })
    .await;
    for rx in &receivers {
        eventually(Duration::from_secs(20), || async {
            (ids_of(rx) == want).then_some(())
        })
        .await;
    }
    drop(b);
    remove_streams(&prefix).await;
}

/// Within `within`, `check` holds (polled every 20 ms); returns how long it took.
async fn within(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_of(s: &Server, method: reqwest::Method, path: &str) -> u16 {
    s.send(s.request(method, path)).await.status.as_u16()
}

#[tokio::test]
async fn a_change_made_on_one_node_is_in_force_on_the_other_within_a_second() {
    use reqwest::Method;
    let prefix = unique_prefix();
    let rx = Receiver::start(vec![]).await;
    let a = Server::start_with(Backend::Postgres, &node_args(&prefix, "node-a", None)).await;
    let b = join(&a, &prefix, "node-b").await;
    let second = Duration::from_secs(1);
    // A rule made on a matches what is published through b.
    a.put_rule(
        "default",
        "r",
        json!({"pattern": {"source": ["/tests"]},
               "targets": [{"id": "hook", "kind": "http", "http": {"url": rx.url}}]}),
    )
    .await;
    let mut n = 0;
    within(second, "a rule made on a matches on b", async || {
        n += 1;
        let id = format!("m{n}");
        let r = b.publish("default", &event(&id, json!(n))).await;
        assert_eq!(r.status, 200);
        let record = b
            .call(
                Method::GET,
                &format!("/v1/buses/default/events/{id}"),
                None,
                200,
            )
            .await;
        record["matched_rules"] == json!(["r"])
    })
    .await;
    // Disabled on b: a shows it disabled; deleted on a: gone on b.
    b.call(Method::POST, "/v1/buses/default/rules/r/disable", None, 200)
        .await;
    within(second, "disabled on b, disabled on a", async || {
        a.call(Method::GET, "/v1/buses/default/rules/r", None, 200)
            .await["enabled"]
            == json!(false)
    })
    .await;
    a.call(Method::DELETE, "/v1/buses/default/rules/r", None, 204)
        .await;
    within(second, "deleted on a, gone on b", async || {
        status_of(&b, Method::GET, "/v1/buses/default/rules/r").await == 404
    })
    .await;
    // A bus made on a takes publishes on b; deleted on b, gone on a.
    a.call(
        Method::PUT,
        "/v1/buses/orders",
        Some(json!({"retention_hours": 24})),
        201,
    )
    .await;
    within(second, "a bus made on a, on b", async || {
        status_of(&b, Method::GET, "/v1/buses/orders").await == 200
    })
    .await;
    let r = b.publish("orders", &event("o1", json!(1))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    b.call(Method::DELETE, "/v1/buses/orders", None, 204).await;
    within(second, "deleted on b, gone on a", async || {
        status_of(&a, Method::GET, "/v1/buses/orders").await == 404
    })
    .await;
    // A key made on a works on b; revoked on b, refused on a.
    let key = a
        .call(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "reader", "role": "reader"})),
            201,
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_key = |s: &Server| {
        s.client
            .get(format!("{}/v1/buses", s.base))
            .bearer_auth(&key)
            .send()
    };
    within(second, "a key made on a, accepted on b", async || {
        with_key(&b).await.unwrap().status() == 200
    })
    .await;
    b.call(Method::DELETE, "/v1/keys/reader", None, 204).await;
    within(second, "revoked on b, refused on a", async || {
        with_key(&a).await.unwrap().status() == 401
    })
    .await;
    // A webhook made on a answers on b; deleted on b, gone on a.
    let hook = json!({"bus": "default", "source": "https://github.com/acme/shop",
        "type_from": "X-GitHub-Event", "verify": {"scheme": "github", "secret": "s3cret"}});
    a.call(Method::PUT, "/v1/webhooks/gh", Some(hook), 201)
        .await;
    within(second, "a webhook made on a, on b", async || {
        status_of(&b, Method::GET, "/v1/webhooks/gh").await == 200
    })
    .await;
    b.call(Method::DELETE, "/v1/webhooks/gh", None, 204).await;
    within(second, "a webhook deleted on b, gone on a", async || {
        status_of(&a, Method::GET, "/v1/webhooks/gh").await == 404
    })
    .await;
    // A schema declared on a is known on b.
    let schema_path = "/v1/schemas/%2Fshop/order.created";
    a.call(
        Method::PUT,
        schema_path,
        Some(json!({"schema": {"type": "object", "required": ["total"]}})),
        201,
    )
    .await;
    within(second, "a schema declared on a, on b", async || {
        status_of(&b, Method::GET, schema_path).await == 200
    })
    .await;
    // A function deployed on a runs on b; deleted on b, gone on a.
    let wat = std::fs::read(format!(
        "{}/../functions/wat/echo.wat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let module = wat::parse_bytes(&wat).unwrap().into_owned();
    let deployed = a
        .send(
            a.request(Method::PUT, "/v1/functions/echo")
                .header("content-type", "application/wasm")
                .body(module),
        )
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    within(second, "a function deployed on a, on b", async || {
        status_of(&b, Method::GET, "/v1/functions/echo").await == 200
    })
    .await;
    b.call(Method::DELETE, "/v1/functions/echo", None, 204)
        .await;
    within(second, "a function deleted on b, gone on a", async || {
        status_of(&a, Method::GET, "/v1/functions/echo").await == 404
    })
    .await;
    drop((b, a));
    remove_streams(&prefix).await;
}

/// Two nodes, two subscriptions (one each) whose targets refuse: the dead letters of both,
/// redriven through one node once the targets are fixed, are delivered — the other node's by
/// the other node, which takes the entries the first wrote for it.
#[tokio::test]
async fn a_redrive_through_one_node_reaches_the_other_nodes_subscriptions() {
    use crate::receiver::status;
    use reqwest::Method;
    let prefix = unique_prefix();
    let receivers = [Receiver::start(vec![]).await, Receiver::start(vec![]).await];
    for rx in &receivers {
        rx.set_fallback(status(400));
    }
    let a = Server::start_with(Backend::Postgres, &node_args(&prefix, "node-a", None)).await;
    for (i, rx) in receivers.iter().enumerate() {
        a.put_rule(
            "default",
            &format!("r{i}"),
            json!({"pattern": {"source": ["/tests"]},
                   "targets": [{"id": "hook", "kind": "http", "http": {"url": rx.url}}]}),
        )
        .await;
    }
    let b = join(&a, &prefix, "node-b").await;
    eventually(Duration::from_secs(10), || async {
        (delivering(&a).await == 1 && delivering(&b).await == 1).then_some(())
    })
    .await;
    publish(&a, "d", 5).await;
    // Refused (400): five dead letters per subscription.
    let letters = eventually(Duration::from_secs(15), || async {
        let page = a
            .call(Method::GET, "/v1/buses/default/dead-letters", None, 200)
            .await;
        let all = page["dead_letters"].as_array().unwrap().clone();
        (all.len() == 10).then_some(all)
    })
    .await;
    for rx in &receivers {
        rx.set_fallback(status(200));
    }
    let ids: Vec<Value> = letters.iter().map(|d| d["id"].clone()).collect();
    let out = a
        .call(
            Method::POST,
            "/v1/buses/default/dead-letters/redrive",
            Some(json!({ "ids": ids })),
            200,
        )
        .await;
    assert_eq!(out["redriven"], 10, "{out}");
    let want: BTreeSet<String> = (0..5).map(|i| format!("d{i}")).collect();
    for rx in &receivers {
        eventually(Duration::from_secs(15), || async {
            let ok: BTreeSet<String> = rx
                .received()
                .iter()
                .skip(5)
                .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            (ok == want).then_some(())
        })
        .await;
    }
    eventually(Duration::from_secs(10), || async {
        let page = b
            .call(Method::GET, "/v1/buses/default/dead-letters", None, 200)
            .await;
        page["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    drop((b, a));
    remove_streams(&prefix).await;
}

/// A replay whose node is SIGKILLed while it runs goes on on another node once its claim
/// expires: every event of the window is delivered as replayed, and the replay ends `done`.
#[tokio::test]
async fn a_replay_goes_on_on_another_node_when_its_node_dies() {
    use reqwest::Method;
    let prefix = unique_prefix();
    let rx = Receiver::start(vec![]).await;
    let mut a = Server::start_with(Backend::Postgres, &node_args(&prefix, "node-a", None)).await;
    let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let from = now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut want = BTreeSet::new();
    for chunk in 0..8 {
        want.extend(publish(&a, &format!("w{chunk}-"), 100).await);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let to = now();
    // Made after the events: only the replay delivers them, 200 a second.
    a.put_rule(
        "default",
        "r",
        json!({"pattern": {"source": ["/tests"]},
               "targets": [{"id": "hook", "kind": "http", "http": {"url": rx.url},
                            "rate_limit_per_second": 200}]}),
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (delivering(&a).await == 1).then_some(())
    })
    .await;
    let b = join(&a, &prefix, "node-b").await;
    let started = a
        .call(
            Method::POST,
            "/v1/buses/default/replays",
            Some(json!({"from": from, "to": to})),
            202,
        )
        .await;
    let id = started["id"].as_str().unwrap().to_owned();
    // 800 deliveries at 200/s: the replay still runs (its second step waits for the
    // worker) when its node dies.
    rx.wait_for(50, Duration::from_secs(10)).await;
    let path = format!("/v1/buses/default/replays/{id}");
    assert_eq!(
        a.call(Method::GET, &path, None, 200).await["status"],
        "running"
    );
    a.kill().await;
    eventually(Duration::from_secs(30), || async {
        let replayed: BTreeSet<String> = rx
            .received()
            .iter()
            .map(|r| r.json())
            .filter(|e| e["replayid"] == id.as_str())
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        (replayed == want).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), || async {
        (b.call(Method::GET, &path, None, 200).await["status"] == "done").then_some(())
    })
    .await;
    drop(b);
    remove_streams(&prefix).await;
}

/// Keeps publishing batches of ten through `s` until told to stop or refused; returns the
/// ids acknowledged.
fn keep_publishing(
    s: &Server,
    name: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let url = format!("{}/v1/buses/default/events", s.base);
    let (key, client) = (s.key.clone(), s.client.clone());
    tokio::spawn(async move {
        let mut acked = Vec::new();
        for n in 0.. {
            if stop.load(std::sync::atomic::Ordering::Acquire) {
                break;
            }
            let ids: Vec<String> = (0..10).map(|k| format!("{name}-{n}-{k}")).collect();
            let events: Vec<Value> = ids.iter().map(|id| event(id, json!(n))).collect();
            let sent = client
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/cloudevents-batch+json")
                .body(json!(events).to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 200 => acked.extend(ids),
                // Refused or cut off (its node was killed): not acknowledged, not promised.
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acked
    })
}

/// Three nodes take publishes while one of them is SIGKILLed: every acknowledged event is
/// delivered to every target and readable on the surviving nodes, and each surviving node
/// delivers.
#[tokio::test]
async fn three_nodes_lose_nothing_acknowledged_when_one_is_killed_under_load() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let prefix = unique_prefix();
    let mut receivers = Vec::new();
    for _ in 0..3 {
        receivers.push(Receiver::start(vec![]).await);
    }
    let a = Server::start_with(Backend::Postgres, &node_args(&prefix, "node-a", None)).await;
    for (i, rx) in receivers.iter().enumerate() {
        a.put_rule(
            "default",
            &format!("r{i}"),
            json!({"pattern": {"source": ["/tests"]},
                   "targets": [{"id": "hook", "kind": "http", "http": {"url": rx.url}}]}),
        )
        .await;
    }
    let mut b = join(&a, &prefix, "node-b").await;
    let c = join(&a, &prefix, "node-c").await;
    eventually(Duration::from_secs(15), || async {
        let each = (
            delivering(&a).await,
            delivering(&b).await,
            delivering(&c).await,
        );
        (each == (1, 1, 1)).then_some(())
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let publishers = [
        keep_publishing(&a, "a", stop.clone()),
        keep_publishing(&b, "b", stop.clone()),
        keep_publishing(&c, "c", stop.clone()),
    ];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut per_node = Vec::new();
    for p in publishers {
        let ids = p.await.unwrap();
        per_node.push(ids.len());
        acked.extend(ids);
    }
    assert!(
        per_node.iter().all(|n| *n > 0),
        "every node took publishes: {per_node:?}"
    );
    for rx in &receivers {
        eventually(Duration::from_secs(30), || async {
            (ids_of(rx).is_superset(&acked)).then_some(())
        })
        .await;
    }
    // Readable on both survivors; both delivered.
    for s in [&a, &c] {
        eventually(Duration::from_secs(10), || async {
            let stored: BTreeSet<String> = stored_ids(s, "default").await.into_iter().collect();
            stored.is_superset(&acked).then_some(())
        })
        .await;
        assert!(delivered_by(s).await > 0);
    }
    drop((b, c, a));
    remove_streams(&prefix).await;
}
