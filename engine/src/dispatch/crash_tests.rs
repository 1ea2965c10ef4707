//! The ledger against a model, across crashes at random instants: delivery over a shared log
//! is killed (its ledger as last committed is all the next process sees) and started again,
//! while a scripted target answers each (event, attempt) at random. At the end, every event
//! was received or is a dead letter, nothing was received twice by one process, and a
//! receipt repeated by a later process was made at most two flush intervals before the
//! crash that lost it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::json;
use switchyard_event_store::{LogOptions, LogStore, MemoryLog, NewRecord};
use switchyard_targets::{Delivered, Delivery, DeliveryError, RetryPolicy, Target};
use tokio::time::Instant;

use super::ledger::{FLUSH_INTERVAL, MemoryLedger};
use super::{BusDispatch, Journal, Ports, SubSpec, SubSpecs};
use crate::testing;

#[derive(Debug, Clone, Copy)]
enum Reply {
    Ok,
    Retry,
    Refuse,
}

/// What the receiving end saw: each event's receipts, as (process, when).
#[derive(Default)]
struct Receiver {
    receipts: Mutex<BTreeMap<String, Vec<(u32, Instant)>>>,
}

/// The target as one process sees it: once that process has crashed, nothing it sends
/// arrives.
struct ProcessTarget {
    process: u32,
    alive: Arc<AtomicU32>,
    script: Arc<Vec<Vec<Reply>>>,
    receiver: Arc<Receiver>,
}

#[async_trait]
impl Target for ProcessTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if self.alive.load(Ordering::Acquire) != self.process {
            return Err(DeliveryError::retryable("the process is gone"));
        }
        let n: usize = d.event["data"]["n"].as_u64().unwrap_or(0) as usize;
        let reply = self.script[n]
            .get(d.attempt as usize - 1)
            .copied()
            .unwrap_or(Reply::Refuse);
        match reply {
            Reply::Ok => {
                let id = d.event["id"].as_str().unwrap_or_default().to_owned();
                let mut receipts = self.receiver.receipts.lock().unwrap();
                receipts
                    .entry(id)
                    .or_default()
                    .push((self.process, Instant::now()));
                Ok(Delivered {
                    status: Some(200),
                    output: None,
                })
            }
            Reply::Retry => Err(DeliveryError::retryable("HTTP 503").with_status(503)),
            Reply::Refuse => Err(DeliveryError::permanent("HTTP 400").with_status(400)),
        }
    }
}

fn spec(target: Arc<ProcessTarget>) -> SubSpec {
    SubSpec {
        rule: "r".to_owned(),
        target_id: "t".to_owned(),
        target,
        transform: None,
        policy: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            max_attempts: 4,
            max_age: Duration::from_secs(3600),
        },
        dead_letter_bus: None,
        concurrency: 4,
        partition: false,
        rate_limit_per_second: None,
        fingerprint: String::new(),
    }
}

/// One process: a dispatcher over the shared log with its own ledger and journal.
async fn process(
    n: u32,
    dir: &std::path::Path,
    log: &Arc<dyn LogStore>,
    ports: &Ports,
    ledger: Arc<MemoryLedger>,
    target: Arc<ProcessTarget>,
) -> Arc<BusDispatch> {
    let journal = Journal::open(&dir.join(format!("journal-{n}"))).expect("a journal");
    let ports = Ports {
        ledger,
        ..ports.clone()
    };
    let dispatch = BusDispatch::new(
        "b".to_owned(),
        "b.0".to_owned(),
        log.clone(),
        journal,
        ports,
    );
    dispatch
        .start(SubSpecs::of(vec![spec(target)]))
        .await
        .expect("delivery starts");
    dispatch
}

const EVENTS: usize = 40;

