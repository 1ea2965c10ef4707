//! Bus logs: the `LogStore` boundary and its backends.
//!
//! A bus is an append-only log of CloudEvents addressed by dense offsets. [`MemoryLog`] is
//! the reference implementation (tests, reasoning); [`SegmentedLog`] is the embedded,
//! durable one: CRC-framed records in segment files, one writer thread doing group commit,
//! crash recovery that cuts an unacknowledged tail, and an id index for lookups and dedup.
//! [`JetStreamLog`] keeps each bus in a NATS JetStream stream, for a cluster of servers
//! sharing their buses. All pass the shared suite in `testsuite`; a new backend is done when
//! it does too.

mod index;
mod jetstream;
mod log;
mod memory;
mod segmented;

#[cfg(test)]
mod testsuite;

pub use index::{EventIndex, FieldRef, Filter, IndexDoc, IndexError, MAX_BUCKETS, Scalar};
pub use jetstream::{JetStreamLog, JetStreamOptions};
pub use log::{Appended, Bounds, LogError, LogOptions, LogStats, LogStore, NewRecord, Record};
pub use memory::MemoryLog;
pub use segmented::{SegmentedLog, SegmentedOptions};
/// Frame decoding of the segmented log, public for the fuzz crate only (`event-store/fuzz`).
#[doc(hidden)]
pub use segmented::{decode_frame, frame_len};
/// Tantivy's aggregation requests and results, for [`EventIndex::aggregate`]: callers
/// build and read them without a Tantivy dependency of their own (one version).
pub use tantivy::aggregation;
