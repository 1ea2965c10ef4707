//! Several nodes sharing the buses (JetStream logs, one PostgreSQL): each subscription is
//! delivered by one node, the work is spread over the nodes, and when a node is SIGKILLed
//! the others take its subscriptions over once its leases expire, losing nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

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
        "2",
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
    let db = a.db_url().unwrap();
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
    let admin_key = std::fs::read_to_string(a.data_dir().join("admin.key")).unwrap();
    let b = Server::start_seeded(
        Backend::Sqlite,
        &node_args(&prefix, "node-b", Some(&db)),
        &[],
        &[("admin.key", admin_key)],
    )
    .await;
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
    let (by_a, by_b) = (delivered_by(&a).await, delivered_by(&b).await);
    assert_eq!(by_a, 200, "node a delivered its two subscriptions' events");
    assert_eq!(by_b, 200, "node b delivered its two subscriptions' events");
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
    delete_streams(NATS, &prefix, &["default"]).await;
}
