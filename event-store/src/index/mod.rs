//! The event index: every stored event, searchable by attribute, by any path into its data,
//! by time and by full text. The only place that knows Tantivy.
//!
//! The log is the source of truth; the index is derived from it and can always be rebuilt
//! (delete its directory and it is filled again from the log). Each commit records the next
//! log offset to index in Tantivy's commit payload, so the indexer resumes exactly there.
//!
//! Numbers in data and extensions are indexed as f64, whatever their JSON form, so `120`
//! and `120.0` are the same value and one range query covers every number.

mod aggregate;
mod doc;
mod filter;
mod phrase;
mod tokenizer;

use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::Query;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions,
    STORED, STRING, Schema, TEXT, TextFieldIndexing,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy};

pub use aggregate::MAX_BUCKETS;
pub use doc::IndexDoc;
pub use filter::{FieldRef, Filter, Scalar};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("index directory {path}: {message}")]
    Directory { path: String, message: String },
    #[error("unsupported query: {0}")]
    Unsupported(String),
    /// An aggregation would make more than `limit` buckets.
    #[error("the aggregation makes more than {limit} buckets")]
    TooManyBuckets { limit: u32 },
    /// The search task did not finish (its thread panicked or the runtime is stopping).
    #[error("search did not finish: {0}")]
    Unavailable(String),
}

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub offset: Field,
    pub received_at: Field,
    pub time: Field,
    pub attrs: Field,
    pub data: Field,
    pub text: Field,
    pub rules: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let raw = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic);
    let json = JsonObjectOptions::default()
        .set_indexing_options(raw)
        .set_fast("raw");
    let date = DateOptions::from(INDEXED | FAST).set_precision(DateTimePrecision::Milliseconds);
    let fields = Fields {
        offset: b.add_u64_field("offset", INDEXED | FAST | STORED),
        // Range queries and histograms read the fast column: keep it to the millisecond
        // (Tantivy's default is the second), as the query language compares instants.
        received_at: b.add_date_field("received_at", date.clone()),
        time: b.add_date_field("time", date),
        attrs: b.add_json_field("attrs", json.clone()),
        data: b.add_json_field("data", json),
        // `TEXT` tokenizes with the tokenizer named `default`: ours, registered at open
        // (`tokenizer::NAME`), with positions for phrases.
        text: b.add_text_field("text", TEXT),
        rules: b.add_text_field("rules", STRING | FAST),
    };
    (b.build(), fields)
}

pub struct EventIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

/// Memory for the writer's indexing buffer.
const WRITER_MEMORY: usize = 64 << 20;

impl EventIndex {
    /// Opens the index in `dir`, creating it if needed.
    pub fn open(dir: &Path) -> Result<EventIndex, IndexError> {
        std::fs::create_dir_all(dir).map_err(|e| IndexError::Directory {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(|e| IndexError::Directory {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let index = match Index::open_or_create(directory.clone(), schema.clone()) {
            Ok(index) => index,
            // Written with an older schema: the index is derived from the log, so start
            // it again empty and let the indexer fill it from offset 0.
            Err(tantivy::TantivyError::SchemaError(_)) => {
                tracing::warn!(dir = %dir.display(), "event index has an older schema: rebuilding it from the log");
                clear_dir(dir)?;
                let directory = MmapDirectory::open(dir).map_err(|e| IndexError::Directory {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
                Index::open_or_create(directory, schema)?
            }
            Err(e) => return Err(e.into()),
        };
        index
            .tokenizers()
            .register(tokenizer::NAME, tokenizer::DataTokenizer);
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(EventIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds events; they become searchable at the next [`EventIndex::commit`].
    pub fn add(&self, docs: &[IndexDoc<'_>]) -> Result<(), IndexError> {
        let writer = self.writer();
        for d in docs {
            writer.add_document(d.to_document(&self.fields))?;
        }
        Ok(())
    }

    /// Makes what was added durable and searchable; `next_offset` is where indexing resumes.
    pub fn commit(&self, next_offset: u64) -> Result<(), IndexError> {
        let mut writer = self.writer();
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&next_offset.to_string());
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// The next log offset to index (0 for a new index).
    pub fn indexed_upto(&self) -> u64 {
        self.index
            .load_metas()
            .ok()
            .and_then(|m| m.payload)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Offsets of the newest `limit` events matching `filter` with offset below `before`.
    pub fn search(
        &self,
        filter: &Filter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, IndexError> {
        let query = self.query(filter, before)?;
        let searcher = self.reader.searcher();
        let top =
            TopDocs::with_limit(limit.max(1)).order_by_fast_field::<u64>("offset", Order::Desc);
        let hits: Vec<(Option<u64>, DocAddress)> = searcher.search(&query, &top)?;
        Ok(hits.into_iter().filter_map(|(o, _)| o).collect())
    }

    /// How many events match.
    pub fn count(&self, filter: &Filter) -> Result<u64, IndexError> {
        let query = self.query(filter, None)?;
        Ok(self.reader.searcher().search(&query, &Count)? as u64)
    }

    /// Removes events with offsets below `offset` (retention); applied at the next commit.
    pub fn delete_before(&self, offset: u64) -> Result<(), IndexError> {
        let query = filter::offset_below(&self.fields, offset);
        self.writer().delete_query(query)?;
        Ok(())
    }

    fn query(&self, filter: &Filter, before: Option<u64>) -> Result<Box<dyn Query>, IndexError> {
        let q = filter::translate(&self.fields, filter)?;
        Ok(match before {
            None => q,
            Some(b) => filter::and(vec![q, filter::offset_below(&self.fields, b)]),
        })
    }

    /// Segments and documents, for figures and tests.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

/// Removes everything in `dir`, keeping the directory.
fn clear_dir(dir: &Path) -> Result<(), IndexError> {
    let failed = |e: std::io::Error| IndexError::Directory {
        path: dir.display().to_string(),
        message: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let path = entry.map_err(failed)?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(failed)?;
        } else {
            std::fs::remove_file(&path).map_err(failed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
