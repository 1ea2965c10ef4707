//! The typed shape to JSON Schema and back. Reading back accepts exactly what writing
//! produces, so a stored version can be resumed after a restart without keeping a second
//! serialisation next to the JSON the API serves.

use serde_json::{Map, Value};

use crate::error::SchemaError;
use crate::format::Format;
use crate::node::{Array, Node, Numeric, Object, Property, Strings};
use crate::schema::DRAFT_2020_12;

/// What `$comment` says when the caps left something out. Stored schemas are read back by
/// matching these exact phrases, so changing one is a format change.
const PROPERTIES_CUT: &str = "properties not inferred: over the schema size caps";
const ITEMS_CUT: &str = "items not inferred: over the schema size caps";
const LONG_KEYS: &str = "properties with over-long names not listed";
const SEPARATOR: &str = "; ";

pub(crate) fn to_json(root: &Node) -> Value {
    let mut map = Map::new();
    map.insert("$schema".to_owned(), Value::from(DRAFT_2020_12));
    render(root, &mut map);
    Value::Object(map)
}

fn render(node: &Node, map: &mut Map<String, Value>) {
    let types = type_names(node);
    let ty = match types.as_slice() {
        [one] => Value::from(*one),
        many => Value::from(many.to_vec()),
    };
    map.insert("type".to_owned(), ty);
    let mut comments = Vec::new();
    if let Some(object) = &node.object {
        if !object.properties.is_empty() {
            let properties: Map<String, Value> = object
                .properties
                .iter()
                .map(|(key, property)| (key.clone(), render_node(&property.schema)))
                .collect();
            map.insert("properties".to_owned(), Value::Object(properties));
        }
        let required: Vec<Value> = object
            .properties
            .iter()
            .filter(|(_, property)| property.required)
            .map(|(key, _)| Value::from(key.as_str()))
            .collect();
        if !required.is_empty() {
            map.insert("required".to_owned(), Value::Array(required));
        }
        if object.cut {
            comments.push(PROPERTIES_CUT);
        }
        if object.long_keys {
            comments.push(LONG_KEYS);
        }
    }
    if let Some(array) = &node.array {
        if let Some(items) = &array.items {
            map.insert("items".to_owned(), render_node(items));
        }
        if array.cut {
            comments.push(ITEMS_CUT);
        }
    }
    if let Some(format) = node.string.and_then(|s| s.format) {
        map.insert("format".to_owned(), Value::from(format.name()));
    }
    if !comments.is_empty() {
        map.insert("$comment".to_owned(), Value::from(comments.join(SEPARATOR)));
    }
}

fn render_node(node: &Node) -> Value {
    let mut map = Map::new();
    render(node, &mut map);
    Value::Object(map)
}

/// The node's types in a fixed order, `null` last so `["string", "null"]` reads as
/// "a nullable string".
fn type_names(node: &Node) -> Vec<&'static str> {
    let mut names = Vec::with_capacity(6);
    if node.object.is_some() {
        names.push("object");
    }
    if node.array.is_some() {
        names.push("array");
    }
    if node.string.is_some() {
        names.push("string");
    }
    match node.number {
        Some(Numeric::Integer) => names.push("integer"),
        Some(Numeric::Number) => names.push("number"),
        None => {}
    }
    if node.boolean {
        names.push("boolean");
    }
    if node.null {
        names.push("null");
    }
    names
}

pub(crate) fn from_json(schema: &Value) -> Result<Node, SchemaError> {
    let Some(map) = schema.as_object() else {
        return Err(not_discovered("", "a schema must be a JSON object"));
    };
    match map.get("$schema") {
        Some(Value::String(uri)) if uri == DRAFT_2020_12 => {}
        _ => {
            return Err(not_discovered(
                "/$schema",
                format!("`$schema` must be \"{DRAFT_2020_12}\""),
            ));
        }
    }
    parse(map, "", true)
}

