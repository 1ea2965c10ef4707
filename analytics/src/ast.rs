//! The parsed query: a tree of typed predicates over fields, ready to evaluate
//! ([`Query::matches`]) or to translate into an index's queries.

use crate::QueryError;
use crate::parser;

/// A parsed query. Build one with [`Query::parse`]; `Display` writes it back in a canonical
/// form that parses to an equal value.
///
/// The parser keeps the tree flat: an `And` never holds an `And` and an `Or` never holds an
/// `Or`, and neither holds fewer than two items.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Every event: the empty query, or `*`.
    All,
    /// `field op value`. `!=` is exactly `NOT (field = value)`: it holds when the field is
    /// missing.
    Compare {
        /// The field compared.
        field: Field,
        /// The comparison.
        op: CompareOp,
        /// The value compared with.
        value: Value,
    },
    /// `field = prefix*`: the field holds a string starting with `prefix` (never empty).
    Prefix {
        /// The field tested.
        field: Field,
        /// What the string starts with, case-sensitive.
        prefix: String,
    },
    /// `field IN (v1, v2, …)`: the same as `field = v1 OR field = v2 OR …`.
    In {
        /// The field tested.
        field: Field,
        /// The accepted values (at least one).
        values: Vec<Value>,
    },
    /// `EXISTS field`: the field holds a value other than `null` (a scalar, or an array or
    /// object holding one).
    Exists {
        /// The field tested.
        field: Field,
    },
    /// A bare word or a quoted phrase: these tokens, in this order and adjacent, in one
    /// string value anywhere in `data`. Tokens are as [`tokenize`](crate::tokenize) makes
    /// them (lowercase runs of letters and digits), never empty.
    Text {
        /// The phrase's tokens.
        terms: Vec<String>,
    },
    /// Every item holds.
    And(Vec<Query>),
    /// At least one item holds.
    Or(Vec<Query>),
    /// The item does not hold.
    Not(Box<Query>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator as written in a query.
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    /// `<`, `<=`, `>` or `>=`: operators that order values rather than test equality.
    pub fn is_ordering(self) -> bool {
        match self {
            CompareOp::Eq | CompareOp::Ne => false,
            CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => true,
        }
    }
}

/// A value in a comparison. Bare words become numbers (JSON number syntax), booleans
/// (`true`, `false`) or `null`; anything else, and anything quoted, is a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string, compared exactly (case-sensitive).
    String(String),
    /// A finite number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`: `field = null` holds when the field has no value (see [`Query::Exists`]).
    Null,
}

impl Value {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Number(n) => number_json(*n),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Null => serde_json::Value::Null,
        }
    }
}

/// A number as JSON: integral values that fit an `i64` as integers, so `10.0` reads `10`.
pub(crate) fn number_json(n: f64) -> serde_json::Value {
    // 2^63 as f64; values in (-2^63, 2^63) convert to i64 exactly when integral.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if n.fract() == 0.0 && n > -LIMIT && n < LIMIT {
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Where a value lives in an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// A top-level member: a CloudEvent context attribute (`type`, `source`, `subject`,
    /// `id`, `time`, `datacontenttype`, …) or extension; for delivery records, their
    /// top-level fields (`outcome`, `latency_ms`). Lowercase ASCII letters, digits and `_`.
    Attribute(String),
    /// A path into `data`: `data` alone is `Data(vec![])`, `data.customer.tier` is
    /// `Data(vec!["customer", "tier"])`. Segments are object keys; arrays on the way are
    /// looked through (any element may match).
    Data(Vec<String>),
}

impl Field {
    /// Parses a field as the query language writes it: `type`, `data.customer.tier`,
    /// `data."a.b"`. Used for `group_by` and metric fields.
    pub fn parse(text: &str) -> Result<Field, QueryError> {
        parser::parse_field(text)
    }

    /// True for the `time` attribute, which compares as an instant (milliseconds), not as
    /// text.
    pub fn is_time(&self) -> bool {
        matches!(self, Field::Attribute(name) if name == "time")
    }
}

impl Query {
    /// Parses a query. The empty (or all-blank) query is [`Query::All`].
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        parser::parse(text)
    }

    /// All items must hold. Nested `And`s are flattened; one item is returned as is; no
    /// item at all is [`Query::All`].
    pub fn and(items: Vec<Query>) -> Query {
        Self::junction(items, true)
    }

    /// At least one item must hold. Nested `Or`s are flattened; one item is returned as is.
    /// No item at all is `NOT *` (nothing).
    pub fn or(items: Vec<Query>) -> Query {
        Self::junction(items, false)
    }

    fn junction(items: Vec<Query>, and: bool) -> Query {
        let mut flat = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Query::And(inner) if and => flat.extend(inner),
                Query::Or(inner) if !and => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match (flat.len(), and) {
            (0, true) => Query::All,
            (0, false) => Query::Not(Box::new(Query::All)),
            (1, _) => flat.pop().unwrap_or(Query::All),
            (_, true) => Query::And(flat),
            (_, false) => Query::Or(flat),
        }
    }

    /// The fields the query names, each once, in the order they first appear. Full-text
    /// terms name no field (they search all of `data`; see [`Query::has_text`]).
    pub fn fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        self.walk(&mut |q| {
            let field = match q {
                Query::Compare { field, .. }
                | Query::Prefix { field, .. }
                | Query::In { field, .. }
                | Query::Exists { field } => field,
                Query::All | Query::Text { .. } | Query::And(_) | Query::Or(_) | Query::Not(_) => {
                    return;
                }
            };
            if !out.contains(&field) {
                out.push(field);
            }
        });
        out
    }

    /// Whether any full-text term appears.
    pub fn has_text(&self) -> bool {
        let mut found = false;
        self.walk(&mut |q| found |= matches!(q, Query::Text { .. }));
        found
    }

    fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Query)) {
        visit(self);
        match self {
            Query::And(items) | Query::Or(items) => items.iter().for_each(|q| q.walk(visit)),
            Query::Not(inner) => inner.walk(visit),
            Query::All
            | Query::Compare { .. }
            | Query::Prefix { .. }
            | Query::In { .. }
            | Query::Exists { .. }
            | Query::Text { .. } => {}
        }
    }

    /// The same query in negation normal form, which a backend with "must not" clauses
    /// maps one node at a time: `NOT` appears only directly above a leaf, `!=` becomes
    /// `NOT =`, double negations cancel and De Morgan's laws push `NOT` through `AND`/`OR`.
    /// It matches exactly the events `self` matches.
    pub fn to_nnf(&self) -> Query {
        self.nnf(false)
    }

    fn nnf(&self, negate: bool) -> Query {
        let leaf = |q: Query| if negate { Query::Not(Box::new(q)) } else { q };
        match self {
            Query::And(items) | Query::Or(items) => {
                let items = items.iter().map(|q| q.nnf(negate)).collect();
                if matches!(self, Query::And(_)) != negate {
                    Query::and(items)
                } else {
                    Query::or(items)
                }
            }
            Query::Not(inner) => inner.nnf(!negate),
            Query::Compare {
                field,
                op: CompareOp::Ne,
                value,
            } => {
                let eq = Query::Compare {
                    field: field.clone(),
                    op: CompareOp::Eq,
                    value: value.clone(),
                };
                if negate { eq } else { Query::Not(Box::new(eq)) }
            }
            Query::All
            | Query::Compare { .. }
            | Query::Prefix { .. }
            | Query::In { .. }
            | Query::Exists { .. }
            | Query::Text { .. } => leaf(self.clone()),
        }
    }
}
