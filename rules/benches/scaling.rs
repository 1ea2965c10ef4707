//! Scaling: matching throughput and compile time with 1 to 100,000 rules, on CloudEvents
//! from a deterministic generator (e-commerce orders and IoT readings, 0.5–2 KiB each).
//!
//! Two rule mixes over ~20 field names:
//! - `mixed`: exact, prefix, numeric, anything-but and wildcard rules, each anchored on a
//!   selective field the way real subscriptions are (a customer, a device, a site);
//! - `exact`: exact-only rules, which the `quamina` crate also runs, side by side.
//!
//! `cargo bench -p switchyard-rules --bench scaling` (`SCALING_EVENTS` sets the event count,
//! `SCALING_RULES=100,1000` the rule counts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use switchyard_rules::Matcher;

const RULE_COUNTS: &[usize] = &[1, 10, 100, 1_000, 10_000, 100_000];
// Rules and events draw their anchors (customers, devices, sites, orders) from the same
// large universes, so each added rule watches new entities: matches per event stay near
// constant as the rule count grows, and the curve measures the engine, not the output.
const CUSTOMERS: u64 = 1_000_000;
const DEVICES: u64 = 500_000;
const SITES: u64 = 10_000;
const ORDERS: u64 = 10_000_000;

/// splitmix64: small, fast and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

const ORDER_TYPES: &[&str] = &["created", "paid", "shipped", "cancelled", "refunded"];
const IOT_TYPES: &[&str] = &["temperature", "humidity", "battery", "alarm"];
const REGIONS: &[&str] = &["us-east", "us-west", "eu-central", "ap-south"];
const TIERS: &[&str] = &["gold", "silver", "bronze"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA"];
const CHANNELS: &[&str] = &["web", "mobile", "store", "partner"];
const STATUSES: &[&str] = &["ok", "ok", "ok", "warn", "fail"];
const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
];

