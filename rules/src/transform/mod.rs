//! Transforms: what a target receives for a matched event (SPEC §5).
//!
//! A transform is parsed and checked once, when the rule is stored (JSONPaths parsed,
//! templates compiled), so applying it to an event can only fail for reasons the event
//! brings, and never panics. Parsing also bounds what applying may cost (see [`path`] and
//! [`template`]): no stored rule can overflow the stack or run unbounded.

mod path;
mod template;

use serde_json::{Map, Value};

pub use path::{MAX_PATH_LEN, MAX_PATH_NESTING};
pub use template::{
    MAX_TEMPLATE_COST, MAX_TEMPLATE_LEN, MAX_TEMPLATE_NESTING, MAX_TEMPLATE_OUTPUT,
    MAX_TEMPLATE_VARS,
};

use self::path::Path;
use self::template::Template;
use crate::error::TransformError;

#[derive(Debug)]
enum Kind {
    Complete,
    JsonPath(Path),
    Constant(Value),
    Template {
        vars: Vec<(String, Path)>,
        template: Template,
    },
    Function(String),
}

/// A validated transform configuration.
#[derive(Debug)]
pub struct Transform {
    kind: Kind,
}

fn invalid(field: &str, message: impl Into<String>) -> TransformError {
    TransformError::InvalidConfig {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn string_field<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, TransformError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(invalid(key, format!("must be a string, got {other}"))),
        None => Err(invalid(key, "is required")),
    }
}

