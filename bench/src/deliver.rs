//! `loadgen deliver`: end-to-end delivery figures. An in-process HTTP receiver records when
//! each event arrives; the generator publishes to a real Switchyard whose rules target that
//! receiver, so publish → delivery latency is measured on one clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Query, State};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Arrival times by event id (and target, for fan-out).
#[derive(Default)]
struct Arrivals {
    by_id: HashMap<String, Vec<Instant>>,
    total: u64,
}

type Shared = Arc<Mutex<Arrivals>>;

async fn receive(
    State(arrivals): State<Shared>,
    Query(_q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let now = Instant::now();
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let mut a = arrivals.lock().unwrap();
    a.total += 1;
    a.by_id.entry(id).or_default().push(now);
    axum::http::StatusCode::OK
}

struct Bench {
    client: reqwest::Client,
    base: String,
    key: String,
    receiver: String,
    arrivals: Shared,
}

impl Bench {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<()> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "{path}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        Ok(())
    }

    async fn publish(&self, bus: &str, events: &[Value]) -> anyhow::Result<()> {
        let body = if events.len() == 1 {
            events[0].to_string()
        } else {
            Value::Array(events.to_vec()).to_string()
        };
        let ct = if events.len() == 1 {
            "application/cloudevents+json"
        } else {
            "application/cloudevents-batch+json"
        };
        let resp = self
            .client
            .post(format!("{}/v1/buses/{bus}/events", self.base))
            .bearer_auth(&self.key)
            .header("content-type", ct)
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "publish: {}", resp.status());
        Ok(())
    }

    /// A bus whose `rules` rules each deliver to the receiver.
    async fn setup(&self, bus: &str, rules: usize) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/buses/{bus}"),
            Some(json!({})),
        )
        .await?;
        for r in 0..rules {
            let rule = json!({"pattern": {"type": ["bench.event"]},
                "targets": [{"id": "rx", "kind": "http", "http": {"url": format!("{}?r={r}", self.receiver)}}]});
            self.call(
                reqwest::Method::PUT,
                &format!("/v1/buses/{bus}/rules/r{r}"),
                Some(rule),
            )
            .await?;
        }
        Ok(())
    }

    fn arrived(&self) -> u64 {
        self.arrivals.lock().unwrap().total
    }

    async fn wait_arrivals(&self, n: u64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while self.arrived() < n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived within {within:?}",
                self.arrived()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

fn event(id: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/bench", "type": "bench.event",
           "data": {"order": id, "total": 12.5, "note": "x".repeat(600)}})
}

pub async fn run(base: &str, key: &str, seconds: u64) -> anyhow::Result<()> {
    let arrivals: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let b = Arc::new(Bench {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()?,
        base: base.to_owned(),
        key: key.to_owned(),
        receiver,
        arrivals,
    });

    // Latency at fixed offered rates, one rule, one target.
    let bus = format!("lat{run}");
    b.setup(&bus, 1).await.context("setup")?;
    for rate in [1000u64, 10_000] {
        let total = rate * seconds;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let before = b.arrived();
        let start = Instant::now();
        let mut sent_at = HashMap::with_capacity(total as usize);
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let at = start + interval.mul_f64(i as f64);
            tokio::time::sleep_until(at.into()).await;
            let id = format!("l{rate}-{i}");
            sent_at.insert(id.clone(), at);
            let (b, bus) = (b.clone(), bus.clone());
            tasks.push(tokio::spawn(
                async move { b.publish(&bus, &[event(&id)]).await },
            ));
        }
        for t in tasks {
            t.await??;
        }
        b.wait_arrivals(before + total, Duration::from_secs(120))
            .await?;
        let mut h = Histogram::<u64>::new(3)?;
        {
            let a = b.arrivals.lock().unwrap();
            for (id, at) in &sent_at {
                if let Some(got) = a.by_id.get(id).and_then(|v| v.first()) {
                    h.record(got.saturating_duration_since(*at).as_micros().max(1) as u64)?;
                }
            }
        }
        println!(
            "publish -> HTTP delivery at {rate}/s offered ({total} events): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0
        );
    }

    // Throughput: a backlog of batches, delivered as fast as the target takes them.
    let total = 200_000u64;
    let before = b.arrived();
    let start = Instant::now();
    let mut n = 0;
    while n < total {
        let events: Vec<Value> = (n..n + 500)
            .map(|i| event(&format!("t{run}-{i}")))
            .collect();
        b.publish(&bus, &events).await?;
        n += 500;
    }
    let published = start.elapsed();
    b.wait_arrivals(before + total, Duration::from_secs(600))
        .await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {total} events published in {:.1} s, all delivered after {secs:.1} s: {:.0} deliveries/s",
        published.as_secs_f64(),
        total as f64 / secs
    );

    // Fan-out: one event matched by 100 rules, each with its own target.
    let fan = format!("fan{run}");
    b.setup(&fan, 100).await?;
    let mut h = Histogram::<u64>::new(3)?;
    for i in 0..200 {
        let id = format!("f{i}");
        let before = b.arrived();
        let at = Instant::now();
        b.publish(&fan, &[event(&id)]).await?;
        b.wait_arrivals(before + 100, Duration::from_secs(30))
            .await?;
        h.record(at.elapsed().as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "fan-out: 1 event -> 100 rules -> 100 deliveries, 200 events: p50 {:.2} ms, p99 {:.2} ms until the last delivery",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    );
    Ok(())
}
