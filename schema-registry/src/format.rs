//! String formats worth telling a reader about. Detection is deliberately narrower than the
//! JSON Schema definitions: a discovered `format` is a claim about every value ever seen, so
//! a value is labelled only when it is unmistakably of that kind (and, tested, when the
//! validator's own check of the format accepts it, so a discovered schema promoted to an
//! explicit one never rejects the events it was inferred from).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The formats inference can detect. They are disjoint: a value has at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Format {
    DateTime,
    Date,
    Uuid,
    Ipv4,
    Ipv6,
    Email,
    Uri,
}

impl Format {
    pub(crate) const ALL: [Format; 7] = [
        Format::DateTime,
        Format::Date,
        Format::Uuid,
        Format::Ipv4,
        Format::Ipv6,
        Format::Email,
        Format::Uri,
    ];

    /// The keyword value, as JSON Schema spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::DateTime => "date-time",
            Format::Date => "date",
            Format::Uuid => "uuid",
            Format::Ipv4 => "ipv4",
            Format::Ipv6 => "ipv6",
            Format::Email => "email",
            Format::Uri => "uri",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The one format `value` has, if any. Strings over `max_bytes` are not examined.
    pub(crate) fn detect(value: &str, max_bytes: usize) -> Option<Format> {
        if value.len() > max_bytes {
            return None;
        }
        let bytes = value.as_bytes();
        // No detected format has spaces, control characters or non-ASCII: one vectorisable
        // pass rules out most free text before any format is tried.
        if bytes.iter().any(|b| !b.is_ascii_graphic()) {
            return None;
        }
        match bytes.len() {
            10 if is_date(bytes) => Some(Format::Date),
            36 if is_uuid(bytes) => Some(Format::Uuid),
            20.. if is_date_time(bytes) => Some(Format::DateTime),
            7..=15 if is_ipv4(value) => Some(Format::Ipv4),
            ..=45 if may_be_ipv6(bytes) && Ipv6Addr::from_str(value).is_ok() => Some(Format::Ipv6),
            _ if is_email(bytes) => Some(Format::Email),
            _ if is_uri(bytes) => Some(Format::Uri),
            _ => None,
        }
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

/// `YYYY-MM-DD`, a real calendar day.
fn is_date(bytes: &[u8]) -> bool {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = bytes else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (
        digits(&[*y0, *y1, *y2, *y3]),
        digits(&[*m0, *m1]),
        digits(&[*d0, *d1]),
    ) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 `date "T" time offset`: `2024-05-01T12:30:00Z`, `...:00.123+02:00`. Leap
/// seconds are left out: they are valid only at the end of some UTC days.
fn is_date_time(bytes: &[u8]) -> bool {
    let Some((date, rest)) = bytes.split_at_checked(10) else {
        return false;
    };
    let Some((time, mut rest)) = rest.split_at_checked(9) else {
        return false;
    };
    let [b'T', h0, h1, b':', m0, m1, b':', s0, s1] = time else {
        return false;
    };
    let seconds_ok = digits(&[*s0, *s1]).is_some_and(|s| s < 60);
    if !(is_date(date) && is_hh_mm(&[*h0, *h1], &[*m0, *m1]) && seconds_ok) {
        return false;
    }
    if let Some(fraction) = rest.strip_prefix(b".") {
        let end = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if end == 0 || end > 9 {
            return false;
        }
        rest = &fraction[end..];
    }
    match rest {
        b"Z" => true,
        [b'+' | b'-', h0, h1, b':', m0, m1] => is_hh_mm(&[*h0, *h1], &[*m0, *m1]),
        _ => false,
    }
}

fn is_hh_mm(hours: &[u8], minutes: &[u8]) -> bool {
    digits(hours).is_some_and(|h| h < 24) && digits(minutes).is_some_and(|m| m < 60)
}

/// Hyphenated hex, 8-4-4-4-12, any version.
fn is_uuid(bytes: &[u8]) -> bool {
    let dashes = [8, 13, 18, 23].iter().all(|i| bytes.get(*i) == Some(&b'-'));
    dashes && bytes.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-')
}

/// Starts like an IPv6 address and has a colon: worth asking the full parser.
fn may_be_ipv6(bytes: &[u8]) -> bool {
    bytes
        .first()
        .is_some_and(|b| b.is_ascii_hexdigit() || *b == b':')
        && bytes.contains(&b':')
}

/// Dotted quad without leading zeros (std's parser refuses them, as the validator does).
fn is_ipv4(value: &str) -> bool {
    Ipv4Addr::from_str(value).is_ok()
}

/// `local@domain.tld` with a plain dot-atom local part and a DNS name: the addresses that
/// people and systems actually put in events, not the full RFC 5322 grammar.
fn is_email(bytes: &[u8]) -> bool {
    let Some(at) = bytes.iter().position(|b| *b == b'@') else {
        return false;
    };
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split(|b| *b == b'.').all(|atom| {
            !atom.is_empty()
                && atom
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(b))
        });
    local_ok && is_dns_name(domain)
}

/// At least two labels, letters/digits/hyphens, no label starting or ending with a hyphen
/// or holding two in a row (`ab--c` is reserved for IDNA), an alphabetic top-level label.
fn is_dns_name(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.len() > 253 {
        return false;
    }
    let label_ok = |label: &[u8]| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
            && !label.windows(2).any(|pair| pair == b"--")
    };
    let Some(dot) = bytes.iter().rposition(|b| *b == b'.') else {
        return false;
    };
    let tld = &bytes[dot + 1..];
    tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && bytes[..dot].split(|b| *b == b'.').all(label_ok)
}

/// An absolute URI with an authority (`scheme://host...`), or a `urn:`/`mailto:` URI.
/// Bare `word:word` strings (`order:123`) are too common as plain identifiers to call URIs.
fn is_uri(bytes: &[u8]) -> bool {
    let Some(colon) = bytes.iter().position(|b| *b == b':') else {
        return false;
    };
    let (scheme, rest) = (&bytes[..colon], &bytes[colon + 1..]);
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || !uri_chars(rest) {
        return false;
    }
    if let Some(hier) = rest.strip_prefix(b"//") {
        let end = hier
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(hier.len());
        return is_authority(&hier[..end]);
    }
    let opaque_scheme =
        scheme.eq_ignore_ascii_case(b"urn") || scheme.eq_ignore_ascii_case(b"mailto");
    opaque_scheme && rest.first().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Only characters RFC 3986 allows outside the host (no brackets: IPv6 hosts are left
/// out), `%` only as a two-digit escape, and at most one `#`.
fn uri_chars(bytes: &[u8]) -> bool {
    let mut fragment = false;
    let mut i = 0;
    while let Some(b) = bytes.get(i) {
        match b {
            b'%' => {
                let escape_ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
                if !escape_ok {
                    return false;
                }
                i += 3;
            }
            b'#' if fragment => return false,
            b'#' => {
                fragment = true;
                i += 1;
            }
            b if URI_CHARS[usize::from(*b)] => i += 1,
            _ => return false,
        }
    }
    true
}

/// Unreserved and reserved characters of RFC 3986, less `[`, `]`, and `%`/`#` (handled
/// apart).
const URI_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~:/?@!$&'()*+,;=";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// `[userinfo@]host[:port]` with a registered-name host and a numeric port.
fn is_authority(bytes: &[u8]) -> bool {
    let host_port = match bytes.iter().position(|b| *b == b'@') {
        Some(at) => &bytes[at + 1..],
        None => bytes,
    };
    let (host, port) = match host_port.iter().position(|b| *b == b':') {
        Some(colon) => (&host_port[..colon], Some(&host_port[colon + 1..])),
        None => (host_port, None),
    };
    let host_ok = !host.is_empty()
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::Format::{self, *};

    fn detect(value: &str) -> Option<Format> {
        Format::detect(value, 2048)
    }

    #[test]
    fn detects_each_format() {
        let cases = [
            ("2024-02-29", Some(Date)),
            ("2023-02-29", None),
            ("2024-13-01", None),
            ("2024-05-01T12:30:00Z", Some(DateTime)),
            ("2024-05-01T12:30:00.123456+02:00", Some(DateTime)),
            ("2024-05-01T24:30:00Z", None),
            ("2024-05-01T12:30:00", None),
            ("2024-05-01 12:30:00Z", None),
            ("2024-05-01T12:30:60Z", None),
            ("550e8400-e29b-41d4-a716-446655440000", Some(Uuid)),
            ("550e8400-e29b-41d4-a716-44665544000g", None),
            ("192.168.0.1", Some(Ipv4)),
            ("192.168.00.1", None),
            ("256.1.1.1", None),
            ("::1", Some(Ipv6)),
            ("fe80::1:2", Some(Ipv6)),
            ("2001:db8::ff00:42:8329", Some(Ipv6)),
            ("ana@example.com", Some(Email)),
            ("first.last+tag@mail.example.co", Some(Email)),
            ("ana@localhost", None),
            ("ana@ab--c.com", None),
            ("ana@@example.com", None),
            ("ana.@example.com", None),
            ("https://example.com/path?q=1#frag", Some(Uri)),
            ("http://user@host.example:8080/", Some(Uri)),
            ("file:///etc/hosts", None),
            ("urn:isbn:0451450523", Some(Uri)),
            ("mailto:ana@example.com", Some(Uri)),
            ("order:123", None),
            ("https://exa mple.com", None),
            ("https://example.com/%zz", None),
            ("http://host/a#b#c", None),
            ("http://a@b@host/", None),
            ("hello", None),
            ("", None),
            ("2024", None),
        ];
        for (value, expected) in cases {
            assert_eq!(detect(value), expected, "{value:?}");
        }
    }

    #[test]
    fn long_strings_are_not_examined() {
        let uri = format!("https://example.com/{}", "a".repeat(100));
        assert_eq!(Format::detect(&uri, 2048), Some(Uri));
        assert_eq!(Format::detect(&uri, 100), None);
    }

    #[test]
    fn names_round_trip() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("hostname"), None);
    }
}
