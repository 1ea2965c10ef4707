//! Replays: stored events of a time window run again through the bus's current rules (or
//! one rule), delivered to those rules' targets with a `replayid` extension. Each step's
//! deliveries enter the ledger together with the replay's progress, so a restart resumes a
//! running replay where it got to, and its deliveries where they were.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ledger::ReplayRecord;
use super::ownership::replay_claim;
use super::{BusDispatch, Event};
use crate::ruleset::RuleSet;
use switchyard_core::time::now_ms;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Done,
    Failed,
}

/// What a replay did so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// The replays this node is running.
    runners: Mutex<std::collections::HashSet<String>>,
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

    /// Records a new replay; returns the oldest finished ones past [`KEPT_REPLAYS`],
    /// forgotten.
    fn insert(&self, progress: Progress) -> Vec<String> {
        let mut all = self.lock();
        all.insert(progress.id.clone(), progress);
        let mut forgotten = Vec::new();
        while all.len() > KEPT_REPLAYS {
            let oldest_finished = all
                .values()
                .filter(|p| p.status != Status::Running)
                .min_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)))
                .map(|p| p.id.clone());
            match oldest_finished {
                Some(id) => {
                    all.remove(&id);
                    forgotten.push(id);
                }
                None => break,
            };
        }
        forgotten
    }

    fn runners(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.runners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node runs replay `id`.
    pub fn running(&self, id: &str) -> bool {
        self.runners().contains(id)
    }

    fn started(&self, id: &str) {
        self.runners().insert(id.to_owned());
    }

    fn stopped(&self, id: &str) {
        self.runners().remove(id);
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Progress)) {
        if let Some(p) = self.lock().get_mut(id) {
            f(p);
        }
    }
}

/// Starts a replay of events received in `[from_ms, to_ms)`; returns its first progress,
/// once it is saved.
pub async fn start(
    dispatch: Arc<BusDispatch>,
    rules: Arc<RwLock<RuleSet>>,
    from_ms: i64,
    to_ms: i64,
    rule: Option<String>,
) -> Result<Progress, sqlx::Error> {
    let id = format!("rp-{}-{:08x}", now_ms(), fastrand::u32(..));
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
    let position = dispatch.log.bounds().first.unwrap_or(0);
    if let Some(o) = &dispatch.ports.ownership {
        // A new id: no other node holds it.
        o.claim(&replay_claim(&dispatch.bus, &id)).await;
    }
    save(&dispatch, &progress, position, Vec::new()).await?;
    remember(&dispatch, progress.clone()).await;
    spawn(dispatch, rules, progress.clone(), from_ms, to_ms, position);
    Ok(progress)
}

/// Loads a bus's replays as saved and resumes those that were running (when nodes share
/// the buses: those no other node runs — whose claim it can take).
pub async fn resume(dispatch: &Arc<BusDispatch>, rules: &Arc<RwLock<RuleSet>>) {
    take_over(dispatch, rules).await;
}

/// The same, at any time (nodes sharing the buses: a replay whose node died goes on here
/// once its claim expires): the saved ones are remembered, and a running one this node does
/// not run is resumed if its claim can be taken.
pub async fn take_over(dispatch: &Arc<BusDispatch>, rules: &Arc<RwLock<RuleSet>>) {
    let saved = match dispatch.ports.ledger.replays(&dispatch.bus).await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::error!(bus = %dispatch.bus, error = %e, "loading replays failed");
            return;
        }
    };
    for record in saved {
        let Ok(progress) = serde_json::from_str::<Progress>(&record.progress) else {
            tracing::warn!(bus = %dispatch.bus, replay = %record.id, "a saved replay is unreadable; skipped");
            continue;
        };
        let window = (
            switchyard_core::time::parse_instant_ms(&progress.from),
            switchyard_core::time::parse_instant_ms(&progress.to),
        );
        let running_here = dispatch.replays.running(&progress.id);
        if !running_here {
            remember(dispatch, progress.clone()).await;
        }
        if progress.status == Status::Running
            && !running_here
            && let (Some(from_ms), Some(to_ms)) = window
            && claim(dispatch, &progress.id).await
        {
            spawn(
                dispatch.clone(),
                rules.clone(),
                progress,
                from_ms,
                to_ms,
                record.position,
            );
        }
    }
}

/// Why a replay's run ended early.
enum Stop {
    Failed(String),
    /// Another node took the replay's claim (this one stalled past it): it runs it now.
    Lost,
}

/// Takes or extends this node's claim on replay `id`; always `true` on one node.
async fn claim(dispatch: &BusDispatch, id: &str) -> bool {
    match &dispatch.ports.ownership {
        Some(o) => o.claim(&replay_claim(&dispatch.bus, id)).await,
        None => true,
    }
}

