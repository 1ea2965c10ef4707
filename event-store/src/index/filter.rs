//! What a search asks for, and its translation into Tantivy queries.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, ExistsQuery, InvertedIndexRangeQuery, Occur, PhraseQuery,
    Query, RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;

use super::doc::timestamp_ms;
use super::{Fields, IndexError};

/// A field of an indexed event.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldRef {
    /// A CloudEvent attribute or extension (`type`, `source`, `tier`…).
    Attr(String),
    /// A dotted path into `data` (`customer.tier`), without the leading `data.`.
    Data(String),
    /// The `time` attribute, as a timestamp.
    Time,
    /// When the server received the event.
    ReceivedAt,
    Offset,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
    /// Milliseconds since the Unix epoch, for `Time` and `ReceivedAt`.
    TimeMs(i64),
}

/// A search over indexed events.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    Eq(FieldRef, Scalar),
    Range {
        field: FieldRef,
        lower: Bound<Scalar>,
        upper: Bound<Scalar>,
    },
    Exists(FieldRef),
    /// A string value of the field starts with this (case-sensitive, like equality).
    Prefix(FieldRef, String),
    /// A phrase: one of `data`'s strings holds these tokens in order and adjacent. The
    /// tokens are as `switchyard_core::text::tokenize` cuts them (the index's own
    /// tokenizer); no tokens match nothing.
    Text(Vec<String>),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// This filter over records received in `[from_ms, to_ms)` (either end open when
    /// `None`).
    pub fn received_within(self, from_ms: Option<i64>, to_ms: Option<i64>) -> Filter {
        if from_ms.is_none() && to_ms.is_none() {
            return self;
        }
        let window = Filter::Range {
            field: FieldRef::ReceivedAt,
            lower: from_ms.map_or(Bound::Unbounded, |ms| Bound::Included(Scalar::TimeMs(ms))),
            upper: to_ms.map_or(Bound::Unbounded, |ms| Bound::Excluded(Scalar::TimeMs(ms))),
        };
        Filter::And(vec![self, window])
    }
}

pub(crate) fn and(queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        queries.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

pub(crate) fn offset_below(f: &Fields, offset: u64) -> Box<dyn Query> {
    Box::new(RangeQuery::new(
        Bound::Unbounded,
        Bound::Excluded(Term::from_field_u64(f.offset, offset)),
    ))
}

pub(crate) fn translate(f: &Fields, filter: &Filter) -> Result<Box<dyn Query>, IndexError> {
    Ok(match filter {
        Filter::All => Box::new(AllQuery),
        // Numbers compare through the fast-field column, which holds every number of a path
        // whatever JSON form it came in; the inverted index keeps integers and floats apart.
        Filter::Eq(field @ (FieldRef::Attr(_) | FieldRef::Data(_)), value @ Scalar::Num(_)) => {
            let t = term(f, field, value)?;
            Box::new(RangeQuery::new(
                Bound::Included(t.clone()),
                Bound::Included(t),
            ))
        }
        Filter::Eq(field, value) => Box::new(TermQuery::new(
            term(f, field, value)?,
            IndexRecordOption::Basic,
        )),
        Filter::Range {
            field,
            lower,
            upper,
        } => {
            let bound = |b: &Bound<Scalar>| -> Result<Bound<Term>, IndexError> {
                Ok(match b {
                    Bound::Included(v) => Bound::Included(term(f, field, v)?),
                    Bound::Excluded(v) => Bound::Excluded(term(f, field, v)?),
                    Bound::Unbounded => Bound::Unbounded,
                })
            };
            if matches!((lower, upper), (Bound::Unbounded, Bound::Unbounded)) {
                return Ok(Box::new(ExistsQuery::new(column(field), true)));
            }
            let is = |b: &Bound<Scalar>, str_: bool| match b {
                Bound::Included(v) | Bound::Excluded(v) => {
                    if str_ {
                        matches!(v, Scalar::Str(_))
                    } else {
                        matches!(v, Scalar::Bool(_))
                    }
                }
                Bound::Unbounded => false,
            };
            if is(lower, false) || is(upper, false) {
                return Err(IndexError::Unsupported(format!(
                    "{}: true and false have no order",
                    column(field)
                )));
            }
            if is(lower, true) || is(upper, true) {
                // Strings order by their bytes, through the term dictionary, within the
                // strings of this one path.
                let (lo, hi) = string_bounds(f, field)?;
                let lower = match bound(lower)? {
                    Bound::Unbounded => Bound::Included(lo),
                    b => b,
                };
                let upper = match bound(upper)? {
                    Bound::Unbounded => Bound::Excluded(hi),
                    b => b,
                };
                return Ok(Box::new(InvertedIndexRangeQuery::new(lower, upper)));
            }
            Box::new(RangeQuery::new(bound(lower)?, bound(upper)?))
        }
        Filter::Exists(field) => Box::new(ExistsQuery::new(column(field), true)),
        Filter::Prefix(field, prefix) => {
            let lower = term(f, field, &Scalar::Str(prefix.clone()))?;
            let mut upper = lower.clone();
            // 0xFF never occurs in UTF-8: every string that extends the prefix sorts below.
            upper.append_bytes(&[0xFF]);
            Box::new(InvertedIndexRangeQuery::new(
                Bound::Included(lower),
                Bound::Excluded(upper),
            ))
        }
        Filter::Text(tokens) => {
            let mut terms: Vec<Term> = tokens
                .iter()
                .map(|t| Term::from_field_text(f.text, t))
                .collect();
            match terms.len() {
                0 => Box::new(EmptyQuery),
                // One token: whether the term is there, no frequencies or positions to read.
                1 => Box::new(TermQuery::new(terms.remove(0), IndexRecordOption::Basic)),
                _ => Box::new(super::phrase::Phrase(PhraseQuery::new(terms))),
            }
        }
        Filter::And(parts) => and(parts
            .iter()
            .map(|p| translate(f, p))
            .collect::<Result<_, _>>()?),
        Filter::Or(parts) => Box::new(BooleanQuery::new(
            parts
                .iter()
                .map(|p| translate(f, p).map(|q| (Occur::Should, q)))
                .collect::<Result<_, _>>()?,
        )),
        Filter::Not(inner) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
            (Occur::MustNot, translate(f, inner)?),
        ])),
    })
}

