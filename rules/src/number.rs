//! Numbers as order-preserving 8-byte keys: for finite `a < b`, `key(a) < key(b)` as
//! unsigned integers and so as big-endian byte strings. A numeric range then becomes a
//! range of byte strings, which the automaton walks one byte at a time like any other value.

/// The key of a finite number; `-0.0` and `0.0` share one key, so `0 == -0` as in JSON.
pub(crate) fn key(n: f64) -> u64 {
    let n = if n == 0.0 { 0.0 } else { n };
    let bits = n.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The key range of a numeric range, or `None` when no number is in it.
pub(crate) fn key_range(range: &crate::pattern::NumericRange) -> Option<(u64, u64)> {
    let low = match range.lower {
        None => 0,
        Some(b) if b.inclusive => key(b.value),
        Some(b) => key(b.value).checked_add(1)?,
    };
    let high = match range.upper {
        None => u64::MAX,
        Some(b) if b.inclusive => key(b.value),
        Some(b) => key(b.value).checked_sub(1)?,
    };
    (low <= high).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_preserve_order() {
        let values = [
            f64::MIN,
            -1e300,
            -5e9,
            -122.41600944012424,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1e-9,
            1.0,
            300.0,
            301.8,
            5e9,
            f64::MAX,
        ];
        for pair in values.windows(2) {
            assert!(key(pair[0]) < key(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(key(-0.0), key(0.0));
        assert_eq!(key(300.0), key(3e2));
    }
}
