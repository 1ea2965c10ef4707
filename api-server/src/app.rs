//! Wiring: builds the state from the config, serves HTTP, runs background work, and shuts
//! down in order (stop accepting, drain requests, close logs, close the metadata store).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchyard_core::Limits;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

use switchyard_engine::{Engine, EngineConfig};

use crate::config::{AuthMode, ServeConfig};
use crate::routes;
use crate::state::AppState;

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    // The data dir holds secrets (webhook and signing secrets, target credentials, key
    // hashes): everything this process creates is for its own user only.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    make_private(&config.data_dir)
        .with_context(|| format!("restricting the data dir {}", config.data_dir.display()))?;
    let admin_key = match config.auth {
        AuthMode::Enabled => Some(switchyard_engine::keys::load_or_create_admin_key(
            &config.data_dir,
        )?),
        AuthMode::Disabled => None,
    };
    let engine = Engine::open(EngineConfig {
        data_dir: config.data_dir.clone(),
        database_url: config.database_url(),
        dedup_window_ms: i64::try_from(config.dedup_window_seconds.saturating_mul(1000))
            .unwrap_or(i64::MAX),
        segment_bytes: config.segment_bytes,
        log: config.log_config().map_err(anyhow::Error::msg)?,
        cluster: config.cluster_config()?,
        limits: Limits {
            max_event_bytes: config.max_event_bytes,
            max_batch_events: config.max_batch_events,
        },
        address_policy: config.address_policy(),
        schema_discovery: config.schema_discovery,
        max_schema_subjects: config.max_schema_subjects,
        retention_interval: Duration::from_secs(config.retention_interval_seconds),
    })
    .await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let webhooks = switchyard_engine::webhooks::Webhooks::load(&engine.meta)
        .await
        .context("loading webhooks")?;
    let keys = switchyard_engine::keys::Keys::load(&engine.meta)
        .await
        .context("loading API keys")?;
    let engine = Arc::new(engine);
    engine.start().await?;
    let state = Arc::new(AppState {
        engine: engine.clone(),
        config,
        admin_key,
        webhooks,
        keys,
    });
    let following = tokio::spawn(follow_changes(state.clone()));
    let app = routes::router(state.clone());
    let sigterm = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let sigint = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    println!("switchyard listening on http://{addr}");
    let limits = crate::serve::ConnLimits {
        max_connections: state.config.max_connections,
        header_timeout: Duration::from_secs(state.config.header_timeout_seconds),
    };
    crate::serve::run(listener, app, limits, shutdown_signal(sigterm, sigint)).await;
    tracing::info!("draining done; closing logs");
    following.abort();
    engine.close().await;
    let flushing = engine.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || flushing.telemetry.shutdown()).await {
        tracing::warn!(error = %e, "flushing traces stopped");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often a node reads the buses, rules and keys again even without a notification.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

/// With PostgreSQL (nodes sharing it): applies what other nodes change — API keys,
/// webhooks, functions, buses and rules — on each change notification (within a second),
/// and every
/// [`RECONCILE_EVERY`] in case one was missed. With SQLite there are no other nodes.
async fn follow_changes(state: Arc<AppState>) {
    let mut feed = loop {
        match state.engine.meta.change_feed().await {
            Ok(Some(feed)) => break feed,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for metadata changes; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Buses and rules in a task of their own: closing a bus deleted elsewhere can take
    // seconds, and must not hold back the next key, webhook, function or schema change.
    let reconcile = Arc::new(tokio::sync::Notify::new());
    let _reconciler = AbortOnDrop(tokio::spawn(reconcile_on(state.clone(), reconcile.clone())));
    let mut every = tokio::time::interval(RECONCILE_EVERY);
    loop {
        let change = tokio::select! {
            change = feed.next() => change,
            _ = every.tick() => None,
        };
        match change.as_deref().map(|c| c.strip_prefix("entries ")) {
            Some(Some(bus)) => {
                if let Some(bus) = state.engine.buses.get(bus) {
                    bus.dispatch.adopt();
                }
                continue;
            }
            Some(None) => {}
            // Periodically, or after a lost connection: entries written for this node's
            // subscriptions may have gone unannounced.
            None => {
                for bus in state.engine.buses.all() {
                    bus.dispatch.adopt();
                }
            }
        }
        if let Err(e) = state.keys.reload(&state.engine.meta).await {
            tracing::warn!(error = %e, "reloading API keys failed; trying again");
        }
        if let Err(e) = state.webhooks.reload(&state.engine.meta).await {
            tracing::warn!(error = %e, "reloading webhooks failed; trying again");
        }
        if let Err(e) = state.engine.functions.reload(&state.engine.meta).await {
            tracing::warn!(error = %e, "reloading functions failed; trying again");
        }
        if let Err(e) = state.engine.schemas.reload(&state.engine.meta).await {
            tracing::warn!(error = %e, "reloading schemas failed; trying again");
        }
        reconcile.notify_one();
    }
}

/// Aborts the task when dropped (its owner was aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Applies other nodes' buses and rules each time it is told to (changes told meanwhile are
/// taken by the same pass).
async fn reconcile_on(state: Arc<AppState>, told: Arc<tokio::sync::Notify>) {
    loop {
        told.notified().await;
        if let Err(e) = state.engine.reconcile().await {
            tracing::warn!(error = %e, "applying other nodes' changes failed; trying again");
        }
    }
}

/// Restricts a data dir written before the umask was set (or by hand): directories 0700,
/// files 0600. Symbolic links are left alone.
fn make_private(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            make_private(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed before the ready line is
/// printed, so a signal sent as soon as the server says it is listening is not lost.
async fn shutdown_signal(mut sigterm: Signal, mut sigint: Signal) {
    tokio::select! {
        _ = sigterm.recv() => {},
        _ = sigint.recv() => {},
    }
    tracing::info!("shutdown requested");
}
