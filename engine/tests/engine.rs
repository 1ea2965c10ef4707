//! The engine without a server: opened on a temp dir with SQLite, events appended through
//! ingest, rules matched, duplicates refused, and a `bus` target forwarding through the
//! engine's publisher to a second bus. (The indexers block in place, so the runtime is
//! multi-threaded.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_core::Limits;
use switchyard_core::Name;
use switchyard_core::cloudevent::parse_structured;
use switchyard_engine::NewRule;
use switchyard_engine::meta::{BusSettings, SchemaValidation};
use switchyard_engine::{Engine, EngineConfig};
use switchyard_event_store::Appended;

const LIMITS: Limits = Limits {
    max_event_bytes: 256 * 1024,
    max_batch_events: 100,
};

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let config = EngineConfig {
        data_dir: dir.to_path_buf(),
        database_url: format!("sqlite://{}?mode=rwc", dir.join("meta.db").display()),
        dedup_window_ms: 3_600_000,
        segment_bytes: 1 << 20,
        limits: LIMITS,
        address_policy: Default::default(),
        schema_discovery: true,
        max_schema_subjects: 100,
        retention_interval: Duration::from_secs(3600),
    };
    let engine = Arc::new(Engine::open(config).await.expect("opens"));
    engine.start().await.expect("starts");
    engine
}

fn event(id: &str, ty: &str) -> switchyard_core::CloudEvent {
    let json =
        json!({"specversion": "1.0", "id": id, "source": "shop", "type": ty, "data": {"n": 1}});
    parse_structured(json.to_string().as_bytes(), &LIMITS).expect("a valid event")
}

fn rule(name: &str, pattern: Value, targets: Value) -> NewRule {
    NewRule {
        name: Name::parse(name).expect("a rule name"),
        description: None,
        enabled: true,
        pattern,
        targets: serde_json::from_value(targets).expect("targets as written"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_matches_rules_and_refuses_duplicates() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let engine = engine(dir.path()).await;
    let bus = engine.buses.get("default").expect("the default bus");
    engine
        .put_rule(
            "default",
            rule("orders", json!({"type": ["order"]}), json!([])),
        )
        .await
        .expect("a valid rule");
    let appended = engine
        .ingest
        .append(
            &bus,
            vec![
                event("a", "order"),
                event("b", "refund"),
                event("a", "order"),
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
            ("b", &Appended::New { offset: 1 }),
            ("a", &Appended::Duplicate { offset: 0 }),
        ]
    );
    let stored = bus.log.read(0, 10).await.expect("read");
    let matched: Vec<&[String]> = stored.iter().map(|r| r.matched_rules.as_slice()).collect();
    assert_eq!(matched, [&["orders".to_owned()][..], &[][..]]);
    let metrics = engine.metrics.encode().expect("metrics");
    assert!(
        metrics.contains("switchyard_events_ingested_total{bus=\"default\"} 2"),
        "{metrics}"
    );
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_target_forwards_through_the_publisher() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let engine = engine(dir.path()).await;
    let (created, audit) = engine
        .put_bus(BusSettings {
            name: "audit".to_owned(),
            description: None,
            retention_hours: 24,
            schema_validation: SchemaValidation::Off,
        })
        .await
        .expect("bus stored");
    assert!(created);
    let bus = engine.buses.get("default").expect("the default bus");
    let (stored, created) = engine
        .put_rule(
            "default",
            rule(
                "to-audit",
                json!({"source": ["shop"]}),
                json!([{"id": "fwd", "kind": "bus", "bus": "audit"}]),
            ),
        )
        .await
        .expect("a valid rule");
    assert!(created);
    assert_eq!(stored.targets[0].id, "fwd");
    engine
        .ingest
        .append(&bus, vec![event("x", "order")])
        .await
        .expect("appended");
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    let forwarded = loop {
        let records = audit.log.read(0, 10).await.expect("read");
        if !records.is_empty() {
            break records;
        }
        assert!(std::time::Instant::now() < give_up, "nothing forwarded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let event: Value = serde_json::from_slice(&forwarded[0].payload).expect("JSON");
    assert_eq!(
        (&event["id"], &event["switchyardhops"]),
        (&json!("x"), &json!(1))
    );
    assert!(!engine.delete_bus("nope").await.expect("no error"));
    assert!(engine.delete_bus("audit").await.expect("deleted"));
    assert!(engine.buses.get("audit").is_none());
    engine.close().await;
}
