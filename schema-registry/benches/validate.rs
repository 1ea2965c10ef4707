//! Per-event cost of the schema registry on the publish path: `enforce` validation on a
//! cached validator, and discovery (fingerprint fast path, full inference and merge).
//!
//! `cargo bench -p switchyard-schema-registry --bench validate`; `BENCH_EVENTS` sets how many
//! events each figure is measured over (default 200,000).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};
use switchyard_schema_registry::{Caps, Discovered, Validator};

/// An order event whose `data` is about 1 KiB of JSON, values varied by `i`.
fn order(i: usize) -> Value {
    let items: Vec<Value> = (0..4)
        .map(|n| {
            json!({
                "sku": format!("SKU-{:05}", (i * 7 + n) % 100_000),
                "name": format!("Widget model {n} of batch {i}"),
                "quantity": 1 + (i + n) % 5,
                "unit_price": 9.99 + n as f64,
            })
        })
        .collect();
    let status = ["placed", "paid", "shipped"][i % 3];
    json!({
        "order_id": format!("550e8400-e29b-41d4-a716-{:012x}", i),
        "created_at": "2024-05-01T12:30:00.123Z",
        "status": status,
        "customer": {
            "id": 100_000 + i,
            "email": format!("customer{i}@example.com"),
            "name": "Ana Example",
            "tier": "gold",
        },
        "shipping": {
            "street": "1 Long Street Name Avenue",
            "city": "Lisbon",
            "postcode": "1000-001",
            "country": "PT",
        },
        "items": items,
        "total": 51.96 + (i % 10) as f64,
        "currency": "EUR",
        "source_ip": "192.0.2.17",
        "channel": {"kind": "web", "referrer": "https://shop.example.com/campaigns/spring-sale?utm_source=newsletter"},
        "tags": ["priority", "gift-wrap", "first-order"],
        "session": {"id": format!("sess-{i:08}"), "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
        "notes": null,
    })
}

fn order_schema() -> Value {
    let address = json!({
        "type": "object",
        "properties": {
            "street": {"type": "string", "maxLength": 200},
            "city": {"type": "string"},
            "postcode": {"type": "string"},
            "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
        },
        "required": ["street", "city", "country"],
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "format": "uuid"},
            "created_at": {"type": "string", "format": "date-time"},
            "status": {"enum": ["placed", "paid", "shipped", "cancelled"]},
            "customer": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "email": {"type": "string", "format": "email"},
                    "name": {"type": "string"},
                    "tier": {"type": "string"},
                },
                "required": ["id", "email"],
            },
            "shipping": address,
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "sku": {"type": "string", "pattern": "^SKU-[0-9]+$"},
                        "name": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1},
                        "unit_price": {"type": "number", "minimum": 0},
                    },
                    "required": ["sku", "quantity", "unit_price"],
                },
            },
            "total": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "source_ip": {"type": "string", "format": "ipv4"},
            "channel": {
                "type": "object",
                "properties": {
                    "kind": {"enum": ["web", "app", "store"]},
                    "referrer": {"type": "string", "format": "uri"},
                },
            },
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "session": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "user_agent": {"type": "string", "maxLength": 512}},
                "required": ["id"],
            },
            "notes": {"type": ["string", "null"]},
        },
        "required": ["order_id", "created_at", "status", "customer", "items", "total", "currency"],
    })
}

/// Runs `f` once per event, cycling through `events`, and returns nanoseconds per call.
fn per_event(events: &[Value], count: usize, mut f: impl FnMut(&Value)) -> f64 {
    for event in events.iter().cycle().take(count / 10) {
        f(event);
    }
    let start = Instant::now();
    for event in events.iter().cycle().take(count) {
        f(event);
    }
    start.elapsed().as_nanos() as f64 / count as f64
}

fn report(name: &str, ns: f64) {
    println!("{name:<58} {ns:>10.0} ns/event {:>12.0} events/s", 1e9 / ns);
}

fn main() {
    let count: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let events: Vec<Value> = (0..256).map(order).collect();
    let bytes: usize = events.iter().map(|e| e.to_string().len()).sum::<usize>() / events.len();
    println!("events: {count} per figure, data of {bytes} bytes on average");

    let validator = Validator::compile(&order_schema()).unwrap();
    for event in &events {
        assert_eq!(validator.validate(event), vec![]);
    }
    report(
        "validate, valid event (cached validator)",
        per_event(&events, count, |e| {
            black_box(validator.validate(black_box(e)));
        }),
    );
    let bad: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["total"] = json!("12");
            e["customer"]["email"] = json!("nope");
            e["items"][1]["quantity"] = json!(0);
            e
        })
        .collect();
    assert_eq!(validator.validate(&bad[0]).len(), 3);
    report(
        "validate, event with 3 violations (listed)",
        per_event(&bad, count, |e| {
            black_box(validator.validate(black_box(e)));
        }),
    );

    let caps = Caps::default();
    report(
        "fingerprint",
        per_event(&events, count, |e| {
            black_box(caps.fingerprint(black_box(e)));
        }),
    );
    let no_formats = Caps {
        max_format_bytes: 0,
        ..caps
    };
    report(
        "  fingerprint without format detection",
        per_event(&events, count, |e| {
            black_box(no_formats.fingerprint(black_box(e)));
        }),
    );
    report(
        "infer (one event, no merge)",
        per_event(&events, count, |e| {
            black_box(caps.infer(black_box(e)));
        }),
    );
    let mut discovered = Discovered::new(caps);
    report(
        "observe, known shape (fingerprint fast path)",
        per_event(&events, count, |e| {
            black_box(discovered.observe(black_box(e)));
        }),
    );
    // Every event a shape the fingerprint has not seen but the schema already covers: the
    // slow path (inference, merge, compare) with no new version.
    let shapes: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e["items"] = Value::from(e["items"].as_array().unwrap()[..1 + i % 4].to_vec());
            e[format!("extra_{}", i % 64)] = json!(1);
            e
        })
        .collect();
    let mut warm = Discovered::new(caps);
    let latest = shapes
        .iter()
        .filter_map(|e| warm.observe(e))
        .last()
        .unwrap();
    // Resumed from the stored version: the schema covers every shape, no fingerprint known.
    let covered = Discovered::resume(latest.version, &latest.schema, caps).unwrap();
    // Each pass resumes afresh (untimed), so every shape is unseen by the fingerprint set.
    let passes = (count / 10 / shapes.len()).max(1);
    let mut elapsed = std::time::Duration::ZERO;
    for _ in 0..passes {
        let mut fresh = covered.clone();
        let start = Instant::now();
        for e in &shapes {
            assert_eq!(black_box(fresh.observe(black_box(e))), None);
        }
        elapsed += start.elapsed();
    }
    let ns = elapsed.as_nanos() as f64 / (passes * shapes.len()) as f64;
    report("observe, unseen shape already covered (infer + covers)", ns);
}
