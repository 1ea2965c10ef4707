//! The delivery worker on tokio's paused clock: retries and their timing, dead letters,
//! partition order, the rate limit, and a window that fills (detach, catch up, attach).
//! Each test runs a real bus dispatcher over an in-memory log, a journal on disk and a
//! SQLite metadata store; only the target is scripted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use switchyard_event_store::{LogOptions, LogStore, MemoryLog, NewRecord};
use switchyard_targets::{Delivered, Delivery, DeliveryError, RetryPolicy, Target};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::ledger::{MemoryLedger, SubKey, SubState};
use super::subscription::WINDOW;
use super::{BusDispatch, Journal, SubSpec, SubSpecs};
use crate::target::DEFAULT_CONCURRENCY;
use crate::testing;

/// How a scripted target answers one attempt.
#[derive(Clone)]
enum Answer {
    Ok,
    Retryable(Option<Duration>),
    Permanent,
    /// Waits for a permit of the gate, then succeeds.
    Gated(Arc<Semaphore>),
}

/// One attempt as the target saw it.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    attempt: u32,
    at: Instant,
}

/// The script: an answer for (event id, attempt number).
type Script = Box<dyn Fn(&str, u32) -> Answer + Send + Sync>;

/// A target that answers by script and records every attempt.
struct Scripted {
    answer: Script,
    seen: Mutex<Vec<Seen>>,
    in_flight: Mutex<(usize, usize)>,
}

impl Scripted {
    fn new(answer: impl Fn(&str, u32) -> Answer + Send + Sync + 'static) -> Arc<Scripted> {
        Arc::new(Scripted {
            answer: Box::new(answer),
            seen: Mutex::new(Vec::new()),
            in_flight: Mutex::new((0, 0)),
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The most attempts that were in flight at once.
    fn peak(&self) -> usize {
        self.in_flight.lock().map(|f| f.1).unwrap_or_default()
    }

    fn enter(&self) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
    }

    fn leave(&self) {
        if let Ok(mut f) = self.in_flight.lock() {
            f.0 -= 1;
        }
    }
}

#[async_trait]
impl Target for Scripted {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        let id = d.event["id"].as_str().unwrap_or_default().to_owned();
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen {
                id: id.clone(),
                attempt: d.attempt,
                at: Instant::now(),
            });
        }
        self.enter();
        let answer = (self.answer)(&id, d.attempt);
        let outcome = match answer {
            Answer::Ok => Ok(()),
            Answer::Retryable(after) => {
                let e = DeliveryError::retryable("scripted failure").with_status(503);
                Err(match after {
                    Some(after) => e.with_retry_after(after),
                    None => e,
                })
            }
            Answer::Permanent => Err(DeliveryError::permanent("scripted refusal").with_status(400)),
            Answer::Gated(gate) => {
                let _permit = gate.acquire().await;
                Ok(())
            }
        };
        self.leave();
        outcome.map(|()| Delivered {
            status: Some(200),
            output: None,
        })
    }
}

/// A bus's dispatcher over an in-memory log and a journal on disk.
struct Bus {
    _dir: tempfile::TempDir,
    log: Arc<dyn LogStore>,
    ledger: Arc<MemoryLedger>,
    dispatch: Arc<BusDispatch>,
}

impl Bus {
    /// Sets up on the real clock, then pauses it.
    async fn new() -> Bus {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (ports, ledger) = testing::ports(dir.path()).await;
        let log: Arc<dyn LogStore> = Arc::new(MemoryLog::new(LogOptions::default()));
        let journal = Journal::open(&dir.path().join("journal")).expect("the journal");
        let dispatch = BusDispatch::new(
            "b".to_owned(),
            "b.0".to_owned(),
            log.clone(),
            journal,
            ports,
        );
        tokio::time::pause();
        Bus {
            _dir: dir,
            log,
            ledger,
            dispatch,
        }
    }

    async fn start(&self, specs: Vec<SubSpec>) {
        self.dispatch
            .start(SubSpecs::of(specs))
            .await
            .expect("delivery starts");
    }

