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

mod reader;
mod scan;

use crate::error::EventError;
use crate::paths::{PathId, Paths, ROOT};
use reader::Reader;

/// A scalar from the event. Strings live in `Fields::bytes`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    /// Bytes `start..start + len` of the event itself (`borrowed`), or of `Fields::bytes`
    /// (strings that had escapes, and strings from parsed values).
    Str {
        start: u32,
        len: u32,
        borrowed: bool,
    },
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

    /// The bytes of a string scalar; `input` is the event the fields were read from.
    #[inline]
    pub(crate) fn text<'a>(
        &'a self,
        input: &'a [u8],
        start: u32,
        len: u32,
        borrowed: bool,
    ) -> &'a [u8] {
        let source = if borrowed { input } else { &self.bytes };
        &source[start as usize..(start + len) as usize]
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

    /// Records a string that appears unescaped in the event at `start..start + len`.
    fn push_borrowed(&mut self, path: PathId, start: usize, len: usize) {
        self.push(
            path,
            Scalar::Str {
                start: start as u32,
                len: len as u32,
                borrowed: true,
            },
        );
    }

    fn push_str(&mut self, path: PathId, s: &[u8]) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s);
        self.push(
            path,
            Scalar::Str {
                start,
                len: s.len() as u32,
                borrowed: false,
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

    fn values(p: &Paths, f: &Fields, input: &str, path: &str) -> Vec<String> {
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
                Scalar::Str {
                    start,
                    len,
                    borrowed,
                } => String::from_utf8(f.text(input.as_bytes(), start, len, borrowed).to_vec())
                    .unwrap(),
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
        let json = r#"{"x": {"deep": [1, {"y": "}"}]}, "a": {"b": "v\u00e9\"", "z": [1,2]}, "c": [1, 2.5e1, "s", null, true, [false]]}"#;
        let (p, f, r) = read(&["a.b", "c"], json);
        r.unwrap();
        assert_eq!(values(&p, &f, json, "a.b"), vec!["vé\""]);
        assert_eq!(
            values(&p, &f, json, "c"),
            vec!["#1", "#25", "s", "null", "true", "false"]
        );
        assert_eq!(f.fields.len(), 7);
    }

    #[test]
    fn dotted_event_keys_and_array_trails() {
        let json = r#"{"d": {"s.t": "r"}, "arr": [{"k": 1}, {"k": 2}, 3]}"#;
        let (p, f, r) = read(&["d.s.t", "arr.k"], json);
        r.unwrap();
        assert_eq!(values(&p, &f, json, "d.s.t"), vec!["r"]);
        let mut trails: Vec<Vec<(u32, u32)>> =
            f.fields.iter().map(|x| f.trail(x).to_vec()).collect();
        trails.sort();
        assert_eq!(trails, vec![vec![], vec![(0, 0)], vec![(0, 1)]]);
    }

    /// Found by `rules/fuzz` (event_matcher): escapes that decode to control characters,
    /// in keys and values, were refused as "control character in string".
    #[test]
    fn escaped_control_characters_are_valid() {
        let json = r#"{"a\b\\l": "x\ny\t\u0001", "b": "\u00e9\r"}"#;
        let (p, f, r) = read(&["a\u{8}\\l", "b"], json);
        r.unwrap();
        assert_eq!(values(&p, &f, json, "a\u{8}\\l"), vec!["x\ny\t\u{1}"]);
        assert_eq!(values(&p, &f, json, "b"), vec!["é\r"]);
        let (_, _, r) = read(&["a"], "{\"a\": \"x\ny\"}");
        assert!(matches!(r, Err(EventError::InvalidJson { .. })), "{r:?}");
        let (_, _, r) = read(&["a"], "{\"a\": \"\\n\u{1}\"}");
        assert!(matches!(r, Err(EventError::InvalidJson { .. })), "{r:?}");
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
