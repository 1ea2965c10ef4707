//! What the engine's unit tests share: delivery ports whose ledger lives in memory.

use std::path::Path;
use std::sync::Arc;

use switchyard_targets::AddressPolicy;

use crate::dispatch::ledger::MemoryLedger;
use crate::dispatch::{Ports, Publisher};
use crate::functions::Functions;
use crate::meta::MetaStore;
use crate::metrics::Metrics;
use crate::telemetry::Telemetry;

/// Ports over an in-memory ledger (SQL's pool times out on a paused clock: its connections
/// work on threads of their own, in real time, while the clock jumps), set up on the real
/// clock (a test may pause it after): the function runtime loads from a SQLite store in
/// `dir`, closed before this returns.
pub(crate) async fn ports(dir: &Path) -> (Ports, Arc<MemoryLedger>) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("meta.db").display());
    let meta = MetaStore::connect(&url).await.expect("the metadata store");
    let metrics = Arc::new(Metrics::new());
    let functions = Functions::load(&meta, &metrics).await.expect("functions");
    meta.close().await;
    let ledger = Arc::new(MemoryLedger::default());
    let ports = Ports {
        ledger: ledger.clone(),
        publish: Publisher::channel().0,
        metrics,
        telemetry: Arc::new(Telemetry::from_env().expect("telemetry")),
        functions: Arc::new(functions),
        http_client: reqwest::Client::new(),
        address_policy: AddressPolicy::default(),
        ownership: None,
    };
    (ports, ledger)
}
