//! A cheap hash of the shape of `data`, so the server can skip inference for a shape its
//! schema already covers. Inference allocates a tree and merging walks the schema; this
//! only hashes, and only a bounded part of the event.

use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::caps::Caps;
use crate::format::Format;

/// Array items hashed per array. Items are usually alike, and hashing them all would make
/// the fingerprint cost as much as inference on long arrays.
pub const FINGERPRINT_ITEMS: usize = 16;

/// Values hashed per event, at most; the rest of a larger event does not count.
pub const FINGERPRINT_VALUES: usize = 4096;

impl Caps {
    /// A hash of what inference under these caps would see in `data`: object keys, JSON
    /// types (integer and number apart), string formats; not the values. Key order,
    /// item order and repeated item shapes do not change it, exactly as they do not change
    /// the schema.
    ///
    /// Bounded: only the first [`FINGERPRINT_ITEMS`] items of each array and the first
    /// [`FINGERPRINT_VALUES`] values of the event are hashed, so two events that differ only
    /// past those bounds share a fingerprint, and a caller that skips inference on a known
    /// fingerprint misses what lies there. The hash is for use within one process: it may
    /// change between releases, so do not store it.
    pub fn fingerprint(&self, data: &Value) -> u64 {
        let mut budget = FINGERPRINT_VALUES;
        shape(data, 0, self, &mut budget)
    }
}

// Distinct tags keep, for example, an empty array apart from an empty object.
const NULL: u64 = 1;
const BOOLEAN: u64 = 2;
const NUMBER: u64 = 3;
const STRING: u64 = 4;
const ARRAY: u64 = 5;
const OBJECT: u64 = 6;
const EXHAUSTED: u64 = 7;

fn shape(value: &Value, depth: u32, caps: &Caps, budget: &mut usize) -> u64 {
    let Some(left) = budget.checked_sub(1) else {
        return mix(EXHAUSTED, 0);
    };
    *budget = left;
    match value {
        Value::Null => mix(NULL, 0),
        Value::Bool(_) => mix(BOOLEAN, 0),
        Value::Number(n) => mix(NUMBER, u64::from(n.is_f64())),
        Value::String(s) => {
            let format = Format::detect(s, caps.max_format_bytes);
            mix(STRING, format.map_or(0, |f| f as u64 + 1))
        }
        Value::Array(values) if depth >= caps.max_depth => {
            mix(ARRAY, u64::from(!values.is_empty()))
        }
        Value::Array(values) => {
            let mut items = [0u64; FINGERPRINT_ITEMS];
            let mut count = 0;
            for (slot, value) in items.iter_mut().zip(values) {
                if *budget == 0 {
                    break;
                }
                *slot = shape(value, depth + 1, caps, budget);
                count += 1;
            }
            let items = &mut items[..count];
            items.sort_unstable();
            let mut hash = mix(ARRAY, u64::MAX);
            let mut previous = None;
            for item in items.iter() {
                if previous != Some(*item) {
                    hash = mix(hash, *item);
                    previous = Some(*item);
                }
            }
            hash
        }
        Value::Object(map) => {
            let (mut sum, mut long_keys, mut cut) = (0u64, false, false);
            for (key, value) in map {
                if *budget == 0 {
                    break;
                }
                if key.len() > caps.max_key_bytes {
                    long_keys = true;
                } else if depth >= caps.max_depth {
                    cut = true;
                } else {
                    let entry = mix(
                        xxh3_64(key.as_bytes()),
                        shape(value, depth + 1, caps, budget),
                    );
                    // Addition does not depend on the order the keys are visited in.
                    sum = sum.wrapping_add(entry);
                }
            }
            let flags = u64::from(long_keys) | u64::from(cut) << 1;
            mix(mix(OBJECT, sum), flags)
        }
    }
}

/// Combines two hashes, order-sensitively, with a multiply-xorshift finaliser (the
/// murmur3/splitmix kind): a few cycles, and every input bit reaches every output bit.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b;
    x ^= x >> 32;
    x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^= x >> 32;
    x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^ (x >> 32)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{FINGERPRINT_ITEMS, FINGERPRINT_VALUES};
    use crate::caps::Caps;

    fn fingerprint(value: &Value) -> u64 {
        Caps::default().fingerprint(value)
    }

    #[test]
    fn values_do_not_count_shapes_do() {
        let same = [
            (json!({"a": 1, "b": "x"}), json!({"b": "y", "a": -5})),
            (json!([1, "a", 2]), json!(["b", 3])),
            (
                json!({"at": "2024-01-01T00:00:00Z"}),
                json!({"at": "1999-12-31T23:59:59.5+01:00"}),
            ),
            (json!([{"x": 1}, {"x": 2}]), json!([{"x": 3}])),
        ];
        for (a, b) in &same {
            assert_eq!(fingerprint(a), fingerprint(b), "{a} vs {b}");
        }
        let different = [
            (json!({"a": 1}), json!({"a": 1.5})),
            (json!({"a": 1}), json!({"b": 1})),
            (json!({"a": 1}), json!({"a": 1, "b": 1})),
            (json!({"a": "x"}), json!({"a": "2024-01-01"})),
            (json!([]), json!({})),
            (json!([]), json!([null])),
            (json!({"a": {"b": 1}}), json!({"a": {"c": 1}})),
            (json!({"a": 1, "b": 2}), json!({"a": 2, "c": 1})),
        ];
        for (a, b) in &different {
            assert_ne!(fingerprint(a), fingerprint(b), "{a} vs {b}");
        }
    }

    #[test]
    fn only_the_first_items_and_values_count() {
        let mut items = vec![json!(1); FINGERPRINT_ITEMS];
        let short = fingerprint(&Value::from(items.clone()));
        items.push(json!("late"));
        assert_eq!(fingerprint(&Value::from(items)), short);

        let values = vec![json!([1]); FINGERPRINT_VALUES];
        let mut tail = values.clone();
        tail.push(json!(["late"]));
        // An object of many small arrays runs out of budget before its last key.
        let object = |values: Vec<Value>| -> Value {
            Value::Object(
                values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{i:05}"), v))
                    .collect(),
            )
        };
        assert_eq!(fingerprint(&object(values)), fingerprint(&object(tail)));
    }

    #[test]
    fn follows_the_caps_it_is_computed_under() {
        let caps = Caps {
            max_depth: 1,
            max_key_bytes: 3,
            ..Caps::default()
        };
        // Below the depth cap and over-long keys, inference sees nothing: nor does this.
        let a = json!({"o": {"x": 1}, "long": 1});
        let b = json!({"o": {"y": "s"}, "longer": true});
        assert_eq!(caps.fingerprint(&a), caps.fingerprint(&b));
        assert_ne!(
            Caps::default().fingerprint(&a),
            Caps::default().fingerprint(&b)
        );
    }
}
