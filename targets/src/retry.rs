//! The retry policy: exponential backoff with full jitter, capped, within an attempt budget
//! and a maximum event age, honouring `Retry-After`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::DeliveryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1000),
            max_backoff: Duration::from_millis(300_000),
            max_attempts: 185,
            max_age: Duration::from_secs(86_400),
        }
    }
}

/// Longest backoff a policy may set: a day.
pub const MAX_BACKOFF: Duration = Duration::from_secs(86_400);
/// Longest a delivery may be retried: 30 days. Every retry is scheduled within it, so no
/// `Retry-After`, however large, schedules past it.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    RetryAfter(Duration),
    /// Stop: the reason goes on the dead letter.
    GiveUp(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryIn {
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    max_attempts: Option<u32>,
    max_age_seconds: Option<u64>,
}

impl RetryPolicy {
    /// Reads a target's `retry` object; absent fields keep their defaults.
    pub fn from_json(value: Option<&Value>) -> Result<RetryPolicy, String> {
        let d = RetryPolicy::default();
        let Some(value) = value else { return Ok(d) };
        let r: RetryIn =
            serde_json::from_value(value.clone()).map_err(|e| format!("retry: {e}"))?;
        let policy = RetryPolicy {
            initial_backoff: r
                .initial_backoff_ms
                .map_or(d.initial_backoff, Duration::from_millis),
            max_backoff: r
                .max_backoff_ms
                .map_or(d.max_backoff, Duration::from_millis),
            max_attempts: r.max_attempts.unwrap_or(d.max_attempts),
            max_age: r.max_age_seconds.map_or(d.max_age, Duration::from_secs),
        };
        if policy.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".to_owned());
        }
        if policy.initial_backoff.is_zero() || policy.max_backoff < policy.initial_backoff {
            return Err("retry: initial_backoff_ms must be > 0 and <= max_backoff_ms".to_owned());
        }
        if policy.max_backoff > MAX_BACKOFF {
            return Err(format!(
                "retry.max_backoff_ms must be at most {}",
                MAX_BACKOFF.as_millis()
            ));
        }
        if policy.max_age.is_zero() || policy.max_age > MAX_AGE {
            return Err(format!(
                "retry.max_age_seconds must be 1 to {}",
                MAX_AGE.as_secs()
            ));
        }
        Ok(policy)
    }

    /// Decides after the `attempts`-th failed try of an event that is `age` old.
    /// `jitter` is uniform in [0, 1): the fraction of the backoff ceiling to wait.
    pub fn decide(
        &self,
        attempts: u32,
        age: Duration,
        error: &DeliveryError,
        jitter: f64,
    ) -> Decision {
        if !error.is_retryable() {
            return Decision::GiveUp(format!("not retryable: {error}"));
        }
        if attempts >= self.max_attempts {
            return Decision::GiveUp(format!("gave up after {attempts} attempts: {error}"));
        }
        let exp = attempts.saturating_sub(1).min(40);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << exp.min(31))
            .min(self.max_backoff);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let mut delay = Duration::from_nanos((nanos as f64 * jitter.clamp(0.0, 1.0)) as u64);
        if let Some(after) = error.retry_after() {
            delay = delay.max(after);
        }
        if age.saturating_add(delay) > self.max_age {
            return Decision::GiveUp(format!(
                "gave up: the event would be older than {} s before the next attempt; last error: {error}",
                self.max_age.as_secs()
            ));
        }
        Decision::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_attempts: 5,
            max_age: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let e = DeliveryError::retryable("503");
        let p = policy();
        let at = |n, j| p.decide(n, Duration::ZERO, &e, j);
        assert_eq!(at(1, 0.75), Decision::RetryAfter(Duration::from_millis(75)));
        assert_eq!(at(2, 0.5), Decision::RetryAfter(Duration::from_millis(100)));
        assert_eq!(at(3, 0.5), Decision::RetryAfter(Duration::from_millis(200)));
        assert_eq!(at(4, 1.0), Decision::RetryAfter(Duration::from_millis(800)));
        assert_eq!(at(4, 0.0), Decision::RetryAfter(Duration::ZERO));
        let big = RetryPolicy {
            max_attempts: 100,
            ..p
        };
        assert_eq!(
            big.decide(60, Duration::ZERO, &e, 1.0),
            Decision::RetryAfter(Duration::from_millis(1000))
        );
    }

    #[test]
    fn gives_up_on_budget_age_and_permanent_errors() {
        let p = policy();
        let e = DeliveryError::retryable("timeout");
        assert!(
            matches!(p.decide(5, Duration::ZERO, &e, 0.5), Decision::GiveUp(m) if m.starts_with("gave up after 5 attempts"))
        );
        assert!(matches!(
            p.decide(1, Duration::from_secs(60), &e, 0.5),
            Decision::GiveUp(_)
        ));
        let bad = DeliveryError::permanent("HTTP 400").with_status(400);
        assert_eq!(
            p.decide(1, Duration::ZERO, &bad, 0.5),
            Decision::GiveUp("not retryable: HTTP 400".to_owned())
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let e = DeliveryError::retryable("429").with_retry_after(Duration::from_secs(7));
        assert_eq!(
            policy().decide(1, Duration::ZERO, &e, 0.1),
            Decision::RetryAfter(Duration::from_secs(7))
        );
        assert!(matches!(
            policy().decide(1, Duration::from_secs(55), &e, 0.1),
            Decision::GiveUp(_)
        ));
    }

    #[test]
    fn reads_the_retry_object() {
        let p = RetryPolicy::from_json(Some(
            &serde_json::json!({"max_attempts": 3, "initial_backoff_ms": 10}),
        ))
        .unwrap();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.initial_backoff, Duration::from_millis(10));
        assert_eq!(p.max_backoff, RetryPolicy::default().max_backoff);
        assert!(RetryPolicy::from_json(Some(&serde_json::json!({"max_attempts": 0}))).is_err());
        assert!(RetryPolicy::from_json(Some(&serde_json::json!({"tries": 1}))).is_err());
        assert_eq!(
            RetryPolicy::from_json(None).unwrap(),
            RetryPolicy::default()
        );
        let err = |v: serde_json::Value| RetryPolicy::from_json(Some(&v)).unwrap_err();
        assert_eq!(
            err(serde_json::json!({"max_age_seconds": u64::MAX})),
            "retry.max_age_seconds must be 1 to 2592000"
        );
        assert_eq!(
            err(serde_json::json!({"max_backoff_ms": 86_400_001u64})),
            "retry.max_backoff_ms must be at most 86400000"
        );
    }

    #[test]
    fn a_huge_retry_after_gives_up_instead_of_overflowing() {
        let e = DeliveryError::retryable("503").with_retry_after(Duration::from_secs(u64::MAX));
        let p = RetryPolicy {
            max_age: MAX_AGE,
            ..RetryPolicy::default()
        };
        assert!(matches!(
            p.decide(1, Duration::from_secs(u64::MAX), &e, 0.5),
            Decision::GiveUp(_)
        ));
    }
}
