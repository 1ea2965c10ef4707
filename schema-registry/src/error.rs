//! The crate's one error type.

use switchyard_core::ErrorKind;
use thiserror::Error;

/// Why a schema was refused.
///
/// `pointer` is a JSON pointer into the schema document (empty for the document as a
/// whole); `Display` gives `pointer: message`, or the message alone at the root.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// An explicit schema that is not a JSON Schema, or one that cannot be compiled (an
    /// unknown draft, a bad `pattern`, a `$ref` to anything outside the document).
    #[error("{}", render(pointer, message))]
    Invalid { pointer: String, message: String },
    /// A stored discovered schema that this crate would not have written: the store is
    /// corrupt or holds something else.
    #[error("not a discovered schema: {}", render(pointer, message))]
    NotDiscovered { pointer: String, message: String },
}

impl SchemaError {
    /// A bad explicit schema is the client's (422); an unreadable stored one is ours.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SchemaError::Invalid { .. } => ErrorKind::Unprocessable,
            SchemaError::NotDiscovered { .. } => ErrorKind::Internal,
        }
    }
}

fn render(pointer: &str, message: &str) -> String {
    if pointer.is_empty() {
        message.to_owned()
    } else {
        format!("{pointer}: {message}")
    }
}
