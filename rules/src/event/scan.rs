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

/// The eight bytes at `i`, zero-padded past the end of `b`.
#[inline(always)]
pub(super) fn load(b: &[u8], i: usize) -> u64 {
    if i + 8 <= b.len() {
        word(b, i)
    } else {
        let mut w = [0u8; 8];
        let rest = &b[i.min(b.len())..];
        w[..rest.len()].copy_from_slice(rest);
        u64::from_le_bytes(w)
    }
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

/// How many bytes a mask from [`zeros`] marks (a multiply instead of `count_ones`,
/// which is a slow software loop on baseline x86-64).
#[inline]
fn count(mask: u64) -> usize {
    ((mask >> 7).wrapping_mul(ONES) >> 56) as usize
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
#[inline(always)]
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

/// Where skipping a container stands between bytes.
#[derive(Default, Clone, Copy)]
struct Skip {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Skip {
    /// Feeds one byte; `true` when it closes the outermost container.
    #[inline]
    fn byte(&mut self, c: u8) -> bool {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if c == b'\\' {
                self.escaped = true;
            } else if c == b'"' {
                self.in_string = false;
            }
            return false;
        }
        match c {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                return self.depth == 0;
            }
            _ => {}
        }
        false
    }
}

/// Index just past the bracket closing the object or array that opens at `from`, counting
/// brackets outside strings (bracket kinds are not paired up: that is validation, which
/// skipped bytes do not get).
///
/// Eight bytes at a time: a prefix XOR over the quote positions marks the bytes inside
/// strings, so brackets in strings drop out; a word whose closing brackets cannot bring the
/// depth to zero is consumed whole, otherwise its brackets are walked in order. Words with
/// a backslash go byte by byte.
pub(super) fn container_end(b: &[u8], from: usize) -> Option<usize> {
    // `b[from]` is the opening bracket.
    let mut state = Skip {
        depth: 1,
        ..Skip::default()
    };
    let mut i = from + 1;
    while i + 8 <= b.len() {
        let v = word(b, i);
        if equal(v, b'\\') != 0 || state.escaped {
            for (j, &c) in b[i..i + 8].iter().enumerate() {
                if state.byte(c) {
                    return Some(i + j + 1);
                }
            }
            i += 8;
            continue;
        }
        // Parity of the quotes up to each byte, in each byte's high bit.
        let mut parity = equal(v, b'"');
        parity ^= parity << 8;
        parity ^= parity << 16;
        parity ^= parity << 32;
        if state.in_string {
            parity ^= HIGH;
        }
        let folded = v & FOLD;
        let opens = equal(folded, b'[') & !parity;
        let closes = equal(folded, b']') & !parity;
        let closing = count(closes);
        if state.depth > closing {
            state.depth = state.depth + count(opens) - closing;
        } else {
            // The depth may reach zero here: walk the brackets in order.
            let mut brackets = opens | closes;
            while brackets != 0 {
                let lowest = brackets & brackets.wrapping_neg();
                if opens & lowest != 0 {
                    state.depth += 1;
                } else {
                    state.depth -= 1;
                    if state.depth == 0 {
                        return Some(i + first(lowest) + 1);
                    }
                }
                brackets &= brackets - 1;
            }
        }
        state.in_string = parity >> 63 == 1;
        i += 8;
    }
    for (j, &c) in b.iter().enumerate().skip(i) {
        if state.byte(c) {
            return Some(j + 1);
        }
    }
    None
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

    /// The obvious byte loop `container_end` must agree with.
    fn naive_end(b: &[u8], from: usize) -> Option<usize> {
        let mut state = Skip::default();
        // (`container_end` starts after the opening bracket, this from it.)
        (from..b.len()).find(|&j| state.byte(b[j])).map(|j| j + 1)
    }

    proptest! {
        #[test]
        fn container_end_agrees_with_the_byte_loop(
            body in prop::collection::vec(prop::sample::select(&b"ab\"\\[]{}:,1 "[..]), 0..120),
            open in prop::sample::select(&b"[{"[..]),
        ) {
            let mut bytes = vec![open];
            bytes.extend_from_slice(&body);
            prop_assert_eq!(container_end(&bytes, 0), naive_end(&bytes, 0));
        }

        #[test]
        fn scanners_agree_with_naive_search(
            bytes in prop::collection::vec(prop::sample::select(&b"ab.\"\\[]{}|z{\x7b\xdb\xfb\x00"[..]), 0..80),
            from in 0usize..80,
        ) {
            let from = from.min(bytes.len());
            prop_assert_eq!(quote_or_backslash(&bytes, from), naive(&bytes, from, b"\"\\"));
            let end = naive(&bytes, from, b"\"\\");
            let expected = end.map(|e| (e, bytes[from..e].contains(&b'.')));
            prop_assert_eq!(key_end(&bytes, from), expected);
        }
    }
}
