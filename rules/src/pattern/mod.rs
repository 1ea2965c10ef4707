//! Event patterns: the parsed form of an EventBridge pattern, and its expansion into
//! conjunctions of per-field conditions (one per `$or` combination), which is what the
//! automaton compiles.

mod cidr;
mod parse;
mod wildcard;

use std::fmt;

pub use cidr::IpRange;
pub use wildcard::{MAX_WILDCARD_COMPLEXITY, Wildcard, WildcardToken};

use crate::error::PatternError;

/// Most conjunctions one pattern may expand to through its `$or`s: each becomes a branch of
/// the automaton, so an unbounded product would let one rule take the memory of thousands.
pub const MAX_OR_COMBINATIONS: usize = 1000;

/// A validated EventBridge event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: ObjectPattern,
}

/// The fields of one pattern object, in the order they were written, plus its `$or`s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectPattern {
    pub(crate) entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    Field { key: String, value: FieldPattern },
    Or(Vec<ObjectPattern>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldPattern {
    Object(ObjectPattern),
    Values(Vec<ValueMatcher>),
}

/// A JSON scalar a pattern can ask for exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string, compared byte for byte.
    String(String),
    /// A number, compared numerically (`5` matches `5.0`).
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// One inclusive or exclusive end of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The limit.
    pub value: f64,
    /// Whether the limit itself is in the range.
    pub inclusive: bool,
}

/// `{"numeric": [...]}`: a range with up to two ends (`=` is a range of one point).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericRange {
    /// Lower end, if any.
    pub lower: Option<Bound>,
    /// Upper end, if any.
    pub upper: Option<Bound>,
}

/// The forms of `anything-but`.
#[derive(Debug, Clone, PartialEq)]
pub enum AnythingBut {
    /// Any value that is not one of these strings.
    Strings(Vec<String>),
    /// Any value that is not one of these numbers.
    Numbers(Vec<f64>),
    /// Any value that is not a string with one of these prefixes.
    Prefixes(Vec<String>),
    /// Any value that is not a string with one of these suffixes.
    Suffixes(Vec<String>),
    /// Any value that is not a string matching one of these wildcards.
    Wildcards(Vec<Wildcard>),
    /// Any value that is not one of these strings, ignoring case.
    IgnoreCase(Vec<String>),
}

/// One alternative for a field: the field matches when any alternative matches one of its
/// values.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueMatcher {
    /// `"x"`, `5`, `true`, `null`.
    Exact(Literal),
    /// `{"prefix": "x"}` or `{"prefix": {"equals-ignore-case": "x"}}`.
    Prefix {
        /// The prefix.
        value: String,
        /// Whether case is ignored.
        ignore_case: bool,
    },
    /// `{"suffix": "x"}` or `{"suffix": {"equals-ignore-case": "x"}}`.
    Suffix {
        /// The suffix.
        value: String,
        /// Whether case is ignored.
        ignore_case: bool,
    },
    /// `{"equals-ignore-case": "x"}`.
    EqualsIgnoreCase(String),
    /// `{"wildcard": "a*b"}`.
    Wildcard(Wildcard),
    /// `{"anything-but": ...}`.
    AnythingBut(AnythingBut),
    /// `{"numeric": [...]}`.
    Numeric(NumericRange),
    /// `{"cidr": "10.0.0.0/24"}`.
    Cidr(IpRange),
    /// `{"exists": true|false}`.
    Exists(bool),
}

/// A condition on one flattened field path: one of `alternatives` must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Dot-joined field path, e.g. `detail.state`.
    pub path: String,
    /// The alternatives listed for the field.
    pub alternatives: Vec<ValueMatcher>,
}

/// A set of conditions that must all hold (one branch of the pattern's `$or`s).
pub type Conjunction = Vec<Condition>;

