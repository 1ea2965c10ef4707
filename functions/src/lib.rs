//! WebAssembly functions: WASI preview 1 commands run in a wasmtime sandbox (SPEC §6).
//!
//! The ABI is the one every WASI toolchain already targets: the event arrives on stdin, the
//! output is whatever the module writes to stdout, and exit code 0 (or returning from
//! `_start`) is success. A [`Runtime`] owns one engine; [`Runtime::compile`] turns a module
//! (binary or WAT text) into a [`Function`] once, pre-linked against the WASI imports, and
//! [`Runtime::invoke`] instantiates it fresh for every call, so no state survives between
//! events.
//!
//! The sandbox: no preopened directories (no files), no sockets, no environment, no
//! arguments, no sleeping (`poll_oneoff` answers `ENOTSUP`); linear memory is capped by a
//! [`ResourceLimiter`], instructions by fuel, and wall time by epoch interruption driven
//! from one ticker thread. Every way a run can end is classified in [`FailureCode`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, WasmBacktrace,
};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

/// How often the wall clock is checked against invocations' deadlines.
const TICK: Duration = Duration::from_millis(1);
/// The most a function may write to stdout; more is a failure (`exit`, or what the module
/// does when its write fails).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// What is kept of stderr, for error messages.
const MAX_STDERR_BYTES: usize = 4 << 10;
/// `errno::notsup` in WASI preview 1.
const ERRNO_NOTSUP: i32 = 58;
const WASI: &str = "wasi_snapshot_preview1";

/// The bounds one invocation runs within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time, from instantiation to exit.
    pub timeout: Duration,
    /// Linear memory, in bytes (the module's initial memory counts).
    pub memory_bytes: usize,
    /// Instructions, roughly one unit of fuel per WebAssembly operator.
    pub fuel: u64,
}

impl Limits {
    pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
    pub const MAX_TIMEOUT_MS: u64 = 60_000;
    pub const DEFAULT_MEMORY_MB: u64 = 64;
    pub const MAX_MEMORY_MB: u64 = 1_024;
    pub const DEFAULT_FUEL: u64 = 1_000_000_000;
    pub const MAX_FUEL: u64 = 1_000_000_000_000;

    /// Checks user-given limits; `None` takes the default. The error names the field.
    pub fn new(
        timeout_ms: Option<u64>,
        memory_mb: Option<u64>,
        fuel: Option<u64>,
    ) -> Result<Limits, String> {
        let timeout_ms = bounded(
            "timeout_ms",
            timeout_ms,
            Self::DEFAULT_TIMEOUT_MS,
            Self::MAX_TIMEOUT_MS,
        )?;
        let memory_mb = bounded(
            "memory_mb",
            memory_mb,
            Self::DEFAULT_MEMORY_MB,
            Self::MAX_MEMORY_MB,
        )?;
        let fuel = bounded("fuel", fuel, Self::DEFAULT_FUEL, Self::MAX_FUEL)?;
        Ok(Limits {
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes: usize::try_from(memory_mb << 20)
                .map_err(|_| "memory_mb: too large for this machine".to_owned())?,
            fuel,
        })
    }

    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn memory_mb(&self) -> u64 {
        (self.memory_bytes >> 20) as u64
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(Self::DEFAULT_TIMEOUT_MS),
            memory_bytes: (Self::DEFAULT_MEMORY_MB << 20) as usize,
            fuel: Self::DEFAULT_FUEL,
        }
    }
}

fn bounded(field: &str, value: Option<u64>, default: u64, max: u64) -> Result<u64, String> {
    match value {
        None => Ok(default),
        Some(0) => Err(format!("{field}: must be at least 1")),
        Some(v) if v > max => Err(format!("{field}: must be at most {max}, got {v}")),
        Some(v) => Ok(v),
    }
}

/// A module that cannot become a function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(String);

