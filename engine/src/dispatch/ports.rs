//! What delivery needs from outside a bus, as narrow ports: where cursors and dead letters
//! are kept, how an event is published onto another bus, where counts go, and the shared
//! pieces targets are built from. The engine hands each bus a copy; nothing here points back
//! at the engine.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use switchyard_targets::{AddressPolicy, DeliveryError};
use tokio::sync::{mpsc, oneshot};

use crate::functions::Functions;
use crate::meta::{DeadLetter, MetaStore};
use crate::metrics::Metrics;
use crate::telemetry::Telemetry;

/// Where each subscription's cursor (every offset below it is resolved) is kept.
#[async_trait]
pub trait CursorStore: Send + Sync {
    /// `(rule, target, next offset)` for every subscription of `bus`.
    async fn load(&self, bus: &str) -> Result<Vec<(String, String, u64)>, sqlx::Error>;
    async fn save(&self, bus: &str, cursors: &[(String, String, u64)]) -> Result<(), sqlx::Error>;
}

/// Where deliveries given up on are kept until redriven or deleted.
#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    async fn insert(&self, letter: &DeadLetter) -> Result<(), sqlx::Error>;
    async fn delete(&self, id: i64) -> Result<(), sqlx::Error>;
}

#[async_trait]
impl CursorStore for MetaStore {
    async fn load(&self, bus: &str) -> Result<Vec<(String, String, u64)>, sqlx::Error> {
        self.load_cursors(bus).await
    }

    async fn save(&self, bus: &str, cursors: &[(String, String, u64)]) -> Result<(), sqlx::Error> {
        self.save_cursors(bus, cursors).await
    }
}

#[async_trait]
impl DeadLetterStore for MetaStore {
    async fn insert(&self, letter: &DeadLetter) -> Result<(), sqlx::Error> {
        self.insert_dead_letter(letter).await
    }

    async fn delete(&self, id: i64) -> Result<(), sqlx::Error> {
        self.delete_dead_letter(id).await
    }
}

/// One event for a bus of this server, and where its outcome goes.
pub struct PublishRequest {
    pub bus: String,
    pub event: Value,
    pub reply: oneshot::Sender<Result<(), DeliveryError>>,
}

/// Publishes onto a bus of this server through the normal ingest path (the `bus` target and
/// dead-letter buses). A handle on a channel the engine serves: holding one keeps nothing
/// of the engine alive, and once the engine stops, publishing fails as retryable.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<PublishRequest>,
}

/// Publishes waiting for the engine at once; more wait for room (they come from workers,
/// whose windows bound them).
const PUBLISH_QUEUE: usize = 1024;

impl Publisher {
    pub fn channel() -> (Publisher, mpsc::Receiver<PublishRequest>) {
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        (Publisher { tx }, rx)
    }

    pub async fn publish(&self, bus: &str, event: Value) -> Result<(), DeliveryError> {
        let stopped = || DeliveryError::retryable("server shutting down");
        let (reply, outcome) = oneshot::channel();
        let request = PublishRequest {
            bus: bus.to_owned(),
            event,
            reply,
        };
        self.tx.send(request).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// Everything a bus's delivery uses that is not the bus's own.
#[derive(Clone)]
pub struct Ports {
    pub cursors: Arc<dyn CursorStore>,
    pub dead_letters: Arc<dyn DeadLetterStore>,
    pub publish: Publisher,
    pub metrics: Arc<Metrics>,
    pub telemetry: Arc<Telemetry>,
    /// For `function` targets and transforms.
    pub functions: Arc<Functions>,
    /// One connection pool for every `http` target.
    pub http_client: reqwest::Client,
    pub address_policy: AddressPolicy,
}
