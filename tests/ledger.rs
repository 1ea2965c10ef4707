//! The delivery ledger, through the binary: pending deliveries outlive disabling a rule and
//! a SIGKILL, finished ones are not made again after a crash, attempt counts and delivery
//! ids carry over, deleting a rule or removing a target drops its pending deliveries with
//! a reason, every dead-letter copy and every forwarded copy is stored, and a rule edit
//! hands over in partition order.
//!
//! Assumed here, not yet in README.md (the engine rewrite defines them):
//! - the trace stage `dropped` (with `rule`, `target` and an `error` saying `rule deleted`
//!   or `target removed`) and the `switchyard_deliveries_total` outcome `dropped`;
//! - the ledger's flush interval is at most 200 ms (`engine/src/dispatch/ledger.rs`);
//! - a delivery id (`webhook-id`) is kept by retries, and new for a replay and for a bus
//!   deleted and made again;
//! - copies on a dead-letter bus, and events forwarded by `bus` targets, are not taken for
//!   duplicates of each other: each is stored (dead-letter copies with an `id` of their own);
//! - replays are resumed after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use reqwest::Method;
use serde_json::{Value, json};

use crate::receiver::{Answer, eventually, status};
use crate::support::{Backend, Server, event};

const ALLOW_LOOPBACK: &[&str] = &["--target-allow-cidr", "127.0.0.0/8"];
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------------------------------
// A receiver that answers per request (by path and event) and records what it answered.
// (receiver.rs answers from a script in arrival order; these tests need answers per event
// id and the status each request got.)

/// One request as received, with the status it was answered.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Value,
    status: u16,
}