fn parse(map: &Map<String, Value>, pointer: &str, root: bool) -> Result<Node, SchemaError> {
    let at = |key: &str| format!("{pointer}/{}", escape(key));
    for key in map.keys() {
        let known = matches!(
            key.as_str(),
            "type" | "properties" | "required" | "items" | "format" | "$comment"
        ) || (root && key == "$schema");
        if !known {
            return Err(not_discovered(
                at(key),
                format!("unexpected keyword `{key}`"),
            ));
        }
    }
    let mut node = parse_types(map.get("type"), &at("type"))?;
    let comments = match map.get("$comment") {
        None => Vec::new(),
        Some(Value::String(text)) => text.split(SEPARATOR).collect(),
        Some(_) => {
            return Err(not_discovered(
                at("$comment"),
                "`$comment` must be a string",
            ));
        }
    };
    for comment in &comments {
        let applied = match *comment {
            PROPERTIES_CUT => node.object.as_mut().map(|o| o.cut = true),
            LONG_KEYS => node.object.as_mut().map(|o| o.long_keys = true),
            ITEMS_CUT => node.array.as_mut().map(|a| a.cut = true),
            _ => None,
        };
        if applied.is_none() {
            return Err(not_discovered(
                at("$comment"),
                format!("unexpected comment {comment:?}"),
            ));
        }
    }
    if let Some(properties) = map.get("properties") {
        let (Some(object), Value::Object(properties)) = (&mut node.object, properties) else {
            return Err(not_discovered(
                at("properties"),
                "`properties` needs type object and must be an object",
            ));
        };
        if object.cut || properties.is_empty() {
            return Err(not_discovered(at("properties"), "unexpected `properties`"));
        }
        let base = at("properties");
        for (key, schema) in properties {
            let here = format!("{base}/{}", escape(key));
            let Value::Object(schema) = schema else {
                return Err(not_discovered(here, "a subschema must be an object"));
            };
            let property = Property {
                schema: parse(schema, &here, false)?,
                required: false,
            };
            object.properties.insert(key.clone(), property);
        }
    }
    if let Some(required) = map.get("required") {
        let (Some(object), Value::Array(required)) = (&mut node.object, required) else {
            return Err(not_discovered(
                at("required"),
                "`required` needs type object and must be an array",
            ));
        };
        for (index, key) in required.iter().enumerate() {
            let property = key.as_str().and_then(|key| object.properties.get_mut(key));
            match property {
                Some(property) if !property.required => property.required = true,
                _ => {
                    return Err(not_discovered(
                        format!("{}/{index}", at("required")),
                        "each required name must be a listed property, once",
                    ));
                }
            }
        }
    }
    if let Some(items) = map.get("items") {
        let (Some(array), Value::Object(items)) = (&mut node.array, items) else {
            return Err(not_discovered(
                at("items"),
                "`items` needs type array and must be an object",
            ));
        };
        if array.cut {
            return Err(not_discovered(at("items"), "unexpected `items`"));
        }
        array.items = Some(Box::new(parse(items, &at("items"), false)?));
    }
    if let Some(format) = map.get("format") {
        let format = format.as_str().and_then(Format::from_name);
        match (&mut node.string, format) {
            (Some(strings), Some(format)) => strings.format = Some(format),
            _ => {
                return Err(not_discovered(
                    at("format"),
                    "`format` needs type string and a detectable format",
                ));
            }
        }
    }
    Ok(node)
}

fn parse_types(ty: Option<&Value>, pointer: &str) -> Result<Node, SchemaError> {
    let names: Vec<&str> = match ty {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) if !names.is_empty() => names
            .iter()
            .map(|name| {
                name.as_str()
                    .ok_or_else(|| not_discovered(pointer, "a type must be a string"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(not_discovered(
                pointer,
                "`type` must be a type name or a non-empty list of them",
            ));
        }
    };
    let mut node = Node::default();
    for name in names {
        let duplicate = match name {
            "null" => std::mem::replace(&mut node.null, true),
            "boolean" => std::mem::replace(&mut node.boolean, true),
            "integer" => node.number.replace(Numeric::Integer).is_some(),
            "number" => node.number.replace(Numeric::Number).is_some(),
            "string" => node.string.replace(Strings { format: None }).is_some(),
            "array" => node.array.replace(Array::default()).is_some(),
            "object" => node.object.replace(Object::default()).is_some(),
            other => return Err(not_discovered(pointer, format!("unknown type {other:?}"))),
        };
        if duplicate {
            return Err(not_discovered(
                pointer,
                format!("type {name:?} is listed twice or with another numeric type"),
            ));
        }
    }
    Ok(node)
}

/// RFC 6901 escaping of one pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn not_discovered(pointer: impl Into<String>, message: impl Into<String>) -> SchemaError {
    SchemaError::NotDiscovered {
        pointer: pointer.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::from_json;
    use crate::error::SchemaError;

    fn refused(schema: Value) -> (String, String) {
        match from_json(&schema) {
            Err(SchemaError::NotDiscovered { pointer, message }) => (pointer, message),
            other => panic!("{schema} was read as {other:?}"),
        }
    }

    fn doc(mut body: Value) -> Value {
        body["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        body
    }

    #[test]
    fn only_what_rendering_writes_is_read_back() {
        let cases = [
            (json!({"type": "object"}), "/$schema"),
            (
                doc(json!({"type": "object", "minProperties": 1})),
                "/minProperties",
            ),
            (doc(json!({"type": "strin"})), "/type"),
            (doc(json!({"type": ["integer", "number"]})), "/type"),
            (doc(json!({"type": []})), "/type"),
            (
                doc(json!({"type": "string", "properties": {"a": {"type": "null"}}})),
                "/properties",
            ),
            (
                doc(
                    json!({"type": "object", "properties": {"a": {"type": "null", "$schema": "x"}}}),
                ),
                "/properties/a/$schema",
            ),
            (
                doc(
                    json!({"type": "object", "properties": {"a/b": {"type": "null", "enum": [null]}}}),
                ),
                "/properties/a~1b/enum",
            ),
            (
                doc(
                    json!({"type": "object", "properties": {"a": {"type": "null"}}, "required": ["b"]}),
                ),
                "/required/0",
            ),
            (
                doc(json!({"type": "object", "required": ["a"]})),
                "/required/0",
            ),
            (doc(json!({"type": "array", "items": true})), "/items"),
            (
                doc(json!({"type": "string", "format": "hostname"})),
                "/format",
            ),
            (doc(json!({"type": "integer", "format": "uuid"})), "/format"),
            (
                doc(json!({"type": "integer", "$comment": "hello"})),
                "/$comment",
            ),
            (
                doc(
                    json!({"type": "integer", "$comment": "items not inferred: over the schema size caps"}),
                ),
                "/$comment",
            ),
        ];
        for (schema, pointer) in cases {
            assert_eq!(refused(schema.clone()).0, pointer, "{schema}");
        }
        assert_eq!(
            refused(doc(json!({"type": ["null", "null"]}))),
            (
                "/type".to_owned(),
                "type \"null\" is listed twice or with another numeric type".to_owned()
            )
        );
    }
}
