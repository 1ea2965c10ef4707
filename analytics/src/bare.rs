//! What unquoted text means: a value's type, and which names are attribute names.

use crate::ast::Value;

/// `[a-z0-9_]+`: CloudEvents attribute names, plus `_` for delivery records' fields.
pub(crate) fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What an unquoted value means: `true`, `false`, `null`, a JSON number, or else a string.
/// `Err` for a JSON number too large for an `f64`.
pub(crate) fn bare_value(raw: &str) -> Result<Value, ()> {
    Ok(match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ if is_json_number(raw) => match raw.parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Number(n),
            _ => return Err(()),
        },
        _ => Value::String(raw.to_owned()),
    })
}

/// JSON's number syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. `007`, `.5`,
/// `+1`, `1.` and `inf` are not numbers, so they stay strings.
pub(crate) fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_syntax() {
        for yes in [
            "0", "-0", "7", "-12", "1.5", "0.25", "1e3", "1E+3", "-2.5e-3",
        ] {
            assert!(is_json_number(yes), "{yes}");
        }
        for no in [
            "", "-", "007", "01", ".5", "1.", "+1", "1e", "1e+", "0x10", "inf", "NaN", "1_000",
            "1 ",
        ] {
            assert!(!is_json_number(no), "{no}");
        }
    }

    #[test]
    fn bare_values() {
        assert_eq!(bare_value("true"), Ok(Value::Bool(true)));
        assert_eq!(bare_value("null"), Ok(Value::Null));
        assert_eq!(bare_value("-1e2"), Ok(Value::Number(-100.0)));
        assert_eq!(bare_value("TRUE"), Ok(Value::String("TRUE".to_owned())));
        assert_eq!(bare_value("1e400"), Err(()));
    }
}