impl Hit {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap_or_default()
    }

    /// The replay this delivery belongs to, if it is a replay's.
    fn replay(&self) -> Option<&str> {
        self.body["replayid"].as_str()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

type Answering = Arc<dyn Fn(&str, &Value) -> Answer + Send + Sync>;

struct HookState {
    answering: Answering,
    hits: Vec<Hit>,
}

#[derive(Clone)]
struct Hook {
    base: String,
    state: Arc<Mutex<HookState>>,
}

impl Hook {
    /// Starts a receiver on every path; `answer(path, event)` decides each answer.
    async fn start(answer: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) -> Hook {
        let state = Arc::new(Mutex::new(HookState {
            answering: Arc::new(answer),
            hits: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Hook { base, state }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn answer_with(&self, answer: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static) {
        self.state.lock().unwrap().answering = Arc::new(answer);
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.lock().unwrap().hits.clone()
    }

    /// Polls the requests received so far with `f` until it returns `Some`, up to `within`.
    async fn until<T>(&self, within: Duration, mut f: impl FnMut(&[Hit]) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            let got = {
                let state = self.state.lock().unwrap();
                f(&state.hits)
            };
            if let Some(v) = got {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "receiver: condition not met within {within:?} ({} requests so far)",
                self.state.lock().unwrap().hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(
    State(state): State<Arc<Mutex<HookState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let answer = {
        let mut state = state.lock().unwrap();
        let answer = (state.answering)(&path, &body);
        state.hits.push(Hit {
            path,
            headers,
            body,
            status: answer.status,
        });
        answer
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

/// 503 with `Retry-After`: the next attempt is at least `secs` away, whatever the jitter.
fn unavailable_for(secs: u64) -> Answer {
    Answer {
        status: 503,
        retry_after: Some(secs),
        delay: Duration::ZERO,
    }
}

/// How many requests each event id got that were not a replay's and pass `keep`.
fn per_id(hits: &[Hit], keep: impl Fn(&Hit) -> bool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for h in hits.iter().filter(|h| h.replay().is_none() && keep(h)) {
        *counts.entry(h.id().to_owned()).or_insert(0) += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------------
// Rules, events, traces.

/// An http target `id` for `url`, with `extra` fields merged in.
fn http_target(id: &str, url: &str, extra: Value) -> Value {
    let mut target = json!({"id": id, "kind": "http", "http": {"url": url}});
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
    target
}

/// A rule matching every test event, with these targets.
fn rule_with(targets: Vec<Value>) -> Value {
    json!({"pattern": {"source": ["/tests"]}, "targets": targets})
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Publishes events with these ids (data: their index), in batches of 250.
async fn publish_ids(s: &Server, bus: &str, ids: &[String]) {
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| event(id, json!({"n": i})))
        .collect();
    for chunk in events.chunks(250) {
        let r = s.publish_batch(bus, chunk).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

/// The records of a bus (up to 1000), newest first.
async fn records(s: &Server, bus: &str) -> Vec<Value> {
    let page = s
        .call(
            Method::GET,
            &format!("/v1/buses/{bus}/events?limit=1000"),
            None,
            200,
        )
        .await;
    page["events"].as_array().unwrap().clone()
}

/// How many events a bus holds.
async fn stored(s: &Server, bus: &str) -> u64 {
    s.call(Method::GET, &format!("/v1/buses/{bus}"), None, 200)
        .await["events"]
        .as_u64()
        .unwrap()
}

/// An event's trace timeline, polled until `done` holds for it (up to `within`).
async fn steps_until(
    s: &Server,
    bus: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let path = format!("/v1/buses/{bus}/events/{id}/trace");
    let deadline = Instant::now() + within;
    loop {
        let t = s.call(Method::GET, &path, None, 200).await;
        let steps = t["timeline"].as_array().cloned().unwrap_or_default();
        if done(&steps) {
            return steps;
        }
        assert!(
            Instant::now() < deadline,
            "the trace of {id} on {bus} did not get there within {within:?}: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `step` is stage `stage` of (rule, target).
fn is_step(step: &Value, stage: &str, rule: &str, target: &str) -> bool {
    step["stage"] == stage && step["rule"] == rule && step["target"] == target
}

fn count_steps(steps: &[Value], stage: &str, rule: &str, target: &str) -> usize {
    steps
        .iter()
        .filter(|st| is_step(st, stage, rule, target))
        .count()
}

/// Now, as the replay API reads an instant (RFC 3339, milliseconds).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------
// 1. Disabling a rule keeps its pending deliveries; enabling it resumes them.

/// How a rule is switched off and on again.
#[derive(Clone, Copy)]
enum Switch {
    /// `POST …/disable` and `…/enable`.
    Endpoints,
    /// `PUT` the rule with `"enabled": false`, then `true`.
    Put,
}

async fn switch_rule(s: &Server, how: Switch, rule: &Value, on: bool) {
    let path = "/v1/buses/default/rules/r";
    let answer = match how {
        Switch::Endpoints => {
            let action = if on { "enable" } else { "disable" };
            s.call(Method::POST, &format!("{path}/{action}"), None, 200)
                .await
        }
        Switch::Put => {
            let mut body = rule.clone();
            body["enabled"] = json!(on);
            s.call(Method::PUT, path, Some(body), 200).await
        }
    };
    assert_eq!(answer["enabled"], on, "{answer}");
}

async fn disable_then_enable_resumes_pending(how: Switch) {
    let hook = Hook::start(|_, _| status(503)).await;
    let s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    let retry = json!({"retry": {"initial_backoff_ms": 100, "max_backoff_ms": 200}});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), retry)]);
    s.put_rule("default", "r", rule.clone()).await;
    let pending = ids("p", 10);
    publish_ids(&s, "default", &pending).await;
    // Every one of the 10 has been tried (and failed) at least once.
    hook.until(Duration::from_secs(10), |hits| {
        let tried = per_id(hits, |_| true);
        pending
            .iter()
            .all(|id| tried.contains_key(id))
            .then_some(())
    })
    .await;
    switch_rule(&s, how, &rule, false).await;
    hook.answer_with(|_, _| status(200));
    // Published while the rule is off: they do not match it.
    let quiet = ids("q", 3);
    publish_ids(&s, "default", &quiet).await;
    switch_rule(&s, how, &rule, true).await;
    let r = s.publish("default", &event("after", json!(0))).await;
    assert_eq!(r.status, 200);
    // The 10 pending deliveries resume and succeed; the marker arrives too.
    let mut want = pending.clone();
    want.push("after".to_owned());
    hook.until(Duration::from_secs(15), |hits| {
        let ok = per_id(hits, |h| h.status == 200);
        want.iter().all(|id| ok.contains_key(id)).then_some(())
    })
    .await;
    for id in &pending {
        steps_until(&s, "default", id, Duration::from_secs(10), |steps| {
            count_steps(steps, "delivered", "r", "hook") == 1
        })
        .await;
    }
    // The 3 published while the rule was off were never sent, and their traces do not
    // mention the rule.
    let hits = hook.hits();
    for id in &quiet {
        assert!(
            hits.iter().all(|h| h.id() != id.as_str()),
            "{id} was delivered although published while the rule was disabled"
        );
        let record = s
            .call(
                Method::GET,
                &format!("/v1/buses/default/events/{id}"),
                None,
                200,
            )
            .await;
        assert_eq!(record["matched_rules"], json!([]), "{record}");
        let t = s
            .call(
                Method::GET,
                &format!("/v1/buses/default/events/{id}/trace"),
                None,
                200,
            )
            .await;
        let about_r = t["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|st| st["rule"] == "r")
            .count();
        assert_eq!(about_r, 0, "{t}");
    }
}

#[tokio::test]
async fn disable_then_enable_resumes_pending_by_endpoints() {
    disable_then_enable_resumes_pending(Switch::Endpoints).await;
}

#[tokio::test]
async fn disable_then_enable_resumes_pending_by_put() {
    disable_then_enable_resumes_pending(Switch::Put).await;
}

// ---------------------------------------------------------------------------------------
// 2. A delivery waiting on a long retry does not hold back what finished after it.

#[tokio::test]
async fn slow_retry_does_not_repeat_finished_after_sigkill() {
    // "slow" is refused with a minute's Retry-After (its retry is scheduled far beyond this
    // test); everything else is taken at once.
    let hook = Hook::start(|_, e| {
        if e["id"] == "slow" {
            unavailable_for(60)
        } else {
            status(200)
        }
    })
    .await;
    let mut s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    // One delivery at a time, in offset order: after a restart, anything made again comes
    // before the marker published last.
    let extra = json!({"concurrency": 1,
                       "retry": {"initial_backoff_ms": 60000, "max_backoff_ms": 60000}});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), extra)]);
    s.put_rule("default", "r", rule).await;
    let r = s.publish("default", &event("slow", json!(0))).await;
    assert_eq!(r.status, 200);
    let fast = ids("f", 1000);
    publish_ids(&s, "default", &fast).await;
    hook.until(Duration::from_secs(30), |hits| {
        let ok = per_id(hits, |h| h.status == 200);
        fast.iter().all(|id| ok.contains_key(id)).then_some(())
    })
    .await;
    // The ledger commits at least every 200 ms (its flush interval): after a second, every
    // one of the 1000 is resolved durably, while "slow" is still pending before them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.kill().await;
    s.start_again().await;
    let r = s.publish("default", &event("marker", json!(0))).await;
    assert_eq!(r.status, 200);
    hook.until(Duration::from_secs(30), |hits| {
        hits.iter()
            .any(|h| h.id() == "marker" && h.status == 200)
            .then_some(())
    })
    .await;
    let counts = per_id(&hook.hits(), |_| true);
    let repeated: Vec<(&String, usize)> = fast
        .iter()
        .map(|id| (id, counts.get(id).copied().unwrap_or(0)))
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(
        repeated.is_empty(),
        "{} of the 1000 were not received exactly once, e.g. {:?}",
        repeated.len(),
        &repeated[..repeated.len().min(5)]
    );
}

// ---------------------------------------------------------------------------------------
// 3. Attempt counts and the delivery id survive a SIGKILL.

#[tokio::test]
async fn retry_attempts_survive_sigkill() {
    let hook = Hook::start(|_, _| status(503)).await;
    let mut s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    // The signing secret makes the delivery id visible as `webhook-id`.
    let extra =
        json!({"retry": {"initial_backoff_ms": 300, "max_backoff_ms": 1000, "max_attempts": 10}});
    let mut target = http_target("hook", &hook.url("/hook"), extra);
    target["http"]["signing_secret"] = json!(SECRET);
    s.put_rule("default", "r", rule_with(vec![target])).await;
    let r = s.publish("default", &event("k1", json!(1))).await;
    assert_eq!(r.status, 200);
    steps_until(&s, "default", "k1", Duration::from_secs(10), |steps| {
        steps
            .iter()
            .any(|st| is_step(st, "attempt", "r", "hook") && st["attempt"] == 2)
    })
    .await;
    // Past the ledger's flush interval (at most 200 ms): attempt 2 and its scheduled retry
    // are committed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.kill().await;
    let before = hook.hits();
    assert!(
        before.len() >= 2,
        "{} requests before the kill",
        before.len()
    );
    let id = before[0].header("webhook-id");
    assert!(!id.is_empty());
    assert!(
        before.iter().all(|h| h.header("webhook-id") == id),
        "a retry changed its webhook-id before the kill"
    );
    hook.answer_with(|_, _| status(200));
    s.start_again().await;
    let steps = steps_until(&s, "default", "k1", Duration::from_secs(15), |steps| {
        count_steps(steps, "delivered", "r", "hook") == 1
    })
    .await;
    let delivered = steps
        .iter()
        .find(|st| is_step(st, "delivered", "r", "hook"))
        .unwrap();
    let attempt = delivered["attempt"].as_u64().unwrap();
    assert!(
        attempt > 2,
        "attempt numbering restarted after the crash: {delivered}"
    );
    let after: Vec<Hit> = hook
        .hits()
        .into_iter()
        .filter(|h| h.status == 200)
        .collect();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id(), "k1");
    assert_eq!(after[0].header("webhook-id"), id, "a retry keeps its id");
}

// ---------------------------------------------------------------------------------------
// 4. Deleting a rule, or removing a target, drops its pending deliveries with a reason.

#[tokio::test]
async fn deleting_a_rule_drops_pending_with_reason() {
    // Assumes the `dropped` stage, the reason "rule deleted" and the outcome label
    // `dropped` (see the top of this file).
    let hook = Hook::start(|_, _| unavailable_for(60)).await;
    let s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    let extra = json!({"retry": {"initial_backoff_ms": 60000, "max_backoff_ms": 60000}});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), extra)]);
    s.put_rule("default", "r", rule).await;
    let pending = ids("d", 5);
    publish_ids(&s, "default", &pending).await;
    hook.until(Duration::from_secs(10), |hits| {
        let tried = per_id(hits, |_| true);
        pending
            .iter()
            .all(|id| tried.contains_key(id))
            .then_some(())
    })
    .await;
    s.call(Method::DELETE, "/v1/buses/default/rules/r", None, 204)
        .await;
    dropped_with(&s, &pending, "rule deleted").await;
    // Nothing was tried again.
    assert_eq!(hook.hits().len(), 5);
}

/// Waits until each of `ids` has one `dropped` step for r/hook with `reason`, and the
/// metric counts them; returns each one's steps.
async fn dropped_with(s: &Server, ids: &[String], reason: &str) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for id in ids {
        let steps = steps_until(s, "default", id, Duration::from_secs(10), |steps| {
            count_steps(steps, "dropped", "r", "hook") == 1
        })
        .await;
        let dropped = steps
            .iter()
            .find(|st| is_step(st, "dropped", "r", "hook"))
            .unwrap();
        assert!(
            dropped["error"]
                .as_str()
                .is_some_and(|e| e.contains(reason)),
            "{dropped}"
        );
        all.push(steps);
    }
    let line = format!(
        "switchyard_deliveries_total{{bus=\"default\",rule=\"r\",target=\"hook\",outcome=\"dropped\"}} {}\n",
        ids.len()
    );
    eventually(Duration::from_secs(5), || async {
        s.metrics().await.contains(&line).then_some(())
    })
    .await;
    all
}

#[tokio::test]
async fn removing_a_target_drops_pending_with_reason() {
    // Assumes the `dropped` stage, the reason "target removed" and the outcome label
    // `dropped` (see the top of this file).
    let hook = Hook::start(|path, _| {
        if path == "/keep" {
            status(200)
        } else {
            unavailable_for(60)
        }
    })
    .await;
    let s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    let extra = json!({"retry": {"initial_backoff_ms": 60000, "max_backoff_ms": 60000}});
    let keep = http_target("keep", &hook.url("/keep"), json!({}));
    let rule = rule_with(vec![
        http_target("hook", &hook.url("/hook"), extra),
        keep.clone(),
    ]);
    s.put_rule("default", "r", rule).await;
    let pending = ids("t", 5);
    publish_ids(&s, "default", &pending).await;
    hook.until(Duration::from_secs(10), |hits| {
        let tried = per_id(hits, |h| h.path == "/hook");
        pending
            .iter()
            .all(|id| tried.contains_key(id))
            .then_some(())
    })
    .await;
    // The target that stays has finished with all 5 before the edit.
    for id in &pending {
        steps_until(&s, "default", id, Duration::from_secs(10), |steps| {
            count_steps(steps, "delivered", "r", "keep") == 1
        })
        .await;
    }
    // The same rule without the failing target.
    s.call(
        Method::PUT,
        "/v1/buses/default/rules/r",
        Some(rule_with(vec![keep])),
        200,
    )
    .await;
    for steps in dropped_with(&s, &pending, "target removed").await {
        // The target that stays is untouched: delivered once, nothing dropped.
        assert_eq!(
            count_steps(&steps, "delivered", "r", "keep"),
            1,
            "{steps:?}"
        );
        assert_eq!(count_steps(&steps, "dropped", "r", "keep"), 0, "{steps:?}");
    }
    // Nothing was tried again on the removed target.
    assert_eq!(hook.hits().iter().filter(|h| h.path == "/hook").count(), 5);
}

// ---------------------------------------------------------------------------------------
// 5. Every dead-letter copy is stored on the dead-letter bus.

/// The copies on bus `dlq` once it holds `n`: exactly `n`, each under its own id.
async fn dead_letter_copies(s: &Server, n: u64) -> Vec<Value> {
    eventually(Duration::from_secs(10), || async {
        (stored(s, "dlq").await >= n).then_some(())
    })
    .await;
    let copies: Vec<Value> = records(s, "dlq")
        .await
        .into_iter()
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(copies.len() as u64, n, "{copies:?}");
    let distinct: BTreeSet<&str> = copies.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len() as u64, n, "{copies:?}");
    copies
}

/// The `targetid` of each copy, sorted.
fn targets_of(copies: &[Value]) -> Vec<String> {
    let mut targets: Vec<String> = copies
        .iter()
        .map(|c| c["targetid"].as_str().unwrap().to_owned())
        .collect();
    targets.sort_unstable();
    targets
}

#[tokio::test]
async fn dead_letter_copies_are_each_stored() {
    // Assumes copies on the dead-letter bus each have an id of their own (two targets' copies
    // of one event, and a redriven delivery's second copy, are not duplicates).
    let hook = Hook::start(|_, _| status(400)).await;
    let s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    s.call(Method::PUT, "/v1/buses/dlq", None, 201).await;
    let dlq = json!({"dead_letter": {"bus": "dlq"}});
    let rule = rule_with(vec![
        http_target("a", &hook.url("/a"), dlq.clone()),
        http_target("b", &hook.url("/b"), dlq),
    ]);
    s.put_rule("default", "r", rule).await;
    let r = s.publish("default", &event("twice", json!({"n": 1}))).await;
    assert_eq!(r.status, 200);
    steps_until(&s, "default", "twice", Duration::from_secs(10), |steps| {
        count_steps(steps, "dead_lettered", "r", "a") == 1
            && count_steps(steps, "dead_lettered", "r", "b") == 1
    })
    .await;
    let copies = dead_letter_copies(&s, 2).await;
    assert_eq!(targets_of(&copies), ["a", "b"]);
    for c in &copies {
        assert_eq!(c["deadletterreason"], "not retryable: HTTP 400: scripted");
        assert_eq!(c["rulename"], "r");
    }
    // Target a still refuses; its dead letter is redriven and dead-lettered again.
    // (Dead letters are written with the ledger's next commit.)
    let letters = eventually(Duration::from_secs(5), || async {
        let dls = s
            .call(Method::GET, "/v1/buses/default/dead-letters", None, 200)
            .await;
        let letters = dls["dead_letters"].as_array().unwrap().clone();
        (letters.len() >= 2).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let of_a = letters.iter().find(|d| d["target"] == "a").unwrap()["id"].clone();
    let out = s
        .call(
            Method::POST,
            "/v1/buses/default/dead-letters/redrive",
            Some(json!({"ids": [of_a]})),
            200,
        )
        .await;
    assert_eq!(
        out,
        json!({"redriven": 1, "not_found": [], "no_target": []})
    );
    steps_until(&s, "default", "twice", Duration::from_secs(10), |steps| {
        count_steps(steps, "dead_lettered", "r", "a") == 2
    })
    .await;
    let copies = dead_letter_copies(&s, 3).await;
    assert_eq!(targets_of(&copies), ["a", "a", "b"]);
    assert_eq!(hook.hits().iter().filter(|h| h.path == "/a").count(), 2);
    assert_eq!(hook.hits().iter().filter(|h| h.path == "/b").count(), 1);
}

// ---------------------------------------------------------------------------------------
// 6. Two rules forwarding one event to one bus store two events.

#[tokio::test]
async fn two_rules_forwarding_to_one_bus_store_two_events() {
    // Assumes forwarded events are not taken for duplicates of each other on the target bus
    // (both copies come from the same (source, id)).
    let s = Server::start(Backend::Sqlite).await;
    s.call(Method::PUT, "/v1/buses/sink", None, 201).await;
    let transformed = json!({"pattern": {"source": ["/tests"]}, "targets": [
        {"id": "to-sink", "kind": "bus", "bus": "sink",
         "transform": {"kind": "constant", "value": {"copied": true}}}]});
    let plain = json!({"pattern": {"source": ["/tests"]}, "targets": [
        {"id": "to-sink", "kind": "bus", "bus": "sink"}]});
    s.put_rule("default", "r1", transformed).await;
    s.put_rule("default", "r2", plain).await;
    let r = s.publish("default", &event("fw", json!({"n": 1}))).await;
    assert_eq!(r.status, 200);
    steps_until(&s, "default", "fw", Duration::from_secs(10), |steps| {
        count_steps(steps, "delivered", "r1", "to-sink") == 1
            && count_steps(steps, "delivered", "r2", "to-sink") == 1
    })
    .await;
    eventually(Duration::from_secs(10), || async {
        (stored(&s, "sink").await >= 2).then_some(())
    })
    .await;
    assert_eq!(stored(&s, "sink").await, 2);
    let mut data: Vec<String> = records(&s, "sink")
        .await
        .iter()
        .map(|r| r["event"]["data"].to_string())
        .collect();
    data.sort();
    assert_eq!(data, [r#"{"copied":true}"#, r#"{"n":1}"#]);
}

// ---------------------------------------------------------------------------------------
// 7. A replay, and a bus made again, deliver under new ids.

#[tokio::test]
async fn webhook_id_is_new_for_a_replay_and_for_a_recreated_bus() {
    let hook = Hook::start(|_, _| status(200)).await;
    let s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    // The signing secret makes the delivery id visible as `webhook-id`.
    let rule_to = |path: &str| {
        let mut target = http_target("hook", &hook.url(path), json!({}));
        target["http"]["signing_secret"] = json!(SECRET);
        rule_with(vec![target])
    };
    s.put_rule("default", "r", rule_to("/default")).await;
    let r = s.publish("default", &event("e1", json!(1))).await;
    assert_eq!(r.status, 200);
    let a = hook
        .until(Duration::from_secs(10), |hits| {
            hits.iter()
                .find(|h| h.path == "/default" && h.replay().is_none())
                .map(|h| h.header("webhook-id"))
        })
        .await;
    assert!(!a.is_empty());
    let window = json!({"from": "2000-01-01T00:00:00Z", "to": "2999-01-01T00:00:00Z"});
    let started = s
        .call(Method::POST, "/v1/buses/default/replays", Some(window), 202)
        .await;
    let replay = started["id"].as_str().unwrap().to_owned();
    let b = hook
        .until(Duration::from_secs(10), |hits| {
            hits.iter()
                .find(|h| h.path == "/default" && h.replay() == Some(replay.as_str()))
                .map(|h| (h.id().to_owned(), h.header("webhook-id")))
        })
        .await;
    let (replayed, b) = b;
    assert_eq!(replayed, "e1");
    assert!(!b.is_empty());
    assert_ne!(a, b, "a replay's delivery reused the original's id");
    // A bus deleted and made again starts its deliveries under new ids.
    for round in 0..2 {
        if round == 1 {
            s.call(Method::DELETE, "/v1/buses/b2", None, 204).await;
        }
        s.call(Method::PUT, "/v1/buses/b2", None, 201).await;
        s.put_rule("b2", "r", rule_to("/b2")).await;
        let r = s.publish("b2", &event("e1", json!(1))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        hook.until(Duration::from_secs(10), |hits| {
            (hits.iter().filter(|h| h.path == "/b2").count() == round + 1).then_some(())
        })
        .await;
    }
    let on_b2: Vec<Hit> = hook
        .hits()
        .into_iter()
        .filter(|h| h.path == "/b2")
        .collect();
    assert_eq!(on_b2.len(), 2);
    assert!(on_b2.iter().all(|h| h.id() == "e1"));
    let (c, d) = (on_b2[0].header("webhook-id"), on_b2[1].header("webhook-id"));
    assert!(!c.is_empty() && !d.is_empty());
    assert_ne!(
        c, d,
        "a bus made again reused a delivery id of the deleted one"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Editing a rule mid-delivery keeps partition order.

#[tokio::test]
async fn rule_edit_hands_over_in_order() {
    let hook = Hook::start(|_, _| Answer {
        status: 200,
        retry_after: None,
        delay: Duration::from_millis(100),
    })
    .await;
    let s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    let extra = json!({"ordering": "partition", "concurrency": 8,
                       "retry": {"initial_backoff_ms": 20, "max_backoff_ms": 200}});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), extra)]);
    s.put_rule("default", "r", rule.clone()).await;
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let mut e = event(&format!("o{i}"), json!({"seq": i}));
            e["partitionkey"] = json!(format!("k{}", i % 4));
            e
        })
        .collect();
    assert_eq!(s.publish_batch("default", &events).await.status, 200);
    // Four keys, one request in flight per key, 100 ms each: about a second in all. Edit
    // the rule after the first two rounds.
    hook.until(Duration::from_secs(10), |hits| {
        (hits.len() >= 8).then_some(())
    })
    .await;
    let mut edited = rule;
    edited["targets"][0]["http"]["headers"] = json!({"x-rule-version": "2"});
    s.call(Method::PUT, "/v1/buses/default/rules/r", Some(edited), 200)
        .await;
    let want = ids("o", 40);
    hook.until(Duration::from_secs(20), |hits| {
        let ok = per_id(hits, |h| h.status == 200);
        want.iter().all(|id| ok.contains_key(id)).then_some(())
    })
    .await;
    let hits = hook.hits();
    let mut first_seen = BTreeSet::new();
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for h in &hits {
        if first_seen.insert(h.id().to_owned()) {
            per_key
                .entry(h.body["partitionkey"].as_str().unwrap().to_owned())
                .or_default()
                .push(h.body["data"]["seq"].as_u64().unwrap());
        }
    }
    for k in 0..4u64 {
        let want: Vec<u64> = (0..10).map(|n| k + 4 * n).collect();
        assert_eq!(per_key[&format!("k{k}")], want, "key k{k}");
    }
    // The last event of each key started long after the edit: it went out as edited.
    for id in ["o36", "o37", "o38", "o39"] {
        let of_it: Vec<&Hit> = hits.iter().filter(|h| h.id() == id).collect();
        assert!(!of_it.is_empty());
        assert!(
            of_it.iter().all(|h| h.header("x-rule-version") == "2"),
            "{id} was sent with the rule as it was before the edit"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. A replay running behind a backlog survives a SIGKILL.

#[tokio::test]
async fn replay_during_backlog_survives_sigkill() {
    // Assumes a replay is resumed after a restart (the README still says a restart forgets
    // replays).
    let hook = Hook::start(|_, _| status(200)).await;
    let mut s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    let extra = json!({"rate_limit_per_second": 100});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), extra)]);
    s.put_rule("default", "r", rule).await;
    let backlog = ids("b", 600);
    publish_ids(&s, "default", &backlog).await;
    // A replay window is read in milliseconds of receive time, `[from, to)`: 10 ms apart,
    // the 600 fall before `from` and the 50 within the window.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let from = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let later = ids("l", 50);
    publish_ids(&s, "default", &later).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let to = now_rfc3339();
    let started = s
        .call(
            Method::POST,
            "/v1/buses/default/replays",
            Some(json!({"from": from, "to": to})),
            202,
        )
        .await;
    let replay = started["id"].as_str().unwrap().to_owned();
    // 700 deliveries at 100/s take 7 s: kill after about 1.5 s.
    let n = hook
        .until(Duration::from_secs(10), |hits| {
            (hits.len() >= 150).then_some(hits.len())
        })
        .await;
    s.kill().await;
    assert!(
        n < 700,
        "the backlog was drained before the kill ({n} requests)"
    );
    s.start_again().await;
    hook.until(Duration::from_secs(60), |hits| {
        let plain = per_id(hits, |_| true);
        let replayed: BTreeSet<&str> = hits
            .iter()
            .filter(|h| h.replay() == Some(replay.as_str()))
            .map(|h| h.id())
            .collect();
        (backlog.iter().all(|id| plain.contains_key(id))
            && later
                .iter()
                .all(|id| plain.contains_key(id) && replayed.contains(id.as_str())))
        .then_some(())
    })
    .await;
    // The window held the 50 and none of the 600.
    let hits = hook.hits();
    let replayed: BTreeSet<&str> = hits
        .iter()
        .filter(|h| h.replay().is_some())
        .map(|h| h.id())
        .collect();
    let want: BTreeSet<&str> = later.iter().map(String::as_str).collect();
    assert_eq!(replayed, want);
}

// ---------------------------------------------------------------------------------------
// 10. Retention keeps an event while a delivery of it is pending.

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test]
async fn retention_keeps_events_with_pending_deliveries() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "libfaketime is needed (scripts/services.sh installs Debian's faketime)"
    );
    let hook = Hook::start(|_, _| unavailable_for(2)).await;
    // Small segments, so retention has whole segments to remove; it runs every second.
    let mut s = Server::start_with(
        Backend::Sqlite,
        &[
            "--target-allow-cidr",
            "127.0.0.0/8",
            "--segment-bytes",
            "2000",
            "--retention-interval-seconds",
            "1",
        ],
    )
    .await;
    let day = json!({"retention_hours": 24});
    s.call(Method::PUT, "/v1/buses/default", Some(day.clone()), 200)
        .await;
    s.call(Method::PUT, "/v1/buses/quiet", Some(day), 201).await;
    // Retried for up to 30 days: ten days on, the deliveries are still pending.
    let extra = json!({"retry": {"max_age_seconds": 2_592_000, "initial_backoff_ms": 100}});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), extra)]);
    s.put_rule("default", "r", rule).await;
    let pending = ids("p", 40);
    publish_ids(&s, "default", &pending).await;
    publish_ids(&s, "quiet", &ids("q", 40)).await;
    hook.until(Duration::from_secs(10), |hits| {
        (per_id(hits, |_| true).len() == 40).then_some(())
    })
    .await;
    // Ten days later, every event is past its retention (24 h).
    assert_eq!(s.stop().await, Some(0));
    s.set_env("LD_PRELOAD", LIBFAKETIME);
    s.set_env("FAKETIME", "+10d");
    s.set_env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    s.start_again().await;
    // The bus with nothing pending loses its events; retention visits "default" first in
    // each round, so by then it has run there too — and kept all 40.
    eventually(Duration::from_secs(15), || async {
        (stored(&s, "quiet").await == 0).then_some(())
    })
    .await;
    assert_eq!(stored(&s, "default").await, 40);
    // The target recovers: each pending event is delivered once, and then retention
    // removes them.
    hook.answer_with(|_, _| status(200));
    hook.until(Duration::from_secs(20), |hits| {
        let ok = per_id(hits, |h| h.status == 200);
        (ok.len() == 40).then_some(())
    })
    .await;
    let ok = per_id(&hook.hits(), |h| h.status == 200);
    assert!(ok.values().all(|n| *n == 1), "{ok:?}");
    eventually(Duration::from_secs(15), || async {
        (stored(&s, "default").await == 0).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// 9. The backlog gauge counts exactly the unresolved deliveries: only events that matched,
//    while the rule runs, while it is disabled, across a SIGKILL, and none once deleted.

fn backlog_line(n: u64) -> String {
    format!("switchyard_backlog_events{{bus=\"default\",rule=\"r\",target=\"hook\"}} {n}\n")
}

async fn backlog_is(s: &Server, n: u64) {
    let line = backlog_line(n);
    eventually(Duration::from_secs(15), || async {
        s.metrics().await.contains(&line).then_some(())
    })
    .await;
}

/// `n` events the rule matches (ids `{prefix}{i}`), each followed by one it does not.
async fn publish_mixed(s: &Server, prefix: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .flat_map(|i| {
            let mut other = event(&format!("{prefix}-other{i}"), json!(i));
            other["source"] = json!("/elsewhere");
            [event(&format!("{prefix}{i}"), json!(i)), other]
        })
        .collect();
    for chunk in events.chunks(250) {
        let r = s.publish_batch("default", chunk).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[tokio::test]
async fn backlog_counts_exactly_the_unresolved_deliveries() {
    let hook = Hook::start(|_, _| unavailable_for(600)).await;
    let mut s = Server::start_with(Backend::Sqlite, ALLOW_LOOPBACK).await;
    let extra = json!({"retry": {"initial_backoff_ms": 600000, "max_backoff_ms": 600000}});
    let rule = rule_with(vec![http_target("hook", &hook.url("/hook"), extra)]);
    s.put_rule("default", "r", rule.clone()).await;
    // More than a subscription's window (256): most wait on the log, not in memory.
    publish_mixed(&s, "a", 400).await;
    backlog_is(&s, 400).await;
    switch_rule(&s, Switch::Endpoints, &rule, false).await;
    backlog_is(&s, 400).await;
    // Paused across a SIGKILL: counted from the ledger and the log.
    s.kill().await;
    s.start_again().await;
    backlog_is(&s, 400).await;
    switch_rule(&s, Switch::Endpoints, &rule, true).await;
    publish_mixed(&s, "b", 20).await;
    backlog_is(&s, 420).await;
    s.kill().await;
    s.start_again().await;
    backlog_is(&s, 420).await;
    // Deleted: its deliveries are dropped and it has no backlog left to show.
    s.call(Method::DELETE, "/v1/buses/default/rules/r", None, 204)
        .await;
    eventually(Duration::from_secs(5), || async {
        (!s.metrics()
            .await
            .contains("switchyard_backlog_events{bus=\"default\",rule=\"r\""))
        .then_some(())
    })
    .await;
}
