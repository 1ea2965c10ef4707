//! Wiring: builds the state from the config, serves HTTP, runs background work, and shuts
//! down in order (stop accepting, drain requests, close logs, close the metadata store).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchyard_core::Limits;
use switchyard_core::time::now_ms;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::buses::Buses;
use crate::config::{AuthMode, ServeConfig};
use crate::meta::MetaStore;
use crate::metrics::Metrics;
use crate::routes;

pub struct AppState {
    pub config: ServeConfig,
    pub meta: MetaStore,
    pub buses: Buses,
    pub metrics: Metrics,
    /// `None` when auth is disabled.
    pub admin_key: Option<String>,
    pub limits: Limits,
    pub address_policy: switchyard_targets::AddressPolicy,
    /// One connection pool for every `http` target.
    pub http_client: reqwest::Client,
    pub schemas: Arc<crate::schemas::Schemas>,
    pub functions: Arc<crate::functions::Functions>,
    pub webhooks: crate::webhooks::Webhooks,
    pub telemetry: crate::telemetry::Telemetry,
    pub keys: crate::keys::Keys,
    /// A handle on this state for parts that are owned by it (the `bus` target).
    pub me: std::sync::Weak<AppState>,
}

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
        AuthMode::Enabled => Some(crate::auth::load_or_create_admin_key(&config.data_dir)?),
        AuthMode::Disabled => None,
    };
    let meta = MetaStore::connect(&config.database_url())
        .await
        .context("opening the metadata store")?;
    let log_options = Buses::log_options(
        i64::try_from(config.dedup_window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX),
        config.segment_bytes,
    );
    let buses = Buses::open(
        &meta,
        config.data_dir.join("buses"),
        log_options,
        now_ms(),
        routes::rules::validate_stored,
    )
    .await
    .context("opening the bus logs")?;
    let limits = Limits {
        max_event_bytes: config.max_event_bytes,
        max_batch_events: config.max_batch_events,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let address_policy = config.address_policy();
    let http_client =
        switchyard_targets::http::client(address_policy.clone()).map_err(anyhow::Error::msg)?;
    let metrics = Metrics::new();
    let schemas = Arc::new(
        crate::schemas::Schemas::load(
            &meta,
            config.max_schema_subjects,
            metrics.schema_subjects_refused.clone(),
        )
        .await
        .context("loading schemas")?,
    );
    let functions = Arc::new(
        crate::functions::Functions::load(&meta, &metrics)
            .await
            .context("loading functions")?,
    );
    let webhooks = crate::webhooks::Webhooks::load(&meta)
        .await
        .context("loading webhooks")?;
    let telemetry =
        crate::telemetry::Telemetry::from_env().context("setting up OpenTelemetry export")?;
    let keys = crate::keys::Keys::load(&meta)
        .await
        .context("loading API keys")?;
    let state = Arc::new_cyclic(|me| AppState {
        keys,
        schemas,
        functions,
        webhooks,
        telemetry,
        config,
        meta,
        buses,
        metrics,
        admin_key,
        limits,
        address_policy,
        http_client,
        me: me.clone(),
    });
    state.schemas.start(state.clone());
    for bus in state.buses.all() {
        crate::dispatch::start(&state, &bus).await?;
        bus.indexer.start();
        bus.delivery_indexer.start();
    }
    let retention = tokio::spawn(retention_loop(state.clone()));
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
    retention.abort();
    state.buses.close_all(&state).await;
    state.schemas.save_counters(&state.meta).await;
    state.meta.close().await;
    let flushing = state.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || flushing.telemetry.shutdown()).await {
        tracing::warn!(error = %e, "flushing traces stopped");
    }
    tracing::info!("stopped");
    Ok(())
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

/// Drops events older than each bus's retention.
async fn retention_loop(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(
        state.config.retention_interval_seconds.max(1),
    ));
    loop {
        tick.tick().await;
        for bus in state.buses.all() {
            let cutoff = now_ms() - i64::from(bus.settings.retention_hours) * 3_600_000;
            let removed = bus.log.remove_before(cutoff).await;
            if let Ok(n) = removed
                && n > 0
            {
                let bounds = bus.log.bounds();
                bus.indexer.retain_from(bounds.first.unwrap_or(bounds.next));
            }
            match removed {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(bus = %bus.settings.name, removed = n, "retention removed events")
                }
                Err(e) => tracing::warn!(bus = %bus.settings.name, error = %e, "retention failed"),
            }
            match bus.dispatch.journal.remove_before(cutoff).await {
                Ok(0) => {}
                Ok(_) => {
                    let bounds = bus.dispatch.journal.log().bounds();
                    bus.delivery_indexer
                        .retain_from(bounds.first.unwrap_or(bounds.next));
                }
                Err(e) => {
                    tracing::warn!(bus = %bus.settings.name, error = %e, "journal retention failed")
                }
            }
        }
    }
}
