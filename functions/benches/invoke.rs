//! Function invocation overhead: the trivial `wat/echo.wat` run on a ~1 KiB event, fresh
//! instance each time, the way the dispatcher runs functions. Prints p50/p99 latency on one
//! thread, then throughput with one invoking thread per core.
//! `cargo bench -p switchyard-functions --bench invoke` (`FUNCTION_BENCH_RUNS`, default
//! 50,000 per phase).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_functions::{Limits, Runtime};

fn main() {
    let runs: usize = std::env::var("FUNCTION_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let source = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/wat/echo.wat")).unwrap();
    let rt = Arc::new(Runtime::new().unwrap());
    let started = Instant::now();
    let function = Arc::new(rt.compile(&source).unwrap());
    println!("compile: {:.2} ms", started.elapsed().as_secs_f64() * 1e3);
    let event = format!(
        r#"{{"specversion":"1.0","id":"b","source":"/bench","type":"bench.event","data":{{"note":"{}"}}}}"#,
        "x".repeat(900)
    )
    .into_bytes();
    let limits = Limits::default();

    // Warm up, then time each invocation on one thread.
    for _ in 0..1_000 {
        rt.invoke(&function, &event, &limits).result.unwrap();
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let out = rt.invoke(&function, &event, &limits).result.unwrap();
        latencies.push(t.elapsed());
        assert_eq!(out.len(), event.len());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "one thread: {runs} invocations, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6
    );

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (rt, function, event) = (rt.clone(), function.clone(), event.clone());
            std::thread::spawn(move || {
                for _ in 0..runs / threads {
                    rt.invoke(&function, &event, &limits).result.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let n = runs / threads * threads;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{threads} threads: {n} invocations in {secs:.2} s: {:.0} invocations/s",
        n as f64 / secs
    );
}
