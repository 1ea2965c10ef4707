//! Instants as Switchyard writes and reads them: milliseconds since the Unix epoch
//! (like the log's `received_at_ms`), shown as RFC 3339 in UTC with milliseconds. The one
//! clock read, formatter and parser every crate uses.

use chrono::{DateTime, SecondsFormat};

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2024-01-31T12:00:00.250Z`; empty for an instant chrono cannot represent.
pub fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Milliseconds since the epoch of an RFC 3339 timestamp, any offset; sub-millisecond
/// digits are dropped. `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (any offset, sub-millisecond
/// digits dropped) or of a bare date (`2024-01-31`, midnight UTC): how queries, analytics
/// windows and the event index read an instant, so they agree. `None` for anything else.
pub fn parse_instant_ms(text: &str) -> Option<i64> {
    if let Some(ms) = parse_rfc3339_ms(text) {
        return Some(ms);
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(format_ms(1_706_702_400_250), "2024-01-31T12:00:00.250Z");
        assert_eq!(
            parse_rfc3339_ms("2024-01-31T13:00:00.250+01:00"),
            Some(1_706_702_400_250)
        );
        assert_eq!(parse_rfc3339_ms("2024-01-31"), None);
        assert_eq!(parse_instant_ms("2024-01-31"), Some(1_706_659_200_000));
        assert_eq!(
            parse_instant_ms("2024-01-31T00:00:00Z"),
            Some(1_706_659_200_000)
        );
        assert_eq!(parse_instant_ms("soon"), None);
        assert_eq!(format_ms(i64::MAX), "");
        assert!(now_ms() > 1_700_000_000_000);
    }
}
