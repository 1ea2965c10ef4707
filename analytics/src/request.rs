//! Analytics requests: the body of `POST /v1/buses/{bus}/analytics` (and
//! `POST /v1/analytics/deliveries`) read and validated into an [`AnalyticsRequest`].

use std::fmt::{self, Display, Formatter};

use serde::Deserialize;

use crate::{AnalyticsError, Field, Query, parse_timestamp_ms};

/// The most `group_by` fields one request may name.
pub const MAX_GROUP_BY: usize = 4;
/// The largest `limit` (rows, or series with an `interval`).
pub const MAX_LIMIT: usize = 1000;
/// The `limit` when the body has none.
pub const DEFAULT_LIMIT: usize = 10;
/// The most time buckets a histogram may span: `(to - from) / interval`, give or take the
/// buckets cut by `from` and `to`.
pub const MAX_BUCKETS: i64 = 10_000;

/// The request body as sent, before validation.
///
/// ```json
/// {"q": "type = com.shop.*", "from": "2024-01-31T00:00:00Z", "to": "2024-02-01T00:00:00Z",
///  "group_by": ["type", "data.country"], "interval": "1h", "metric": "p95:data.total",
///  "order": "desc", "limit": 10}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsBody {
    /// The query selecting the records; empty or absent for all.
    #[serde(default)]
    pub q: String,
    /// Start of the window, inclusive (RFC 3339 or a date).
    pub from: String,
    /// End of the window, exclusive (RFC 3339 or a date).
    pub to: String,
    /// Fields whose values make the groups, in this order; none for one overall group.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Bucket width of a time histogram (`30s`, `1m`, `5m`, `1h`, `1d`); absent for rows.
    #[serde(default)]
    pub interval: Option<String>,
    /// `count` (the default), or `avg|sum|min|max|pNN:field`.
    #[serde(default)]
    pub metric: Option<String>,
    /// `desc` (the default) or `asc`: by the metric's value (by count for `count`).
    #[serde(default)]
    pub order: Option<String>,
    /// How many rows (or series) to return: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] if absent.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A validated analytics request. Times are milliseconds since the Unix epoch and apply to
/// each record's own time (`received_at` for events, as in search).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsRequest {
    /// Which records count.
    pub query: Query,
    /// Start of the window, inclusive.
    pub from_ms: i64,
    /// End of the window, exclusive; after `from_ms`.
    pub to_ms: i64,
    /// The grouping fields, distinct, at most [`MAX_GROUP_BY`].
    pub group_by: Vec<Field>,
    /// A time histogram's bucket width; `None` for rows.
    pub interval: Option<Interval>,
    /// What each row or point carries besides its count.
    pub metric: Metric,
    /// Which rows (series) come first.
    pub order: Order,
    /// How many rows (series) to return, 1 to [`MAX_LIMIT`].
    pub limit: usize,
}

impl AnalyticsRequest {
    /// Reads and validates a JSON body.
    pub fn from_json(body: &[u8]) -> Result<AnalyticsRequest, AnalyticsError> {
        let body: AnalyticsBody =
            serde_json::from_slice(body).map_err(|e| AnalyticsError::Body(e.to_string()))?;
        AnalyticsRequest::from_body(body)
    }

    /// Validates a body, naming the member at fault in the error.
    pub fn from_body(body: AnalyticsBody) -> Result<AnalyticsRequest, AnalyticsError> {
        let query = Query::parse(&body.q).map_err(AnalyticsError::Query)?;
        let from_ms = timestamp("from", &body.from)?;
        let to_ms = timestamp("to", &body.to)?;
        if to_ms <= from_ms {
            return Err(invalid("to", format!("must be after from ({})", body.from)));
        }
        if body.group_by.len() > MAX_GROUP_BY {
            return Err(invalid(
                "group_by",
                format!("at most {MAX_GROUP_BY} fields, got {}", body.group_by.len()),
            ));
        }
        let mut group_by = Vec::with_capacity(body.group_by.len());
        for (i, text) in body.group_by.iter().enumerate() {
            let field =
                Field::parse(text).map_err(|e| invalid(format!("group_by[{i}]"), e.to_string()))?;
            if group_by.contains(&field) {
                return Err(invalid(
                    format!("group_by[{i}]"),
                    format!("{field} is already grouped by"),
                ));
            }
            group_by.push(field);
        }
        let interval = match &body.interval {
            None => None,
            Some(text) => {
                let interval = Interval::parse(text).map_err(|m| invalid("interval", m))?;
                let buckets = interval.bucket_count(from_ms, to_ms);
                if buckets > MAX_BUCKETS {
                    return Err(invalid(
                        "interval",
                        format!(
                            "{interval} buckets from {} to {} make {buckets} points per series, more than {MAX_BUCKETS}: use a longer interval or a shorter window",
                            body.from, body.to
                        ),
                    ));
                }
                Some(interval)
            }
        };
        let metric = match &body.metric {
            None => Metric::Count,
            Some(text) => Metric::parse(text).map_err(|m| invalid("metric", m))?,
        };
        let order = match body.order.as_deref() {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => {
                return Err(invalid(
                    "order",
                    format!("expected desc or asc, got {other:?}"),
                ));
            }
        };
        let limit = match body.limit {
            None => DEFAULT_LIMIT,
            Some(n) => match usize::try_from(n) {
                Ok(n @ 1..=MAX_LIMIT) => n,
                _ => {
                    return Err(invalid(
                        "limit",
                        format!("must be between 1 and {MAX_LIMIT}, got {n}"),
                    ));
                }
            },
        };
        Ok(AnalyticsRequest {
            query,
            from_ms,
            to_ms,
            group_by,
            interval,
            metric,
            order,
            limit,
        })
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn timestamp(field: &str, text: &str) -> Result<i64, AnalyticsError> {
    parse_timestamp_ms(text).ok_or_else(|| {
        invalid(
            field,
            format!("expected an RFC 3339 timestamp such as 2024-01-31T12:00:00Z or a date such as 2024-01-31, got {text:?}"),
        )
    })
}

/// The width of a histogram bucket. Buckets are aligned to the Unix epoch (UTC): a `1h`
/// bucket starts on the hour, a `1d` bucket at midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    ms: i64,
}

impl Interval {
    /// The longest interval accepted: 365 days.
    pub const MAX: Interval = Interval {
        ms: 365 * 86_400_000,
    };

