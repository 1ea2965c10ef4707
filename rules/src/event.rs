//! Events → the flat list of `(path, scalar)` fields that rules can see.
//!
//! The byte flattener reads the JSON once, front to back, guided by the path trie: it only
//! decodes keys on the way to some rule's path and only records scalars at such paths;
//! every other subtree is skipped by scanning for its closing bracket, and once every key
//! the rules want from the objects on the way down (outside arrays) has been read, reading
//! stops altogether. Skipped bytes are checked for balanced brackets and closed strings, not
//! for full JSON grammar, and bytes after the last wanted field are not read at all: callers
//! that need strict validation parse the event anyway before they match it. (So a key
//! repeated in one object counts only in its first occurrence.)
//!
//! Array positions are recorded so that two fields taken from different elements of one
//! array are never combined by one rule, but only for arrays at paths that have fields
//! below them: a plain list of scalars at a rule's path cannot conflict with anything (one
//! conjunction has one condition per path), and leaving its positions out lets the matcher
//! merge the walks its elements start.

use crate::error::EventError;
use crate::paths::{PathId, Paths, ROOT};

/// Deepest nesting read before the event is refused (the flattener recurses per level).
const MAX_DEPTH: usize = 256;

/// A scalar from the event. Strings live in `Fields::bytes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Str { start: u32, len: u32 },
    Num(f64),
    True,
    False,
    Null,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) value: Scalar,
    /// `(array instance, element index)` pairs in `Fields::trails`.
    pub(crate) trail_start: u32,
    pub(crate) trail_len: u32,
    /// Next field with the same path (`u32::MAX` ends the list).
    pub(crate) next: u32,
}

const NONE: u32 = u32::MAX;

/// The fields of one event, grouped by path. Reused from event to event without freeing.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub(crate) fields: Vec<Field>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) trails: Vec<(u32, u32)>,
    head: Vec<u32>,
    head_stamp: Vec<u32>,
    stamp: u32,
    stack: Vec<(u32, u32)>,
    key: Vec<u8>,
    next_array: u32,
}

