//! What every request handler shares: the engine and the edge's own parts.

use std::sync::Arc;

use switchyard_engine::Engine;

use crate::config::ServeConfig;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: ServeConfig,
    /// `None` when auth is disabled.
    pub admin_key: Option<String>,
    pub webhooks: switchyard_engine::webhooks::Webhooks,
    pub keys: switchyard_engine::keys::Keys,
}
