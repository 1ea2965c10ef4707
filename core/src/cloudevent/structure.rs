//! What JSON's grammar allows but an event may not have: a key twice in one object, nesting
//! deeper than [`MAX_EVENT_DEPTH`], and `\uD800`–`\uDFFF` escapes that do not form a pair.
//!
//! Each is refused because readers disagree about it: with a repeated key the rule matcher
//! (which reads bytes) sees the first value and serde_json the last, so a rule could be
//! evaded; past ~128 levels serde_json stops parsing, so a stored event would never be
//! indexed; a lone surrogate is not a Unicode scalar, so decoders drop, replace or refuse it.
//!
//! The check is one pass over text that serde_json has already validated (it tolerates
//! invalid JSON without panicking, but then proves nothing). Strings are crossed with
//! `memchr`; keys are remembered per open object, on one stack shared by all of them, as
//! slices of the text (decoded only when they contain escapes), and looked up linearly
//! until an object has `SMALL_OBJECT` keys, through a hash set after that.

use std::borrow::Cow;
use std::collections::HashSet;

/// How deep an event may nest, counting the event object itself as level 1 (so an object
/// in `data` is level 2). Well inside serde_json's recursion limit (128), which the indexer
/// and most consumers would otherwise hit.
pub const MAX_EVENT_DEPTH: usize = 64;

/// Objects up to this many keys are checked for repeats by a linear search.
const SMALL_OBJECT: usize = 16;

/// Why an event's JSON was refused although it parses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructureError {
    /// `path` is the object that holds `key` twice, e.g. `data.user` or `the event`.
    #[error("duplicate key {} in {path}", quote(key))]
    DuplicateKey { key: String, path: String },
    #[error(
        "the event nests deeper than the limit of {limit} levels (the event object is level 1)"
    )]
    TooDeep { limit: usize },
    /// `escape` as written (`\ud800`); `location` says where, e.g. `a string at data.name`
    /// or `a key in data`.
    #[error(
        "lone surrogate {escape} in {location}: \\uD800-\\uDFFF escapes must come in high-low pairs"
    )]
    LoneSurrogate { escape: String, location: String },
}

/// Where the checked text sits in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// The text is the whole event (level 1 is its object).
    Event,
    /// The text is an event's `data` (level 2, paths start with `data`).
    Data,
}

/// Checks a whole event, given as JSON text.
pub fn check_event(text: &str) -> Result<(), StructureError> {
    check(text, Root::Event)
}

/// Checks JSON text that will become an event's `data` (binary mode, webhook bodies).
pub fn check_data(text: &str) -> Result<(), StructureError> {
    check(text, Root::Data)
}

/// One open object or array.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    is_object: bool,
    /// Whether this (large) object's keys are in a set, the last one on the set stack.
    has_set: bool,
    /// Where this object's keys start on the shared key stack. (32 bits keep the frames
    /// small; an event would need billions of keys to overflow them.)
    keys_start: u32,
    /// Objects: keys seen. Arrays: the index of the current element.
    count: u32,
}

