//! The on-disk record frame.
//!
//! ```text
//! frame = len:u32le crc32c(body):u32le body[len]
//! body  = offset:u64le received_at_ms:i64le source_len:u32le id_len:u32le rules_len:u32le
//!         source id rules payload
//! rules = the names of the rules the event matched, joined by '\n' (names never hold one)
//! ```
//! The offset inside the body lets recovery prove a frame belongs where it was found; the
//! source and id outside the payload let the id index be rebuilt without parsing JSON.

use crate::log::{NewRecord, Record};

pub(super) const HEADER_LEN: usize = 8;
const FIXED_BODY_LEN: usize = 28;
/// Larger frames are taken as corruption, not allocated.
pub(super) const MAX_BODY_LEN: usize = 64 << 20;

pub(super) fn encode(out: &mut Vec<u8>, offset: u64, r: &NewRecord) {
    let rules_len = r
        .matched_rules
        .iter()
        .map(|n| n.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    let body_len = FIXED_BODY_LEN + r.source.len() + r.id.len() + rules_len + r.payload.len();
    let start = out.len();
    out.reserve(HEADER_LEN + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&r.received_at_ms.to_le_bytes());
    out.extend_from_slice(&(r.source.len() as u32).to_le_bytes());
    out.extend_from_slice(&(r.id.len() as u32).to_le_bytes());
    out.extend_from_slice(&(rules_len as u32).to_le_bytes());
    out.extend_from_slice(r.source.as_bytes());
    out.extend_from_slice(r.id.as_bytes());
    for (i, name) in r.matched_rules.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.extend_from_slice(&r.payload);
    let crc = crc32c::crc32c(&out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The length of the frame that starts `buf`, from its header; `None` if `buf` is shorter
/// than a header.
pub(super) fn frame_len(buf: &[u8]) -> Option<Result<usize, String>> {
    let header: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let body_len = u32::from_le_bytes(header) as usize;
    if !(FIXED_BODY_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Some(Err(format!("implausible frame length {body_len}")));
    }
    Some(Ok(HEADER_LEN + body_len))
}

/// Decodes the complete frame `buf` (exactly one frame).
pub(super) fn decode(buf: &[u8]) -> Result<Record, String> {
    let fields = decode_fields(buf)?;
    Ok(Record {
        offset: fields.offset,
        received_at_ms: fields.received_at_ms,
        source: fields.source.to_owned(),
        id: fields.id.to_owned(),
        payload: fields.payload.to_vec(),
        matched_rules: if fields.rules.is_empty() {
            Vec::new()
        } else {
            fields.rules.split('\n').map(str::to_owned).collect()
        },
    })
}

/// A decoded frame that borrows from the buffer.
pub(super) struct Fields<'a> {
    pub offset: u64,
    pub received_at_ms: i64,
    pub source: &'a str,
    pub id: &'a str,
    pub rules: &'a str,
    pub payload: &'a [u8],
}

pub(super) fn decode_fields(buf: &[u8]) -> Result<Fields<'_>, String> {
    let (header, body) = buf
        .split_at_checked(HEADER_LEN)
        .ok_or("frame shorter than its header")?;
    let len = u32::from_le_bytes(le4(header, 0)?) as usize;
    if body.len() != len {
        return Err(format!(
            "frame body is {} bytes, header says {len}",
            body.len()
        ));
    }
    let crc = u32::from_le_bytes(le4(header, 4)?);
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".to_owned());
    }
    let offset = u64::from_le_bytes(le8(body, 0)?);
    let received_at_ms = i64::from_le_bytes(le8(body, 8)?);
    let source_len = u32::from_le_bytes(le4(body, 16)?) as usize;
    let id_len = u32::from_le_bytes(le4(body, 20)?) as usize;
    let rules_len = u32::from_le_bytes(le4(body, 24)?) as usize;
    let rest = &body[FIXED_BODY_LEN..];
    if source_len + id_len + rules_len > rest.len() {
        return Err("source, id and rule lengths exceed the frame".to_owned());
    }
    let (source, rest) = rest.split_at(source_len);
    let (id, rest) = rest.split_at(id_len);
    let (rules, payload) = rest.split_at(rules_len);
    Ok(Fields {
        offset,
        received_at_ms,
        source: text(source)?,
        id: text(id)?,
        rules: text(rules)?,
        payload,
    })
}

fn text(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "source, id or rule names are not UTF-8".to_owned())
}

fn le4(b: &[u8], at: usize) -> Result<[u8; 4], String> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| "truncated frame".to_owned())
}

fn le8(b: &[u8], at: usize) -> Result<[u8; 8], String> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| "truncated frame".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let r = NewRecord {
            source: "/src".into(),
            id: "id-1".into(),
            received_at_ms: -5,
            payload: b"{\"a\":1}".to_vec(),
            matched_rules: vec!["r1".into(), "r.2".into()],
        };
        let mut buf = Vec::new();
        encode(&mut buf, 77, &r);
        assert_eq!(frame_len(&buf), Some(Ok(buf.len())));
        let back = decode(&buf).unwrap();
        assert_eq!(
            back,
            Record {
                offset: 77,
                received_at_ms: -5,
                source: r.source,
                id: r.id,
                payload: r.payload,
                matched_rules: r.matched_rules,
            }
        );
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(decode(&buf).err(), Some("checksum mismatch".to_owned()));
        assert_eq!(frame_len(&buf[..3]), None);
        assert!(matches!(frame_len(&[0, 0, 0, 0]), Some(Err(_))));
    }
}
