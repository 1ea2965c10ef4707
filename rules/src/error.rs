//! The crate's error types: one per input the crate accepts from outside.

use switchyard_core::ErrorKind;
use thiserror::Error;

/// A pattern that EventBridge would refuse, with the place in the pattern that is wrong.
///
/// `path` is written like `detail.total[0].numeric` (empty for the pattern as a whole);
/// `Display` gives `path: message`, e.g. `data.total[0].numeric: expected an operator, got 10`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", render(path, message))]
pub struct PatternError {
    /// Where in the pattern the problem is.
    pub path: String,
    /// What is wrong, as a lowercase sentence without a trailing period.
    pub message: String,
}

fn render(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

impl PatternError {
    /// A pattern error is always the client's: well-formed JSON that breaks the rules.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Unprocessable
    }

    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        PatternError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// An event that cannot be matched because it is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// The bytes are not valid JSON (checked where the matcher reads them; see `Matcher::matches_json`).
    #[error("invalid JSON at byte {offset}: {reason}")]
    InvalidJson {
        /// Byte offset where reading stopped.
        offset: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// The event is valid JSON but not an object.
    #[error("an event must be a JSON object")]
    NotAnObject,
}

impl EventError {
    /// How the API reports it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EventError::InvalidJson { .. } | EventError::NotAnObject => ErrorKind::InvalidInput,
        }
    }
}

/// A transform configuration that cannot be used, or a transform that failed on an event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransformError {
    /// The configuration is invalid; `field` names the offending key.
    #[error("{field}: {message}")]
    InvalidConfig {
        /// The configuration key that is wrong, e.g. `vars.who`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A `function` transform: only a caller with a WASM runtime can apply it.
    #[error("function {0:?} must be run by the caller")]
    NeedsFunction(String),
    /// Rendering the template failed at run time.
    #[error("template rendering failed: {0}")]
    Render(String),
}

impl TransformError {
    /// How the API reports it: all of these come from what the client configured or sent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransformError::InvalidConfig { .. }
            | TransformError::NeedsFunction(_)
            | TransformError::Render(_) => ErrorKind::Unprocessable,
        }
    }
}