    /// Appends events matched by `rule`, with ids `{prefix}0…`, and wakes the scanner.
    async fn publish(&self, rule: &str, prefix: &str, n: usize, key: impl Fn(usize) -> String) {
        let records = (0..n)
            .map(|i| {
                let id = format!("{prefix}{i}");
                let event = json!({"specversion": "1.0", "id": id, "source": "s", "type": "t",
                                   "partitionkey": key(i), "data": {"seq": i}});
                NewRecord {
                    source: "s".to_owned(),
                    id,
                    received_at_ms: switchyard_core::time::now_ms(),
                    payload: event.to_string().into_bytes(),
                    matched_rules: vec![rule.to_owned()],
                }
            })
            .collect();
        let appended = self.log.append(records).await.expect("appended");
        self.dispatch
            .appended(&appended, &vec![vec![rule.to_owned()]; n]);
        self.dispatch.wake();
    }

    fn backlog(&self, rule: &str) -> u64 {
        self.dispatch
            .backlog()
            .into_iter()
            .find(|(r, _, _)| r == rule)
            .map_or(u64::MAX, |(_, _, n)| n)
    }

    fn dead_letters(&self) -> Vec<(String, u32, String)> {
        let letters = self.ledger.dead_letters();
        let mut out: Vec<(String, u32, String)> = letters
            .into_iter()
            .map(|d| {
                let event: serde_json::Value = serde_json::from_str(&d.event).unwrap_or_default();
                (
                    event["id"].as_str().unwrap_or_default().to_owned(),
                    d.attempts,
                    d.last_error,
                )
            })
            .collect();
        out.sort();
        out
    }
}

fn spec(rule: &str, target: Arc<Scripted>) -> SubSpec {
    SubSpec {
        rule: rule.to_owned(),
        target_id: "t".to_owned(),
        target,
        transform: None,
        policy: RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_attempts: 3,
            max_age: Duration::from_secs(3600),
        },
        dead_letter_bus: None,
        concurrency: DEFAULT_CONCURRENCY as usize,
        partition: false,
        rate_limit_per_second: None,
        fingerprint: String::new(),
    }
}

/// Lets the dispatcher run (the clock jumps ahead whenever everything waits) until `done`
/// holds. Work on other threads (the journal's writer, SQLite) takes real time, so the bound
/// is on real time: it only ends a test that would otherwise hang.
async fn until(what: &str, done: impl Fn() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn attempts_of(seen: &[Seen], id: &str) -> Vec<(u32, Instant)> {
    seen.iter()
        .filter(|s| s.id == id)
        .map(|s| (s.attempt, s.at))
        .collect()
}

#[tokio::test]
async fn a_failing_delivery_is_retried_with_backoff_until_it_succeeds() {
    let bus = Bus::new().await;
    let target = Scripted::new(|_, attempt| {
        if attempt < 3 {
            Answer::Retryable(None)
        } else {
            Answer::Ok
        }
    });
    bus.start(vec![spec("r", target.clone())]).await;
    bus.publish("r", "e", 1, |_| String::new()).await;
    until("three attempts", || target.seen().len() == 3).await;
    until("the cursor passes the event", || bus.backlog("r") == 0).await;
    let attempts = attempts_of(&target.seen(), "e0");
    assert_eq!(attempts.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 2, 3]);
    // Full jitter: each wait is at most the backoff of its attempt (100 ms, then 200 ms).
    assert!(attempts[1].1 - attempts[0].1 <= Duration::from_millis(100) + SLACK);
    assert!(attempts[2].1 - attempts[1].1 <= Duration::from_millis(200) + SLACK);
    assert_eq!(bus.dead_letters(), []);
}

/// Virtual time the clock may run ahead while the worker waits on its journal (real IO).
const SLACK: Duration = Duration::from_millis(250);

#[tokio::test]
async fn retry_after_is_honoured_over_a_shorter_backoff() {
    let bus = Bus::new().await;
    let target = Scripted::new(|_, attempt| {
        if attempt == 1 {
            Answer::Retryable(Some(Duration::from_secs(5)))
        } else {
            Answer::Ok
        }
    });
    bus.start(vec![spec("r", target.clone())]).await;
    bus.publish("r", "e", 1, |_| String::new()).await;
    until("two attempts", || target.seen().len() == 2).await;
    let attempts = attempts_of(&target.seen(), "e0");
    let gap = attempts[1].1 - attempts[0].1;
    assert!(
        gap >= Duration::from_secs(5),
        "second attempt after {gap:?}"
    );
    assert!(
        gap <= Duration::from_secs(5) + SLACK,
        "second attempt after {gap:?}"
    );
}

