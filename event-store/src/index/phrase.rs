//! A phrase query whose scorer honours `seek_danger` below its current document.
//!
//! Tantivy 0.27's `PhraseScorer` asserts (debug builds only) that `seek_danger` never asks
//! for a document before the one it stands on, yet an exclusion (`NOT "a b"`) asks for the
//! first candidate while the phrase scorer already stands past it (or has run out). The
//! answer in that case is known without moving: nothing matches before the current
//! document. This wrapper's scorer keeps `DocSet`'s default `seek_danger`, which answers
//! that case from `doc()` and otherwise calls `seek`, and delegates everything else.

use tantivy::query::{EnableScoring, Explanation, PhraseQuery, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentReader};

#[derive(Clone, Debug)]
pub(crate) struct Phrase(pub PhraseQuery);

impl Query for Phrase {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(PhraseWeight(self.0.weight(enable_scoring)?)))
    }
}

struct PhraseWeight(Box<dyn Weight>);

impl Weight for PhraseWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(PhraseScorer(self.0.scorer(reader, boost)?)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.0.explain(reader, doc)
    }
}

struct PhraseScorer(Box<dyn Scorer>);

impl DocSet for PhraseScorer {
    fn advance(&mut self) -> DocId {
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if target <= self.0.doc() {
            return self.0.doc();
        }
        self.0.seek(target)
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }
}

impl Scorer for PhraseScorer {
    fn score(&mut self) -> Score {
        self.0.score()
    }
}
