//! One observation: the shape of a single `data` value.

use serde_json::Value;

use crate::caps::Caps;
use crate::format::Format;
use crate::node::{Array, Node, Numeric, Object, Property, Strings};

/// The node describing exactly `value`, children below `caps.max_depth` cut. The size cap
/// is applied afterwards by [`Node::normalize`].
pub(crate) fn infer(value: &Value, depth: u32, caps: &Caps) -> Node {
    let mut node = Node::default();
    match value {
        Value::Null => node.null = true,
        Value::Bool(_) => node.boolean = true,
        Value::Number(n) => {
            node.number = Some(if n.is_f64() {
                Numeric::Number
            } else {
                Numeric::Integer
            });
        }
        Value::String(s) => {
            node.string = Some(Strings {
                format: Format::detect(s, caps.max_format_bytes),
            });
        }
        Value::Array(values) => {
            let mut array = Array::default();
            if depth >= caps.max_depth {
                array.cut = !values.is_empty();
            } else {
                for value in values {
                    let item = infer(value, depth + 1, caps);
                    match &mut array.items {
                        Some(items) => items.absorb(item),
                        None => array.items = Some(Box::new(item)),
                    }
                }
            }
            node.array = Some(array);
        }
        Value::Object(map) => {
            let mut object = Object::default();
            for (key, value) in map {
                if key.len() > caps.max_key_bytes {
                    object.long_keys = true;
                } else if depth >= caps.max_depth {
                    object.cut = true;
                } else {
                    let schema = infer(value, depth + 1, caps);
                    let property = Property {
                        schema,
                        required: true,
                    };
                    object.properties.insert(key.clone(), property);
                }
            }
            node.object = Some(object);
        }
    }
    node
}
