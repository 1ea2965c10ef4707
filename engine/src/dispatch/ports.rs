//! What delivery needs from outside a bus, as narrow ports: where delivery state and dead
//! letters are kept (the ledger), how an event is published onto another bus, where counts go, and the shared
//! pieces targets are built from. The engine hands each bus a copy; nothing here points back
//! at the engine.

use std::sync::Arc;

use serde_json::Value;
use switchyard_targets::{AddressPolicy, DeliveryError};
use tokio::sync::{mpsc, oneshot};

use super::ledger::Ledger;
use super::ownership::Ownership;
use crate::functions::Functions;
use crate::metrics::Metrics;
use crate::telemetry::Telemetry;

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
    pub ledger: Arc<dyn Ledger>,
    pub publish: Publisher,
    pub metrics: Arc<Metrics>,
    pub telemetry: Arc<Telemetry>,
    /// For `function` targets and transforms.
    pub functions: Arc<Functions>,
    /// One connection pool for every `http` target.
    pub http_client: reqwest::Client,
    pub address_policy: AddressPolicy,
    /// When several nodes share the buses: what this one delivers (see [`Ownership`]).
    pub ownership: Option<Arc<Ownership>>,
}
