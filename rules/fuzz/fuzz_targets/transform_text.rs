//! Any text as a Handlebars template or a JSONPath, built into a transform configuration
//! so that the fuzzer spends its time inside the template and path parsers rather than on
//! JSON syntax. Parsing returns a transform or a `TransformError`; applying one that parsed
//! returns a value or a `TransformError`; neither panics, overflows the stack nor runs away
//! with memory.
//!
//! Input: one selector byte, then UTF-8 text split on NUL into parts.
//! - selector even: a `template` transform; part 0 is the template, parts 1.. are the
//!   JSONPaths of the variables `a`, `b`, `c`, ... (at most 8).
//! - selector odd: a `jsonpath` transform; part 0 is the path.
//!
//! Like `transform_config`, everything goes through `Transform::parse`, where a server checks
//! a stored rule's transform and where the template bounds live.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use switchyard_rules::Transform;

const VAR_NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = text.split('\0');
    let first = parts.next().unwrap_or_default();
    let config = if selector % 2 == 0 {
        let vars: Map<String, Value> = VAR_NAMES
            .iter()
            .zip(parts)
            .map(|(name, path)| ((*name).to_owned(), Value::String(path.to_owned())))
            .collect();
        json!({"kind": "template", "vars": vars, "template": first})
    } else {
        json!({"kind": "jsonpath", "path": first})
    };
    let event = json!({
        "specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.created",
        "data": {"customer": "Ann \"A\"", "total": 120.5, "items": [{"sku": "a", "n": 1}, {"sku": "b", "n": 2}],
                 "tags": ["x", "y"], "nested": {"deep": {"deeper": [null, true, "z"]}}, "": {"": 0}}
    });
    if let Ok(transform) = Transform::parse(&config) {
        let _ = transform.apply(&event);
    }
});
