//! Any bytes as a transform configuration and an event: `Transform::parse` returns a
//! transform or a `TransformError`, and applying one that parsed returns a value or a
//! `TransformError`; neither panics, overflows the stack nor runs away with memory.
//!
//! Input: `config NUL event`. Neither JSON text can hold a raw NUL, so the first NUL splits
//! them; without one (or when the event is not JSON) a fixed event is used. Everything goes
//! through `Transform::parse`, where a server checks a stored rule's transform, so the bounds
//! that parsing enforces (template size, nesting, partials) are the ones fuzzed here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use switchyard_rules::Transform;

fn default_event() -> Value {
    json!({
        "specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.created",
        "time": "2026-01-31T00:00:00Z",
        "data": {"customer": "Ann \"A\"", "total": 120.5, "items": [{"sku": "a", "n": 1}, {"sku": "b", "n": 2}],
                 "tags": ["x", "y"], "nested": {"deep": {"deeper": [null, true, "z"]}}}
    })
}

fuzz_target!(|data: &[u8]| {
    let (config, event) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(config) = serde_json::from_slice::<Value>(config) else {
        return;
    };
    let event = serde_json::from_slice(event).unwrap_or_else(|_| default_event());
    if let Ok(transform) = Transform::parse(&config) {
        let _ = transform.apply(&event);
    }
});