impl Pattern {
    /// Parses and validates a pattern from its JSON text.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| PatternError::new("", format!("invalid JSON: {e}")))?;
        Pattern::from_value(&value)
    }

    /// Validates a pattern that is already parsed as JSON.
    pub fn from_value(value: &serde_json::Value) -> Result<Pattern, PatternError> {
        let root = parse::parse_root(value)?;
        let pattern = Pattern { root };
        // Expanding checks the `$or` combination limit, so a pattern that parses is one
        // the matcher accepts.
        pattern.conjunctions()?;
        Ok(pattern)
    }

    /// The pattern as a list of alternatives, each a conjunction of field conditions with
    /// at most one condition per path, sorted by path.
    pub fn conjunctions(&self) -> Result<Vec<Conjunction>, PatternError> {
        let mut out: Vec<Vec<Condition>> = vec![Vec::new()];
        expand_object(&self.root, "", &mut out)?;
        for conjunction in &mut out {
            conjunction.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(out)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "{s:?}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Adds the object's conditions to every conjunction in `out`, forking them at each `$or`.
/// A later condition on the same path replaces an earlier one, as in EventBridge.
fn expand_object(
    object: &ObjectPattern,
    prefix: &str,
    out: &mut Vec<Vec<Condition>>,
) -> Result<(), PatternError> {
    for entry in &object.entries {
        match entry {
            Entry::Field { key, value } => {
                let path = join(prefix, key);
                match value {
                    FieldPattern::Object(inner) => expand_object(inner, &path, out)?,
                    FieldPattern::Values(alternatives) => {
                        for conjunction in out.iter_mut() {
                            conjunction.retain(|c| c.path != path);
                            conjunction.push(Condition {
                                path: path.clone(),
                                alternatives: alternatives.clone(),
                            });
                        }
                    }
                }
            }
            Entry::Or(branches) => {
                let current = std::mem::take(out);
                for branch in branches {
                    let mut forked = current.clone();
                    expand_object(branch, prefix, &mut forked)?;
                    out.extend(forked);
                    if out.len() > MAX_OR_COMBINATIONS {
                        return Err(PatternError::new(
                            prefix,
                            format!("$or expands to more than {MAX_OR_COMBINATIONS} combinations"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Pattern::parse(text) {
            Ok(p) => panic!("expected an error for {text}, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_offending_path() {
        assert_eq!(
            err(r#"{"data": {"total": [{"numeric": [10]}]}}"#),
            "data.total[0].numeric: expected an operator, got 10"
        );
        assert_eq!(
            err(r#"{"detail": {"state": [{"anything-but": null}]}}"#),
            "detail.state[0].anything-but: expected a string, a number, a list or an operator object, got null"
        );
        assert_eq!(
            err(r#"{"a": 42}"#),
            "a: expected a list of values or an object, got 42"
        );
        assert_eq!(
            err(r#"{"a": []}"#),
            "a: the list of values must not be empty"
        );
        assert_eq!(err(r#"[]"#), "a pattern must be a JSON object, got []");
        assert_eq!(err(r#"{}"#), "a pattern must not be empty");
        assert_eq!(
            err(r#"{"a": [{"EXISTS": true}]}"#),
            "a[0]: unknown operator \"EXISTS\""
        );
    }

    #[test]
    fn or_expands_into_conjunctions_sharing_the_outer_fields() {
        let p = Pattern::parse(
            r#"{"source": ["s"], "detail": {"$or": [{"a": [1]}, {"b": [2], "c": {"d": [3]}}]}}"#,
        )
        .unwrap();
        let paths: Vec<Vec<String>> = p
            .conjunctions()
            .unwrap()
            .into_iter()
            .map(|c| c.into_iter().map(|c| c.path).collect())
            .collect();
        assert_eq!(
            paths,
            vec![
                vec!["detail.a".to_owned(), "source".to_owned()],
                vec![
                    "detail.b".to_owned(),
                    "detail.c.d".to_owned(),
                    "source".to_owned()
                ],
            ]
        );
    }

    #[test]
    fn or_combinations_are_limited() {
        // 4 nested $or of 6 branches each: 6^4 = 1296 > 1000.
        let branch = |inner: &str| {
            let items: Vec<String> = (0..6)
                .map(|i| format!(r#"{{"f{i}": ["v"]{inner}}}"#))
                .collect();
            format!(r#", "$or": [{}]"#, items.join(","))
        };
        let mut inner = String::new();
        for _ in 0..4 {
            inner = branch(&inner);
        }
        let text = format!(r#"{{"x": ["y"]{inner}}}"#);
        assert!(err(&text).contains("$or expands to more than 1000 combinations"));
    }
}