async fn scenario(script: Vec<Vec<Reply>>, crashes: Vec<u64>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ports, _) = testing::ports(dir.path()).await;
    tokio::time::pause();
    let start = Instant::now();
    let log: Arc<dyn LogStore> = Arc::new(MemoryLog::new(LogOptions::default()));
    let script = Arc::new(script);
    let receiver = Arc::new(Receiver::default());
    let alive = Arc::new(AtomicU32::new(0));
    let target = |n: u32| {
        Arc::new(ProcessTarget {
            process: n,
            alive: alive.clone(),
            script: script.clone(),
            receiver: receiver.clone(),
        })
    };
    let mut ledger = Arc::new(MemoryLedger::default());
    let mut current = process(0, dir.path(), &log, &ports, ledger.clone(), target(0)).await;
    // Ten events every 150 ms; crashes at their instants.
    let mut crash_at: Vec<(u32, Instant)> = Vec::new();
    let mut plan: Vec<(u64, Option<usize>)> = (0..EVENTS / 10)
        .map(|b| (b as u64 * 150, Some(b)))
        .collect();
    plan.extend(crashes.iter().map(|c| (*c, None)));
    plan.sort_by_key(|(at, batch)| (*at, batch.is_none()));
    for (at, batch) in plan {
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        match batch {
            Some(b) => {
                let records = (b * 10..b * 10 + 10)
                    .map(|n| {
                        let id = format!("e{n}");
                        let event = json!({"specversion": "1.0", "id": id, "source": "s", "type": "t", "data": {"n": n}});
                        NewRecord {
                            source: "s".to_owned(),
                            id,
                            received_at_ms: switchyard_core::time::now_ms(),
                            payload: event.to_string().into_bytes(),
                            matched_rules: vec!["r".to_owned()],
                        }
                    })
                    .collect();
                let matched = vec![vec!["r".to_owned()]; 10];
                let appended = log.append(records).await.expect("appended");
                current.appended(&appended, &matched);
                current.wake();
            }
            None => {
                // The crash: what the ledger held at this instant is all that survives.
                let n = alive.load(Ordering::Acquire);
                crash_at.push((n, Instant::now()));
                let survived = Arc::new(ledger.reopened());
                alive.store(n + 1, Ordering::Release);
                current.stop();
                ledger = survived;
                current = process(
                    n + 1,
                    dir.path(),
                    &log,
                    &ports,
                    ledger.clone(),
                    target(n + 1),
                )
                .await;
            }
        }
    }
    // Run until every event is received or a dead letter (a case settles in well under a
    // second of real time; the bound only ends a failing one).
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    let settled = |ledger: &MemoryLedger| {
        let receipts = receiver.receipts.lock().unwrap();
        let letters = ledger.dead_letters();
        (0..EVENTS).all(|n| {
            let id = format!("e{n}");
            receipts.contains_key(&id)
                || letters
                    .iter()
                    .any(|d| d.event.contains(&format!("\"id\":\"{id}\"")))
        })
    };
    while !settled(&ledger) {
        assert!(
            std::time::Instant::now() < give_up,
            "not every event settled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Nothing is pending, as the last process counts it (from what it loaded and read).
    while current.backlog() != [("r".to_owned(), "t".to_owned(), 0)] {
        assert!(
            std::time::Instant::now() < give_up,
            "the backlog stays at {:?}",
            current.backlog()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    current.stop();
    // Repeats: never within one process; across a crash, only of a receipt made at most two
    // flush intervals (plus an attempt's time) before it.
    let receipts = receiver.receipts.lock().unwrap();
    let window = FLUSH_INTERVAL * 2 + Duration::from_millis(20);
    for (id, got) in receipts.iter() {
        for (i, (p, at)) in got.iter().enumerate() {
            for (q, _) in &got[i + 1..] {
                assert_ne!(p, q, "{id} received twice by process {p}: {got:?}");
                let (_, crashed) = crash_at
                    .iter()
                    .find(|(n, _)| n == p)
                    .expect("a later receipt means the earlier process crashed");
                assert!(
                    *crashed - *at <= window,
                    "{id} was received {:?} before the crash and again after: {got:?}",
                    *crashed - *at
                );
            }
        }
    }
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![6 => Just(Reply::Ok), 3 => Just(Reply::Retry), 1 => Just(Reply::Refuse)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 8, ..ProptestConfig::default() })]

    #[test]
    fn nothing_is_lost_and_only_the_last_interval_repeats(
        script in prop::collection::vec(prop::collection::vec(reply(), 4), EVENTS),
        crashes in prop::collection::vec(0u64..1500, 1..4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(scenario(script, crashes));
    }
}
