//! Aggregations over the index: Tantivy's own request and result types, computed on fast
//! fields over the events a [`Filter`] selects (no event is loaded). What to ask and how
//! to read the answer is the caller's business (`switchyard-analytics`); this only runs it.

use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector, DEFAULT_BUCKET_LIMIT};
use tantivy::collector::Count;

use super::{EventIndex, Filter, IndexError};

/// The most buckets (groups, histogram buckets, at every level together) one request may
/// make; past it the request fails with [`IndexError::TooManyBuckets`].
pub const MAX_BUCKETS: u32 = DEFAULT_BUCKET_LIMIT;

impl EventIndex {
    /// Runs `request` over the events matching `filter`: how many events match, and the
    /// aggregations' results. Columns are named as [`FieldRef::column`](super::FieldRef::column)
    /// says.
    pub fn aggregate(
        &self,
        filter: &Filter,
        request: Aggregations,
    ) -> Result<(u64, AggregationResults), IndexError> {
        let collector = AggregationCollector::from_aggs(request, AggContextParams::default());
        let query = self.query(filter, None)?;
        let (total, results) = self
            .reader
            .searcher()
            .search(&query, &(Count, collector))
            .map_err(|e| match e {
                tantivy::TantivyError::AggregationError(
                    tantivy::aggregation::AggregationError::BucketLimitExceeded { limit, .. },
                ) => IndexError::TooManyBuckets { limit },
                other => IndexError::Tantivy(other),
            })?;
        Ok((total as u64, results))
    }
}