/// A variable's value as text for the template: strings as themselves, everything else
/// (a missing path included, as `null`) as JSON.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Transform {
    /// The default transform: the whole event.
    pub fn complete() -> Transform {
        Transform {
            kind: Kind::Complete,
        }
    }

    /// Parses a target's `transform` object, e.g. `{"kind": "jsonpath", "path": "$.data"}`.
    /// `null` means `complete`.
    pub fn parse(config: &Value) -> Result<Transform, TransformError> {
        let map = match config {
            Value::Null => return Ok(Transform::complete()),
            Value::Object(map) => map,
            other => {
                return Err(invalid(
                    "transform",
                    format!("must be an object, got {other}"),
                ));
            }
        };
        let kind = string_field(map, "kind")?;
        let allowed: &[&str] = match kind {
            "complete" => &["kind"],
            "jsonpath" => &["kind", "path"],
            "constant" => &["kind", "value"],
            "template" => &["kind", "vars", "template"],
            "function" => &["kind", "function"],
            other => {
                return Err(invalid(
                    "kind",
                    format!(
                        "unknown transform kind {other:?} (expected complete, jsonpath, constant, template or function)"
                    ),
                ));
            }
        };
        if let Some(extra) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(
                extra,
                format!("is not a field of a {kind} transform"),
            ));
        }
        let kind = match kind {
            "complete" => Kind::Complete,
            "jsonpath" => Kind::JsonPath(Path::parse(string_field(map, "path")?, "path")?),
            "constant" => Kind::Constant(
                map.get("value")
                    .cloned()
                    .ok_or_else(|| invalid("value", "is required"))?,
            ),
            "template" => Self::parse_template(map)?,
            _ => {
                let name = string_field(map, "function")?;
                if name.is_empty() {
                    return Err(invalid("function", "must not be empty"));
                }
                Kind::Function(name.to_owned())
            }
        };
        Ok(Transform { kind })
    }

    fn parse_template(map: &Map<String, Value>) -> Result<Kind, TransformError> {
        let template = string_field(map, "template")?;
        let vars = match map.get("vars") {
            None => Vec::new(),
            Some(Value::Object(vars)) => vars
                .iter()
                .map(|(name, path)| {
                    let field = format!("vars.{name}");
                    match path {
                        Value::String(p) => Ok((name.clone(), Path::parse(p, &field)?)),
                        other => Err(invalid(
                            &field,
                            format!("must be a JSONPath string, got {other}"),
                        )),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(
                    "vars",
                    format!("must be an object of name to JSONPath, got {other}"),
                ));
            }
        };
        let template =
            Template::compile(template, vars.len()).map_err(|e| invalid("template", e))?;
        Ok(Kind::Template { vars, template })
    }

    /// The function a `function` transform needs, if this is one.
    pub fn function_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Function(name) => Some(name),
            Kind::Complete | Kind::JsonPath(_) | Kind::Constant(_) | Kind::Template { .. } => None,
        }
    }

    /// What the target receives for `event`. The rules crate cannot execute code: a
    /// `function` transform fails with [`TransformError::NeedsFunction`], and the caller,
    /// which has a WASM runtime, runs [`Transform::function_name`] itself.
    pub fn apply(&self, event: &Value) -> Result<Value, TransformError> {
        match &self.kind {
            Kind::Complete => Ok(event.clone()),
            Kind::JsonPath(path) => Ok(path.select(event)),
            Kind::Constant(value) => Ok(value.clone()),
            Kind::Template { vars, template } => {
                let data: Map<String, Value> = vars
                    .iter()
                    .map(|(name, path)| {
                        (
                            name.clone(),
                            Value::String(render_value(&path.select(event))),
                        )
                    })
                    .collect();
                let text = template.render(&data).map_err(TransformError::Render)?;
                Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Kind::Function(name) => Err(TransformError::NeedsFunction(name.clone())),
        }
    }

    /// The JSONPaths this transform reads, for display.
    pub fn paths(&self) -> Vec<&str> {
        match &self.kind {
            Kind::JsonPath(p) => vec![p.text.as_str()],
            Kind::Template { vars, .. } => vars.iter().map(|(_, p)| p.text.as_str()).collect(),
            Kind::Complete | Kind::Constant(_) | Kind::Function(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event() -> Value {
        json!({"id": "e1", "type": "order.created", "data": {"customer": "Ann \"A\"", "total": 120, "items": [{"sku": "a"}, {"sku": "b"}]}})
    }

    fn apply(config: Value) -> Value {
        Transform::parse(&config).unwrap().apply(&event()).unwrap()
    }

    #[test]
    fn kinds() {
        assert_eq!(apply(Value::Null), event());
        assert_eq!(apply(json!({"kind": "complete"})), event());
        assert_eq!(
            apply(json!({"kind": "jsonpath", "path": "$.data.total"})),
            json!(120)
        );
        assert_eq!(
            apply(json!({"kind": "jsonpath", "path": "$.data.items[*].sku"})),
            json!(["a", "b"])
        );
        assert_eq!(
            apply(json!({"kind": "jsonpath", "path": "$.nope"})),
            Value::Null
        );
        assert_eq!(
            apply(json!({"kind": "constant", "value": {"x": [1]}})),
            json!({"x": [1]})
        );
    }

    #[test]
    fn templates_render_json_when_they_can_and_text_otherwise() {
        let out = apply(json!({
            "kind": "template",
            "vars": {"who": "$.data.customer", "total": "$.data.total", "missing": "$.data.nope", "items": "$.data.items"},
            "template": "{\"text\": \"order by {{who}} for {{total}}\", \"n\": {{total}}, \"m\": {{missing}}, \"items\": {{{items}}}}"
        }));
        assert_eq!(
            out,
            json!({"text": "order by Ann \"A\" for 120", "n": 120, "m": null, "items": [{"sku": "a"}, {"sku": "b"}]})
        );
        let text = apply(
            json!({"kind": "template", "vars": {"who": "$.data.customer"}, "template": "hello {{who}} {{missing}}"}),
        );
        assert_eq!(text, json!("hello Ann \\\"A\\\" "));
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let err = |config: Value| Transform::parse(&config).unwrap_err().to_string();
        assert_eq!(err(json!({"kind": "jsonpath"})), "path: is required");
        assert!(
            err(json!({"kind": "jsonpath", "path": "data[["}))
                .starts_with("path: invalid JSONPath")
        );
        assert!(
            err(json!({"kind": "template", "vars": {"x": "$$"}, "template": "{{x}}"}))
                .starts_with("vars.x: invalid JSONPath")
        );
        assert!(
            err(json!({"kind": "template", "template": "{{#if}}"}))
                .starts_with("template: invalid Handlebars template")
        );
        assert_eq!(
            err(json!({"kind": "constant", "value": 1, "path": "$"})),
            "path: is not a field of a constant transform"
        );
        assert!(err(json!({"kind": "wasm"})).starts_with("kind: unknown transform kind"));
        assert_eq!(
            err(json!({"kind": "function", "function": ""})),
            "function: must not be empty"
        );
        assert_eq!(
            err(json!("complete")),
            "transform: must be an object, got \"complete\""
        );
    }

    #[test]
    fn functions_are_left_to_the_caller() {
        let t = Transform::parse(&json!({"kind": "function", "function": "id"})).unwrap();
        assert_eq!(t.function_name(), Some("id"));
        assert_eq!(
            t.apply(&event()).unwrap_err(),
            TransformError::NeedsFunction("id".to_owned())
        );
    }

    #[test]
    fn transforms_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Transform>();
    }
}
