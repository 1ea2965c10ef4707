//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BusLabel {
    pub bus: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub bus: String,
    pub rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub bus: String,
    pub rule: String,
    pub target: String,
    /// `delivered`, `failed` (an attempt failed, a retry is scheduled) or `dead_lettered`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub bus: String,
    pub rule: String,
    pub target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchemaLabels {
    pub bus: String,
    pub r#type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub function: String,
    /// `ok`, or the failure code: `timeout`, `fuel_exhausted`, `memory`, `trap`, `exit`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: String,
    /// `accepted`, or the error code it was refused with (`invalid_signature`, …).
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub events_ingested: Family<BusLabel, Counter>,
    pub ingest_latency: Histogram,
    pub rule_matches: Family<RuleLabels, Counter>,
    /// Mirrors of each bus log's own counters, refreshed at every scrape.
    pub log_records: Family<BusLabel, Counter>,
    pub log_syncs: Family<BusLabel, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub delivery_latency: Histogram,
    /// Refreshed at every scrape.
    pub backlog: Family<TargetLabels, Gauge>,
    /// Refreshed at every scrape.
    pub index_lag: Family<BusLabel, Gauge>,
    pub schema_violations: Family<SchemaLabels, Counter>,
    pub function_invocations: Family<FunctionLabels, Counter>,
    pub function_duration: Histogram,
    pub webhook_requests: Family<WebhookLabels, Counter>,
    /// New (source, type) pairs schema discovery turned away at its cap.
    pub schema_subjects_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let events_ingested = Family::<BusLabel, Counter>::default();
        registry.register(
            "switchyard_events_ingested",
            "Events stored on a bus (duplicates excluded)",
            events_ingested.clone(),
        );
        // 50 µs to ~1.6 s.
        let ingest_latency = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "switchyard_ingest_latency_seconds",
            "Time from receiving a publish request to its durable acknowledgement",
            ingest_latency.clone(),
        );
        let rule_matches = Family::<RuleLabels, Counter>::default();
        registry.register(
            "switchyard_rule_matches",
            "Stored events that matched a rule",
            rule_matches.clone(),
        );
        let log_records = Family::<BusLabel, Counter>::default();
        registry.register(
            "switchyard_log_records_appended",
            "Records made durable in bus logs since start",
            log_records.clone(),
        );
        let log_syncs = Family::<BusLabel, Counter>::default();
        registry.register(
            "switchyard_log_syncs",
            "fdatasync calls of bus logs since start; records per sync is the group-commit group size",
            log_syncs.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "switchyard_deliveries",
            "Delivery attempts by outcome",
            deliveries.clone(),
        );
        let delivery_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "switchyard_delivery_latency_seconds",
            "Time one delivery attempt took",
            delivery_latency.clone(),
        );
        let backlog = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "switchyard_backlog_events",
            "Deliveries of a (rule, target) not yet resolved: those its worker holds (exact), plus the bus events it has not read yet (an upper bound: not all of them match)",
            backlog.clone(),
        );
        let index_lag = Family::<BusLabel, Gauge>::default();
        registry.register(
            "switchyard_index_lag_events",
            "Events stored but not yet searchable",
            index_lag.clone(),
        );
        let schema_violations = Family::<SchemaLabels, Counter>::default();
        registry.register(
            "switchyard_schema_violations",
            "Events accepted on a warn bus although they break their declared schema",
            schema_violations.clone(),
        );
        let function_invocations = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "switchyard_function_invocations",
            "WebAssembly function runs by outcome (invoke endpoint, function targets and transforms)",
            function_invocations.clone(),
        );
        // 10 µs to ~80 s.
        let function_duration = Histogram::new(exponential_buckets(0.00001, 2.0, 24));
        registry.register(
            "switchyard_function_duration_seconds",
            "Wall time of one function run, instantiation included",
            function_duration.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "switchyard_webhook_requests",
            "Deliveries received on webhooks: accepted, or refused by error code",
            webhook_requests.clone(),
        );
        let schema_subjects_refused = Counter::default();
        registry.register(
            "switchyard_schema_subjects_refused",
            "Sightings of a new (source, type) that schema discovery did not track (past --max-schema-subjects)",
            schema_subjects_refused.clone(),
        );
        Metrics {
            registry,
            schema_subjects_refused,
            webhook_requests,
            function_invocations,
            function_duration,
            schema_violations,
            index_lag,
            deliveries,
            delivery_latency,
            backlog,
            rule_matches,
            log_records,
            log_syncs,
            events_ingested,
            ingest_latency,
        }
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
