//! Ingest without a server, on tokio's paused clock: a real bus (segmented log, journal,
//! indexers) over in-memory delivery stores, with delivery not started, so what ingest
//! itself does is all that happens: rules matched per request, duplicates counted once,
//! schemas enforced or reported.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::{CloudEvent, Limits};
use switchyard_event_store::Appended;

use super::{Ingest, IngestError};
use crate::buses::{Bus, Buses};
use crate::dispatch::journal::Stage;
use crate::meta::{BusSettings, MetaStore, SchemaValidation, StoredRule};
use crate::metrics::Metrics;
use crate::schemas::Schemas;

struct Fixture {
    _dir: tempfile::TempDir,
    ingest: Ingest,
    metrics: Arc<Metrics>,
    bus: Arc<Bus>,
}

/// A bus validating schemas as `validation` says, where (`shop`, `order`) declares
/// `data.total` a number; set up on the real clock, which is then paused.
async fn fixture(validation: SchemaValidation) -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ports, _) = crate::testing::ports(dir.path()).await;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
    let meta = MetaStore::connect(&url).await.expect("the metadata store");
    let metrics = ports.metrics.clone();
    let schemas = Schemas::load(&meta, 100, metrics.schema_subjects_refused.clone())
        .await
        .expect("schemas");
    let schema = json!({"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]});
    schemas
        .declare(&meta, "shop", "order", schema)
        .await
        .expect("declared");
    meta.close().await;
    let buses = Buses::new(
        dir.path().join("buses"),
        crate::buses::LogBackend::Embedded(Buses::log_options(60_000, 1 << 20)),
        ports,
    );
    let bus = buses
        .install(BusSettings {
            name: "b".to_owned(),
            description: None,
            retention_hours: 24,
            schema_validation: validation,
        })
        .await
        .expect("the bus");
    let rule = StoredRule {
        bus: "b".to_owned(),
        name: "orders".to_owned(),
        description: None,
        enabled: true,
        pattern: json!({"type": ["order"]}).to_string(),
        targets: Vec::new(),
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    bus.rules_mut()
        .put(rule, Vec::new())
        .expect("a valid pattern");
    tokio::time::pause();
    Fixture {
        _dir: dir,
        ingest: Ingest {
            schemas: Arc::new(schemas),
            metrics: metrics.clone(),
            discovery: false,
        },
        metrics,
        bus,
    }
}

fn event(id: &str, ty: &str, data: Value) -> CloudEvent {
    let json = json!({"specversion": "1.0", "id": id, "source": "shop", "type": ty, "data": data});
    switchyard_core::cloudevent::parse_structured(json.to_string().as_bytes(), &Limits::default())
        .expect("a valid event")
}

fn metric(metrics: &Metrics, line_start: &str) -> Option<String> {
    let text = metrics.encode().expect("metrics");
    text.lines()
        .find(|l| l.starts_with(line_start))
        .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn events_match_the_rules_and_a_duplicate_counts_once() {
    let f = fixture(SchemaValidation::Off).await;
    let appended = f
        .ingest
        .append(
            &f.bus,
            vec![
                event("a", "order", json!({"total": 1})),
                event("r", "refund", json!({})),
                event("a", "order", json!({"total": 1})),
            ],
        )
        .await
        .expect("appended");
    let outcomes: Vec<(&str, &Appended)> =
        appended.iter().map(|(id, _, a)| (id.as_str(), a)).collect();
    assert_eq!(
        outcomes,
        [
            ("a", &Appended::New { offset: 0 }),
            ("r", &Appended::New { offset: 1 }),
            ("a", &Appended::Duplicate { offset: 0 }),
        ]
    );
    let stored = f.bus.log.read(0, 10).await.expect("read");
    let matched: Vec<&[String]> = stored.iter().map(|r| r.matched_rules.as_slice()).collect();
    assert_eq!(matched, [&["orders".to_owned()][..], &[][..]]);
    assert_eq!(
        metric(&f.metrics, "switchyard_events_ingested_total{bus=\"b\"}").as_deref(),
        Some("2")
    );
    assert_eq!(
        metric(
            &f.metrics,
            "switchyard_rule_matches_total{bus=\"b\",rule=\"orders\"}"
        )
        .as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn a_rule_applies_from_the_next_request_on() {
    let f = fixture(SchemaValidation::Off).await;
    f.ingest
        .append(&f.bus, vec![event("before", "order", json!({"total": 1}))])
        .await
        .expect("appended");
    f.bus.rules_mut().remove("orders");
    f.ingest
        .append(&f.bus, vec![event("after", "order", json!({"total": 1}))])
        .await
        .expect("appended");
    let stored = f.bus.log.read(0, 10).await.expect("read");
    let matched: Vec<(&str, usize)> = stored
        .iter()
        .map(|r| (r.id.as_str(), r.matched_rules.len()))
        .collect();
    assert_eq!(matched, [("before", 1), ("after", 0)]);
}

#[tokio::test]
async fn an_enforcing_bus_stores_nothing_of_a_batch_with_a_violation() {
    let f = fixture(SchemaValidation::Enforce).await;
    let refused = f
        .ingest
        .append(
            &f.bus,
            vec![
                event("good", "order", json!({"total": 5})),
                event("bad", "order", json!({"total": "five"})),
                event("other", "refund", json!({"total": "five"})),
            ],
        )
        .await;
    let Err(IngestError::Schema(found)) = refused else {
        panic!("expected a schema refusal, got {refused:?}");
    };
    let found: Vec<(usize, Vec<String>)> = found
        .into_iter()
        .map(|(i, vs)| (i, vs.into_iter().map(|v| v.pointer).collect()))
        .collect();
    assert_eq!(found, [(1, vec!["/data/total".to_owned()])]);
    assert_eq!(f.bus.log.bounds().next, 0);
    assert_eq!(
        metric(&f.metrics, "switchyard_events_ingested_total{bus=\"b\"}"),
        None
    );
}

#[tokio::test]
async fn a_warning_bus_stores_the_event_and_puts_the_violation_on_its_trace() {
    let f = fixture(SchemaValidation::Warn).await;
    let appended = f
        .ingest
        .append(
            &f.bus,
            vec![event("bad", "order", json!({"total": "five"}))],
        )
        .await
        .expect("stored despite the violation");
    assert_eq!(appended[0].2, Appended::New { offset: 0 });
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    let steps = loop {
        let steps = f
            .bus
            .dispatch
            .journal
            .entries("shop", "bad", 0)
            .await
            .expect("the journal reads");
        if !steps.is_empty() {
            break steps;
        }
        assert!(std::time::Instant::now() < give_up, "no trace step");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let seen: Vec<(Stage, Option<&str>)> = steps
        .iter()
        .map(|s| (s.stage, s.error.as_deref()))
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, Stage::SchemaViolation);
    assert!(
        seen[0].1.is_some_and(|e| e.starts_with("/data/total: ")),
        "{seen:?}"
    );
    assert_eq!(
        metric(
            &f.metrics,
            "switchyard_schema_violations_total{bus=\"b\",type=\"order\"}"
        )
        .as_deref(),
        Some("1")
    );
}
