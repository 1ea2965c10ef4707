//! Delivery targets.
//!
//! A [`Target`] delivers one event and classifies its own failure (retryable or not, with an
//! optional `Retry-After`); [`RetryPolicy`] is the one place that turns failures into
//! backoff, jitter and give-up decisions. The dispatcher (in the server) drives `dyn Target`s
//! with that policy and never needs to know what kind of target it is talking to.
//! Targets never touch SQL or the bus logs.
//!
//! Every target kind passes one shared contract (`tests/targets/contract.rs`), run against
//! the real service it delivers to: the event arrives as published with its delivery id
//! where the protocol carries one, a transformed payload arrives instead of the event,
//! sequential deliveries arrive in order and exactly once, concurrent deliveries through one
//! target all arrive, an unreachable server fails retryably within a bounded time, and an
//! address the [`AddressPolicy`] refuses fails permanently without delivering. A new kind is
//! done when its harness passes that contract.

pub mod http;
pub mod queue;
mod retry;
mod safety;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

pub use retry::{Decision, RetryPolicy};
pub use safety::{AddressPolicy, Cidr};

/// What a target is asked to deliver.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The CloudEvent in JSON format, as published.
    pub event_json: &'a [u8],
    /// The same event, parsed.
    pub event: &'a Value,
    /// The transformed payload, or `None` to send the event itself.
    pub payload: Option<&'a Value>,
    /// Stable across attempts of the same (event, rule, target): receivers dedup with it.
    pub delivery_id: &'a str,
    /// 1 for the first try.
    pub attempt: u32,
    /// The W3C trace context to send onward: the delivery attempt's span when traces are
    /// exported, else the event's own `traceparent`.
    pub traceparent: Option<&'a str>,
}

/// A failed delivery, classified by the target that saw it fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub message: String,
    /// The protocol status the target answered with, if any (HTTP status).
    pub status: Option<u16>,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl DeliveryError {
    /// A failure that may go away: connect errors, timeouts, overload.
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError {
            message: message.into(),
            status: None,
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix: the event goes to the dead letters at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            retryable: false,
            ..Self::retryable(message)
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// A successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub status: Option<u16>,
    /// What the target answered that is worth showing on the trace (a function's output).
    pub output: Option<String>,
}

#[async_trait]
pub trait Target: Send + Sync {
    async fn deliver(&self, delivery: Delivery<'_>) -> Result<Delivered, DeliveryError>;
}