#[tokio::test]
async fn exhausted_and_refused_deliveries_are_dead_lettered_and_passed() {
    let bus = Bus::new().await;
    let target = Scripted::new(|id, _| match id {
        "e0" => Answer::Retryable(None),
        "e1" => Answer::Permanent,
        _ => Answer::Ok,
    });
    bus.start(vec![spec("r", target.clone())]).await;
    bus.publish("r", "e", 3, |_| String::new()).await;
    until("the cursor passes every event", || bus.backlog("r") == 0).await;
    until("both dead letters are written", || {
        bus.dead_letters().len() == 2
    })
    .await;
    let seen = target.seen();
    assert_eq!(attempts_of(&seen, "e0").len(), 3);
    assert_eq!(attempts_of(&seen, "e1").len(), 1);
    assert_eq!(attempts_of(&seen, "e2").len(), 1);
    assert_eq!(
        bus.dead_letters(),
        [
            (
                "e0".to_owned(),
                3,
                "gave up after 3 attempts: scripted failure".to_owned()
            ),
            (
                "e1".to_owned(),
                1,
                "not retryable: scripted refusal".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn partitioned_deliveries_keep_order_per_key_under_concurrency() {
    let bus = Bus::new().await;
    // Every key's first event fails once: its younger events must wait for its retry.
    let target = Scripted::new(|id, attempt| {
        let seq: usize = id.trim_start_matches('e').parse().unwrap_or_default();
        if seq < 4 && attempt == 1 {
            Answer::Retryable(None)
        } else {
            Answer::Ok
        }
    });
    let mut s = spec("r", target.clone());
    s.partition = true;
    s.concurrency = 16;
    bus.start(vec![s]).await;
    bus.publish("r", "e", 40, |i| format!("k{}", i % 4)).await;
    until("every event delivered", || bus.backlog("r") == 0).await;
    let mut by_key: HashMap<usize, Vec<usize>> = HashMap::new();
    for s in target.seen() {
        let seq: usize = s.id.trim_start_matches('e').parse().unwrap_or_default();
        if s.attempt == 1 && seq < 4 {
            continue;
        }
        by_key.entry(seq % 4).or_default().push(seq);
    }
    for (key, seqs) in &by_key {
        let want: Vec<usize> = (0..40).filter(|s| s % 4 == *key).collect();
        assert_eq!(seqs, &want, "key k{key}");
    }
    assert!(target.peak() <= 4, "at most one in flight per key");
}

#[tokio::test]
async fn the_rate_limit_spaces_attempts() {
    let bus = Bus::new().await;
    let target = Scripted::new(|_, _| Answer::Ok);
    let mut s = spec("r", target.clone());
    s.rate_limit_per_second = Some(20);
    bus.start(vec![s]).await;
    bus.publish("r", "e", 11, |_| String::new()).await;
    until("eleven deliveries", || target.seen().len() == 11).await;
    let seen = target.seen();
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(50),
            "{gap:?} between attempts at 20/s"
        );
    }
}

#[tokio::test]
async fn a_stuck_target_detaches_and_catches_up_without_delaying_another() {
    let bus = Bus::new().await;
    let gate = Arc::new(Semaphore::new(0));
    let stuck = {
        let gate = gate.clone();
        Scripted::new(move |_, _| Answer::Gated(gate.clone()))
    };
    let fast = Scripted::new(|_, _| Answer::Ok);
    let mut slow = spec("slow", stuck.clone());
    slow.concurrency = 1;
    bus.start(vec![slow, spec("fast", fast.clone())]).await;
    // Both rules match every event, and more of them than a window holds.
    let total = WINDOW * 2 + 100;
    let records = (0..total)
        .map(|i| NewRecord {
            source: "s".to_owned(),
            id: format!("e{i}"),
            received_at_ms: switchyard_core::time::now_ms(),
            payload: json!({"id": format!("e{i}")}).to_string().into_bytes(),
            matched_rules: vec!["slow".to_owned(), "fast".to_owned()],
        })
        .collect();
    let appended = bus.log.append(records).await.expect("appended");
    let matched = vec![vec!["slow".to_owned(), "fast".to_owned()]; total];
    bus.dispatch.appended(&appended, &matched);
    bus.dispatch.wake();
    until("the fast target has every event", || {
        fast.seen().len() == total
    })
    .await;
    until("the fast cursor reaches the end", || {
        bus.backlog("fast") == 0
    })
    .await;
    // The stuck one took one event, holds a window's worth, and left the rest on disk.
    assert_eq!(stuck.seen().len(), 1);
    assert_eq!(bus.backlog("slow"), total as u64);
    gate.add_permits(total);
    until("the stuck target catches up", || bus.backlog("slow") == 0).await;
    let mut ids: Vec<String> = stuck.seen().into_iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), total, "each event exactly once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total);
}

#[tokio::test]
async fn cursors_survive_a_restart_of_delivery() {
    let bus = Bus::new().await;
    let target = Scripted::new(|_, _| Answer::Ok);
    bus.start(vec![spec("r", target.clone())]).await;
    bus.publish("r", "e", 5, |_| String::new()).await;
    until("five deliveries", || target.seen().len() == 5).await;
    bus.dispatch.shutdown(Duration::from_secs(1)).await;
    let saved = bus.ledger.state("b", &SubKey::new("r", "t"));
    assert_eq!(
        saved,
        Some(SubState {
            cursor: 5,
            entries: vec![]
        })
    );
}

/// Appends `n` events: every third matches rule `r`, the next one rule `other`, the third
/// none. Returns how many match `r`.
async fn publish_mixed(bus: &Bus, dispatch: &BusDispatch, prefix: &str, n: usize) -> u64 {
    let mut matched = Vec::new();
    let records: Vec<NewRecord> = (0..n)
        .map(|i| {
            let rules = match i % 3 {
                0 => vec!["r".to_owned()],
                1 => vec!["other".to_owned()],
                _ => vec![],
            };
            matched.push(rules.clone());
            let id = format!("{prefix}{i}");
            NewRecord {
                source: "s".to_owned(),
                payload: json!({"id": id}).to_string().into_bytes(),
                id,
                received_at_ms: switchyard_core::time::now_ms(),
                matched_rules: rules,
            }
        })
        .collect();
    let appended = bus.log.append(records).await.expect("appended");
    dispatch.appended(&appended, &matched);
    dispatch.wake();
    n.div_ceil(3) as u64
}

/// Delivery started again over the same log and ledger (a restart).
async fn restarted(bus: &Bus, n: usize, specs: SubSpecs) -> Arc<BusDispatch> {
    let journal =
        Journal::open(&bus._dir.path().join(format!("journal-{n}"))).expect("the journal");
    let dispatch = BusDispatch::new(
        "b".to_owned(),
        "b.0".to_owned(),
        bus.log.clone(),
        journal,
        bus.dispatch.ports.clone(),
    );
    dispatch.start(specs).await.expect("delivery starts");
    dispatch
}

fn backlog_of(dispatch: &BusDispatch) -> Vec<(String, String, u64)> {
    let mut b = dispatch.backlog();
    b.sort();
    b
}

/// A target that refuses while `down`, then takes everything; with the ids it took.
fn switchable(
    down: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Scripted>, Arc<Mutex<Vec<String>>>) {
    let took = Arc::new(Mutex::new(Vec::new()));
    let record = took.clone();
    let target = Scripted::new(move |id, _| {
        if down.load(std::sync::atomic::Ordering::Acquire) {
            Answer::Retryable(None)
        } else {
            record.lock().expect("the list").push(id.to_owned());
            Answer::Ok
        }
    });
    (target, took)
}

/// Retries every few seconds for as long as a test runs.
fn patient(rule: &str, target: Arc<Scripted>) -> SubSpec {
    let mut s = spec(rule, target);
    s.policy = RetryPolicy {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(5),
        max_attempts: 100_000,
        max_age: Duration::from_secs(86_400),
    };
    s
}

fn sorted(ids: &Mutex<Vec<String>>) -> Vec<String> {
    let mut ids = ids.lock().expect("the list").clone();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_backlog_is_exactly_the_unresolved_deliveries_running_paused_and_after_a_restart() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let bus = Bus::new().await;
    let down = Arc::new(AtomicBool::new(true));
    let (target, took) = switchable(down.clone());
    bus.start(vec![patient("r", target.clone())]).await;
    // More matching events than a window holds (the subscription detaches and reads the
    // log itself), among events of another rule and of none.
    let matching = publish_mixed(&bus, &bus.dispatch, "a", WINDOW * 6).await;
    let want = |n| vec![("r".to_owned(), "t".to_owned(), n)];
    until("the backlog counts every matching event", || {
        backlog_of(&bus.dispatch) == want(matching)
    })
    .await;
    assert_eq!(matching, 2 * WINDOW as u64);
    // Paused (the rule disabled): its deliveries are still unresolved.
    let known: std::collections::HashSet<(String, String)> =
        [("r".to_owned(), "t".to_owned())].into();
    let rules: std::collections::HashSet<String> = ["r".to_owned()].into();
    let disabled = || SubSpecs {
        wanted: vec![],
        known: known.clone(),
        rules: rules.clone(),
        elsewhere: Default::default(),
    };
    bus.dispatch.sync(disabled()).await;
    until("paused, the backlog stays", || {
        backlog_of(&bus.dispatch) == want(matching)
    })
    .await;
    bus.dispatch.shutdown(Duration::from_secs(5)).await;
    // After a restart, paused: counted from the ledger and the log.
    let second = restarted(&bus, 2, disabled()).await;
    assert_eq!(backlog_of(&second), want(matching));
    // Enabled again: loaded and counted, more published meanwhile.
    second
        .sync(SubSpecs::of(vec![patient("r", target.clone())]))
        .await;
    let more = publish_mixed(&bus, &second, "b", 30).await;
    until("enabled, the backlog counts both", || {
        backlog_of(&second) == want(matching + more)
    })
    .await;
    second.shutdown(Duration::from_secs(5)).await;
    let third = restarted(&bus, 3, SubSpecs::of(vec![patient("r", target.clone())])).await;
    until("after a restart, the same", || {
        backlog_of(&third) == want(matching + more)
    })
    .await;
    down.store(false, Ordering::Release);
    until("everything delivered", || backlog_of(&third) == want(0)).await;
    let mut expected: Vec<String> = (0..WINDOW * 6)
        .step_by(3)
        .map(|i| format!("a{i}"))
        .chain((0..30).step_by(3).map(|i| format!("b{i}")))
        .collect();
    expected.sort();
    assert_eq!(
        sorted(&took),
        expected,
        "each matching event delivered once"
    );
}

#[tokio::test]
async fn a_delivery_restored_past_the_cursor_is_counted_once_and_delivered_once() {
    use super::ledger::{Changes, Entry, Ledger as _, Origin};
    let bus = Bus::new().await;
    publish_mixed(&bus, &bus.dispatch, "a", 30).await;
    // As a crash can leave it: the cursor at offset 3, a written entry (a retry scheduled)
    // for the matching event at offset 9.
    let key = SubKey::new("r", "t");
    bus.ledger.open("b", &key, 3).await.expect("opened");
    let entry = Entry {
        delivery_id: "b.0:9:r:t".to_owned(),
        offset: 9,
        origin: Origin::Log,
        event: None,
        attempts: 1,
        next_attempt_ms: Some(switchyard_core::time::now_ms()),
        last_error: Some("503".to_owned()),
        generation: 0,
    };
    let changes = Changes {
        fence: None,
        cursor: None,
        put: vec![entry],
        resolved: vec![],
        dead_letters: vec![],
    };
    bus.ledger
        .commit("b", &key, &changes)
        .await
        .expect("committed");
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (target, took) = switchable(down.clone());
    bus.start(vec![patient("r", target.clone())]).await;
    // Matching events at 3, 6, …, 27: nine, the one at 9 among them.
    until("nine pending", || {
        backlog_of(&bus.dispatch) == vec![("r".to_owned(), "t".to_owned(), 9)]
    })
    .await;
    down.store(false, std::sync::atomic::Ordering::Release);
    until("all delivered", || {
        backlog_of(&bus.dispatch) == vec![("r".to_owned(), "t".to_owned(), 0)]
    })
    .await;
    let mut expected: Vec<String> = (3..30).step_by(3).map(|i| format!("a{i}")).collect();
    expected.sort();
    assert_eq!(sorted(&took), expected, "each once, a9 from its entry");
}
