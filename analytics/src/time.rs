//! Instants as the query language and analytics read and write them: milliseconds since
//! the Unix epoch, like the log's `received_at_ms`.

/// Milliseconds since the Unix epoch for an RFC 3339 timestamp
/// (`2024-01-31T12:00:00.250+01:00`) or a bare date (`2024-01-31`, midnight UTC). Sub-
/// millisecond digits are dropped (rounding towards the past). `None` for anything else.
///
/// ```
/// use switchyard_analytics::parse_timestamp_ms;
/// assert_eq!(parse_timestamp_ms("1970-01-01T00:00:01.5009Z"), Some(1500));
/// assert_eq!(parse_timestamp_ms("1970-01-02"), Some(86_400_000));
/// assert_eq!(parse_timestamp_ms("yesterday"), None);
/// ```
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    // The event index reads events' `time` with the same function.
    switchyard_core::time::parse_instant_ms(text)
}

/// An instant as RFC 3339 in UTC with milliseconds: `2024-01-31T12:00:00.000Z`.
pub fn format_timestamp_ms(ms: i64) -> String {
    switchyard_core::time::format_ms(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_fractions() {
        assert_eq!(
            parse_timestamp_ms("2024-01-31T12:00:00+01:00"),
            Some(1_706_698_800_000)
        );
        assert_eq!(
            parse_timestamp_ms("2024-01-31T11:00:00Z"),
            Some(1_706_698_800_000)
        );
        assert_eq!(parse_timestamp_ms("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(parse_timestamp_ms("2024-13-01"), None);
        assert_eq!(
            format_timestamp_ms(1_706_698_800_250),
            "2024-01-31T11:00:00.250Z"
        );
    }
}
