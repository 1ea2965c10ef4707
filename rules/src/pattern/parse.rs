//! Pattern JSON → pattern tree, refusing what Amazon EventBridge refuses.

use serde_json::{Map, Value};

use super::{
    AnythingBut, Bound, Entry, FieldPattern, IpRange, Literal, NumericRange, ObjectPattern,
    ValueMatcher, Wildcard,
};
use crate::error::PatternError;

/// Operator names, which cannot be used as field names inside `$or` (EventBridge reserves
/// them there because a branch object would otherwise be ambiguous).
const OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "cidr",
    "exists",
];

/// `value` rendered for an error message, shortened if long.
fn show(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// The path of a child in error messages: `a.b`, `a[0]`, `a[0].numeric`.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub(super) fn parse_root(value: &Value) -> Result<ObjectPattern, PatternError> {
    let Value::Object(map) = value else {
        return Err(PatternError::new(
            "",
            format!("a pattern must be a JSON object, got {}", show(value)),
        ));
    };
    if map.is_empty() {
        return Err(PatternError::new("", "a pattern must not be empty"));
    }
    parse_object(map, "", false)
}

fn parse_object(
    map: &Map<String, Value>,
    path: &str,
    inside_or: bool,
) -> Result<ObjectPattern, PatternError> {
    if map.is_empty() {
        return Err(PatternError::new(
            path,
            "an object in a pattern must not be empty",
        ));
    }
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        if key == "$or" {
            entries.push(Entry::Or(parse_or(value, &child(path, key))?));
            continue;
        }
        let here = child(path, key);
        if inside_or && OPERATORS.contains(&key.as_str()) {
            return Err(PatternError::new(
                here,
                format!("{key:?} is an operator and cannot be a field name inside $or"),
            ));
        }
        let field = match value {
            Value::Object(inner) => FieldPattern::Object(parse_object(inner, &here, inside_or)?),
            Value::Array(items) => FieldPattern::Values(parse_values(items, &here)?),
            other => {
                return Err(PatternError::new(
                    here,
                    format!(
                        "expected a list of values or an object, got {}",
                        show(other)
                    ),
                ));
            }
        };
        entries.push(Entry::Field {
            key: key.clone(),
            value: field,
        });
    }
    Ok(ObjectPattern { entries })
}

fn parse_or(value: &Value, path: &str) -> Result<Vec<ObjectPattern>, PatternError> {
    let Value::Array(items) = value else {
        return Err(PatternError::new(
            path,
            format!("$or must be a list of objects, got {}", show(value)),
        ));
    };
    if items.len() < 2 {
        return Err(PatternError::new(path, "$or needs at least 2 objects"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => parse_object(map, &index(path, i), true),
            other => Err(PatternError::new(
                index(path, i),
                format!("$or must be a list of objects, got {}", show(other)),
            )),
        })
        .collect()
}

fn parse_values(items: &[Value], path: &str) -> Result<Vec<ValueMatcher>, PatternError> {
    if items.is_empty() {
        return Err(PatternError::new(
            path,
            "the list of values must not be empty",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let here = index(path, i);
            match item {
                Value::String(s) => Ok(ValueMatcher::Exact(Literal::String(s.clone()))),
                Value::Number(_) => Ok(ValueMatcher::Exact(Literal::Number(number(item, &here)?))),
                Value::Bool(b) => Ok(ValueMatcher::Exact(Literal::Bool(*b))),
                Value::Null => Ok(ValueMatcher::Exact(Literal::Null)),
                Value::Object(map) => parse_operator(map, &here),
                Value::Array(_) => Err(PatternError::new(
                    here,
                    "a value must be a string, number, boolean, null or operator object, got a list",
                )),
            }
        })
        .collect()
}

fn number(value: &Value, path: &str) -> Result<f64, PatternError> {
    value
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| PatternError::new(path, format!("expected a number, got {}", show(value))))
}

/// The single `"operator": argument` pair of an operator object.
fn single_key<'a>(
    map: &'a Map<String, Value>,
    path: &str,
) -> Result<(&'a str, &'a Value), PatternError> {
    let mut iter = map.iter();
    match (iter.next(), iter.next()) {
        (Some((key, value)), None) => Ok((key.as_str(), value)),
        (None, _) => Err(PatternError::new(
            path,
            "an operator object must not be empty",
        )),
        (Some(_), Some(_)) => Err(PatternError::new(
            path,
            "an operator object must have exactly one key",
        )),
    }
}

