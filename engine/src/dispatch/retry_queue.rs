//! Scheduled retries: which deliveries are due when. It runs on tokio's clock, so the
//! timing is tested under paused time rather than with real sleeps.

use std::collections::BTreeSet;

use tokio::time::{Duration, Instant};

/// Tokio's timer waits at most about two years.
const FURTHEST: Duration = Duration::from_secs(365 * 86_400);

/// Deliveries (by key `K`) waiting for their next attempt.
#[derive(Debug)]
pub struct RetryQueue<K> {
    due: BTreeSet<(Instant, K)>,
}

impl<K> Default for RetryQueue<K> {
    fn default() -> Self {
        RetryQueue {
            due: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> RetryQueue<K> {
    /// Schedules the delivery `key` to be tried again `after` from now.
    /// The policy keeps `after` within its maximum age; past what the clock can hold, the
    /// retry is due at the furthest instant tokio's timer can wait for.
    pub fn schedule(&mut self, key: K, after: Duration) {
        let now = Instant::now();
        let at = now.checked_add(after.min(FURTHEST)).unwrap_or(now);
        self.due.insert((at, key));
    }

    /// When the next retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The deliveries due now, earliest first.
    pub fn take_due(&mut self) -> Vec<K> {
        let now = Instant::now();
        let mut out = Vec::new();
        while self.due.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.due.pop_first() {
                out.push(key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use switchyard_targets::{Decision, DeliveryError, RetryPolicy};

    use super::*;

    fn after(d: Decision) -> Duration {
        match d {
            Decision::RetryAfter(d) => d,
            Decision::GiveUp(reason) => panic!("gave up: {reason}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_fire_when_the_policy_says() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            max_attempts: 10,
            max_age: Duration::from_secs(3600),
        };
        let unavailable = DeliveryError::retryable("HTTP 503").with_status(503);
        let mut q = RetryQueue::<u64>::default();
        // Jitter 1.0 takes the whole ceiling: 1 s after the first failure, 4 s after the third.
        q.schedule(
            7,
            after(policy.decide(1, Duration::ZERO, &unavailable, 1.0)),
        );
        q.schedule(
            8,
            after(policy.decide(3, Duration::ZERO, &unavailable, 1.0)),
        );
        assert_eq!(q.take_due(), Vec::<u64>::new());
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(q.take_due(), Vec::<u64>::new());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(q.take_due(), vec![7]);
        let start = Instant::now();
        tokio::time::sleep_until(q.next_due().unwrap()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(q.take_due(), vec![8]);
        assert_eq!(q.next_due(), None);

        // A 429 asking for 30 s waits 30 s even though the backoff would be 1 s.
        let throttled = DeliveryError::retryable("HTTP 429")
            .with_status(429)
            .with_retry_after(Duration::from_secs(30));
        q.schedule(9, after(policy.decide(1, Duration::ZERO, &throttled, 1.0)));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(q.take_due(), Vec::<u64>::new());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(q.take_due(), vec![9]);

        // The cap holds however many attempts failed.
        assert_eq!(
            after(policy.decide(9, Duration::ZERO, &unavailable, 1.0)),
            Duration::from_secs(8)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_past_what_the_clock_holds_is_clamped_not_a_panic() {
        let mut q = RetryQueue::<u64>::default();
        q.schedule(7, Duration::from_secs(u64::MAX));
        q.schedule(8, Duration::from_secs(1));
        let first = q.next_due().unwrap();
        assert_eq!(first.duration_since(Instant::now()), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(q.take_due(), vec![8]);
        assert_eq!(
            q.next_due().unwrap().duration_since(Instant::now()),
            FURTHEST - Duration::from_secs(1)
        );
    }
}
