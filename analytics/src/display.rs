//! Queries written back as text: a canonical form (upper-case keywords, explicit `AND`,
//! parentheses only where precedence needs them, quotes only where a bare word would read
//! differently) that parses to an equal [`Query`].

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{CompareOp, Field, Query, Value};
use crate::bare::bare_value;
use crate::lexer::{KEYWORDS, is_delimiter};

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_query(self, Context::Top, f)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Top,
    InOr,
    InAnd,
    InNot,
}

fn write_query(query: &Query, context: Context, f: &mut Formatter<'_>) -> fmt::Result {
    match query {
        Query::All => f.write_str("*"),
        Query::Compare { field, op, value } => write!(f, "{field} {} {value}", op.symbol()),
        Query::Prefix { field, prefix } => {
            write!(f, "{field} {} ", CompareOp::Eq.symbol())?;
            write_prefix(prefix, f)
        }
        Query::In { field, values } => {
            write!(f, "{field} IN (")?;
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{value}")?;
            }
            f.write_char(')')
        }
        Query::Exists { field } => write!(f, "EXISTS {field}"),
        Query::Text { terms } => match terms.as_slice() {
            [one] if is_bare_safe(one) && !is_keyword(one) => f.write_str(one),
            _ => write_quoted(&terms.join(" "), f),
        },
        Query::And(items) => {
            let parens = matches!(context, Context::InAnd | Context::InNot);
            write_junction(items, " AND ", Context::InAnd, parens, f)
        }
        Query::Or(items) => {
            let parens = context != Context::Top;
            write_junction(items, " OR ", Context::InOr, parens, f)
        }
        Query::Not(inner) => {
            f.write_str("NOT ")?;
            write_query(inner, Context::InNot, f)
        }
    }
}

fn write_junction(
    items: &[Query],
    separator: &str,
    context: Context,
    parens: bool,
    f: &mut Formatter<'_>,
) -> fmt::Result {
    if parens {
        f.write_char('(')?;
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        write_query(item, context, f)?;
    }
    if parens {
        f.write_char(')')?;
    }
    Ok(())
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Field::Attribute(name) => f.write_str(name),
            Field::Data(path) => {
                f.write_str("data")?;
                for segment in path {
                    f.write_char('.')?;
                    if is_bare_safe(segment) && !segment.contains('.') {
                        f.write_str(segment)?;
                    } else {
                        write_quoted(segment, f)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => {
                let reads_back = is_bare_safe(s)
                    && !is_keyword(s)
                    && matches!(bare_value(s), Ok(Value::String(_)));
                if reads_back {
                    f.write_str(s)
                } else {
                    write_quoted(s, f)
                }
            }
            // Rust writes the shortest digits that read back as the same f64, never in
            // exponent form: always valid JSON number syntax.
            Value::Number(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("null"),
        }
    }
}

fn write_prefix(prefix: &str, f: &mut Formatter<'_>) -> fmt::Result {
    if is_bare_safe(prefix) {
        f.write_str(prefix)?;
    } else {
        write_quoted(prefix, f)?;
    }
    f.write_char('*')
}

/// Text that lexes as one bare word of exactly these characters, with no `*` to read as
/// a prefix (and no `!`, which might meet a following `=`).
fn is_bare_safe(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !is_delimiter(c) && c != '*' && c != '!')
}

fn is_keyword(s: &str) -> bool {
    KEYWORDS.iter().any(|k| s.eq_ignore_ascii_case(k))
}

fn write_quoted(s: &str, f: &mut Formatter<'_>) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}