fn string<'a>(value: &'a Value, path: &str) -> Result<&'a str, PatternError> {
    value
        .as_str()
        .ok_or_else(|| PatternError::new(path, format!("expected a string, got {}", show(value))))
}

fn parse_operator(map: &Map<String, Value>, path: &str) -> Result<ValueMatcher, PatternError> {
    let (op, arg) = single_key(map, path)?;
    let here = child(path, op);
    match op {
        "prefix" | "suffix" => {
            let (value, ignore_case) = match arg {
                Value::String(s) => (s.clone(), false),
                Value::Object(inner) => {
                    let (inner_op, inner_arg) = single_key(inner, &here)?;
                    if inner_op != "equals-ignore-case" {
                        return Err(PatternError::new(
                            here,
                            format!(
                                "{op} takes a string or {{\"equals-ignore-case\": string}}, got operator {inner_op:?}"
                            ),
                        ));
                    }
                    let inner_path = child(&here, inner_op);
                    (string(inner_arg, &inner_path)?.to_owned(), true)
                }
                other => {
                    return Err(PatternError::new(
                        here,
                        format!("expected a string, got {}", show(other)),
                    ));
                }
            };
            Ok(if op == "prefix" {
                ValueMatcher::Prefix { value, ignore_case }
            } else {
                ValueMatcher::Suffix { value, ignore_case }
            })
        }
        "equals-ignore-case" => Ok(ValueMatcher::EqualsIgnoreCase(
            string(arg, &here)?.to_owned(),
        )),
        "wildcard" => Ok(ValueMatcher::Wildcard(
            Wildcard::parse(string(arg, &here)?).map_err(|m| PatternError::new(&here, m))?,
        )),
        "anything-but" => Ok(ValueMatcher::AnythingBut(parse_anything_but(arg, &here)?)),
        "numeric" => Ok(ValueMatcher::Numeric(parse_numeric(arg, &here)?)),
        "cidr" => Ok(ValueMatcher::Cidr(
            IpRange::parse(string(arg, &here)?).map_err(|m| PatternError::new(&here, m))?,
        )),
        "exists" => match arg {
            Value::Bool(b) => Ok(ValueMatcher::Exists(*b)),
            other => Err(PatternError::new(
                here,
                format!("expected true or false, got {}", show(other)),
            )),
        },
        other => Err(PatternError::new(
            path,
            format!("unknown operator {other:?}"),
        )),
    }
}

/// A non-empty string or a non-empty list of them (for anything-but's inner operators).
fn strings(value: &Value, path: &str, allow_empty: bool) -> Result<Vec<String>, PatternError> {
    let check = |s: &str, p: &str| {
        if s.is_empty() && !allow_empty {
            Err(PatternError::new(p, "must not be an empty string"))
        } else {
            Ok(s.to_owned())
        }
    };
    match value {
        Value::String(s) => Ok(vec![check(s, path)?]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let here = index(path, i);
                check(string(item, &here)?, &here)
            })
            .collect(),
        Value::Array(_) => Err(PatternError::new(path, "the list must not be empty")),
        other => Err(PatternError::new(
            path,
            format!(
                "expected a string or a list of strings, got {}",
                show(other)
            ),
        )),
    }
}

