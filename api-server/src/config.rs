//! Command line and configuration. Every flag also reads `SWITCHYARD_<FLAG>`; the doc
//! comments here are the user documentation (`switchyard serve --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use switchyard_engine::{ClusterConfig, LogConfig};

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A self-hosted event bus in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: API, bus logs and metadata in one process.
    Serve(ServeConfig),
}

#[derive(Debug, Clone, Parser)]
pub struct ServeConfig {
    /// Address to listen on for HTTP.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    /// Directory for the bus logs, the SQLite metadata and the admin key.
    #[arg(long, env = "SWITCHYARD_DATA_DIR", default_value = "./switchyard-data")]
    pub data_dir: PathBuf,

    /// Metadata store: `sqlite://PATH` or `postgres://…`. Default: SQLite in the data dir.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Bus log backend: `embedded` (segment files in the data dir), or NATS JetStream at
    /// `nats://host:port[,nats://host:port…]` (a stream per bus).
    #[arg(long, env = "SWITCHYARD_LOG", default_value = "embedded")]
    pub log: String,

    /// With a JetStream log: copies of each bus's stream (1 to 5), set when it is created.
    #[arg(long, env = "SWITCHYARD_LOG_REPLICAS", default_value_t = 1)]
    pub log_replicas: usize,

    /// With a JetStream log: streams are `<prefix>_<bus>` on subjects `<prefix>.<bus>.>`.
    /// Deployments sharing one NATS account need different prefixes; the nodes of one
    /// cluster share theirs. Letters, digits and `-`.
    #[arg(long, env = "SWITCHYARD_LOG_PREFIX", default_value = "switchyard")]
    pub log_prefix: String,

    /// With a JetStream log (nodes share the buses): this node's id, unique among them.
    /// Default: the one in `<data-dir>/node.id`, made on first start (so a node restarted
    /// after a crash takes its own leases back at once).
    #[arg(long, env = "SWITCHYARD_NODE_ID")]
    pub node_id: Option<String>,

    /// With a JetStream log: how long a node's delivery leases last unless renewed; a node
    /// that dies hands its deliveries to the others after this.
    #[arg(long, env = "SWITCHYARD_LEASE_SECONDS", default_value_t = 10)]
    pub lease_seconds: u64,

    /// `enabled`: every /v1 call needs `Authorization: Bearer <key>`. `disabled` is only
    /// allowed on a loopback listen address.
    #[arg(long, env = "SWITCHYARD_AUTH", value_enum, default_value_t = AuthMode::Enabled)]
    pub auth: AuthMode,

    /// Largest accepted event, in bytes.
    #[arg(long, env = "SWITCHYARD_MAX_EVENT_BYTES", default_value_t = 256 * 1024)]
    pub max_event_bytes: usize,

    /// Most events in one batch.
    #[arg(long, env = "SWITCHYARD_MAX_BATCH_EVENTS", default_value_t = 1000)]
    pub max_batch_events: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SWITCHYARD_MAX_BATCH_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_batch_bytes: usize,

    /// A `(source, id)` published again within this many seconds is reported as a duplicate
    /// and not stored again.
    #[arg(long, env = "SWITCHYARD_DEDUP_WINDOW_SECONDS", default_value_t = 24 * 3600)]
    pub dedup_window_seconds: u64,

    /// Bytes after which a log segment is sealed and a new one started.
    #[arg(long, env = "SWITCHYARD_SEGMENT_BYTES", default_value_t = 64 << 20)]
    pub segment_bytes: u64,

    /// Let targets reach addresses in this CIDR even though it is loopback, private or
    /// link-local (repeatable; the variable takes a comma-separated list).
    #[arg(long, env = "SWITCHYARD_TARGET_ALLOW_CIDR", value_delimiter = ',')]
    pub target_allow_cidr: Vec<String>,

    /// Infer the schema of each (source, type)'s data from the events published
    /// (`--schema-discovery false` turns it off; declared schemas are still enforced).
    #[arg(long, env = "SWITCHYARD_SCHEMA_DISCOVERY", default_value_t = true, action = clap::ArgAction::Set)]
    pub schema_discovery: bool,

