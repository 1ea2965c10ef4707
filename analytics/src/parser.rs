//! Tokens to a [`Query`]: recursive descent over the grammar in the crate docs, with the
//! limits that keep a hostile query cheap.

use crate::ast::{CompareOp, Field, Query, Value};
use crate::bare::{bare_value, is_attribute_name};
use crate::error::floor_char_boundary;
use crate::lexer::{self, Keyword, Segment, Tok, Token, Word};
use crate::{QueryError, text, time};

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// How deep parentheses and `NOT` may nest, together.
pub const MAX_DEPTH: usize = 32;
/// How many leaf terms (comparisons, `EXISTS`, full-text terms, `*`, and each value of an
/// `IN` list) one query may hold.
pub const MAX_TERMS: usize = 512;

pub(crate) fn parse(src: &str) -> Result<Query, QueryError> {
    let mut parser = Parser::new(src)?;
    if parser.peek().tok == Tok::End {
        return Ok(Query::All);
    }
    let query = parser.or()?;
    match &parser.peek().tok {
        Tok::End => Ok(query),
        Tok::RParen => Err(parser.error_here("unmatched ')': there is no '(' to close")),
        _ => Err(parser.error_here(format!(
            "expected AND, OR or the end of the query, got {}",
            parser.describe(0)
        ))),
    }
}

pub(crate) fn parse_field(src: &str) -> Result<Field, QueryError> {
    let mut parser = Parser::new(src)?;
    let start = parser.peek().start;
    let field = match parser.next().tok {
        Tok::Word(word) => parser.field(&word, start)?,
        _ => {
            return Err(QueryError::new(
                src,
                start,
                format!("expected a field, got {}", describe(&parser.tokens[0].tok)),
            ));
        }
    };
    if parser.peek().tok != Tok::End {
        return Err(parser.error_here(format!(
            "expected the end of the field, got {}",
            parser.describe(0)
        )));
    }
    Ok(field)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    terms: usize,
}

/// A value as written after an operator or in an `IN` list.
enum Written {
    Value(Value),
    Prefix(String),
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Result<Self, QueryError> {
        if src.len() > MAX_QUERY_BYTES {
            return Err(QueryError::new(
                src,
                floor_char_boundary(src, MAX_QUERY_BYTES),
                format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        Ok(Parser {
            src,
            tokens: lexer::lex(src)?,
            pos: 0,
            depth: 0,
            terms: 0,
        })
    }

    /// The token `ahead` places after the cursor; the end token past the end.
    fn at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.pos + ahead).min(last)]
    }

    fn peek(&self) -> &Token {
        self.at(0)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::End {
            self.pos += 1;
        }
        token
    }

    fn describe(&self, ahead: usize) -> String {
        describe(&self.at(ahead).tok)
    }

    fn error_at(&self, position: usize, message: impl Into<String>) -> QueryError {
        QueryError::new(self.src, position, message)
    }

    fn error_here(&self, message: impl Into<String>) -> QueryError {
        self.error_at(self.peek().start, message)
    }

    /// A word directly followed by a comparison operator, or by `IN (`, is a field name
    /// whatever it spells: that is how `in = 1` or `exists not` stay possible.
    fn is_field_at(&self, ahead: usize) -> bool {
        matches!(self.at(ahead).tok, Tok::Word(_)) && self.is_operator_at(ahead + 1)
    }

    /// A comparison operator, or `IN (`.
    fn is_operator_at(&self, ahead: usize) -> bool {
        match &self.at(ahead).tok {
            Tok::Op(_) => true,
            Tok::Word(w) => {
                plain_keyword(w) == Some(Keyword::In) && self.at(ahead + 1).tok == Tok::LParen
            }
            _ => false,
        }
    }

    /// The keyword at `ahead`, unless that word is a field name.
    fn keyword_at(&self, ahead: usize) -> Option<Keyword> {
        match &self.at(ahead).tok {
            Tok::Word(w) if !self.is_field_at(ahead) => plain_keyword(w),
            _ => None,
        }
    }

    fn starts_term(&self) -> bool {
        match &self.peek().tok {
            Tok::LParen | Tok::Str { .. } => true,
            Tok::Word(_) => !matches!(self.keyword_at(0), Some(Keyword::And | Keyword::Or)),
            Tok::RParen | Tok::Comma | Tok::Op(_) | Tok::End => false,
        }
    }

