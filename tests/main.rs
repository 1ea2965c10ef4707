//! Black-box tests: each starts the real `switchyard` binary and talks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod analytics;
mod buses;
mod cluster;
mod console;
mod delivery;
mod durability;
mod functions;
mod hardening;
mod hardening_ingest;
mod jetstream;
mod keys;
mod ledger;
mod ops;
mod publish;
mod receiver;
mod rules;
mod schemas;
mod search;
mod telemetry;
mod webhooks;
