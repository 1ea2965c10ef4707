//! Switchyard's shared vocabulary: the CloudEvents envelope, typed resource names and the
//! transport-neutral [`ErrorKind`], and the full-text tokenizer ([`text`]) that the event
//! index and the query language share. This crate does no IO; every other crate depends on it.

pub mod cloudevent;
mod error;
mod name;
pub mod signature;
pub mod text;
pub mod time;

pub use cloudevent::{BatchError, CloudEvent, EventError, Limits, MAX_EVENT_DEPTH, StructureError};
pub use error::ErrorKind;
pub use name::{InvalidName, Name};