/// How a failed invocation ended (SPEC §6: the `error.code` of an invoke answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// The wall-clock limit passed.
    Timeout,
    /// The fuel limit was used up.
    FuelExhausted,
    /// The module asked for more linear memory than its limit.
    Memory,
    /// A WebAssembly trap (unreachable, out-of-bounds access, stack overflow, …).
    Trap,
    /// `proc_exit` with a non-zero code.
    Exit,
}

impl FailureCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::Timeout => "timeout",
            FailureCode::FuelExhausted => "fuel_exhausted",
            FailureCode::Memory => "memory",
            FailureCode::Trap => "trap",
            FailureCode::Exit => "exit",
        }
    }
}

/// Why an invocation failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct Failure {
    pub code: FailureCode,
    pub message: String,
}

/// One run of a function.
#[derive(Debug)]
pub struct Invocation {
    /// Stdout on success.
    pub result: Result<Vec<u8>, Failure>,
    pub duration: Duration,
    /// Fuel the run consumed: known when it returned or exited, and when it ran out of
    /// fuel; a run cut short by a trap, the clock or the memory limit leaves it uncounted.
    pub fuel_used: Option<u64>,
}

/// A compiled module, ready to be instantiated.
#[derive(Clone)]
pub struct Function {
    pre: InstancePre<Sandbox>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").finish_non_exhaustive()
    }
}

/// What one invocation's store holds.
struct Sandbox {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

/// Caps linear memory and tables, and remembers that it had to, so that the trap the
/// module then takes is reported as `memory`.
struct Limiter {
    memory_bytes: usize,
    denied: Option<String>,
}

/// Table elements a module may have (each is a pointer on the host).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            let message = format!(
                "linear memory would grow from {} to {} bytes, over the limit of {} MiB",
                current,
                desired,
                self.memory_bytes >> 20
            );
            self.denied = Some(message.clone());
            return Err(wasmtime::format_err!(message));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            let message =
                format!("a table would grow to {desired} elements, over {MAX_TABLE_ELEMENTS}");
            self.denied = Some(message.clone());
            return Err(wasmtime::format_err!(message));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        8
    }
}