fn check(text: &str, root: Root) -> Result<(), StructureError> {
    let b = text.as_bytes();
    let outer = match root {
        Root::Event => 0,
        Root::Data => 1,
    };
    // The depth limit bounds the frames: they live on the stack, not the heap.
    let mut frames = [Frame::default(); MAX_EVENT_DEPTH];
    let mut depth = 0;
    let mut keys: Vec<Cow<'_, str>> = Vec::with_capacity(16);
    let mut sets: Vec<HashSet<Cow<'_, str>>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            open @ (b'{' | b'[') => {
                if outer + depth >= MAX_EVENT_DEPTH {
                    return Err(StructureError::TooDeep {
                        limit: MAX_EVENT_DEPTH,
                    });
                }
                frames[depth] = Frame {
                    is_object: open == b'{',
                    has_set: false,
                    keys_start: u32::try_from(keys.len()).unwrap_or(u32::MAX),
                    count: 0,
                };
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth > 0 {
                    depth -= 1;
                    let f = frames[depth];
                    keys.truncate(f.keys_start as usize);
                    if f.has_set {
                        sets.pop();
                    }
                }
                i += 1;
            }
            b',' => {
                if depth > 0 && !frames[depth - 1].is_object {
                    frames[depth - 1].count = frames[depth - 1].count.saturating_add(1);
                }
                i += 1;
            }
            b'"' => {
                let string = read_string(b, i + 1);
                let end = string.end;
                let open = &mut frames[..depth];
                let is_key = open.last().is_some_and(|f| f.is_object)
                    && b[end..]
                        .iter()
                        .find(|c| !c.is_ascii_whitespace())
                        .is_some_and(|c| *c == b':');
                if let Some(at) = string.lone_surrogate {
                    let location = if is_key {
                        format!("a key in {}", path(root, open, &keys, false))
                    } else {
                        format!("a string at {}", path(root, open, &keys, true))
                    };
                    return Err(StructureError::LoneSurrogate {
                        escape: text.get(at..at + 6).unwrap_or("\\u").to_owned(),
                        location,
                    });
                }
                if is_key {
                    let raw = text.get(i..end).unwrap_or("");
                    let key = if string.escaped {
                        serde_json::from_str::<String>(raw).map_or(Cow::Borrowed(raw), Cow::Owned)
                    } else {
                        Cow::Borrowed(raw.get(1..raw.len().saturating_sub(1)).unwrap_or(""))
                    };
                    add_key(root, open, &mut keys, &mut sets, key)?;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Records a key of the innermost object, refusing it if that object already has it.
fn add_key<'a>(
    root: Root,
    frames: &mut [Frame],
    keys: &mut Vec<Cow<'a, str>>,
    sets: &mut Vec<HashSet<Cow<'a, str>>>,
    key: Cow<'a, str>,
) -> Result<(), StructureError> {
    let Some(f) = frames.last_mut() else {
        return Ok(());
    };
    let seen = match sets.last_mut().filter(|_| f.has_set) {
        Some(set) => !set.insert(key.clone()),
        None => {
            let mine = keys.get(f.keys_start as usize..).unwrap_or(&[]);
            let seen = mine.contains(&key);
            if !seen && mine.len() + 1 >= SMALL_OBJECT {
                let mut set: HashSet<Cow<'a, str>> = mine.iter().cloned().collect();
                set.insert(key.clone());
                sets.push(set);
                f.has_set = true;
            }
            seen
        }
    };
    if seen {
        return Err(StructureError::DuplicateKey {
            path: path(root, frames, keys, false),
            key: key.into_owned(),
        });
    }
    f.count = f.count.saturating_add(1);
    keys.push(key);
    Ok(())
}

struct StringEnd {
    /// Just past the closing quote (the end of the text when it is unterminated).
    end: usize,
    escaped: bool,
    /// Where a `\u` escape of a lone surrogate starts.
    lone_surrogate: Option<usize>,
}

/// Crosses a string whose contents start at `from`.
fn read_string(b: &[u8], from: usize) -> StringEnd {
    let mut p = from;
    let mut escaped = false;
    let mut lone_surrogate = None;
    while let Some(at) = quote_or_backslash(b, p) {
        if b[at] == b'"' {
            return StringEnd {
                end: at + 1,
                escaped,
                lone_surrogate,
            };
        }
        escaped = true;
        if b.get(at + 1) != Some(&b'u') {
            p = at + 2;
            continue;
        }
        p = at + 6;
        let lone = match hex4(b, at + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = (b.get(at + 6) == Some(&b'\\') && b.get(at + 7) == Some(&b'u'))
                    .then(|| hex4(b, at + 8))
                    .flatten();
                if matches!(low, Some(0xDC00..=0xDFFF)) {
                    p = at + 12;
                    false
                } else {
                    true
                }
            }
            Some(0xDC00..=0xDFFF) => true,
            _ => false,
        };
        if lone && lone_surrogate.is_none() {
            lone_surrogate = Some(at);
        }
    }
    StringEnd {
        end: b.len(),
        escaped,
        lone_surrogate,
    }
}

/// The index of the first `"` or `\` at or after `from`. The first words are tested eight
/// bytes at a time with plain integer arithmetic: most strings are short keys and values,
/// for which `memchr`'s setup costs more than the search.
fn quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each zero byte of `v`, exactly (no false positives).
    let zeros = |v: u64| !(((v & LOW7).wrapping_add(LOW7)) | v) & HIGH;
    let mut i = from;
    for _ in 0..4 {
        let Some(chunk) = b.get(i..i + 8) else { break };
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let found = zeros(w ^ (ONES * u64::from(b'"'))) | zeros(w ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr2(b'"', b'\\', b.get(i..)?).map(|k| i + k)
}

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// The path of the innermost open value: the object or array itself, or (with `member`)
/// the member or element being read in it.
fn path(root: Root, frames: &[Frame], keys: &[Cow<'_, str>], member: bool) -> String {
    let mut out = String::new();
    if root == Root::Data {
        out.push_str("data");
    }
    let depth = if member {
        frames.len()
    } else {
        frames.len().saturating_sub(1)
    };
    for (k, f) in frames.iter().enumerate().take(depth) {
        if f.is_object {
            let end = frames
                .get(k + 1)
                .map_or(keys.len(), |next| next.keys_start as usize);
            let Some(key) = keys.get(f.keys_start as usize..end).and_then(<[_]>::last) else {
                break;
            };
            let plain = !key.is_empty()
                && key
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if plain {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            } else {
                out.push('[');
                out.push_str(&quote(key));
                out.push(']');
            }
        } else {
            out.push_str(&format!("[{}]", f.count));
        }
    }
    if out.is_empty() {
        "the event".to_owned()
    } else {
        out
    }
}

/// A key as a JSON string, so that odd characters stay visible.
fn quote(key: &str) -> String {
    serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_error(text: &str) -> String {
        match check_event(text) {
            Ok(()) => panic!("accepted {text}"),
            Err(e) => e.to_string(),
        }
    }

    /// `depth` levels of nesting in all, counting the outermost object as 1.
    fn nested(depth: usize) -> String {
        let mut s = String::from("{\"id\":\"x\",\"data\":");
        for _ in 2..depth {
            s.push_str("{\"a\":");
        }
        s.push_str("{}");
        for _ in 2..depth {
            s.push('}');
        }
        s.push('}');
        s
    }

    #[test]
    fn accepts_ordinary_events() {
        for ok in [
            r#"{"id":"1","data":{"role":"admin","user":{"role":"x"},"list":[{"role":1},{"role":2}]}}"#,
            r#"{"a":{"k":1},"b":{"k":2},"k":3}"#,
            r#"{"s":"\ud83d\ude00 \"quoted\" \\ \u00e9","k\"ey":1,"k\\ey":2}"#,
            r#"[1,"x",{"a":[]},[[]]]"#,
            r#""just a string""#,
            "",
        ] {
            assert_eq!(check_event(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_duplicate_keys_and_where_they_are() {
        assert_eq!(
            check_event(r#"{"id":"1","data":{"role":"admin","role":"user"}}"#),
            Err(StructureError::DuplicateKey {
                key: "role".into(),
                path: "data".into()
            })
        );
        assert_eq!(
            event_error(r#"{"id":"1","type":"t","id":"2"}"#),
            r#"duplicate key "id" in the event"#
        );
        assert_eq!(
            event_error(r#"{"data":{"items":[{"a":1},{"sku":1, "sku" :2}]}}"#),
            r#"duplicate key "sku" in data.items[1]"#
        );
        assert_eq!(
            event_error(r#"{"data":{"a.b":{"x y":{"k":1,"k":2}}}}"#),
            r#"duplicate key "k" in data["a.b"]["x y"]"#
        );
        // Escapes are decoded before keys are compared.
        assert_eq!(
            event_error(r#"{"data":{"role":1,"r\u006fle":2}}"#),
            r#"duplicate key "role" in data"#
        );
        assert_eq!(
            event_error("[{\"a\":1},{\"a\":1,\"\\n\":2,\"\\n\":3}]"),
            r#"duplicate key "\n" in [1]"#
        );
    }

    #[test]
    fn large_objects_are_checked_too() {
        let members: Vec<String> = (0..200).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!("{{\"data\":{{{}}}}}", members.join(","));
        assert_eq!(check_event(&ok), Ok(()));
        for repeat in ["k0", "k15", "k16", "k199"] {
            let bad = format!("{{\"data\":{{{},\"{repeat}\":0}}}}", members.join(","));
            assert_eq!(
                event_error(&bad),
                format!("duplicate key \"{repeat}\" in data")
            );
        }
    }

    #[test]
    fn depth_is_limited() {
        assert_eq!(check_event(&nested(MAX_EVENT_DEPTH)), Ok(()));
        assert_eq!(
            check_event(&nested(MAX_EVENT_DEPTH + 1)),
            Err(StructureError::TooDeep {
                limit: MAX_EVENT_DEPTH
            })
        );
        assert_eq!(
            event_error(&nested(200)),
            "the event nests deeper than the limit of 64 levels (the event object is level 1)"
        );
        // Arrays count as levels; `data` starts at level 2.
        let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_data(&arrays(MAX_EVENT_DEPTH - 1)), Ok(()));
        assert_eq!(
            check_data(&arrays(MAX_EVENT_DEPTH)),
            Err(StructureError::TooDeep {
                limit: MAX_EVENT_DEPTH
            })
        );
        // Brackets inside strings are text.
        let text = format!("{{\"data\":\"{}\"}}", "[{".repeat(100));
        assert_eq!(check_event(&text), Ok(()));
    }

    #[test]
    fn refuses_lone_surrogates() {
        assert_eq!(
            check_event(r#"{"data":{"name":"a\ud800"}}"#),
            Err(StructureError::LoneSurrogate {
                escape: "\\ud800".into(),
                location: "a string at data.name".into()
            })
        );
        assert_eq!(
            event_error(r#"{"data":["ok","\uDC00x"]}"#),
            r#"lone surrogate \uDC00 in a string at data[1]: \uD800-\uDFFF escapes must come in high-low pairs"#
        );
        assert_eq!(
            event_error(r#"{"data":{"\ud800\u0041":1}}"#),
            r#"lone surrogate \ud800 in a key in data: \uD800-\uDFFF escapes must come in high-low pairs"#
        );
        assert_eq!(
            event_error(r#"{"id":"\udbff\udbff"}"#),
            r#"lone surrogate \udbff in a string at id: \uD800-\uDFFF escapes must come in high-low pairs"#
        );
        assert_eq!(
            check_data(r#"{"x":"\\ud800 is text, \ud83d\ude00 a pair"}"#),
            Ok(())
        );
        assert_eq!(
            check_data(r#""\ud800""#).map_err(|e| e.to_string()),
            Err(r#"lone surrogate \ud800 in a string at data: \uD800-\uDFFF escapes must come in high-low pairs"#.to_owned())
        );
    }

    #[test]
    fn finds_quotes_and_backslashes_at_every_offset() {
        for len in 0..80 {
            for from in 0..=len {
                for stop in [b'"', b'\\'] {
                    let mut text = vec![b'a'; len];
                    text.push(stop);
                    text.extend_from_slice(b"x\"");
                    assert_eq!(quote_or_backslash(&text, from), Some(len), "{len} {from}");
                }
                assert_eq!(quote_or_backslash(&vec![0xC3; len], from), None);
            }
        }
    }

    #[test]
    fn invalid_json_never_panics() {
        for junk in [
            "\"",
            "\"\\",
            "\"\\u",
            "\"\\ud800\\u",
            "{\"a\"",
            "}}]]",
            "{\"a\":1,\"a\"",
            "\"\\uzzzz\"",
            "{\"é\":1,\"é\"",
            "[[[[",
        ] {
            let _ = check_event(junk);
            let _ = check_data(junk);
        }
    }
}