    fn expect_term_after(&self, what: &str) -> Result<(), QueryError> {
        if self.starts_term() {
            Ok(())
        } else {
            Err(self.error_here(format!(
                "expected a term after {what}, got {}",
                self.describe(0)
            )))
        }
    }

    fn or(&mut self) -> Result<Query, QueryError> {
        let mut items = vec![self.and()?];
        while self.keyword_at(0) == Some(Keyword::Or) {
            self.next();
            self.expect_term_after("OR")?;
            items.push(self.and()?);
        }
        Ok(Query::or(items))
    }

    fn and(&mut self) -> Result<Query, QueryError> {
        let mut items = vec![self.unary()?];
        loop {
            if self.keyword_at(0) == Some(Keyword::And) {
                self.next();
                self.expect_term_after("AND")?;
            } else if !self.starts_term() {
                break;
            }
            items.push(self.unary()?);
        }
        Ok(Query::and(items))
    }

    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                at,
                format!("the query nests parentheses and NOT deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn count_term(&mut self, at: usize) -> Result<(), QueryError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error_at(at, format!("the query has more than {MAX_TERMS} terms")));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Query, QueryError> {
        if self.keyword_at(0) != Some(Keyword::Not) {
            return self.primary();
        }
        let not = self.next();
        self.enter(not.start)?;
        self.expect_term_after("NOT")?;
        let inner = self.unary()?;
        self.depth -= 1;
        Ok(Query::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Query, QueryError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::LParen => {
                self.next();
                self.enter(token.start)?;
                self.expect_term_after("'('")?;
                let inner = self.or()?;
                if self.peek().tok != Tok::RParen {
                    return Err(self.error_here(format!(
                        "expected ')' to close the '(' at position {}, got {}",
                        token.start,
                        self.describe(0)
                    )));
                }
                self.next();
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Str { text, prefix } => {
                if self.is_operator_at(1) {
                    return Err(self.error_at(
                        token.start,
                        "a field name cannot be quoted: write type = x, or quote only path segments as in data.\"a b\" = x",
                    ));
                }
                if prefix {
                    return Err(self.error_at(token.start, WILDCARD_IN_TEXT));
                }
                self.next();
                self.text(&text, token.start)
            }
            Tok::Word(_) if matches!(self.keyword_at(0), Some(Keyword::And | Keyword::Or)) => {
                Err(self.error_here(format!("expected a term, got {}", self.describe(0))))
            }
            Tok::Word(word) => self.word_term(&word, token.start),
            Tok::RParen | Tok::Comma | Tok::Op(_) | Tok::End => {
                Err(self.error_here(format!("expected a term, got {}", self.describe(0))))
            }
        }
    }

    /// A term that starts with a bare word: a comparison, `IN`, `EXISTS`, `*`, or text.
    fn word_term(&mut self, word: &Word, start: usize) -> Result<Query, QueryError> {
        if self.is_field_at(0) {
            self.next();
            let field = self.field(word, start)?;
            return match self.next().tok {
                Tok::Op(op) => self.comparison(field, op),
                _ => {
                    self.next(); // the '('
                    self.in_list(field)
                }
            };
        }
        match self.keyword_at(0) {
            Some(Keyword::Exists) => {
                self.next();
                let at = self.peek().start;
                let Tok::Word(name) = self.peek().tok.clone() else {
                    return Err(self.error_here(format!(
                        "expected a field after EXISTS, got {}",
                        self.describe(0)
                    )));
                };
                self.next();
                let field = self.field(&name, at)?;
                self.count_term(start)?;
                return Ok(Query::Exists { field });
            }
            Some(Keyword::And | Keyword::Or | Keyword::Not | Keyword::In) | None => {}
        }
        if word.has_quoted() {
            return Err(self.error_at(
                self.at(1).start,
                format!(
                    "expected a comparison operator after the field {}, got {}",
                    word.raw,
                    self.describe(1)
                ),
            ));
        }
        if let Some(star) = word.raw.find('*') {
            if word.raw == "*" {
                self.next();
                self.count_term(start)?;
                return Ok(Query::All);
            }
            return Err(self.error_at(start + star, WILDCARD_IN_TEXT));
        }
        self.next();
        self.text(&word.raw, start)
    }

    fn text(&mut self, text: &str, start: usize) -> Result<Query, QueryError> {
        self.count_term(start)?;
        let terms = text::tokenize(text);
        if terms.is_empty() {
            return Err(self.error_at(start, "a full-text term needs at least one letter or digit"));
        }
        Ok(Query::Text { terms })
    }

    fn field(&self, word: &Word, start: usize) -> Result<Field, QueryError> {
        let (first, rest) = match word.segments.split_first() {
            Some(split) => split,
            None => return Err(self.error_at(start, "expected a field")),
        };
        if first.text == "data" && !first.quoted {
            let mut path = Vec::with_capacity(rest.len());
            for segment in rest {
                path.push(self.data_segment(segment, word)?);
            }
            return Ok(Field::Data(path));
        }
        if first.text.is_empty() {
            return Err(self.error_at(start, format!("empty segment in the field {}", word.raw)));
        }
        if !rest.is_empty() {
            let suggestion = match word.raw.get(..4) {
                Some(head) if head.eq_ignore_ascii_case("data") => {
                    format!("data{}", &word.raw[4..])
                }
                _ => format!("data.{}", word.raw),
            };
            return Err(self.error_at(
                start,
                format!(
                    "unknown field {}: only data has nested fields (did you mean {suggestion}?)",
                    word.raw
                ),
            ));
        }
        let name = &first.text;
        if is_attribute_name(name) {
            return Ok(Field::Attribute(name.clone()));
        }
        let lower = name.to_ascii_lowercase();
        let hint = if lower == "data" || is_attribute_name(&lower) {
            format!(" (did you mean {lower}?)")
        } else {
            String::new()
        };
        Err(self.error_at(
            start,
            format!(
                "unknown field {name}: attribute names are lowercase letters, digits and '_'{hint}"
            ),
        ))
    }

    fn data_segment(&self, segment: &Segment, word: &Word) -> Result<String, QueryError> {
        if !segment.quoted {
            if segment.text.is_empty() {
                return Err(self.error_at(
                    segment.start,
                    format!("empty segment in the field {}", word.raw),
                ));
            }
            if let Some(star) = segment.text.find('*') {
                return Err(self.error_at(
                    segment.start + star,
                    "'*' cannot appear in a field name (quote the segment to mean a literal '*')",
                ));
            }
        }
        Ok(segment.text.clone())
    }

    fn comparison(&mut self, field: Field, op: CompareOp) -> Result<Query, QueryError> {
        let token = self.next();
        let written = self.value(&token, &format!("'{}'", op.symbol()))?;
        self.count_term(token.start)?;
        let value = match written {
            Written::Prefix(prefix) => {
                if field.is_time() {
                    return Err(self.error_at(token.start, TIME_PREFIX));
                }
                let prefix_query = Query::Prefix { field, prefix };
                return match op {
                    CompareOp::Eq => Ok(prefix_query),
                    CompareOp::Ne => Ok(Query::Not(Box::new(prefix_query))),
                    CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => Err(self.error_at(
                        token.start,
                        format!("a prefix value (ending in '*') only works with '=' or '!=', not '{}'", op.symbol()),
                    )),
                };
            }
            Written::Value(value) => value,
        };
        if op.is_ordering() && matches!(value, Value::Bool(_) | Value::Null) {
            return Err(self.error_at(
                token.start,
                format!("'{}' compares numbers or strings, not {value}", op.symbol()),
            ));
        }
        if field.is_time() {
            self.check_time(&value, &token)?;
        }
        Ok(Query::Compare { field, op, value })
    }

    fn in_list(&mut self, field: Field) -> Result<Query, QueryError> {
        let mut values = Vec::new();
        let mut after = "'('".to_owned();
        loop {
            let token = self.next();
            let value = match self.value(&token, &after)? {
                Written::Value(value) => value,
                Written::Prefix(_) => {
                    return Err(self.error_at(
                        token.start,
                        "a prefix value (ending in '*') cannot be used in an IN list",
                    ));
                }
            };
            self.count_term(token.start)?;
            if field.is_time() {
                self.check_time(&value, &token)?;
            }
            values.push(value);
            match self.peek().tok {
                Tok::Comma => after = "','".to_owned(),
                Tok::RParen => {
                    self.next();
                    return Ok(Query::In { field, values });
                }
                _ => {
                    return Err(self.error_here(format!(
                        "expected ',' or ')' in the IN list, got {}",
                        self.describe(0)
                    )));
                }
            }
            self.next();
        }
    }

    fn value(&self, token: &Token, after: &str) -> Result<Written, QueryError> {
        match &token.tok {
            Tok::Str {
                text,
                prefix: false,
            } => Ok(Written::Value(Value::String(text.clone()))),
            Tok::Str { text, prefix: true } if text.is_empty() => {
                Err(self.error_at(token.start, EMPTY_PREFIX))
            }
            Tok::Str { text, prefix: true } => Ok(Written::Prefix(text.clone())),
            Tok::Word(word) if plain_keyword(word).is_some() => Err(self.error_at(
                token.start,
                format!(
                    "expected a value after {after}, got {} (quote a keyword to use it as a value)",
                    describe(&token.tok)
                ),
            )),
            Tok::Word(word) if !word.has_quoted() => self.bare_word_value(&word.raw, token.start),
            Tok::Word(_) | Tok::LParen | Tok::RParen | Tok::Comma | Tok::Op(_) | Tok::End => {
                Err(self.error_at(
                    token.start,
                    format!(
                        "expected a value after {after}, got {}",
                        describe(&token.tok)
                    ),
                ))
            }
        }
    }

    fn bare_word_value(&self, raw: &str, start: usize) -> Result<Written, QueryError> {
        if let Some(star) = raw.find('*') {
            if star + 1 != raw.len() {
                return Err(self.error_at(
                    start + star,
                    "'*' is only supported at the end of a value, as a prefix (quote the value to mean a literal '*')",
                ));
            }
            if star == 0 {
                return Err(self.error_at(start, EMPTY_PREFIX));
            }
            return Ok(Written::Prefix(raw[..star].to_owned()));
        }
        match bare_value(raw) {
            Ok(value) => Ok(Written::Value(value)),
            Err(()) => Err(self.error_at(start, format!("the number {raw} is out of range"))),
        }
    }

    fn check_time(&self, value: &Value, token: &Token) -> Result<(), QueryError> {
        let ok = match value {
            Value::String(s) => time::parse_timestamp_ms(s).is_some(),
            Value::Null => true,
            Value::Number(_) | Value::Bool(_) => false,
        };
        if ok {
            return Ok(());
        }
        Err(self.error_at(
            token.start,
            format!(
                "time takes an RFC 3339 timestamp such as 2024-01-31T12:00:00Z or a date such as 2024-01-31, got {}",
                describe(&token.tok)
            ),
        ))
    }
}

const WILDCARD_IN_TEXT: &str = "wildcards are not supported in full-text terms, only as a prefix value such as type = com.shop.*";
const EMPTY_PREFIX: &str =
    "expected text before '*' (to test that a field is present, use EXISTS field)";
const TIME_PREFIX: &str = "time takes a timestamp, not a prefix (use time >= and time <)";

fn plain_keyword(word: &Word) -> Option<Keyword> {
    if word.has_quoted() {
        None
    } else {
        lexer::keyword(&word.raw)
    }
}

/// A token as error messages name it.
fn describe(tok: &Tok) -> String {
    const LONGEST: usize = 32;
    let clip = |s: &str| -> String {
        if s.chars().count() > LONGEST {
            format!("{}…", s.chars().take(LONGEST).collect::<String>())
        } else {
            s.to_owned()
        }
    };
    match tok {
        Tok::LParen => "'('".to_owned(),
        Tok::RParen => "')'".to_owned(),
        Tok::Comma => "','".to_owned(),
        Tok::Op(op) => format!("'{}'", op.symbol()),
        Tok::End => "the end of the query".to_owned(),
        Tok::Str { text, prefix } => {
            format!("{:?}{}", clip(text), if *prefix { "*" } else { "" })
        }
        Tok::Word(word) => match plain_keyword(word) {
            Some(_) => word.raw.to_ascii_uppercase(),
            None => format!("'{}'", clip(&word.raw)),
        },
    }
}