fn parse_anything_but(arg: &Value, path: &str) -> Result<AnythingBut, PatternError> {
    match arg {
        Value::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
        Value::Number(_) => Ok(AnythingBut::Numbers(vec![number(arg, path)?])),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(PatternError::new(path, "the list must not be empty"));
            }
            if items.iter().all(Value::is_string) {
                Ok(AnythingBut::Strings(
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                ))
            } else if items.iter().all(Value::is_number) {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| number(v, &index(path, i)))
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Numbers)
            } else {
                Err(PatternError::new(
                    path,
                    "the list must hold only strings or only numbers",
                ))
            }
        }
        Value::Object(map) => {
            let (op, inner) = single_key(map, path)?;
            let here = child(path, op);
            match op {
                "prefix" => Ok(AnythingBut::Prefixes(strings(inner, &here, false)?)),
                "suffix" => Ok(AnythingBut::Suffixes(strings(inner, &here, false)?)),
                "equals-ignore-case" => Ok(AnythingBut::IgnoreCase(strings(inner, &here, true)?)),
                "wildcard" => strings(inner, &here, true)?
                    .iter()
                    .map(|w| Wildcard::parse(w).map_err(|m| PatternError::new(&here, m)))
                    .collect::<Result<_, _>>()
                    .map(AnythingBut::Wildcards),
                other => Err(PatternError::new(
                    path,
                    format!("anything-but does not support operator {other:?}"),
                )),
            }
        }
        other => Err(PatternError::new(
            path,
            format!(
                "expected a string, a number, a list or an operator object, got {}",
                show(other)
            ),
        )),
    }
}

fn parse_numeric(arg: &Value, path: &str) -> Result<NumericRange, PatternError> {
    let Value::Array(items) = arg else {
        return Err(PatternError::new(
            path,
            format!(
                "expected a list of operators and numbers, got {}",
                show(arg)
            ),
        ));
    };
    let operator = |i: usize| -> Result<&str, PatternError> {
        match items.get(i) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(PatternError::new(
                path,
                format!("expected an operator, got {}", show(other)),
            )),
            None => Err(PatternError::new(path, "expected an operator")),
        }
    };
    let operand = |i: usize, op: &str| -> Result<f64, PatternError> {
        match items.get(i) {
            Some(v @ Value::Number(_)) => number(v, path),
            Some(other) => Err(PatternError::new(
                path,
                format!("{op} must be followed by a number, got {}", show(other)),
            )),
            None => Err(PatternError::new(
                path,
                format!("{op} must be followed by a number"),
            )),
        }
    };
    let first = operator(0)?;
    let value = operand(1, first)?;
    let (mut lower, mut upper) = (None, None);
    match first {
        "=" => {
            let point = Bound {
                value,
                inclusive: true,
            };
            (lower, upper) = (Some(point), Some(point));
        }
        ">" | ">=" => {
            lower = Some(Bound {
                value,
                inclusive: first == ">=",
            });
        }
        "<" | "<=" => {
            upper = Some(Bound {
                value,
                inclusive: first == "<=",
            });
        }
        other => {
            return Err(PatternError::new(
                path,
                format!("unknown numeric operator {other:?}"),
            ));
        }
    }
    if items.len() > 2 {
        if lower.is_none() || upper.is_some() {
            return Err(PatternError::new(
                path,
                "only a range starting with > or >= may have a second operator",
            ));
        }
        let second = operator(2)?;
        if second != "<" && second != "<=" {
            return Err(PatternError::new(
                path,
                format!("the second operator must be < or <=, got {second:?}"),
            ));
        }
        let top = operand(3, second)?;
        if items.len() > 4 {
            return Err(PatternError::new(
                path,
                "too many elements in numeric range",
            ));
        }
        if let Some(bottom) = lower
            && bottom.value >= top
        {
            return Err(PatternError::new(
                path,
                "the lower end must be less than the upper end",
            ));
        }
        upper = Some(Bound {
            value: top,
            inclusive: second == "<=",
        });
    }
    Ok(NumericRange { lower, upper })
}
