//! Replays: stored events of a time window run again through the bus's current rules (or
//! one rule), delivered to those rules' targets with a `replayid` extension. Progress lives
//! in memory: a restart forgets replays (their deliveries so far stand).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde_json::Value;

use super::{BusDispatch, Event};
use crate::ruleset::RuleSet;
use switchyard_core::time::now_ms;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Done,
    Failed,
}

/// What a replay did so far.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub id: String,
    pub status: Status,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Events of the window read so far.
    pub scanned: u64,
    /// Of those, events that matched a rule replayed.
    pub matched: u64,
    /// Deliveries handed to targets.
    pub deliveries: u64,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Finished replays remembered per bus; running ones are always kept.
pub const KEPT_REPLAYS: usize = 100;

#[derive(Default)]
pub struct Replays {
    all: Mutex<BTreeMap<String, Progress>>,
}

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Progress>> {
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Progress> {
        self.lock().get(id).cloned()
    }

    pub fn list(&self) -> Vec<Progress> {
        self.lock().values().cloned().collect()
    }

    /// Records a new replay, forgetting the oldest finished ones past [`KEPT_REPLAYS`].
    fn insert(&self, progress: Progress) {
        let mut all = self.lock();
        all.insert(progress.id.clone(), progress);
        while all.len() > KEPT_REPLAYS {
            let oldest_finished = all
                .values()
                .filter(|p| p.status != Status::Running)
                .min_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)))
                .map(|p| p.id.clone());
            match oldest_finished {
                Some(id) => all.remove(&id),
                None => break,
            };
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Progress)) {
        if let Some(p) = self.lock().get_mut(id) {
            f(p);
        }
    }
}

/// Starts a replay of events received in `[from_ms, to_ms)`; returns its first progress.
pub fn start(
    dispatch: Arc<BusDispatch>,
    rules: Arc<RwLock<RuleSet>>,
    from_ms: i64,
    to_ms: i64,
    rule: Option<String>,
) -> Progress {
    let id = format!("rp-{}-{}", now_ms(), fastrand::u32(..));
    let progress = Progress {
        id: id.clone(),
        status: Status::Running,
        from: switchyard_core::time::format_ms(from_ms),
        to: switchyard_core::time::format_ms(to_ms),
        rule: rule.clone(),
        scanned: 0,
        matched: 0,
        deliveries: 0,
        started_at: switchyard_core::time::format_ms(now_ms()),
        finished_at: None,
        error: None,
    };
    dispatch.replays.insert(progress.clone());
    tokio::spawn(async move {
        let result = run(&dispatch, &rules, &id, from_ms, to_ms, rule.as_deref()).await;
        dispatch.replays.update(&id, |p| {
            p.finished_at = Some(switchyard_core::time::format_ms(now_ms()));
            match result {
                Ok(()) => p.status = Status::Done,
                Err(e) => {
                    p.status = Status::Failed;
                    p.error = Some(e);
                }
            }
        });
    });
    progress
}

async fn run(
    dispatch: &BusDispatch,
    rules: &RwLock<RuleSet>,
    id: &str,
    from_ms: i64,
    to_ms: i64,
    only: Option<&str>,
) -> Result<(), String> {
    let log = dispatch.log.clone();
    let mut at = log.bounds().first.unwrap_or(0);
    loop {
        let records = log.read(at, 500).await.map_err(|e| e.to_string())?;
        if records.is_empty() {
            return Ok(());
        }
        for record in records {
            at = record.offset + 1;
            if record.received_at_ms < from_ms {
                continue;
            }
            if record.received_at_ms >= to_ms {
                return Ok(());
            }
            let matched: Vec<String> = rules
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .matches(&record.payload)
                .into_iter()
                .filter(|r| only.is_none_or(|o| o == r))
                .collect();
            dispatch.replays.update(id, |p| p.scanned += 1);
            if matched.is_empty() {
                continue;
            }
            let mut value: Value = serde_json::from_slice(&record.payload).unwrap_or(Value::Null);
            if let Some(obj) = value.as_object_mut() {
                obj.insert("replayid".into(), Value::from(id));
            }
            let payload = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
            let event = Arc::new(Event::from_json(record.offset, payload));
            let mut sent = 0;
            for rule in &matched {
                sent += dispatch.replay(rule, event.clone(), id).await as u64;
            }
            dispatch.replays.update(id, |p| {
                p.matched += 1;
                p.deliveries += sent;
            });
        }
    }
}