impl Fields {
    fn reset(&mut self, path_bound: usize) {
        self.fields.clear();
        self.bytes.clear();
        self.trails.clear();
        self.stack.clear();
        self.next_array = 0;
        if self.head.len() < path_bound {
            self.head.resize(path_bound, NONE);
            self.head_stamp.resize(path_bound, 0);
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.head_stamp.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
    }

    /// First field at `path`, or `u32::MAX`.
    #[inline]
    pub(crate) fn first(&self, path: PathId) -> u32 {
        let p = path as usize;
        match self.head_stamp.get(p) {
            Some(&s) if s == self.stamp => self.head[p],
            _ => NONE,
        }
    }

    #[inline]
    pub(crate) fn has(&self, path: PathId) -> bool {
        self.first(path) != NONE
    }

    #[inline]
    pub(crate) fn str_bytes(&self, start: u32, len: u32) -> &[u8] {
        &self.bytes[start as usize..(start + len) as usize]
    }

    #[inline]
    pub(crate) fn trail(&self, field: &Field) -> &[(u32, u32)] {
        &self.trails[field.trail_start as usize..(field.trail_start + field.trail_len) as usize]
    }

    fn push(&mut self, path: PathId, value: Scalar) {
        let trail_start = self.trails.len() as u32;
        self.trails.extend_from_slice(&self.stack);
        let p = path as usize;
        let next = if self.head_stamp[p] == self.stamp {
            self.head[p]
        } else {
            NONE
        };
        self.head_stamp[p] = self.stamp;
        self.head[p] = self.fields.len() as u32;
        self.fields.push(Field {
            value,
            trail_start,
            trail_len: self.stack.len() as u32,
            next,
        });
    }

    fn push_str(&mut self, path: PathId, s: &[u8]) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s);
        self.push(
            path,
            Scalar::Str {
                start,
                len: s.len() as u32,
            },
        );
    }

    /// Flattens a JSON object given as bytes.
    pub(crate) fn read_json(&mut self, paths: &Paths, input: &[u8]) -> Result<(), EventError> {
        self.reset(paths.id_bound());
        let mut reader = Reader { b: input, i: 0 };
        reader.ws();
        if reader.peek() != Some(b'{') {
            // Tell "not JSON" from "JSON but not an object".
            reader.skip_value()?;
            reader.ws();
            if reader.i != input.len() {
                return Err(reader.err("trailing characters after the event"));
            }
            return Err(EventError::NotAnObject);
        }
        if reader.object(self, paths, ROOT, 0, true)? {
            return Ok(());
        }
        reader.ws();
        if reader.i != input.len() {
            return Err(reader.err("trailing characters after the event"));
        }
        Ok(())
    }

    /// Flattens an already parsed event.
    pub(crate) fn read_value(
        &mut self,
        paths: &Paths,
        event: &serde_json::Value,
    ) -> Result<(), EventError> {
        self.reset(paths.id_bound());
        let serde_json::Value::Object(map) = event else {
            return Err(EventError::NotAnObject);
        };
        self.value_object(paths, ROOT, map);
        Ok(())
    }

    fn value_object(
        &mut self,
        paths: &Paths,
        node: u32,
        map: &serde_json::Map<String, serde_json::Value>,
    ) {
        for (key, value) in map {
            if let Some(child) = paths.child(node, key.as_bytes()) {
                self.value_at(paths, child, value);
            }
        }
    }

    fn value_at(&mut self, paths: &Paths, node: u32, value: &serde_json::Value) {
        use serde_json::Value;
        let n = paths.node(node);
        match value {
            Value::Object(map) => {
                if n.has_children() {
                    self.value_object(paths, node, map);
                }
            }
            Value::Array(items) => {
                let array = self.next_array;
                self.next_array += 1;
                // Positions only matter when fields below this path exist (see module doc).
                let record = n.has_children();
                for (i, item) in items.iter().enumerate() {
                    if record {
                        self.stack.push((array, i as u32));
                    }
                    self.value_at(paths, node, item);
                    if record {
                        self.stack.pop();
                    }
                }
            }
            scalar => {
                if let Some(path) = n.leaf {
                    match scalar {
                        Value::String(s) => self.push_str(path, s.as_bytes()),
                        Value::Number(num) => {
                            self.push(path, Scalar::Num(num.as_f64().unwrap_or(f64::NAN)))
                        }
                        Value::Bool(true) => self.push(path, Scalar::True),
                        Value::Bool(false) => self.push(path, Scalar::False),
                        _ => self.push(path, Scalar::Null),
                    }
                }
            }
        }
    }
}

