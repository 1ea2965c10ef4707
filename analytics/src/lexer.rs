//! Query text to tokens: punctuation, operators, quoted strings and bare words. A bare word
//! may carry quoted path segments after a dot (`data."a.b".c`); whether a word is a
//! keyword, a field, a value or a full-text term is the parser's call.

use crate::QueryError;
use crate::ast::CompareOp;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Op(CompareOp),
    Word(Word),
    /// A quoted string; `prefix` when a `*` follows the closing quote directly.
    Str {
        text: String,
        prefix: bool,
    },
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
}

/// A bare word: its text as written, and the same split at dots into path segments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Word {
    pub raw: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    pub text: String,
    pub quoted: bool,
    pub start: usize,
}

impl Word {
    /// True when a segment was quoted: such a word can only be a field.
    pub fn has_quoted(&self) -> bool {
        self.segments.iter().any(|s| s.quoted)
    }
}

/// Keywords, matched case-insensitively against whole unquoted words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    Exists,
    In,
}

pub(crate) const KEYWORDS: [&str; 5] = ["and", "or", "not", "exists", "in"];

pub(crate) fn keyword(word: &str) -> Option<Keyword> {
    let kw = [
        Keyword::And,
        Keyword::Or,
        Keyword::Not,
        Keyword::Exists,
        Keyword::In,
    ];
    KEYWORDS
        .iter()
        .position(|k| word.eq_ignore_ascii_case(k))
        .map(|i| kw[i])
}

