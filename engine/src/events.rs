//! Reading a bus's stored events: pages newest first (from the log, or through the index
//! for a query) and one event by id.

use switchyard_event_store::{Filter, IndexError, LogError, Record};

use crate::buses::Bus;

/// The most records one listing scans before it returns a short page with a cursor.
pub const MAX_SCAN: u64 = 100_000;

/// What a page asks for: newest first, below `before` (an offset, from the previous page's
/// `next`), received in `[from_ms, to_ms)`, at most `limit` events.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// A page of events, newest first, and where the next one starts (`None`: no more).
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Record>,
    pub next: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("event {0:?} does not exist")]
    NotFound(String),
    /// Several sources published an event with this id: name one.
    #[error("{} sources published an event with id {id:?}; pass ?source= to pick one", sources.len())]
    Ambiguous { id: String, sources: Vec<String> },
}

impl Bus {
    /// A page of the events `filter` finds (through the index), or of every event (from
    /// the log) without one.
    pub async fn events_page(
        &self,
        filter: Option<Filter>,
        page: PageRequest,
    ) -> Result<Page, ReadError> {
        match filter {
            Some(filter) => self.search_page(filter, page).await,
            None => Ok(self.log_page(page).await?),
        }
    }

    /// Reads the log backwards from `before`, at most [`MAX_SCAN`] records per page.
    async fn log_page(&self, page: PageRequest) -> Result<Page, LogError> {
        let bounds = self.log.bounds();
        let Some(first) = bounds.first else {
            return Ok(Page {
                records: Vec::new(),
                next: None,
            });
        };
        let limit = page.limit;
        let mut before = page.before.map_or(bounds.next, |c| c.min(bounds.next));
        let mut records: Vec<Record> = Vec::with_capacity(limit);
        let mut scanned = 0;
        let mut exhausted = false;
        while records.len() < limit && !exhausted {
            if before <= first || scanned >= MAX_SCAN {
                exhausted = before <= first;
                break;
            }
            let chunk = (limit as u64).max(64).min(before - first);
            let mut read = self.log.read(before - chunk, chunk as usize).await?;
            scanned += chunk;
            read.reverse();
            for r in read {
                before = r.offset;
                if page.from_ms.is_some_and(|from| r.received_at_ms < from) {
                    // received_at only grows along the log: nothing older can match.
                    exhausted = true;
                    break;
                }
                if page.to_ms.is_none_or(|to| r.received_at_ms < to) {
                    records.push(r);
                    if records.len() == limit {
                        break;
                    }
                }
            }
            if before <= first {
                exhausted = true;
            }
        }
        let next = (!exhausted && before > first).then_some(before);
        Ok(Page { records, next })
    }

    /// Searches the index, then reads the events back from the log.
    async fn search_page(&self, filter: Filter, page: PageRequest) -> Result<Page, ReadError> {
        let filter = filter.received_within(page.from_ms, page.to_ms);
        let offsets = self.indexer.newest(filter, page.before, page.limit).await?;
        let mut records: Vec<Record> = Vec::with_capacity(offsets.len());
        for &offset in &offsets {
            // Retention may have removed it from the log before the index caught up.
            if let Some(r) = self
                .log
                .read(offset, 1)
                .await?
                .pop()
                .filter(|r| r.offset == offset)
            {
                records.push(r);
            }
        }
        let next = (offsets.len() == page.limit)
            .then(|| offsets.last().copied())
            .flatten();
        Ok(Page { records, next })
    }

    /// The newest event with this id (and source, when given).
    pub async fn lookup(&self, id: &str, source: Option<&str>) -> Result<Record, ReadError> {
        let mut found = self.log.find(id, source).await?;
        let mut sources: Vec<String> = found.iter().map(|r| r.source.clone()).collect();
        sources.sort_unstable();
        sources.dedup();
        if sources.len() > 1 {
            return Err(ReadError::Ambiguous {
                id: id.to_owned(),
                sources,
            });
        }
        if found.is_empty() {
            return Err(ReadError::NotFound(id.to_owned()));
        }
        Ok(found.swap_remove(0))
    }
}
