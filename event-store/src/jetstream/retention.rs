//! Retention: `remove_before` purges a prefix of the stream, found by binary search.

use std::future::IntoFuture as _;

use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};

use super::{JetStreamLog, envelope, unavailable, within};
use crate::log::LogError;

impl JetStreamLog {
    /// `LogStore::remove_before`: see there.
    pub(super) async fn purge_before(
        &self,
        cutoff_ms: i64,
        keep_from: u64,
    ) -> Result<u64, LogError> {
        let now = self.refresh().await?;
        let Some(first) = now.first else {
            return Ok(0);
        };
        let end = keep_from.min(now.next);
        let (mut lo, mut hi) = (first, end.max(first));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let old = self.received_at(mid).await?.is_none_or(|at| at < cutoff_ms);
            if old {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == first {
            return Ok(0);
        }
        let purged = within(
            self.timeout(),
            "purge",
            self.stream.purge().sequence(lo + 1).into_future(),
        )
        .await?
        .map_err(|e| unavailable("purge", e))?;
        let mut b = self.lock_bounds();
        let kept = b.first.map_or(lo, |f| f.max(lo));
        b.first = (kept < b.next).then_some(kept);
        Ok(purged.purged)
    }

    /// `received_at_ms` of the record at `offset`; `None` if it is gone.
    async fn received_at(&self, offset: u64) -> Result<Option<i64>, LogError> {
        let t = self.timeout();
        let body = if self.direct {
            match within(t, "direct get", self.stream.direct_get(offset + 1)).await? {
                Ok(msg) => msg.payload,
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(None),
                Err(e) => return Err(unavailable("direct get", e)),
            }
        } else {
            // A stream created elsewhere without direct gets: ask the leader.
            match within(t, "get message", self.stream.get_raw_message(offset + 1)).await? {
                Ok(msg) => msg.payload,
                Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                    return Ok(None);
                }
                Err(e) => return Err(unavailable("get message", e)),
            }
        };
        envelope::decode(&body)
            .map(|b| Some(b.received_at_ms))
            .map_err(|r| self.corrupt(offset, r))
    }
}
