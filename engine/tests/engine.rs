//! The engine without a server: opened on a temp dir with SQLite, rules changed through the
//! engine (stored, matched, paused, deleted), and a `bus` target forwarding through the
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
use switchyard_engine::{Engine, EngineConfig, LogConfig, RuleError};

const LIMITS: Limits = Limits {
    max_event_bytes: 256 * 1024,
    max_batch_events: 100,
};

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    engine_on(dir, LogConfig::Embedded).await
}

async fn engine_on(dir: &std::path::Path, log: LogConfig) -> Arc<Engine> {
    let config = EngineConfig {
        log,
        cluster: None,
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
async fn rules_are_stored_matched_paused_and_deleted_through_the_engine() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let engine = engine(dir.path()).await;
    let bus = engine.buses.get("default").expect("the default bus");
    let orders = || rule("orders", json!({"type": ["order"]}), json!([]));
    let (_, created) = engine.put_rule("default", orders()).await.expect("stored");
    assert!(created);
    let (_, created) = engine
        .put_rule("default", orders())
        .await
        .expect("replaced");
    assert!(!created);
    let matched = |id: &str| bus.rules().matches(event(id, "order").json.as_slice());
    assert_eq!(matched("a"), ["orders"]);
    let (paused, inactive) = engine
        .set_rule_enabled("default", "orders", false)
        .await
        .expect("paused");
    assert_eq!((paused.enabled, inactive), (false, None));
    assert!(matched("b").is_empty());
    engine
        .set_rule_enabled("default", "orders", true)
        .await
        .expect("resumed");
    assert_eq!(matched("c"), ["orders"]);
    engine
        .delete_rule("default", "orders")
        .await
        .expect("deleted");
    assert!(matched("d").is_empty());
    let gone = engine.delete_rule("default", "orders").await;
    assert!(matches!(gone, Err(RuleError::NoRule(r)) if r == "orders"));
    let bad = rule("bad", json!({"type": "order"}), json!([]));
    let refused = engine.put_rule("default", bad).await;
    assert!(matches!(refused, Err(RuleError::Spec(_))), "{refused:?}");
    let nowhere = engine.put_rule("nowhere", orders()).await;
    assert!(matches!(nowhere, Err(RuleError::NoBus(b)) if b == "nowhere"));
    engine.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_target_forwards_through_the_publisher() {
    forwards_through_the_publisher(LogConfig::Embedded).await;
}

/// The same on bus logs in JetStream (the machine's NATS), streams removed after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_target_forwards_through_the_publisher_on_jetstream() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    let prefix = format!("sy-engine-{}-{nanos}", std::process::id());
    forwards_through_the_publisher(LogConfig::JetStream {
        servers: vec!["nats://127.0.0.1:4222".to_owned()],
        replicas: 1,
        prefix: prefix.clone(),
    })
    .await;
    let client = async_nats::connect("127.0.0.1:4222")
        .await
        .expect("NATS with JetStream runs at 127.0.0.1:4222");
    let js = async_nats::jetstream::new(client);
    // The audit bus's stream went with the bus; the default bus's is still there.
    assert!(js.get_stream(format!("{prefix}_audit")).await.is_err());
    assert!(
        js.get_stream(format!("{prefix}-journal_audit"))
            .await
            .is_err()
    );
    for stream in [
        format!("{prefix}_default"),
        format!("{prefix}-journal_default"),
    ] {
        js.delete_stream(stream)
            .await
            .expect("the default bus's streams");
    }
}

async fn forwards_through_the_publisher(log: LogConfig) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let engine = engine_on(dir.path(), log).await;
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
    // Forwarded under the delivery's id, the event's own kept.
    let id = event["id"].as_str().expect("an id");
    assert!(
        id.starts_with("default.") && id.ends_with(":0:to-audit:fwd"),
        "{id}"
    );
    assert_eq!(
        (&event["forwardedid"], &event["switchyardhops"]),
        (&json!("x"), &json!(1))
    );
    assert!(!engine.delete_bus("nope").await.expect("no error"));
    assert!(engine.delete_bus("audit").await.expect("deleted"));
    assert!(engine.buses.get("audit").is_none());
    engine.close().await;
}