/// Keeps a replay in the bus's list, forgetting the oldest finished ones.
async fn remember(dispatch: &BusDispatch, progress: Progress) {
    for id in dispatch.replays.insert(progress) {
        if let Err(e) = dispatch
            .ports
            .ledger
            .forget_replay(&dispatch.bus, &id)
            .await
        {
            tracing::warn!(bus = %dispatch.bus, replay = %id, error = %e, "forgetting a finished replay failed");
        }
    }
}

fn spawn(
    dispatch: Arc<BusDispatch>,
    rules: Arc<RwLock<RuleSet>>,
    progress: Progress,
    from_ms: i64,
    to_ms: i64,
    position: u64,
) {
    dispatch.replays.started(&progress.id);
    tokio::spawn(async move {
        let id = progress.id.clone();
        let rule = progress.rule.clone();
        let result = run(
            &dispatch,
            &rules,
            progress,
            from_ms,
            to_ms,
            rule.as_deref(),
            position,
        )
        .await;
        dispatch.replays.stopped(&id);
        if matches!(result, Err(Stop::Lost)) {
            // Another node runs it now.
            return;
        }
        dispatch.replays.update(&id, |p| {
            p.finished_at = Some(switchyard_core::time::format_ms(now_ms()));
            match result {
                Ok(()) => p.status = Status::Done,
                Err(Stop::Failed(e)) => {
                    p.status = Status::Failed;
                    p.error = Some(e);
                }
                Err(Stop::Lost) => {}
            }
        });
        if let Some(done) = dispatch.replays.get(&id)
            && let Err(e) = save(&dispatch, &done, u64::MAX, Vec::new()).await
        {
            tracing::warn!(bus = %dispatch.bus, replay = %id, error = %e, "saving a finished replay failed");
        }
        if let Some(o) = &dispatch.ports.ownership {
            o.unclaim(&replay_claim(&dispatch.bus, &id)).await;
        }
    });
}

/// Saves the replay's progress (and position) with the deliveries of one step.
async fn save(
    dispatch: &BusDispatch,
    progress: &Progress,
    position: u64,
    events: Vec<(Arc<Event>, Vec<String>)>,
) -> Result<u64, sqlx::Error> {
    let record = ReplayRecord {
        id: progress.id.clone(),
        position,
        progress: serde_json::to_string(progress).unwrap_or_default(),
    };
    dispatch.replay_step(&progress.id, events, &record).await
}

/// Replays `[from_ms, to_ms)` from log offset `at`, a step (one read of the log) at a
/// time; the steps are bounded by the workers taking their deliveries.
async fn run(
    dispatch: &BusDispatch,
    rules: &RwLock<RuleSet>,
    mut progress: Progress,
    from_ms: i64,
    to_ms: i64,
    only: Option<&str>,
    mut at: u64,
) -> Result<(), Stop> {
    let log = dispatch.log.clone();
    let id = progress.id.clone();
    at = at.max(log.bounds().first.unwrap_or(0));
    loop {
        if !claim(dispatch, &id).await {
            return Err(Stop::Lost);
        }
        let records = log
            .read(at, 500)
            .await
            .map_err(|e| Stop::Failed(e.to_string()))?;
        if records.is_empty() {
            return Ok(());
        }
        let mut step = Vec::new();
        let mut past_window = false;
        for record in records {
            if record.received_at_ms >= to_ms {
                past_window = true;
                break;
            }
            at = record.offset + 1;
            if record.received_at_ms < from_ms {
                continue;
            }
            let matched: Vec<String> = rules
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .matches(&record.payload)
                .into_iter()
                .filter(|r| only.is_none_or(|o| o == r))
                .collect();
            progress.scanned += 1;
            if matched.is_empty() {
                continue;
            }
            progress.matched += 1;
            let mut value: Value = serde_json::from_slice(&record.payload).unwrap_or(Value::Null);
            if let Some(obj) = value.as_object_mut() {
                obj.insert("replayid".into(), Value::from(id.as_str()));
            }
            let payload = serde_json::to_vec(&value).map_err(|e| Stop::Failed(e.to_string()))?;
            step.push((Arc::new(Event::from_json(record.offset, payload)), matched));
        }
        let made = save(dispatch, &progress, at, step)
            .await
            .map_err(|e| Stop::Failed(format!("saving the replay's progress: {e}")))?;
        progress.deliveries += made;
        let snapshot = progress.clone();
        dispatch.replays.update(&id, |p| *p = snapshot);
        if past_window {
            return Ok(());
        }
    }
}
