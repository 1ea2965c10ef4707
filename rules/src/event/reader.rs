//! The byte-level JSON reader behind `Fields::read_json`.

use super::scan;
use super::{Fields, Scalar};
use crate::error::EventError;
use crate::paths::{PathId, Paths};

/// Deepest nesting read before the event is refused (the reader recurses per level).
const MAX_DEPTH: usize = 256;

pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn err(&self, reason: &'static str) -> EventError {
        EventError::InvalidJson {
            offset: self.i,
            reason,
        }
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), EventError> {
        self.ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    /// Reads an object at `node`. With `may_stop`, returns `Ok(true)` as soon as every key
    /// the trie wants here has been read: the caller knows nothing after this point can
    /// matter (an object outside any array holds each key once) and stops reading.
    pub(super) fn object(
        &mut self,
        out: &mut Fields,
        paths: &Paths,
        node: u32,
        depth: usize,
        may_stop: bool,
    ) -> Result<bool, EventError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let wanted = paths.node(node).child_count();
        let mut seen = 0;
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(false);
        }
        loop {
            self.expect(b'"', "expected a key")?;
            let child = self.key(out, paths, node)?;
            // Compact JSON has the colon right after the key.
            if self.b.get(self.i) == Some(&b':') {
                self.i += 1;
            } else {
                self.expect(b':', "expected ':' after a key")?;
            }
            self.ws();
            match child {
                Some(c) => {
                    seen += 1;
                    let last = may_stop && seen == wanted;
                    if self.value(out, paths, c, depth + 1, last)? || last {
                        return Ok(true);
                    }
                }
                None => self.skip_value()?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(false);
                }
                _ => return Err(self.err("expected ',' or '}' in an object")),
            }
        }
    }

    /// Reads a key (after its opening quote) and looks it up under `node`.
    fn key(
        &mut self,
        out: &mut Fields,
        paths: &Paths,
        node: u32,
    ) -> Result<Option<u32>, EventError> {
        let start = self.i;
        match scan::key_end(self.b, start) {
            Some((end, dotted)) if self.b[end] == b'"' => {
                self.i = end + 1;
                let first = scan::load(self.b, start);
                Ok(paths.child_hinted(node, &self.b[start..end], dotted, first))
            }
            Some(_) => {
                let mut key = std::mem::take(&mut out.key);
                key.clear();
                let result = self.unescape_into(&mut key);
                let found = result.map(|()| paths.child(node, &key));
                out.key = key;
                found
            }
            None => Err(self.err("unterminated string")),
        }
    }

    /// Reads a value at `node`; `Ok(true)` means reading may stop (see `object`).
    fn value(
        &mut self,
        out: &mut Fields,
        paths: &Paths,
        node: u32,
        depth: usize,
        may_stop: bool,
    ) -> Result<bool, EventError> {
        let n = paths.node(node);
        let done = match self.peek() {
            Some(b'{') => {
                return if n.has_children() {
                    self.object(out, paths, node, depth, may_stop)
                } else {
                    self.skip_value().map(|()| false)
                };
            }
            Some(b'[') => self.array(out, paths, node, depth),
            Some(b'"') => {
                self.i += 1;
                match n.leaf {
                    Some(path) => self.string_field(out, path),
                    None => self.skip_string(),
                }
            }
            Some(b't') => self.literal(b"true", n.leaf.map(|p| (p, Scalar::True)), out),
            Some(b'f') => self.literal(b"false", n.leaf.map(|p| (p, Scalar::False)), out),
            Some(b'n') => self.literal(b"null", n.leaf.map(|p| (p, Scalar::Null)), out),
            Some(b'-' | b'0'..=b'9') => match n.leaf {
                Some(path) => {
                    let value = self.number()?;
                    out.push(path, Scalar::Num(value));
                    Ok(())
                }
                None => self.skip_number(),
            },
            _ => Err(self.err("expected a value")),
        };
        done.map(|()| false)
    }

    fn array(
        &mut self,
        out: &mut Fields,
        paths: &Paths,
        node: u32,
        depth: usize,
    ) -> Result<(), EventError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let has_children = paths.node(node).has_children();
        self.i += 1; // '['
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let array = out.next_array;
        out.next_array += 1;
        let mut index = 0u32;
        loop {
            self.ws();
            if has_children {
                out.stack.push((array, index));
            }
            self.value(out, paths, node, depth + 1, false)?;
            if has_children {
                out.stack.pop();
            }
            index += 1;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']' in an array")),
            }
        }
    }

    fn literal(
        &mut self,
        word: &'static [u8],
        record: Option<(PathId, Scalar)>,
        out: &mut Fields,
    ) -> Result<(), EventError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            if let Some((path, value)) = record {
                out.push(path, value);
            }
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn skip_literal(&mut self, word: &'static [u8]) -> Result<(), EventError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// Reads a string value (after its opening quote) into the event's string bytes.
    fn string_field(&mut self, out: &mut Fields, path: PathId) -> Result<(), EventError> {
        let start = self.i;
        let rest = &self.b[start..];
        match scan::quote_or_backslash(rest, 0) {
            Some(n) if rest[n] == b'"' => {
                let raw = &rest[..n];
                check_string(raw).map_err(|reason| EventError::InvalidJson {
                    offset: start,
                    reason,
                })?;
                self.i = start + n + 1;
                out.push_borrowed(path, start, n);
                Ok(())
            }
            Some(_) => {
                let mut bytes = std::mem::take(&mut out.key);
                bytes.clear();
                let result = self.unescape_into(&mut bytes);
                if result.is_ok() {
                    out.push_str(path, &bytes);
                }
                out.key = bytes;
                result
            }
            None => Err(self.err("unterminated string")),
        }
    }

    /// Decodes a string with escapes (after its opening quote) into `buf`.
    fn unescape_into(&mut self, buf: &mut Vec<u8>) -> Result<(), EventError> {
        let start = self.i;
        loop {
            let rest = &self.b[self.i..];
            let Some(n) = scan::quote_or_backslash(rest, 0) else {
                return Err(self.err("unterminated string"));
            };
            // Only the raw text between escapes may not hold control characters: `\n`, `\t`
            // or `\u0001` are valid JSON and decode to one. (A backslash or quote never falls
            // inside a UTF-8 sequence, so checking piece by piece checks the UTF-8 too.)
            check_string(&rest[..n]).map_err(|reason| EventError::InvalidJson {
                offset: start,
                reason,
            })?;
            buf.extend_from_slice(&rest[..n]);
            self.i += n;
            if rest[n] == b'"' {
                self.i += 1;
                return Ok(());
            }
            // A backslash.
            let Some(&escape) = self.b.get(self.i + 1) else {
                return Err(self.err("unterminated string"));
            };
            self.i += 2;
            let byte = match escape {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let c = self.unicode_escape()?;
                    let mut utf8 = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    continue;
                }
                _ => return Err(self.err("invalid escape in string")),
            };
            buf.push(byte);
        }
    }

    fn hex4(&mut self) -> Result<u32, EventError> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .ok_or(self.err("short \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let n = (d as char)
                .to_digit(16)
                .ok_or(self.err("invalid \\u escape"))?;
            v = v * 16 + n;
        }
        self.i += 4;
        Ok(v)
    }

    /// Reads the `XXXX` of `\uXXXX`, and a low surrogate's escape after a high one.
    fn unicode_escape(&mut self) -> Result<char, EventError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.b[self.i..].starts_with(b"\\u") {
                return Err(self.err("lone surrogate in \\u escape"));
            }
            self.i += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.err("invalid surrogate pair in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or(self.err("lone surrogate in \\u escape"))
    }

    fn number(&mut self) -> Result<f64, EventError> {
        let start = self.i;
        let b = self.b;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let digits = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            if i == digits {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let digits = i;
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
            if i == digits {
                return Err(self.err("invalid number"));
            }
        }
        self.i = i;
        // The bytes checked above are ASCII, so this cannot fail.
        std::str::from_utf8(&b[start..i])
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or(self.err("invalid number"))
    }

    fn skip_number(&mut self) -> Result<(), EventError> {
        let start = self.i;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.i += 1;
        }
        if self.i == start {
            Err(self.err("invalid number"))
        } else {
            Ok(())
        }
    }

    /// Skips a string after its opening quote.
    #[inline]
    fn skip_string(&mut self) -> Result<(), EventError> {
        loop {
            match scan::quote_or_backslash(self.b, self.i) {
                Some(n) if self.b[n] == b'"' => {
                    self.i = n + 1;
                    return Ok(());
                }
                Some(n) => self.i = n + 2,
                None => return Err(self.err("unterminated string")),
            }
            if self.i > self.b.len() {
                return Err(self.err("unterminated string"));
            }
        }
    }

    pub(super) fn skip_value(&mut self) -> Result<(), EventError> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.skip_string()
            }
            Some(b'{' | b'[') => self.skip_container(),
            Some(b't') => self.skip_literal(b"true"),
            Some(b'f') => self.skip_literal(b"false"),
            Some(b'n') => self.skip_literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            _ => Err(self.err("expected a value")),
        }
    }

    /// Skips a whole object or array by counting brackets outside strings.
    fn skip_container(&mut self) -> Result<(), EventError> {
        match scan::container_end(self.b, self.i) {
            Some(end) => {
                self.i = end;
                Ok(())
            }
            None => {
                self.i = self.b.len();
                Err(self.err("unterminated object or array"))
            }
        }
    }
}

/// Checks a raw string body: valid UTF-8 and no unescaped control characters.
#[inline]
fn check_string(raw: &[u8]) -> Result<(), &'static str> {
    if raw.iter().any(|&b| b < 0x20) {
        return Err("control character in string");
    }
    if !raw.is_ascii() && std::str::from_utf8(raw).is_err() {
        return Err("invalid UTF-8 in string");
    }
    Ok(())
}
