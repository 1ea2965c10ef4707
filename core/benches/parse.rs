//! Ingest parsing: how many events per second one core validates, in structured mode and in
//! batches of 100, on the ~1 KiB order events of `bench/ingest.sh` (and on a small event),
//! and the structure check (repeated keys, depth, surrogates) alone. Prints the median of
//! several passes.
//!
//! `cargo bench -p switchyard-core --bench parse` (`PARSE_PASSES` sets the pass count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use switchyard_core::Limits;
use switchyard_core::cloudevent::structure::check_event;
use switchyard_core::cloudevent::{parse_batch, parse_structured};

/// The event `bench/ingest.sh` publishes.
fn order_event(n: usize) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"bench-{n}","source":"/bench/shop","type":"com.shop.order.created","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{{"order":{n},"customer":{{"id":"c-{}","tier":"gold","country":"DE"}},"total":{}.5,"items":[{{"sku":"A-1","qty":2,"price":10.25}},{{"sku":"B-7","qty":1,"price":99.0}}],"note":"{}"}}}}"#,
        n % 1000,
        n % 500,
        "x".repeat(700)
    )
}

fn small_event(n: usize) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"s-{n}","source":"/bench","type":"t","data":{{"user":{{"name":"ann","roles":["a","b"]}},"n":{n}}}}}"#
    )
}

/// Median events/s over `passes` passes of `run` (which handles `per_pass` events).
fn measure(passes: usize, per_pass: usize, mut run: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..passes)
        .map(|_| {
            let start = Instant::now();
            run();
            per_pass as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let passes: usize = std::env::var("PARSE_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7);
    let limits = Limits::default();
    const N: usize = 50_000;
    for (name, make) in [
        ("order (~1 KiB)", order_event as fn(usize) -> String),
        ("small (~130 B)", small_event),
    ] {
        let events: Vec<String> = (0..N).map(make).collect();
        let structured = measure(passes, N, || {
            for e in &events {
                black_box(parse_structured(black_box(e.as_bytes()), &limits).unwrap());
            }
        });
        let batches: Vec<String> = events
            .chunks(100)
            .map(|c| format!("[{}]", c.join(",")))
            .collect();
        let batched = measure(passes, N, || {
            for b in &batches {
                black_box(parse_batch(black_box(b.as_bytes()), &limits).unwrap());
            }
        });
        let check = measure(passes, N, || {
            for e in &events {
                check_event(black_box(e)).unwrap();
            }
        });
        println!(
            "{name:<16} structured {structured:>12.0} events/s   batches of 100 {batched:>12.0} events/s   structure check alone {check:>12.0} events/s"
        );
    }
}
