//! What the engine's unit tests share: delivery ports whose stores live in memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use switchyard_targets::AddressPolicy;

use crate::dispatch::ports::{CursorStore, DeadLetterStore};
use crate::dispatch::{Ports, Publisher};
use crate::functions::Functions;
use crate::meta::{DeadLetter, MetaStore};
use crate::metrics::Metrics;
use crate::telemetry::Telemetry;

/// Cursors and dead letters in memory. (SQL's pool times out on a paused clock: its
/// connections work on threads of their own, in real time, while the clock jumps.)
#[derive(Default)]
pub(crate) struct Stores {
    pub(crate) cursors: Mutex<HashMap<(String, String), u64>>,
    pub(crate) dead_letters: Mutex<Vec<DeadLetter>>,
}

#[async_trait]
impl CursorStore for Stores {
    async fn load(&self, _bus: &str) -> Result<Vec<(String, String, u64)>, sqlx::Error> {
        let cursors = self.cursors.lock().map(|c| c.clone()).unwrap_or_default();
        Ok(cursors.into_iter().map(|((r, t), o)| (r, t, o)).collect())
    }

    async fn save(&self, _bus: &str, rows: &[(String, String, u64)]) -> Result<(), sqlx::Error> {
        if let Ok(mut cursors) = self.cursors.lock() {
            for (r, t, o) in rows {
                cursors.insert((r.clone(), t.clone()), *o);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl DeadLetterStore for Stores {
    async fn insert(&self, letter: &DeadLetter) -> Result<(), sqlx::Error> {
        if let Ok(mut all) = self.dead_letters.lock() {
            all.push(letter.clone());
        }
        Ok(())
    }

    async fn delete(&self, id: i64) -> Result<(), sqlx::Error> {
        if let Ok(mut all) = self.dead_letters.lock() {
            all.retain(|d| d.id != id);
        }
        Ok(())
    }
}

/// Ports over in-memory stores, set up on the real clock (a test may pause it after): the
/// function runtime loads from a SQLite store in `dir`, closed before this returns.
pub(crate) async fn ports(dir: &Path) -> (Ports, Arc<Stores>) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("meta.db").display());
    let meta = MetaStore::connect(&url).await.expect("the metadata store");
    let metrics = Arc::new(Metrics::new());
    let functions = Functions::load(&meta, &metrics).await.expect("functions");
    meta.close().await;
    let stores = Arc::new(Stores::default());
    let ports = Ports {
        cursors: stores.clone(),
        dead_letters: stores.clone(),
        publish: Publisher::channel().0,
        metrics,
        telemetry: Arc::new(Telemetry::from_env().expect("telemetry")),
        functions: Arc::new(functions),
        http_client: reqwest::Client::new(),
        address_policy: AddressPolicy::default(),
    };
    (ports, stores)
}