/// The engine, the WASI linker and the ticker that drives timeouts.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn new() -> Result<Runtime, CompileError> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(1 << 20);
        let engine = Engine::new(&config).map_err(|e| CompileError(e.to_string()))?;
        let mut linker: Linker<Sandbox> = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |s: &mut Sandbox| &mut s.wasi)
            .map_err(|e| CompileError(e.to_string()))?;
        // A function handles one event; it has no business sleeping, and a sleep would
        // hold a thread past the wall-clock limit (epochs only interrupt WebAssembly code).
        linker.allow_shadowing(true);
        linker
            .func_wrap(WASI, "poll_oneoff", |_: i32, _: i32, _: i32, _: i32| {
                ERRNO_NOTSUP
            })
            .map_err(|e| CompileError(e.to_string()))?;
        let ticker = Arc::new(AtomicBool::new(true));
        let running = ticker.clone();
        let ticking = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| CompileError(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Runtime {
            engine,
            linker,
            ticker,
        })
    }

    /// Compiles a module — binary, or WAT text — and links it against WASI. The error says
    /// what is wrong: not WebAssembly, invalid, importing something other than WASI
    /// preview 1, or not a command (no `_start`).
    pub fn compile(&self, source: &[u8]) -> Result<Function, CompileError> {
        let module = Module::new(&self.engine, source).map_err(|e| {
            let detail = format!("{e:#}");
            CompileError(
                if source.starts_with(b"\0asm") || std::str::from_utf8(source).is_ok() {
                    format!("the module does not compile: {detail}")
                } else {
                    "the body is neither a WebAssembly binary nor WAT text".to_owned()
                },
            )
        })?;
        for import in module.imports() {
            if import.module() != WASI {
                return Err(CompileError(format!(
                    "the module imports {:?} from {:?}; functions may import only from {WASI:?} (WASI preview 1)",
                    import.name(),
                    import.module()
                )));
            }
        }
        match module.get_export("_start") {
            Some(wasmtime::ExternType::Func(f))
                if f.params().len() == 0 && f.results().len() == 0 => {}
            _ => {
                return Err(CompileError(
                    "the module exports no `_start` function taking and returning nothing: \
                     it must be a WASI command"
                        .to_owned(),
                ));
            }
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| CompileError(format!("the module cannot be linked: {e:#}")))?;
        Ok(Function { pre })
    }

    /// Runs `function` once with `input` on stdin. Blocks the calling thread for at most
    /// about `limits.timeout`: call it from a blocking-capable thread.
    pub fn invoke(&self, function: &Function, input: &[u8], limits: &Limits) -> Invocation {
        let started = Instant::now();
        let stdout = MemoryOutputPipe::new(MAX_OUTPUT_BYTES);
        let stderr = MemoryOutputPipe::new(MAX_STDERR_BYTES);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input.to_vec()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_blocking_current_thread(true)
            .build_p1();
        let mut store = Store::new(
            &self.engine,
            Sandbox {
                wasi,
                limiter: Limiter {
                    memory_bytes: limits.memory_bytes,
                    denied: None,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = limits.timeout.as_micros().div_ceil(TICK.as_micros()) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        let outcome = store.set_fuel(limits.fuel).and_then(|()| {
            let instance = function.pre.instantiate(&mut store)?;
            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
            start.call(&mut store, ())
        });
        let remaining = store.get_fuel().unwrap_or(limits.fuel).min(limits.fuel);
        let result = match outcome {
            Ok(()) => Ok(()),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(0)) => Ok(()),
                Some(I32Exit(code)) => Err(Failure {
                    code: FailureCode::Exit,
                    message: with_stderr(format!("exited with code {code}"), &stderr),
                }),
                None => Err(classify(
                    &e,
                    store.data().limiter.denied.as_deref(),
                    limits,
                    &stderr,
                )),
            },
        };
        let result = result.and_then(|()| {
            let out = stdout.contents();
            if out.len() >= MAX_OUTPUT_BYTES {
                return Err(Failure {
                    code: FailureCode::Exit,
                    message: format!("the output reached the limit of {MAX_OUTPUT_BYTES} bytes"),
                });
            }
            Ok(out.to_vec())
        });
        let fuel_used = match &result {
            Ok(_)
            | Err(Failure {
                code: FailureCode::Exit,
                ..
            }) => Some(limits.fuel - remaining),
            Err(Failure {
                code: FailureCode::FuelExhausted,
                ..
            }) => Some(limits.fuel),
            Err(_) => None,
        };
        Invocation {
            result,
            duration: started.elapsed(),
            fuel_used,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

fn classify(
    error: &wasmtime::Error,
    memory_denied: Option<&str>,
    limits: &Limits,
    stderr: &MemoryOutputPipe,
) -> Failure {
    if let Some(message) = memory_denied {
        return Failure {
            code: FailureCode::Memory,
            message: message.to_owned(),
        };
    }
    let at = error
        .downcast_ref::<WasmBacktrace>()
        .and_then(|bt| bt.frames().first())
        .and_then(|f| f.func_name().map(|n| format!(" in {n}")))
        .unwrap_or_default();
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure {
            code: FailureCode::Timeout,
            message: format!("still running after {} ms", limits.timeout_ms()),
        },
        Some(Trap::OutOfFuel) => Failure {
            code: FailureCode::FuelExhausted,
            message: format!("used all {} units of fuel{at}", limits.fuel),
        },
        Some(trap) => Failure {
            code: FailureCode::Trap,
            message: with_stderr(format!("{trap}{at}"), stderr),
        },
        None => Failure {
            code: FailureCode::Trap,
            message: with_stderr(format!("{error:#}"), stderr),
        },
    }
}

/// Appends what the module wrote to stderr, which usually says why it failed.
fn with_stderr(message: String, stderr: &MemoryOutputPipe) -> String {
    let text = stderr.contents();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    if text.is_empty() {
        message
    } else {
        format!("{message}; stderr: {text}")
    }
}