/// Characters that end a bare word (besides a `!` directly before `=`).
pub(crate) fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | ',' | '"' | '=' | '<' | '>')
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, QueryError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace();
        let start = lexer.pos;
        let Some(c) = lexer.peek() else {
            tokens.push(Token {
                tok: Tok::End,
                start,
            });
            return Ok(tokens);
        };
        let tok = match c {
            '(' => lexer.single(Tok::LParen),
            ')' => lexer.single(Tok::RParen),
            ',' => lexer.single(Tok::Comma),
            '=' => lexer.single(Tok::Op(CompareOp::Eq)),
            '<' | '>' => lexer.angle(c),
            '!' if lexer.peek_second() == Some('=') => {
                lexer.pos += 2;
                Tok::Op(CompareOp::Ne)
            }
            '"' => {
                let text = lexer.string()?;
                let prefix = lexer.peek() == Some('*');
                if prefix {
                    lexer.pos += 1;
                }
                lexer.expect_word_end("the closing quote")?;
                Tok::Str { text, prefix }
            }
            _ => Tok::Word(lexer.word()?),
        };
        tokens.push(Token { tok, start });
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, position: usize, message: impl Into<String>) -> QueryError {
        QueryError::new(self.src, position, message)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.pos += 1;
        tok
    }

    fn angle(&mut self, c: char) -> Tok {
        self.pos += 1;
        let or_equal = self.peek() == Some('=');
        if or_equal {
            self.pos += 1;
        }
        Tok::Op(match (c, or_equal) {
            ('<', false) => CompareOp::Lt,
            ('<', true) => CompareOp::Le,
            (_, false) => CompareOp::Gt,
            (_, true) => CompareOp::Ge,
        })
    }

    /// True at the end of a word: the end of the query, a delimiter, or `!=`.
    fn at_word_end(&self) -> bool {
        match self.peek() {
            None => true,
            Some('"') => false,
            Some('!') => self.peek_second() == Some('='),
            Some(c) => is_delimiter(c),
        }
    }

    fn expect_word_end(&self, after: &str) -> Result<(), QueryError> {
        if self.at_word_end() {
            return Ok(());
        }
        let c = self.peek().unwrap_or(' ');
        Err(self.error(
            self.pos,
            format!("unexpected {c:?} right after {after}; put a space before it"),
        ))
    }

    /// A quoted string with JSON escapes; the cursor is on the opening quote.
    fn string(&mut self) -> Result<String, QueryError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => {
                    return Err(
                        self.error(open, "unterminated string: the closing '\"' is missing")
                    );
                }
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(at, open)?),
                Some(c) => out.push(c),
            }
        }
    }

    /// The character an escape stands for; `at` is the backslash.
    fn escape(&mut self, at: usize, open: usize) -> Result<char, QueryError> {
        let c = match self.bump() {
            None => {
                return Err(self.error(open, "unterminated string: the closing '\"' is missing"));
            }
            Some(c) => c,
        };
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => return self.unicode_escape(at),
            other => {
                return Err(self.error(
                    at,
                    format!(
                        "unknown escape '\\{other}' in a string (escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"
                    ),
                ));
            }
        })
    }

    fn hex4(&mut self, at: usize) -> Result<u32, QueryError> {
        let digits = self.rest().get(..4).unwrap_or_default();
        if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.pos += 4;
            u32::from_str_radix(digits, 16).map_err(|_| self.bad_unicode(at))
        } else {
            Err(self.bad_unicode(at))
        }
    }

    fn bad_unicode(&self, at: usize) -> QueryError {
        self.error(at, "expected four hex digits after '\\u' in a string")
    }

    fn unicode_escape(&mut self, at: usize) -> Result<char, QueryError> {
        let high = self.hex4(at)?;
        let code = if (0xD800..0xDC00).contains(&high) {
            let low_at = self.pos;
            if !self.rest().starts_with("\\u") {
                return Err(self.lone_surrogate(at));
            }
            self.pos += 2;
            let low = self.hex4(low_at)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.lone_surrogate(at));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.lone_surrogate(at))
    }

    fn lone_surrogate(&self, at: usize) -> QueryError {
        self.error(at, "'\\u' escape is an unpaired UTF-16 surrogate")
    }

    /// A bare word; the cursor is on its first character, which is not a delimiter.
    fn word(&mut self) -> Result<Word, QueryError> {
        let start = self.pos;
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut segment_start = start;
        loop {
            if self.at_word_end() {
                break;
            }
            match self.peek() {
                Some('"')
                    if current.is_empty()
                        && self.pos > start
                        && self.src.as_bytes()[self.pos - 1] == b'.' =>
                {
                    let quote = self.pos;
                    let text = self.string()?;
                    segments.push(Segment {
                        text,
                        quoted: true,
                        start: quote,
                    });
                    if self.peek() != Some('.') {
                        self.expect_word_end("a quoted path segment")?;
                        return Ok(self.finish_word(start, segments));
                    }
                    self.pos += 1;
                    segment_start = self.pos;
                }
                Some('"') => {
                    return Err(self.error(
                        self.pos,
                        "unexpected '\"' inside a word; put a space before it, or quote the whole value",
                    ));
                }
                Some('.') => {
                    segments.push(Segment {
                        text: std::mem::take(&mut current),
                        quoted: false,
                        start: segment_start,
                    });
                    self.pos += 1;
                    segment_start = self.pos;
                }
                Some(_) => {
                    if let Some(c) = self.bump() {
                        current.push(c);
                    }
                }
                None => break,
            }
        }
        segments.push(Segment {
            text: current,
            quoted: false,
            start: segment_start,
        });
        Ok(self.finish_word(start, segments))
    }

    fn finish_word(&self, start: usize, segments: Vec<Segment>) -> Word {
        Word {
            raw: self.src.get(start..self.pos).unwrap_or_default().to_owned(),
            segments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn word(raw: &str) -> Tok {
        match kinds(raw).remove(0) {
            w @ Tok::Word(_) => w,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operators_and_punctuation() {
        use CompareOp::*;
        assert_eq!(
            kinds("=!=<<=>>=(),"),
            vec![
                Tok::Op(Eq),
                Tok::Op(Ne),
                Tok::Op(Lt),
                Tok::Op(Le),
                Tok::Op(Gt),
                Tok::Op(Ge),
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::End
            ]
        );
    }

    #[test]
    fn words_end_at_operators_but_keep_a_lone_bang() {
        let toks = lex("a!=b wow! x<=y").unwrap();
        let raws: Vec<_> = toks
            .iter()
            .map(|t| match &t.tok {
                Tok::Word(w) => w.raw.clone(),
                Tok::Op(op) => op.symbol().to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(raws, ["a", "!=", "b", "wow!", "x", "<=", "y", "End"]);
        assert_eq!(
            toks.iter().map(|t| t.start).collect::<Vec<_>>(),
            [0, 1, 3, 5, 10, 11, 13, 14]
        );
    }

    #[test]
    fn quoted_segments_inside_a_path() {
        let Tok::Word(w) = word(r#"data."a.b".c."x\"y""#) else {
            unreachable!()
        };
        let segs: Vec<_> = w
            .segments
            .iter()
            .map(|s| (s.text.as_str(), s.quoted, s.start))
            .collect();
        assert_eq!(
            segs,
            [
                ("data", false, 0),
                ("a.b", true, 5),
                ("c", false, 11),
                ("x\"y", true, 13)
            ]
        );
        assert!(w.has_quoted());
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            kinds(r#""a\"b\\c\/\n\t\r\b\f\u00e9\ud83d\ude00""#)[0],
            Tok::Str {
                text: "a\"b\\c/\n\t\r\u{8}\u{c}é😀".to_owned(),
                prefix: false
            }
        );
        assert_eq!(
            kinds(r#""ab"*"#)[0],
            Tok::Str {
                text: "ab".to_owned(),
                prefix: true
            }
        );
    }

    #[test]
    fn errors() {
        let err = |src: &str| {
            let e = lex(src).unwrap_err();
            (e.position, e.message)
        };
        assert_eq!(
            err(r#"x = "abc"#),
            (
                4,
                "unterminated string: the closing '\"' is missing".to_owned()
            )
        );
        assert_eq!(err(r#""a\q""#).0, 2);
        assert_eq!(
            err(r#""\u12""#),
            (
                1,
                "expected four hex digits after '\\u' in a string".to_owned()
            )
        );
        assert_eq!(
            err(r#""\ud800x""#),
            (1, "'\\u' escape is an unpaired UTF-16 surrogate".to_owned())
        );
        assert_eq!(
            err(r#""\udc00""#),
            (1, "'\\u' escape is an unpaired UTF-16 surrogate".to_owned())
        );
        assert_eq!(
            err(r#"a"b""#),
            (
                1,
                "unexpected '\"' inside a word; put a space before it, or quote the whole value"
                    .to_owned()
            )
        );
        assert_eq!(
            err(r#""a"b"#),
            (
                3,
                "unexpected 'b' right after the closing quote; put a space before it".to_owned()
            )
        );
        assert_eq!(
            err(r#"data."a"b"#),
            (
                8,
                "unexpected 'b' right after a quoted path segment; put a space before it"
                    .to_owned()
            )
        );
    }
}
