//! The one way events enter a bus: from HTTP, from a `bus` target, from a dead-letter
//! queue. Checks declared schemas, matches rules, appends durably, counts, and wakes the
//! bus's dispatcher, indexer and schema discovery.

use std::collections::BTreeMap;

use serde_json::Value;
use switchyard_core::CloudEvent;
use switchyard_event_store::{Appended, LogError, NewRecord};
use switchyard_schema_registry::Violation;

use std::sync::Arc;

use crate::buses::Bus;
use crate::dispatch::journal::{Stage, TraceStep};
use crate::meta::SchemaValidation;
use crate::metrics::{BusLabel, Metrics, RuleLabels, SchemaLabels};
use crate::schemas::{SAMPLES, Schemas, Sighting};
use switchyard_core::time::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// The bus enforces schemas and these events (by index) break theirs; nothing was stored.
    #[error("{} of the events break their declared schema", .0.len())]
    Schema(Vec<(usize, Vec<Violation>)>),
}

/// What ingest checks against and counts into.
pub struct Ingest {
    pub schemas: Arc<Schemas>,
    pub metrics: Arc<Metrics>,
    /// Whether events are sighted for schema discovery.
    pub discovery: bool,
}

impl Ingest {
    /// Appends validated events; returns `(id, source, outcome)` per event, in order.
    pub async fn append(
        &self,
        bus: &Bus,
        events: Vec<CloudEvent>,
    ) -> Result<Vec<(String, String, Appended)>, IngestError> {
        let state = self;
        let violations = check_schemas(state, bus, &events);
        if bus.settings.schema_validation == SchemaValidation::Enforce && !violations.is_empty() {
            return Err(IngestError::Schema(violations));
        }
        let received_at_ms = now_ms();
        let discovery = state.discovery;
        let mut keys = Vec::with_capacity(events.len());
        let mut sightings: BTreeMap<(String, String), Sighting> = BTreeMap::new();
        let records: Vec<NewRecord> = {
            // Rules are read once per request: a rule stored before this request arrived
            // applies to all of its events, one stored after it to none.
            let rules = bus.rules();
            events
                .into_iter()
                .map(|e| {
                    keys.push((e.id.clone(), e.source.clone(), e.ty.clone()));
                    if discovery {
                        sight(&mut sightings, &e, received_at_ms);
                    }
                    NewRecord {
                        matched_rules: rules.matches(&e.json),
                        source: e.source,
                        id: e.id,
                        received_at_ms,
                        payload: e.json,
                    }
                })
                .collect()
        };
        let matched: Vec<Vec<String>> = records.iter().map(|r| r.matched_rules.clone()).collect();
        let appended = bus.log.append(records).await?;
        record_ingest_metrics(state, &bus.settings.name, &appended, &matched);
        if matched.iter().any(|m| !m.is_empty()) {
            bus.dispatch.appended(&appended, &matched);
            bus.dispatch.wake();
        }
        bus.indexer.wake();
        if let Some(announcer) = &bus.announcer {
            announcer.announce().await;
        }
        // Duplicates were seen before: they are not sightings.
        for ((_, source, ty), a) in keys.iter().zip(&appended) {
            if let (Appended::Duplicate { .. }, Some(s)) =
                (a, sightings.get_mut(&(source.clone(), ty.clone())))
            {
                s.count -= 1;
            }
        }
        state
            .schemas
            .sighted(sightings.into_values().filter(|s| s.count > 0).collect());
        for (i, found) in &violations {
            let (id, source, ty) = &keys[*i];
            if let Appended::New { offset } = appended[*i] {
                record_violations(state, bus, (source, id, ty), offset, found).await;
            }
        }
        Ok(keys
            .into_iter()
            .zip(appended)
            .map(|((id, source, _), a)| (id, source, a))
            .collect())
    }
}

/// Counts an event for discovery, keeping a few samples of each (source, type).
fn sight(sightings: &mut BTreeMap<(String, String), Sighting>, e: &CloudEvent, at_ms: i64) {
    let s = sightings
        .entry((e.source.clone(), e.ty.clone()))
        .or_insert_with(|| Sighting {
            source: e.source.clone(),
            ty: e.ty.clone(),
            count: 0,
            at_ms,
            samples: Vec::new(),
        });
    s.count += 1;
    if s.samples.len() < SAMPLES {
        s.samples.push(e.json.clone());
    }
}

/// Violations of declared schemas, by event index (none when the bus does not validate).
fn check_schemas(state: &Ingest, bus: &Bus, events: &[CloudEvent]) -> Vec<(usize, Vec<Violation>)> {
    if bus.settings.schema_validation == SchemaValidation::Off {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Some(validator) = state.schemas.validator(&e.source, &e.ty) else {
            continue;
        };
        let data = serde_json::from_slice::<Value>(&e.json)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(Value::take))
            .unwrap_or(Value::Null);
        let found = validator.validate(&data);
        if !found.is_empty() {
            out.push((i, found));
        }
    }
    out
}

/// On a `warn` bus: the violations go on the event's trace and into a counter.
async fn record_violations(
    state: &Ingest,
    bus: &Bus,
    (source, id, ty): (&str, &str, &str),
    offset: u64,
    found: &[Violation],
) {
    state
        .metrics
        .schema_violations
        .get_or_create(&SchemaLabels {
            bus: bus.settings.name.clone(),
            r#type: ty.to_owned(),
        })
        .inc();
    let mut entry = TraceStep::new(offset, Stage::SchemaViolation);
    entry.at_ms = now_ms();
    entry.error = Some(
        found
            .iter()
            .map(|v| format!("{}: {}", v.pointer, v.message))
            .collect::<Vec<_>>()
            .join("; "),
    );
    bus.dispatch.journal.record(source, id, entry).await;
}

/// Counts stored events and rule matches; duplicates count for neither.
fn record_ingest_metrics(
    state: &Ingest,
    bus: &str,
    appended: &[Appended],
    matched: &[Vec<String>],
) {
    let mut new = 0;
    for (a, rules) in appended.iter().zip(matched) {
        if matches!(a, Appended::New { .. }) {
            new += 1;
            for rule in rules {
                state
                    .metrics
                    .rule_matches
                    .get_or_create(&RuleLabels {
                        bus: bus.to_owned(),
                        rule: rule.clone(),
                    })
                    .inc();
            }
        }
    }
    state
        .metrics
        .events_ingested
        .get_or_create(&BusLabel {
            bus: bus.to_owned(),
        })
        .inc_by(new);
}

#[cfg(test)]
mod tests;