impl FieldRef {
    /// The field's fast-field column, as aggregation requests name it (`attrs.type`,
    /// `data.customer.tier`, `received_at`).
    pub fn column(&self) -> String {
        match self {
            FieldRef::Attr(name) => format!("attrs.{name}"),
            FieldRef::Data(p) => format!("data.{p}"),
            FieldRef::Time => "time".to_owned(),
            FieldRef::ReceivedAt => "received_at".to_owned(),
            FieldRef::Offset => "offset".to_owned(),
        }
    }
}

fn column(field: &FieldRef) -> String {
    field.column()
}

fn term(f: &Fields, field: &FieldRef, value: &Scalar) -> Result<Term, IndexError> {
    let mismatch = || {
        IndexError::Unsupported(format!(
            "{} cannot be compared with {value:?}",
            column(field)
        ))
    };
    match field {
        FieldRef::Time | FieldRef::ReceivedAt => {
            let Scalar::TimeMs(ms) = value else {
                return Err(mismatch());
            };
            let target = if *field == FieldRef::Time {
                f.time
            } else {
                f.received_at
            };
            Ok(Term::from_field_date(target, timestamp_ms(*ms)))
        }
        FieldRef::Offset => match value {
            Scalar::Num(n) if *n >= 0.0 => Ok(Term::from_field_u64(f.offset, *n as u64)),
            _ => Err(mismatch()),
        },
        FieldRef::Attr(name) => Ok(json_term(f.attrs, name, value)),
        FieldRef::Data(p) => Ok(json_term(f.data, p, value)),
    }
}

/// The smallest and (exclusive) largest term among one path's strings.
fn string_bounds(f: &Fields, field: &FieldRef) -> Result<(Term, Term), IndexError> {
    let lo = term(f, field, &Scalar::Str(String::new()))?;
    let mut hi = lo.clone();
    hi.append_bytes(&[0xFF]);
    Ok((lo, hi))
}

fn json_term(field: tantivy::schema::Field, path: &str, value: &Scalar) -> Term {
    let mut term = Term::from_field_json_path(field, path, false);
    match value {
        Scalar::Str(s) => term.append_type_and_str(s),
        // -0 is indexed as 0 (see `doc`).
        Scalar::Num(n) => term.append_type_and_fast_value(*n + 0.0),
        Scalar::Bool(b) => term.append_type_and_fast_value(*b),
        Scalar::TimeMs(ms) => term.append_type_and_fast_value(timestamp_ms(*ms)),
    }
    term
}
