//! The crate's errors: a query that does not parse, and an analytics request that does not
//! validate. Both are the client's fault and map to [`ErrorKind::InvalidInput`] (HTTP 400).

use switchyard_core::ErrorKind;
use thiserror::Error;

/// A query the parser refuses, and where.
///
/// `position` is a byte offset into the query text; `line` and `column` say the same for
/// people (both count from 1, the column in characters). `Display` gives
/// `<message> at position <position>`, e.g.
/// `expected a value after '=', got the end of the query at position 6`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} at position {position}")]
pub struct QueryError {
    /// Byte offset of the offending token (the query's length when the query ended early).
    pub position: usize,
    /// Line of `position`, from 1.
    pub line: usize,
    /// Column of `position` in characters, from 1.
    pub column: usize,
    /// What was expected or what is wrong: lowercase, no trailing period.
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(source: &str, position: usize, message: impl Into<String>) -> Self {
        let position = floor_char_boundary(source, position);
        let before = source.get(..position).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        QueryError {
            position,
            line,
            column,
            message: message.into(),
        }
    }

    /// How the API reports it: a bad query is a bad request.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// The largest char boundary of `s` at or before `i` (clamped to `s.len()`).
pub(crate) fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An analytics request body that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnalyticsError {
    /// The body is not the expected JSON object (syntax, a wrong type, an unknown member).
    #[error("invalid request body: {0}")]
    Body(String),
    /// `q` does not parse; the position is inside `q`.
    #[error("q: {0}")]
    Query(QueryError),
    /// A member is well-formed JSON but not a valid setting.
    #[error("{field}: {message}")]
    Invalid {
        /// The member at fault, e.g. `group_by[1]` or `interval`.
        field: String,
        /// What is wrong: lowercase, no trailing period.
        message: String,
    },
}

impl AnalyticsError {
    /// How the API reports it: a body or query that cannot be read is a bad request; a
    /// setting that is well-formed but not allowed is unprocessable.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AnalyticsError::Body(_) | AnalyticsError::Query(_) => ErrorKind::InvalidInput,
            AnalyticsError::Invalid { .. } => ErrorKind::Unprocessable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let e = QueryError::new("a = 1\nbé = ", 12, "x");
        assert_eq!((e.position, e.line, e.column), (12, 2, 6));
        let e = QueryError::new("é", 1, "x");
        assert_eq!((e.position, e.line, e.column), (0, 1, 1));
        assert_eq!(e.to_string(), "x at position 0");
    }
}