    /// Reads `<count><unit>`: a positive whole number and `s`, `m`, `h` or `d`
    /// (`30s`, `1m`, `5m`, `1h`, `1d`).
    pub fn parse(text: &str) -> Result<Interval, String> {
        let expected =
            || format!("expected a duration such as 30s, 1m, 5m, 1h or 1d, got {text:?}");
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (count, unit) = text.split_at(digits);
        let unit_ms: i64 = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(expected()),
        };
        let count: i64 = count.parse().map_err(|_| expected())?;
        if count == 0 {
            return Err(format!("must be at least 1s, got {text:?}"));
        }
        match count.checked_mul(unit_ms) {
            Some(ms) if ms <= Interval::MAX.ms => Ok(Interval { ms }),
            _ => Err(format!("must be at most 365d, got {text:?}")),
        }
    }

    /// Builds an interval from milliseconds; `None` unless a whole number of seconds from
    /// 1s to [`Interval::MAX`].
    pub fn from_ms(ms: i64) -> Option<Interval> {
        (ms >= 1_000 && ms % 1_000 == 0 && ms <= Interval::MAX.ms).then_some(Interval { ms })
    }

    /// The width in milliseconds.
    pub fn as_ms(self) -> i64 {
        self.ms
    }

    /// The start of the bucket holding `at_ms` (saturating at `i64::MIN`).
    pub fn bucket_start(self, at_ms: i64) -> i64 {
        at_ms.saturating_sub(at_ms.rem_euclid(self.ms))
    }

    /// How many buckets `[from_ms, to_ms)` touches (`to_ms > from_ms`).
    pub fn bucket_count(self, from_ms: i64, to_ms: i64) -> i64 {
        (to_ms - 1).div_euclid(self.ms) - from_ms.div_euclid(self.ms) + 1
    }
}

impl Display for Interval {
    /// The largest unit that divides the width exactly: `90s` stays `90s`, `3600s` is `1h`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (unit, unit_ms) = [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ]
        .into_iter()
        .find(|(_, unit_ms)| self.ms % unit_ms == 0)
        .unwrap_or(("s", 1_000));
        write!(f, "{}{unit}", self.ms / unit_ms)
    }
}

/// What a row or point reports besides its count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Only the count of records.
    Count,
    /// The mean of the field's numbers.
    Avg(Field),
    /// The sum of the field's numbers.
    Sum(Field),
    /// The smallest of the field's numbers.
    Min(Field),
    /// The largest of the field's numbers.
    Max(Field),
    /// A percentile (1 to 99) of the field's numbers, nearest-rank: the smallest value
    /// that at least `percent`% of the values are less than or equal to.
    Percentile {
        /// The field measured.
        field: Field,
        /// Which percentile, 1 to 99.
        percent: u8,
    },
}

impl Metric {
    /// Reads `count`, or `avg:`, `sum:`, `min:`, `max:`, `pNN:` (`p50`, `p95`, `p99`, any
    /// 1 to 99) followed by a field (`p95:data.total`, `avg:latency_ms`).
    pub fn parse(text: &str) -> Result<Metric, String> {
        if text == "count" {
            return Ok(Metric::Count);
        }
        let expected = || {
            format!(
                "expected count, avg:FIELD, sum:FIELD, min:FIELD, max:FIELD or pNN:FIELD (p50, p95, p99), got {text:?}"
            )
        };
        let (name, field) = text.split_once(':').ok_or_else(expected)?;
        let make: fn(Field) -> Metric = match name {
            "avg" => Metric::Avg,
            "sum" => Metric::Sum,
            "min" => Metric::Min,
            "max" => Metric::Max,
            _ => {
                let percent = name
                    .strip_prefix('p')
                    .filter(|d| {
                        !d.is_empty()
                            && d.bytes().all(|b| b.is_ascii_digit())
                            && !d.starts_with('0')
                    })
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|p| (1..=99).contains(p))
                    .ok_or_else(expected)?;
                let field = Field::parse(field).map_err(|e| e.to_string())?;
                return Ok(Metric::Percentile { field, percent });
            }
        };
        Ok(make(Field::parse(field).map_err(|e| e.to_string())?))
    }

    /// The field measured; `None` for `count`.
    pub fn field(&self) -> Option<&Field> {
        match self {
            Metric::Count => None,
            Metric::Avg(field)
            | Metric::Sum(field)
            | Metric::Min(field)
            | Metric::Max(field)
            | Metric::Percentile { field, .. } => Some(field),
        }
    }
}

impl Display for Metric {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Count => f.write_str("count"),
            Metric::Avg(field) => write!(f, "avg:{field}"),
            Metric::Sum(field) => write!(f, "sum:{field}"),
            Metric::Min(field) => write!(f, "min:{field}"),
            Metric::Max(field) => write!(f, "max:{field}"),
            Metric::Percentile { field, percent } => write!(f, "p{percent}:{field}"),
        }
    }
}

/// Which rows come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    /// Largest value (or count) first.
    Desc,
    /// Smallest value (or count) first.
    Asc,
}
