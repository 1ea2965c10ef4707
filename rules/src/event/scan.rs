//! Finding the next interesting byte eight bytes at a time (SWAR: plain 64-bit integer
//! arithmetic, no `unsafe`). Most of an event is bytes the matcher only needs to step
//! over, so this is where the flattener spends its time.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
/// Clears bit 5 of every byte: maps `{`/`}` onto `[`/`]`.
const FOLD: u64 = 0xDFDF_DFDF_DFDF_DFDF;

/// Strings longer than this go to `memchr`'s vectorised search.
const LONG: usize = 32;

#[inline]
fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The high bit of each byte of `v` that is zero (exact: no false positives).
#[inline]
fn zeros(v: u64) -> u64 {
    !(((v & LOW7).wrapping_add(LOW7)) | v) & HIGH
}

#[inline]
fn equal(v: u64, byte: u8) -> u64 {
    zeros(v ^ (ONES * u64::from(byte)))
}

#[inline]
fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Index of the first `"` or `\` at or after `from`.
#[inline]
pub(super) fn quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    let short_end = b.len().min(from + LONG);
    while i + 8 <= short_end {
        let v = word(b, i);
        let m = equal(v, b'"') | equal(v, b'\\');
        if m != 0 {
            return Some(i + first(m));
        }
        i += 8;
    }
    if i + 8 <= b.len() {
        return memchr::memchr2(b'"', b'\\', &b[i..]).map(|n| n + i);
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|n| n + i)
}

/// Like [`quote_or_backslash`], for keys: also tells whether a `.` comes before it.
#[inline]
pub(super) fn key_end(b: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut i = from;
    let mut dot = false;
    while i + 8 <= b.len() {
        let v = word(b, i);
        let m = equal(v, b'"') | equal(v, b'\\');
        let dots = equal(v, b'.');
        if m != 0 {
            let at = first(m);
            // Dots in the bytes before the terminator: mask off the high bits at and after it.
            let before = if at == 0 {
                0
            } else {
                dots & (u64::MAX >> (64 - 8 * at))
            };
            return Some((i + at, dot || before != 0));
        }
        dot |= dots != 0;
        i += 8;
    }
    for (n, &c) in b[i..].iter().enumerate() {
        match c {
            b'"' | b'\\' => return Some((i + n, dot)),
            b'.' => dot = true,
            _ => {}
        }
    }
    None
}

/// Index of the first `"`, `[`, `]`, `{` or `}` at or after `from`.
#[inline]
pub(super) fn structural(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= b.len() {
        let v = word(b, i);
        let folded = v & FOLD;
        let m = equal(v, b'"') | equal(folded, b'[') | equal(folded, b']');
        if m != 0 {
            return Some(i + first(m));
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| matches!(c, b'"' | b'[' | b']' | b'{' | b'}'))
        .map(|n| n + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(b: &[u8], from: usize, set: &[u8]) -> Option<usize> {
        b[from..]
            .iter()
            .position(|c| set.contains(c))
            .map(|n| n + from)
    }

    proptest! {
        #[test]
        fn scanners_agree_with_naive_search(
            bytes in prop::collection::vec(prop::sample::select(&b"ab.\"\\[]{}|z{\x7b\xdb\xfb\x00"[..]), 0..80),
            from in 0usize..80,
        ) {
            let from = from.min(bytes.len());
            prop_assert_eq!(quote_or_backslash(&bytes, from), naive(&bytes, from, b"\"\\"));
            prop_assert_eq!(structural(&bytes, from), naive(&bytes, from, b"\"[]{}"));
            let end = naive(&bytes, from, b"\"\\");
            let expected = end.map(|e| (e, bytes[from..e].contains(&b'.')));
            prop_assert_eq!(key_end(&bytes, from), expected);
        }
    }
}
