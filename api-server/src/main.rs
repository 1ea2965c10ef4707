//! `switchyard`: the event bus in one binary.

mod app;
mod auth;
mod config;
mod error;
mod routes;
mod serve;
mod state;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    // Fault injection for tests (`FAILPOINTS=delivery-attempt=1*panic`); inert when unset.
    let _faults = fail::FailScenario::setup();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        config::Command::Serve(config) => runtime.block_on(app::serve(config)),
    }
}
