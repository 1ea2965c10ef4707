//! The one way events enter a bus: from HTTP, from a `bus` target, from a dead-letter
//! queue. Matches rules, appends durably, counts, and wakes the bus's dispatcher.

use switchyard_core::CloudEvent;
use switchyard_event_store::{Appended, LogError, NewRecord};

use crate::app::{AppState, now_ms};
use crate::buses::Bus;
use crate::metrics::{BusLabel, RuleLabels};

/// Appends validated events; returns `(id, source, outcome)` per event, in order.
pub async fn append(
    state: &AppState,
    bus: &Bus,
    events: Vec<CloudEvent>,
) -> Result<Vec<(String, String, Appended)>, LogError> {
    let received_at_ms = now_ms();
    let mut keys = Vec::with_capacity(events.len());
    let records: Vec<NewRecord> = {
        // Rules are read once per request: a rule stored before this request arrived
        // applies to all of its events, one stored after it to none.
        let rules = bus.rules();
        events
            .into_iter()
            .map(|e| {
                keys.push((e.id.clone(), e.source.clone()));
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
        bus.dispatch.wake();
    }
    bus.indexer.wake();
    Ok(keys
        .into_iter()
        .zip(appended)
        .map(|((id, source), a)| (id, source, a))
        .collect())
}

/// Counts stored events and rule matches; duplicates count for neither.
fn record_ingest_metrics(
    state: &AppState,
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
