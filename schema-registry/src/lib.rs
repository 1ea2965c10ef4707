//! Schemas for the `data` of CloudEvents: discovered from traffic, or declared and enforced.
//!
//! Events are a contract between teams who never meet. Discovery lets a consumer read that
//! contract off the traffic itself: per (source, type) the server keeps a [`Discovered`],
//! feeds it events, and stores a new version whenever the inferred JSON Schema changes.
//! Because inference is a merge over a lattice (a property is required only while every
//! event had it, `integer` widens to `number`, a `format` stays only while every string
//! had it), the schema is a function of the *set* of shapes seen, not their order: replicas
//! or restarts that see the same events in another order agree, and a replayed event never
//! creates a version. Explicit schemas go the other way: a [`Validator`] compiled once per
//! version rejects a bad event on publish with a pointer to every problem.
//!
//! Cost is bounded on both sides because both run on traffic a stranger controls:
//! [`Caps`] limit how large a discovered schema can grow, [`Caps::fingerprint`] lets the
//! server skip inference for shapes already covered, and validation refuses patterns that
//! could backtrack and never fetches a remote `$ref`.
//!
//! The crate knows nothing of HTTP, storage or async: the server stores the JSON that
//! [`Schema::to_json`] renders and resumes from it with [`Discovered::resume`].

mod caps;
mod discovered;
mod error;
mod fingerprint;
mod format;
mod inference;
mod node;
mod render;
mod schema;
mod validate;

use serde_json::Value;

pub use caps::Caps;
pub use discovered::{Discovered, MAX_FINGERPRINTS, NewVersion};
pub use error::SchemaError;
pub use fingerprint::{FINGERPRINT_ITEMS, FINGERPRINT_VALUES};
pub use schema::{DRAFT_2020_12, Schema};
pub use validate::{MAX_MESSAGE_BYTES, Validator, Violation};

/// The schema of one `data` value, under the default [`Caps`].
pub fn infer(data: &Value) -> Schema {
    Caps::default().infer(data)
}

/// The schema describing everything `a` or `b` describes, under the default [`Caps`].
pub fn merge(a: Schema, b: Schema) -> Schema {
    Caps::default().merge(a, b)
}

/// The shape fingerprint of `data`, under the default [`Caps`].
pub fn fingerprint(data: &Value) -> u64 {
    Caps::default().fingerprint(data)
}
