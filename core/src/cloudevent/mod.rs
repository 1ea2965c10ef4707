//! CloudEvents 1.0 envelopes: parsing and validation of the three HTTP binding modes.
//!
//! An accepted event is kept as the JSON text it was published as (structured and batched
//! modes) or as the JSON-format rendering of its headers and body (binary mode). Keeping the
//! publisher's own bytes is what makes reads byte-faithful: nothing is re-ordered,
//! re-formatted or normalised on the way through. Validation therefore works on the raw text
//! and never builds a DOM of `data`: serde_json splits the envelope's members and checks the
//! grammar, and one more pass ([`structure`]) refuses what the grammar allows but readers
//! disagree on (repeated keys, deep nesting, lone surrogates).

mod attributes;
mod binary;
pub mod structure;
mod structured;

pub use binary::{BinaryEvent, from_binary};
pub use structure::{MAX_EVENT_DEPTH, StructureError};
pub use structured::{parse_batch, parse_structured};

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted event, in bytes of its JSON form (binary mode: headers plus body).
    pub max_event_bytes: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 256 * 1024,
            max_batch_events: 1000,
        }
    }
}

/// A validated CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub ty: String,
    /// The event in CloudEvents JSON format: a JSON object, exactly as published in
    /// structured and batched modes.
    pub json: Vec<u8>,
}

/// Why one event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the event is not a JSON object: {reason}")]
    NotAnObject { reason: String },
    #[error("the event breaks the CloudEvents spec: {}", problems.join("; "))]
    Invalid { problems: Vec<String> },
    /// Valid JSON that Switchyard refuses anywhere in an event (see [`structure`]).
    #[error(transparent)]
    Structure(#[from] StructureError),
}

impl EventError {
    /// How the API reports it: an event over the size limit, or one that is not an event.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            EventError::TooLarge { .. } => crate::ErrorKind::TooLarge,
            EventError::NotAnObject { .. } | EventError::Invalid { .. } => {
                crate::ErrorKind::InvalidInput
            }
            EventError::Structure(_) => crate::ErrorKind::InvalidInput,
        }
    }

    /// The reasons, one sentence each, for error details.
    pub fn problems(&self) -> Vec<String> {
        match self {
            EventError::Invalid { problems } => problems.clone(),
            EventError::TooLarge { .. }
            | EventError::NotAnObject { .. }
            | EventError::Structure(_) => vec![self.to_string()],
        }
    }
}

/// Why a batch was refused. A batch is accepted or refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch must be a JSON array of events: {reason}")]
    NotAnArray { reason: String },
    #[error("the batch has {count} events, over the limit of {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("{} of the batch's events are invalid", entries.len())]
    InvalidEntries { entries: Vec<(usize, EventError)> },
}

impl BatchError {
    /// How the API reports it: too many events, or not a batch of events.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            BatchError::TooManyEvents { .. } => crate::ErrorKind::TooLarge,
            BatchError::NotAnArray { .. } | BatchError::InvalidEntries { .. } => {
                crate::ErrorKind::InvalidInput
            }
        }
    }
}
