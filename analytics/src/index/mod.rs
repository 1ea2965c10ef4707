//! Queries and analytics as the index runs them: the query language's AST translated into
//! the event index's `Filter` algebra (`switchyard-event-store`), field names as the index
//! knows them, and analytics requests executed as index aggregations ([`run`]).

mod run;

pub use run::{MAX_GROUPS, RunError, run};

use std::ops::Bound;

use switchyard_event_store::{FieldRef, Filter, Scalar};

use crate::{CompareOp, Field, Query, Value};

/// The index filter of a parsed query; `Err` says what search cannot answer yet.
pub fn filter_for(q: &Query) -> Result<Filter, String> {
    Ok(match q {
        Query::All => Filter::All,
        Query::Compare { field, op, value } => compare(field, *op, value)?,
        Query::Prefix { field, prefix } => Filter::Prefix(field_ref(field)?, prefix.clone()),
        Query::In { field, values } => Filter::Or(
            values
                .iter()
                .map(|v| compare(field, CompareOp::Eq, v))
                .collect::<Result<_, _>>()?,
        ),
        Query::Exists { field } => Filter::Exists(field_ref(field)?),
        Query::Text { terms } => Filter::Text(terms.clone()),
        Query::And(parts) => Filter::And(parts.iter().map(filter_for).collect::<Result<_, _>>()?),
        Query::Or(parts) => Filter::Or(parts.iter().map(filter_for).collect::<Result<_, _>>()?),
        Query::Not(inner) => Filter::Not(Box::new(filter_for(inner)?)),
    })
}

fn compare(field: &Field, op: CompareOp, value: &Value) -> Result<Filter, String> {
    let target = field_ref(field)?;
    // `time` is an instant: compare it as one, `=` included (`…T01:00:00+01:00` is
    // `…T00:00:00Z`), as the reference does.
    let (target, scalar) = match (&target, value) {
        (FieldRef::Attr(_), Value::String(s)) if field.is_time() => {
            let ms = crate::parse_timestamp_ms(s)
                .ok_or_else(|| format!("time {s:?} is not a timestamp"))?;
            let at = Scalar::TimeMs(ms);
            let equal = Filter::Range {
                field: FieldRef::Time,
                lower: Bound::Included(at.clone()),
                upper: Bound::Included(at.clone()),
            };
            let range = |lower, upper| Filter::Range {
                field: FieldRef::Time,
                lower,
                upper,
            };
            return Ok(match op {
                CompareOp::Eq => equal,
                CompareOp::Ne => Filter::Not(Box::new(equal)),
                CompareOp::Gt => range(Bound::Excluded(at), Bound::Unbounded),
                CompareOp::Ge => range(Bound::Included(at), Bound::Unbounded),
                CompareOp::Lt => range(Bound::Unbounded, Bound::Excluded(at)),
                CompareOp::Le => range(Bound::Unbounded, Bound::Included(at)),
            });
        }
        (_, Value::String(s)) => (target, Scalar::Str(s.clone())),
        (_, Value::Number(n)) => (target, Scalar::Num(*n)),
        (_, Value::Bool(b)) => (target, Scalar::Bool(*b)),
        (_, Value::Null) => {
            // `field = null`: the field has no value.
            let missing = Filter::Not(Box::new(Filter::Exists(target)));
            return match op {
                CompareOp::Eq => Ok(missing),
                CompareOp::Ne => Ok(Filter::Not(Box::new(missing))),
                CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => {
                    Err(format!("{} cannot be ordered against null", field))
                }
            };
        }
    };
    let range = |lower, upper| Filter::Range {
        field: target.clone(),
        lower,
        upper,
    };
    // A number also equals a string that spells it (`id = 42` finds `"id": "42"`), as in
    // the reference evaluator.
    let equal = match (&target, &scalar) {
        (FieldRef::Attr(_) | FieldRef::Data(_), Scalar::Num(n)) => Filter::Or(vec![
            Filter::Eq(target.clone(), scalar.clone()),
            Filter::Eq(target.clone(), Scalar::Str(n.to_string())),
        ]),
        _ => Filter::Eq(target.clone(), scalar.clone()),
    };
    Ok(match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => Filter::Not(Box::new(equal)),
        CompareOp::Gt => range(Bound::Excluded(scalar), Bound::Unbounded),
        CompareOp::Ge => range(Bound::Included(scalar), Bound::Unbounded),
        CompareOp::Lt => range(Bound::Unbounded, Bound::Excluded(scalar)),
        CompareOp::Le => range(Bound::Unbounded, Bound::Included(scalar)),
    })
}

/// The index field a query field reads; `Err` where the index cannot address it.
pub fn field_ref(field: &Field) -> Result<FieldRef, String> {
    match field {
        Field::Attribute(name) => Ok(FieldRef::Attr(name.clone())),
        Field::Data(path) if path.is_empty() => {
            Err("compare a path into data (data.x), not data itself".to_owned())
        }
        Field::Data(path) => {
            if path.iter().any(|s| s.contains('.')) {
                return Err("keys that contain dots cannot be searched yet".to_owned());
            }
            Ok(FieldRef::Data(path.join(".")))
        }
    }
}