/// Between `least` and `least + spread - 1` words of padding text.
fn filler(rng: &mut Rng, least: usize, spread: u64) -> String {
    let words = least + rng.below(spread.max(1)) as usize;
    (0..words)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn order_event(rng: &mut Rng, seq: u64) -> String {
    let items: Vec<String> = (0..1 + rng.below(6))
        .map(|_| {
            format!(
                r#"{{"sku":"sku-{}","qty":{},"price":{:.2},"name":"{}"}}"#,
                rng.below(5_000),
                1 + rng.below(5),
                rng.float(1.0, 300.0),
                filler(rng, 3, 1)
            )
        })
        .collect();
    let coupon = if rng.below(4) == 0 {
        format!(r#","coupon":"SAVE{}""#, rng.below(50))
    } else {
        String::new()
    };
    format!(
        concat!(
            r#"{{"specversion":"1.0","id":"evt-{seq}","source":"/shop/{region}/orders","type":"com.shop.order.{ty}","#,
            r#""time":"2024-06-{day:02}T{hour:02}:{min:02}:00Z","datacontenttype":"application/json","subject":"order-{order:07}","#,
            r#""data":{{"orderId":"order-{order:07}","customer":{{"id":"c-{cust}","tier":"{tier}","country":"{country}","email":"user{cust}@example.com"}},"#,
            r#""total":{total:.2},"currency":"{currency}","channel":"{channel}","items":[{items}]{coupon},"note":"{note}"}}}}"#
        ),
        seq = seq,
        region = rng.pick(REGIONS),
        ty = rng.pick(ORDER_TYPES),
        day = 1 + rng.below(28),
        hour = rng.below(24),
        min = rng.below(60),
        order = rng.below(ORDERS),
        cust = rng.below(CUSTOMERS),
        tier = rng.pick(TIERS),
        country = rng.pick(COUNTRIES),
        total = rng.float(5.0, 2_000.0),
        currency = rng.pick(&["USD", "EUR", "GBP"]),
        channel = rng.pick(CHANNELS),
        items = items.join(","),
        coupon = coupon,
        note = filler(rng, 5, 30),
    )
}

fn iot_event(rng: &mut Rng, seq: u64) -> String {
    let tags: Vec<String> = (0..rng.below(5))
        .map(|_| format!(r#""{}""#, rng.pick(WORDS)))
        .collect();
    let history: Vec<String> = (0..rng.below(12))
        .map(|_| format!("{:.1}", rng.float(-10.0, 45.0)))
        .collect();
    format!(
        concat!(
            r#"{{"specversion":"1.0","id":"evt-{seq}","source":"/iot/site-{site}/gw-{gw}","type":"com.iot.{ty}.reading","#,
            r#""time":"2024-06-{day:02}T{hour:02}:{min:02}:00Z","subject":"dev-{dev}","#,
            r#""data":{{"deviceId":"dev-{dev}","site":"site-{site}","firmware":"v{fw}.{fw2}.{fw3}","temperature":{temp:.2},"#,
            r#""humidity":{hum:.1},"battery":{bat},"status":"{status}","location":{{"lat":{lat:.5},"lon":{lon:.5}}},"#,
            r#""tags":[{tags}],"history":[{history}],"comment":"{comment}"}}}}"#
        ),
        seq = seq,
        site = rng.below(SITES),
        gw = rng.below(20),
        ty = rng.pick(IOT_TYPES),
        day = 1 + rng.below(28),
        hour = rng.below(24),
        min = rng.below(60),
        dev = rng.below(DEVICES),
        fw = 1 + rng.below(3),
        fw2 = rng.below(10),
        fw3 = rng.below(10),
        temp = rng.float(-10.0, 45.0),
        hum = rng.float(10.0, 95.0),
        bat = rng.below(101),
        status = rng.pick(STATUSES),
        lat = rng.float(-60.0, 60.0),
        lon = rng.float(-180.0, 180.0),
        tags = tags.join(","),
        history = history.join(","),
        comment = filler(rng, 10, 40),
    )
}

fn events(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(42);
    (0..n as u64)
        .map(|i| {
            if rng.below(2) == 0 {
                order_event(&mut rng, i)
            } else {
                iot_event(&mut rng, i)
            }
            .into_bytes()
        })
        .collect()
}

/// One rule of the mixed workload.
fn mixed_rule(rng: &mut Rng) -> String {
    let ty = rng.pick(ORDER_TYPES);
    let cust = rng.below(CUSTOMERS);
    let dev = rng.below(DEVICES);
    match rng.below(20) {
        // exact (40%)
        0..=3 => format!(
            r#"{{"type":["com.shop.order.{ty}"],"data":{{"customer":{{"id":["c-{cust}"]}}}}}}"#
        ),
        4..=5 => {
            format!(r#"{{"source":[{{"prefix":"/iot/"}}],"data":{{"deviceId":["dev-{dev}"]}}}}"#)
        }
        6..=7 => format!(
            r#"{{"data":{{"customer":{{"id":["c-{cust}"],"tier":["gold","silver"]}},"currency":["EUR"]}}}}"#
        ),
        // prefix (20%)
        8..=9 => format!(
            r#"{{"subject":[{{"prefix":"order-{:05}"}}],"type":[{{"prefix":"com.shop."}}]}}"#,
            rng.below(ORDERS / 100)
        ),
        10..=11 => format!(r#"{{"data":{{"customer":{{"email":[{{"prefix":"user{cust}@"}}]}}}}}}"#),
        // numeric (15%)
        12..=13 => format!(
            r#"{{"data":{{"deviceId":["dev-{dev}"],"temperature":[{{"numeric":[">",{:.1}]}}]}}}}"#,
            rng.float(0.0, 40.0)
        ),
        14 => format!(
            r#"{{"data":{{"customer":{{"id":["c-{cust}"]}},"total":[{{"numeric":[">=",{},"<",{}]}}]}}}}"#,
            rng.below(500),
            500 + rng.below(1_500)
        ),
        // anything-but (15%)
        15..=16 => format!(
            r#"{{"data":{{"customer":{{"id":["c-{cust}"]}},"channel":[{{"anything-but":["store"]}}]}}}}"#
        ),
        17 => format!(
            r#"{{"data":{{"deviceId":["dev-{dev}"],"status":[{{"anything-but":{{"prefix":"o"}}}}]}}}}"#
        ),
        // wildcard (10%)
        _ => format!(
            r#"{{"source":[{{"wildcard":"/iot/site-{}/gw-1*"}}],"data":{{"status":["fail"],"firmware":[{{"wildcard":"v1.*"}}]}}}}"#,
            rng.below(SITES)
        ),
    }
}

fn exact_rule(rng: &mut Rng) -> String {
    if rng.below(2) == 0 {
        format!(
            r#"{{"type":["com.shop.order.{}"],"data":{{"customer":{{"id":["c-{}"]}}}}}}"#,
            rng.pick(ORDER_TYPES),
            rng.below(CUSTOMERS)
        )
    } else {
        format!(
            r#"{{"type":["com.iot.{}.reading"],"data":{{"deviceId":["dev-{}"]}}}}"#,
            rng.pick(IOT_TYPES),
            rng.below(DEVICES)
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median events/s over three passes of at least `min` each.
fn rate(events: &[Vec<u8>], min: Duration, mut count: impl FnMut(&[u8]) -> usize) -> (f64, f64) {
    let mut rates = Vec::new();
    let mut matched = 0usize;
    let mut seen = 0usize;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0usize;
        loop {
            for e in events {
                let c = count(e);
                matched += c;
                seen += 1;
                n += 1;
            }
            if start.elapsed() >= min {
                break;
            }
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    (median(rates), matched as f64 / seen as f64)
}

fn main() {
    let n_events: usize = std::env::var("SCALING_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let events = events(n_events);
    let bytes: usize = events.iter().map(Vec::len).sum();
    let (min_len, max_len) = events.iter().fold((usize::MAX, 0), |(a, b), e| {
        (a.min(e.len()), b.max(e.len()))
    });
    eprintln!(
        "{} events, {} bytes on average ({min_len}..{max_len})",
        events.len(),
        bytes / events.len()
    );
    // SCALING_MIN_MS=0 makes every timed pass exactly one sweep (for instruction counting).
    let min = Duration::from_millis(
        std::env::var("SCALING_MIN_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400),
    );

    println!(
        "| rules | mix | compile (s) | switchyard-rules (events/s) | matches/event | quamina 0.7 (events/s) | quamina compile (s) | ratio |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut mixed_100 = 0.0;
    let mut mixed_100k = 0.0;
    // SCALING_RULES=1000,100000 restricts the run (for profiling).
    let counts: Vec<usize> = std::env::var("SCALING_RULES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| RULE_COUNTS.to_vec());
    for &n in &counts {
        for mix in ["mixed", "exact"] {
            let mut rng = Rng(7 + n as u64);
            let rules: Vec<String> = (0..n)
                .map(|_| {
                    if mix == "mixed" {
                        mixed_rule(&mut rng)
                    } else {
                        exact_rule(&mut rng)
                    }
                })
                .collect();
            let start = Instant::now();
            let mut matcher = Matcher::new();
            for (i, r) in rules.iter().enumerate() {
                matcher.add_rule(&format!("r{i}"), r).unwrap();
            }
            let compile = start.elapsed().as_secs_f64();
            let (ours, per_event) = rate(&events, min, |e| matcher.count_matches(e).unwrap());
            if mix == "mixed" && n == 100 {
                mixed_100 = ours;
            }
            if mix == "mixed" && n == 100_000 {
                mixed_100k = ours;
            }
            let (q, qc, ratio) = if mix == "exact" {
                let start = Instant::now();
                let mut q = quamina::QuaminaBuilder::<String>::new()
                    .with_arena_byte_budget(1 << 32)
                    .build()
                    .unwrap();
                for (i, r) in rules.iter().enumerate() {
                    q.add_pattern(format!("r{i}"), r).unwrap();
                }
                let qc = start.elapsed().as_secs_f64();
                // Both must agree before their speeds are compared.
                for e in events.iter().take(2_000) {
                    assert_eq!(
                        matcher.count_matches(e).unwrap(),
                        q.count_matches(e).unwrap(),
                        "quamina and switchyard disagree on {}",
                        String::from_utf8_lossy(e)
                    );
                }
                let (qr, _) = rate(&events, min, |e| q.count_matches(e).unwrap());
                (
                    format!("{qr:.0}"),
                    format!("{qc:.3}"),
                    format!("{:.2}x", ours / qr),
                )
            } else {
                ("–".to_owned(), "–".to_owned(), "–".to_owned())
            };
            println!(
                "| {n} | {mix} | {compile:.3} | {ours:.0} | {per_event:.2} | {q} | {qc} | {ratio} |"
            );
        }
    }
    if mixed_100 > 0.0 {
        println!(
            "\nmixed: 100,000 rules run at {:.0}% of the 100-rule throughput",
            100.0 * mixed_100k / mixed_100
        );
    }
}
