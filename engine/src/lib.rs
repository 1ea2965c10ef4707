//! Switchyard's engine: everything between an accepted event and its last delivery, with
//! no HTTP in it. Buses (a log each) take events through [`ingest`], match them against
//! their [`ruleset`], and [`dispatch`] delivers to targets at least once, journaling every
//! step; [`indexer`]s make events and journals searchable. The HTTP edge (`switchyard`)
//! wires an [`Engine`] and maps requests onto it.

pub mod buses;
pub mod cluster;
pub mod dispatch;
mod engine;
pub mod events;
pub mod functions;
pub mod indexer;
pub mod ingest;
pub mod keys;
pub mod meta;
pub mod metrics;
pub mod named;
pub mod ruleset;
pub mod rulespec;
pub mod schemas;
pub mod target;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod webhooks;

pub use engine::{
    ClusterConfig, Engine, EngineConfig, FunctionInUse, LogConfig, NewRule, RedriveAll, Redriven,
    RuleError, StoreError,
};