/// Bytes that matter while skipping a container.
static STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t
};

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: &'static str) -> EventError {
        EventError::InvalidJson {
            offset: self.i,
            reason,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
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
    fn object(
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
            self.expect(b':', "expected ':' after a key")?;
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
        let rest = &self.b[start..];
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(n) if rest[n] == b'"' => {
                self.i = start + n + 1;
                Ok(paths.child(node, &rest[..n]))
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
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(n) if rest[n] == b'"' => {
                let raw = &rest[..n];
                check_string(raw).map_err(|reason| EventError::InvalidJson {
                    offset: start,
                    reason,
                })?;
                self.i = start + n + 1;
                out.push_str(path, raw);
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
            let Some(n) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(self.err("unterminated string"));
            };
            buf.extend_from_slice(&rest[..n]);
            self.i += n;
            if rest[n] == b'"' {
                self.i += 1;
                return check_string(buf).map_err(|reason| EventError::InvalidJson {
                    offset: start,
                    reason,
                });
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
            let rest = &self.b[self.i..];
            match memchr::memchr2(b'"', b'\\', rest) {
                Some(n) if rest[n] == b'"' => {
                    self.i += n + 1;
                    return Ok(());
                }
                Some(n) => self.i += n + 2,
                None => return Err(self.err("unterminated string")),
            }
            if self.i > self.b.len() {
                return Err(self.err("unterminated string"));
            }
        }
    }

    fn skip_value(&mut self) -> Result<(), EventError> {
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
        let mut depth = 0usize;
        let b = self.b;
        let mut i = self.i;
        loop {
            while i < b.len() && !STRUCTURAL[b[i] as usize] {
                i += 1;
            }
            let Some(&c) = b.get(i) else {
                self.i = i;
                return Err(self.err("unterminated object or array"));
            };
            i += 1;
            match c {
                b'"' => {
                    self.i = i;
                    self.skip_string()?;
                    i = self.i;
                }
                b'{' | b'[' => depth += 1,
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        self.i = i;
                        return Ok(());
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(paths: &[&str], json: &str) -> (Paths, Fields, Result<(), EventError>) {
        let mut p = Paths::default();
        for path in paths {
            p.acquire(path);
        }
        let mut f = Fields::default();
        let r = f.read_json(&p, json.as_bytes());
        (p, f, r)
    }

    fn values(p: &Paths, f: &Fields, path: &str) -> Vec<String> {
        let mut node = ROOT;
        for seg in path.split('.') {
            node = p.child(node, seg.as_bytes()).unwrap();
        }
        let id = p.node(node).leaf.unwrap();
        let mut out = Vec::new();
        let mut i = f.first(id);
        while i != NONE {
            let field = f.fields[i as usize];
            out.push(match field.value {
                Scalar::Str { start, len } => {
                    String::from_utf8(f.str_bytes(start, len).to_vec()).unwrap()
                }
                Scalar::Num(n) => format!("#{n}"),
                Scalar::True => "true".into(),
                Scalar::False => "false".into(),
                Scalar::Null => "null".into(),
            });
            i = field.next;
        }
        out.reverse();
        out
    }

    #[test]
    fn records_only_used_paths_and_skips_the_rest() {
        let (p, f, r) = read(
            &["a.b", "c"],
            r#"{"x": {"deep": [1, {"y": "}"}]}, "a": {"b": "v\u00e9\"", "z": [1,2]}, "c": [1, 2.5e1, "s", null, true, [false]]}"#,
        );
        r.unwrap();
        assert_eq!(values(&p, &f, "a.b"), vec!["vé\""]);
        assert_eq!(
            values(&p, &f, "c"),
            vec!["#1", "#25", "s", "null", "true", "false"]
        );
        assert_eq!(f.fields.len(), 7);
    }

    #[test]
    fn dotted_event_keys_and_array_trails() {
        let (p, f, r) = read(
            &["d.s.t", "arr.k"],
            r#"{"d": {"s.t": "r"}, "arr": [{"k": 1}, {"k": 2}, 3]}"#,
        );
        r.unwrap();
        assert_eq!(values(&p, &f, "d.s.t"), vec!["r"]);
        let mut trails: Vec<Vec<(u32, u32)>> =
            f.fields.iter().map(|x| f.trail(x).to_vec()).collect();
        trails.sort();
        assert_eq!(trails, vec![vec![], vec![(0, 0)], vec![(0, 1)]]);
    }

    #[test]
    fn errors() {
        for bad in [
            r#"{"a": }"#,
            r#"{"a": "x}"#,
            r#"{"a": [1,}"#,
            r#"{"a": 1} x"#,
            r#"{"c": 01x}"#,
            "{",
        ] {
            let (_, _, r) = read(&["a", "c"], bad);
            assert!(
                matches!(r, Err(EventError::InvalidJson { .. })),
                "{bad}: {r:?}"
            );
        }
        let (_, _, r) = read(&["a"], "[1]");
        assert_eq!(r, Err(EventError::NotAnObject));
        let (_, _, r) = read(&["a"], "\"s\"");
        assert_eq!(r, Err(EventError::NotAnObject));
    }
}
