//! Deployed WebAssembly functions: stored in SQL, compiled once into memory, invoked off the
//! async threads. The `function` target, the `function` transform and the invoke endpoint
//! all run through [`Functions::invoke`].

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use switchyard_functions::{Failure, Function, Invocation, Limits, Runtime};
use tokio::sync::Semaphore;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::meta::{FunctionRow, MetaStore};
use crate::metrics::{FunctionLabels, Metrics};
use crate::named::Named;

/// The largest module `PUT /v1/functions/{name}` takes.
pub const MAX_MODULE_BYTES: usize = 32 << 20;

/// A deployed function: its settings and its compiled module.
pub struct Deployed {
    pub name: String,
    pub size_bytes: usize,
    pub sha256: String,
    pub limits: Limits,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    function: Function,
}

/// Why a deploy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Compile(String),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Why a function produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("function {0:?} is not deployed")]
    NotDeployed(String),
    #[error("function {name:?} failed: {failure}")]
    Failed { name: String, failure: Failure },
}

pub struct Functions {
    runtime: Arc<Runtime>,
    deployed: Named<Deployed>,
    /// Bounds the invocations running at once (each holds a blocking thread).
    permits: Semaphore,
    runs: Family<FunctionLabels, Counter>,
    duration: Histogram,
}

impl Functions {
    /// Compiles every stored function. One that no longer compiles (a module stored by a
    /// different engine version, say) is logged and left out rather than stopping the server.
    pub async fn load(meta: &MetaStore, metrics: &Metrics) -> anyhow::Result<Functions> {
        let runtime = Arc::new(Runtime::new()?);
        let rows = meta.list_functions().await?;
        let rt = runtime.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            rows.into_iter()
                .filter_map(|row| match deployed(&rt, row) {
                    Ok(d) => Some((d.name.clone(), Arc::new(d))),
                    Err((name, e)) => {
                        tracing::error!(function = %name, error = %e, "stored function does not compile; skipped");
                        None
                    }
                })
                .collect::<HashMap<_, _>>()
        })
        .await?;
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Functions {
            runtime,
            deployed: Named::new(compiled),
            permits: Semaphore::new(parallel * 4),
            runs: metrics.function_invocations.clone(),
            duration: metrics.function_duration.clone(),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Deployed>> {
        self.deployed.get(name)
    }

    /// Brings the deployed functions in line with the metadata store (another node
    /// deployed, changed or removed one): only what changed is read and compiled.
    pub async fn reload(&self, meta: &MetaStore) -> anyhow::Result<()> {
        let stored = meta.function_versions().await?;
        for d in self.list() {
            if !stored.iter().any(|(name, _)| *name == d.name) {
                self.deployed.remove(&d.name);
            }
        }
        for (name, updated_at_ms) in stored {
            if self
                .get(&name)
                .is_some_and(|d| d.updated_at_ms == updated_at_ms)
            {
                continue;
            }
            let Some(row) = meta.get_function(&name).await? else {
                continue;
            };
            let rt = self.runtime.clone();
            match tokio::task::spawn_blocking(move || deployed(&rt, row)).await? {
                Ok(d) => self.deployed.insert(&name, Arc::new(d)),
                Err((name, e)) => {
                    tracing::error!(function = %name, error = %e, "stored function does not compile; skipped");
                }
            }
        }
        Ok(())
    }

    /// Every deployed function, by name.
    pub fn list(&self) -> Vec<Arc<Deployed>> {
        self.deployed.list().into_iter().map(|(_, d)| d).collect()
    }

    /// Compiles `module` and, if it compiles, stores it and makes it the function `name`.
    /// Returns the deployed function and whether it was created.
    pub async fn deploy(
        &self,
        meta: &MetaStore,
        name: &str,
        module: Vec<u8>,
        limits: Limits,
        now_ms: i64,
    ) -> Result<(Arc<Deployed>, bool), DeployError> {
        let row = FunctionRow {
            name: name.to_owned(),
            sha256: hex_sha256(&module),
            module,
            timeout_ms: limits.timeout_ms(),
            memory_mb: limits.memory_mb(),
            fuel: limits.fuel,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        let rt = self.runtime.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            let function = rt.compile(&row.module);
            (row, function)
        })
        .await
        .map_err(|e| DeployError::Compile(format!("compilation stopped: {e}")))?;
        let (row, function) = compiled;
        let function = function.map_err(|e| DeployError::Compile(e.to_string()))?;
        let created = meta.put_function(&row).await?;
        let created_at_ms = if created {
            now_ms
        } else {
            self.get(name).map_or(now_ms, |d| d.created_at_ms)
        };
        let d = Arc::new(Deployed {
            name: row.name,
            size_bytes: row.module.len(),
            sha256: row.sha256,
            limits,
            created_at_ms,
            updated_at_ms: now_ms,
            function,
        });
        self.deployed.insert(name, d.clone());
        meta.changed().await;
        Ok((d, created))
    }

    /// Removes a function; returns whether it existed.
    pub async fn remove(&self, meta: &MetaStore, name: &str) -> Result<bool, sqlx::Error> {
        let existed = meta.delete_function(name).await?;
        meta.changed().await;
        Ok(self.deployed.remove(name) || existed)
    }

    /// Runs the function `name` once with `input` on stdin.
    pub async fn invoke(&self, name: &str, input: Vec<u8>) -> Result<Invocation, RunError> {
        let d = self
            .get(name)
            .ok_or_else(|| RunError::NotDeployed(name.to_owned()))?;
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await;
        let rt = self.runtime.clone();
        let run = tokio::task::spawn_blocking(move || rt.invoke(&d.function, &input, &d.limits))
            .await
            .map_err(|e| RunError::Failed {
                name: name.to_owned(),
                failure: Failure {
                    code: switchyard_functions::FailureCode::Trap,
                    message: format!("the invocation was aborted: {e}"),
                },
            })?;
        let outcome = match &run.result {
            Ok(_) => "ok",
            Err(f) => f.code.as_str(),
        };
        self.runs
            .get_or_create(&FunctionLabels {
                function: name.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.duration.observe(run.duration.as_secs_f64());
        Ok(run)
    }

    /// Runs `name` and returns its output as JSON when stdout parses, else as a string.
    pub async fn output(&self, name: &str, input: Vec<u8>) -> Result<Value, RunError> {
        let run = self.invoke(name, input).await?;
        run.result
            .map(|out| output_value(&out))
            .map_err(|failure| RunError::Failed {
                name: name.to_owned(),
                failure,
            })
    }
}

fn deployed(rt: &Runtime, row: FunctionRow) -> Result<Deployed, (String, String)> {
    let limits = Limits::new(Some(row.timeout_ms), Some(row.memory_mb), Some(row.fuel))
        .map_err(|e| (row.name.clone(), e))?;
    let function = rt
        .compile(&row.module)
        .map_err(|e| (row.name.clone(), e.to_string()))?;
    Ok(Deployed {
        size_bytes: row.module.len(),
        name: row.name,
        sha256: row.sha256,
        limits,
        created_at_ms: row.created_at_ms,
        updated_at_ms: row.updated_at_ms,
        function,
    })
}

/// A function's stdout as the API shows it: JSON when it parses, else text.
pub fn output_value(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(stdout).into_owned()))
}

