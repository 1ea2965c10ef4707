//! The body of one stream message: a record's metadata, then its payload.
//!
//! Source and id may hold any characters, so they travel in the body rather than in NATS
//! headers. Layout (integers big-endian):
//!
//! ```text
//! u8   version (1)
//! u32  meta length M
//! M bytes of meta:
//!      i64  received_at_ms
//!      u32  source length, source bytes (UTF-8)
//!      u32  id length, id bytes (UTF-8)
//!      u32  rule count, then per rule: u32 length, name bytes (UTF-8)
//! the payload: everything after the meta
//! ```
//!
//! Decoding never panics: every length is checked against what is left, and whatever does
//! not fit is reported as an error string (the caller turns it into `LogError::Corrupt`).

use crate::log::NewRecord;

const VERSION: u8 = 1;
/// Version byte and meta length.
const HEAD: usize = 5;

/// A decoded message body, borrowing from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Body<'a> {
    pub received_at_ms: i64,
    pub source: &'a str,
    pub id: &'a str,
    pub matched_rules: Vec<&'a str>,
    pub payload: &'a [u8],
}

/// The message body of `record`.
pub(super) fn encode(record: &NewRecord) -> Vec<u8> {
    let meta_len = 8
        + 4
        + record.source.len()
        + 4
        + record.id.len()
        + 4
        + record
            .matched_rules
            .iter()
            .map(|r| 4 + r.len())
            .sum::<usize>();
    let mut out = Vec::with_capacity(HEAD + meta_len + record.payload.len());
    out.push(VERSION);
    put_len(&mut out, meta_len);
    out.extend_from_slice(&record.received_at_ms.to_be_bytes());
    put_str(&mut out, &record.source);
    put_str(&mut out, &record.id);
    put_len(&mut out, record.matched_rules.len());
    for rule in &record.matched_rules {
        put_str(&mut out, rule);
    }
    out.extend_from_slice(&record.payload);
    out
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths above 4 GiB cannot reach here: NATS refuses messages that large long before
    // (its max_payload is at most 64 MiB), and `publish` checks the size first.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes a message body; the error says what is wrong with it.
pub(super) fn decode(body: &[u8]) -> Result<Body<'_>, String> {
    let Some((&version, rest)) = body.split_first() else {
        return Err("empty message body".to_owned());
    };
    if version != VERSION {
        return Err(format!("unknown envelope version {version}"));
    }
    let mut head = Reader { buf: rest };
    let meta_len = head.len("meta length")?;
    let meta = head.take(meta_len, "meta")?;
    let payload = head.buf;

    let mut meta = Reader { buf: meta };
    let at = meta.take(8, "received_at_ms")?;
    let mut at_bytes = [0u8; 8];
    at_bytes.copy_from_slice(at);
    let received_at_ms = i64::from_be_bytes(at_bytes);
    let source = meta.str("source")?;
    let id = meta.str("id")?;
    let count = meta.len("rule count")?;
    // Every rule takes at least its 4-byte length: a garbage count fails below instead of
    // reserving memory for it.
    let mut matched_rules = Vec::with_capacity(count.min(meta.buf.len() / 4));
    for _ in 0..count {
        matched_rules.push(meta.str("rule name")?);
    }
    if !meta.buf.is_empty() {
        return Err(format!("{} stray bytes after the meta", meta.buf.len()));
    }
    Ok(Body {
        received_at_ms,
        source,
        id,
        matched_rules,
        payload,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("{what}: needs {n} bytes, {} left", self.buf.len()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn len(&mut self, what: &str) -> Result<usize, String> {
        let b = self.take(4, what)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        usize::try_from(n).map_err(|_| format!("{what}: {n} does not fit in memory"))
    }

    fn str(&mut self, what: &str) -> Result<&'a str, String> {
        let n = self.len(what)?;
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|e| format!("{what}: not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record(source: &str, id: &str, rules: &[&str], payload: &[u8]) -> NewRecord {
        NewRecord {
            source: source.to_owned(),
            id: id.to_owned(),
            received_at_ms: -42,
            payload: payload.to_vec(),
            matched_rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn round_trips_any_strings() {
        let r = record("a.b c\n*>", "ïd\0", &["x", "", "y z"], b"{\"k\":1}");
        let body = encode(&r);
        let d = decode(&body).unwrap();
        assert_eq!(d.source, r.source);
        assert_eq!(d.id, r.id);
        assert_eq!(d.received_at_ms, -42);
        assert_eq!(d.matched_rules, ["x", "", "y z"]);
        assert_eq!(d.payload, r.payload);
        let empty = record("", "", &[], b"");
        assert_eq!(decode(&encode(&empty)).unwrap().payload, b"");
    }

    #[test]
    fn refuses_garbage() {
        assert!(decode(b"").is_err());
        assert!(decode(b"{\"not\":\"ours\"}").is_err());
        let body = encode(&record("s", "i", &["r"], b"p"));
        for cut in 0..HEAD + 8 + 4 + 1 + 4 + 1 + 4 + 4 + 1 {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut}");
        }
        // A meta length pointing past the end.
        let mut long = body.clone();
        long[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&long).is_err());
        // A rule count far larger than the meta holds.
        let mut many = encode(&record("s", "i", &[], b"p"));
        let at = HEAD + 8 + 4 + 1 + 4 + 1;
        many[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&many).is_err());
        // Invalid UTF-8 in the source.
        let mut bad = encode(&record("s", "i", &[], b"p"));
        bad[HEAD + 8 + 4] = 0xff;
        assert!(decode(&bad).is_err());
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
            let mut versioned = vec![VERSION];
            versioned.extend_from_slice(&bytes);
            let _ = decode(&versioned);
        }

        #[test]
        fn round_trips(
            source in ".*",
            id in ".*",
            rules in proptest::collection::vec(".*", 0..4),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<i64>(),
        ) {
            let r = NewRecord { source, id, received_at_ms: at, payload, matched_rules: rules };
            let body = encode(&r);
            let d = decode(&body).unwrap();
            prop_assert_eq!(d.source, r.source.as_str());
            prop_assert_eq!(d.id, r.id.as_str());
            prop_assert_eq!(d.received_at_ms, at);
            let rules: Vec<&str> = r.matched_rules.iter().map(String::as_str).collect();
            prop_assert_eq!(d.matched_rules, rules);
            prop_assert_eq!(d.payload, r.payload.as_slice());
        }
    }
}
