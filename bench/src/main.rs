//! `loadgen`: drives a real Switchyard server over HTTP and prints comparable figures.
//!
//! - `loadgen baseline --listen ADDR`: a trivial server that only parses each CloudEvent's
//!   JSON and answers 200 — no storage. It sets the machine's ceiling for the same client.
//! - `loadgen publish --url URL [--key K]`: three phases against a server (Switchyard or the
//!   baseline): closed-loop single-event publishes, closed-loop batches, and open-loop
//!   publishes at a fixed offered rate for latency (measured from each request's scheduled
//!   start, so a stall is not hidden by the client waiting: no coordinated omission).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod deliver;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a no-storage endpoint that parses CloudEvents and answers 200.
    Baseline {
        #[arg(long, default_value = "127.0.0.1:8790")]
        listen: SocketAddr,
    },
    /// End-to-end delivery: latency at fixed rates, throughput, fan-out. The server must
    /// allow loopback targets (`--target-allow-cidr 127.0.0.0/8`).
    Deliver {
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        /// Seconds per latency phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Load a server and print throughput and latency.
    Publish {
        /// Base URL, e.g. http://127.0.0.1:8787
        #[arg(long)]
        url: String,
        /// Bearer key (Switchyard's admin.key); empty for the baseline.
        #[arg(long, default_value = "")]
        key: String,
        #[arg(long, default_value = "default")]
        bus: String,
        /// Concurrent connections in the closed-loop phases.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Events per batch in the batch phase.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Offered rate (publishes/s) in the latency phase.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        /// Label printed with each figure.
        #[arg(long, default_value = "server")]
        label: String,
        /// Which phases to run: any of single, batch, latency.
        #[arg(long, value_delimiter = ',', default_value = "single,batch,latency")]
        phases: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Baseline { listen } => rt.block_on(baseline(listen)),
        Command::Deliver { url, key, seconds } => rt.block_on(deliver::run(&url, &key, seconds)),
        Command::Publish {
            url,
            key,
            bus,
            connections,
            seconds,
            batch,
            rate,
            label,
            phases,
        } => rt.block_on(async {
            let target = Target::new(&url, &key, &bus);
            let secs = Duration::from_secs(seconds);
            let run = |p: &str| phases.iter().any(|x| x == p);
            if run("single") {
                let single = closed_loop(&target, connections, 1, secs).await?;
                println!("{label}: single-event publishes/s: {single:.0}");
            }
            if run("batch") {
                let batched = closed_loop(&target, connections.min(8), batch, secs).await?;
                println!("{label}: batched events/s ({batch} per request): {batched:.0}");
            }
            if !run("latency") {
                return Ok(());
            }
            let (p50, p99, p999, sent) = open_loop(&target, rate, secs).await?;
            println!(
                "{label}: latency at {rate}/s offered ({sent} sent): p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms"
            );
            Ok(())
        }),
    }
}

async fn baseline(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::routing::post;
    async fn accept(body: axum::body::Bytes) -> axum::http::StatusCode {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(_) => axum::http::StatusCode::OK,
            Err(_) => axum::http::StatusCode::BAD_REQUEST,
        }
    }
    let app = axum::Router::new().route("/v1/buses/{bus}/events", post(accept));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

struct Target {
    client: reqwest::Client,
    url: String,
    key: String,
    next_id: AtomicU64,
    run: u128,
}

impl Target {
    fn new(base: &str, key: &str, bus: &str) -> Arc<Target> {
        Arc::new(Target {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .build()
                .unwrap(),
            url: format!("{base}/v1/buses/{bus}/events"),
            key: key.to_owned(),
            next_id: AtomicU64::new(0),
            // Ids unique across runs, so no event is a duplicate of an earlier run's.
            run: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        })
    }

    /// A ~1 KiB order event with a fresh id.
    fn event(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!(
            r#"{{"specversion":"1.0","id":"{}-{n}","source":"/bench/shop","type":"com.shop.order.created","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{{"order":{n},"customer":{{"id":"c-{}","tier":"gold","country":"DE"}},"total":{}.5,"items":[{{"sku":"A-1","qty":2,"price":10.25}},{{"sku":"B-7","qty":1,"price":99.0}}],"note":"{}"}}}}"#,
            self.run,
            n % 1000,
            n % 500,
            "x".repeat(700)
        )
    }

    async fn send(&self, events: usize) -> anyhow::Result<()> {
        let (ct, body) = if events == 1 {
            ("application/cloudevents+json", self.event())
        } else {
            let all: Vec<String> = (0..events).map(|_| self.event()).collect();
            (
                "application/cloudevents-batch+json",
                format!("[{}]", all.join(",")),
            )
        };
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", ct)
            .body(body);
        if !self.key.is_empty() {
            req = req.bearer_auth(&self.key);
        }
        let resp = req.send().await.context("request")?;
        anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
        resp.bytes().await?;
        Ok(())
    }
}

/// `connections` loops, each sending as fast as acks come back; events/s.
async fn closed_loop(
    target: &Arc<Target>,
    connections: usize,
    per_request: usize,
    dur: Duration,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (target, done) = (target.clone(), done.clone());
            tokio::spawn(async move {
                while start.elapsed() < dur {
                    target.send(per_request).await?;
                    done.fetch_add(per_request as u64, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Publishes at a fixed rate regardless of how fast answers come; latency percentiles in ms.
async fn open_loop(
    target: &Arc<Target>,
    rate: u64,
    dur: Duration,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let total = (dur.as_secs_f64() * rate as f64) as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, hist) = (target.clone(), hist.clone());
        tasks.push(tokio::spawn(async move {
            target.send(1).await?;
            let us = scheduled.elapsed().as_micros() as u64;
            hist.lock().unwrap().record(us.max(1))?;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let h = hist.lock().unwrap();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok((ms(0.5), ms(0.99), ms(0.999), total))
}