    /// Most (source, type) pairs schema discovery tracks; events of further pairs are
    /// accepted without schema inference (counted in `switchyard_schema_subjects_refused`).
    #[arg(long, env = "SWITCHYARD_MAX_SCHEMA_SUBJECTS", default_value_t = 10_000)]
    pub max_schema_subjects: usize,

    /// Most client connections held open at once; one more is answered 503 and closed.
    #[arg(long, env = "SWITCHYARD_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers, counted from when the connection
    /// opens or its previous response was sent: also how long an idle keep-alive
    /// connection is kept.
    #[arg(long, env = "SWITCHYARD_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,

    /// Seconds a client has to send a request's whole body; slower is answered 408.
    #[arg(long, env = "SWITCHYARD_BODY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub body_timeout_seconds: u64,

    /// How often retention runs, in seconds.
    #[arg(
        long,
        env = "SWITCHYARD_RETENTION_INTERVAL_SECONDS",
        default_value_t = 60
    )]
    pub retention_interval_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    Enabled,
    Disabled,
}

impl ServeConfig {
    /// Checks what clap cannot: combinations of settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.auth == AuthMode::Disabled && !self.listen.ip().is_loopback() {
            return Err(format!(
                "--auth disabled is refused on {}: without auth the server may only listen on a loopback address",
                self.listen
            ));
        }
        self.log_config()?;
        for cidr in &self.target_allow_cidr {
            cidr.parse::<switchyard_targets::Cidr>()
                .map_err(|e| format!("--target-allow-cidr: {e}"))?;
        }
        if self.max_connections == 0
            || self.header_timeout_seconds == 0
            || self.body_timeout_seconds == 0
        {
            return Err(
                "--max-connections, --header-timeout-seconds and --body-timeout-seconds must be greater than zero"
                    .to_owned(),
            );
        }
        if self.max_event_bytes == 0 || self.max_batch_events == 0 || self.max_batch_bytes == 0 {
            return Err("size limits must be greater than zero".to_owned());
        }
        Ok(())
    }

    pub fn address_policy(&self) -> switchyard_targets::AddressPolicy {
        switchyard_targets::AddressPolicy {
            allow: self
                .target_allow_cidr
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
        }
    }

    /// The bus log backend `--log` names, checked.
    pub fn log_config(&self) -> Result<LogConfig, String> {
        if self.log == "embedded" {
            return Ok(LogConfig::Embedded);
        }
        let servers: Vec<String> = self.log.split(',').map(|s| s.trim().to_owned()).collect();
        for server in &servers {
            let Some(rest) = server.strip_prefix("nats://") else {
                return Err(format!(
                    "--log {:?}: expected \"embedded\" or nats://host:port[,nats://host:port…]",
                    self.log
                ));
            };
            if rest.is_empty() || rest.contains('/') {
                return Err(format!("--log: {server:?} is not nats://host:port"));
            }
        }
        if !(1..=5).contains(&self.log_replicas) {
            return Err(format!(
                "--log-replicas must be 1 to 5, not {}",
                self.log_replicas
            ));
        }
        if self.log_prefix.is_empty()
            || self.log_prefix.len() > 56
            || !self
                .log_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "--log-prefix {:?}: 1 to 56 ASCII letters, digits or '-'",
                self.log_prefix
            ));
        }
        Ok(LogConfig::JetStream {
            servers,
            replicas: self.log_replicas,
            prefix: self.log_prefix.clone(),
        })
    }

    /// With a JetStream log, this node's place among the nodes sharing the buses.
    pub fn cluster_config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        if self.log == "embedded" {
            return Ok(None);
        }
        let node = match &self.node_id {
            Some(id) => id.clone(),
            None => {
                let path = self.data_dir.join("node.id");
                match std::fs::read_to_string(&path) {
                    Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
                    Ok(_) => {
                        anyhow::bail!("{} is empty; delete it to have one made", path.display())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let id = format!("node-{:016x}", fastrand::u64(..));
                        std::fs::write(&path, format!("{id}\n"))
                            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                        id
                    }
                    Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
                }
            }
        };
        Ok(Some(ClusterConfig {
            node,
            lease: std::time::Duration::from_secs(self.lease_seconds.clamp(2, 3600)),
        }))
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("meta.db").display()
            )
        })
    }
}