/// How much of a function target's stdout the trace keeps.
const TRACE_OUTPUT_BYTES: usize = 1024;

/// A function target's stdout for the trace: text, cut at a character boundary.
fn trace_output(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    if text.len() <= TRACE_OUTPUT_BYTES {
        return text.into_owned();
    }
    let mut cut = TRACE_OUTPUT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..cut], stdout.len())
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a transform produced no payload.
#[derive(Debug, thiserror::Error)]
pub enum TransformFailure {
    /// The transform cannot apply to this event; trying again cannot help.
    #[error(transparent)]
    Invalid(#[from] switchyard_rules::TransformError),
    /// Its function failed; a later run may succeed.
    #[error(transparent)]
    Function(#[from] RunError),
}

impl Functions {
    /// What a target receives for `event` under `transform`. A `function` transform runs
    /// the function on the event's JSON (`event_json`, as published).
    pub async fn transform(
        &self,
        transform: &switchyard_rules::Transform,
        event: &Value,
        event_json: &[u8],
    ) -> Result<Value, TransformFailure> {
        match transform.function_name() {
            Some(name) => Ok(self.output(name, event_json.to_vec()).await?),
            None => Ok(transform.apply(event)?),
        }
    }
}

/// The `function` target: runs a function with the event (or the transformed payload) on
/// stdin. Exit 0 is delivered; a trap, a timeout, a non-zero exit or a function that is not
/// deployed (yet) is retried under the target's policy, its reason in the trace.
pub struct FunctionTarget {
    functions: Arc<Functions>,
    name: String,
}

impl FunctionTarget {
    pub fn new(functions: Arc<Functions>, name: &str) -> FunctionTarget {
        FunctionTarget {
            functions,
            name: name.to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl switchyard_targets::Target for FunctionTarget {
    async fn deliver(
        &self,
        d: switchyard_targets::Delivery<'_>,
    ) -> Result<switchyard_targets::Delivered, switchyard_targets::DeliveryError> {
        let input = match d.payload {
            Some(p) => serde_json::to_vec(p).unwrap_or_default(),
            None => d.event_json.to_vec(),
        };
        let run = self
            .functions
            .invoke(&self.name, input)
            .await
            .map_err(|e| switchyard_targets::DeliveryError::retryable(e.to_string()))?;
        match run.result {
            Ok(out) => Ok(switchyard_targets::Delivered {
                status: None,
                output: Some(trace_output(&out)),
            }),
            Err(failure) => Err(switchyard_targets::DeliveryError::retryable(
                RunError::Failed {
                    name: self.name.clone(),
                    failure,
                }
                .to_string(),
            )),
        }
    }
}
