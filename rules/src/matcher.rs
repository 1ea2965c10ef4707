//! The public matcher: named rules in, names of matching rules out.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::automaton::{self, Automaton, RunScratch};
use crate::error::{EventError, PatternError};
use crate::event::Fields;
use crate::pattern::{Conjunction, Pattern};

#[derive(Debug)]
struct Rule {
    name: String,
    conjunctions: Vec<Conjunction>,
}

/// A set of named rules compiled into one automaton.
///
/// Adding or removing a rule changes only the part of the automaton that rule uses.
/// Matching takes `&self`, so one matcher can serve many threads (it is `Send + Sync`);
/// per-call working memory lives in a thread-local buffer that is reused between events.
#[derive(Debug, Default)]
pub struct Matcher {
    automaton: Automaton,
    rules: Vec<Option<Rule>>,
    free_slots: Vec<u32>,
    by_name: HashMap<String, u32>,
}

#[derive(Default)]
struct Scratch {
    fields: Fields,
    run: RunScratch,
    hits: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Matcher {
    /// An empty matcher.
    pub fn new() -> Matcher {
        Matcher::default()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether a rule with this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Names of all rules, in no particular order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Parses `pattern` (JSON text) and adds it under `name`, replacing any rule of that
    /// name. On error the matcher is unchanged.
    pub fn add_rule(&mut self, name: &str, pattern: &str) -> Result<(), PatternError> {
        let pattern = Pattern::parse(pattern)?;
        self.add_pattern(name, &pattern)
    }

    /// Adds an already validated pattern under `name`, replacing any rule of that name.
    pub fn add_pattern(&mut self, name: &str, pattern: &Pattern) -> Result<(), PatternError> {
        let conjunctions = pattern.conjunctions()?;
        self.remove_rule(name);
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.rules.push(None);
                (self.rules.len() - 1) as u32
            }
        };
        for conjunction in &conjunctions {
            self.automaton
                .insert(&automaton::prepare(conjunction), slot);
        }
        self.rules[slot as usize] = Some(Rule {
            name: name.to_owned(),
            conjunctions,
        });
        self.by_name.insert(name.to_owned(), slot);
        Ok(())
    }

    /// Removes the rule called `name`; returns whether it existed.
    pub fn remove_rule(&mut self, name: &str) -> bool {
        let Some(slot) = self.by_name.remove(name) else {
            return false;
        };
        if let Some(rule) = self.rules[slot as usize].take() {
            for conjunction in &rule.conjunctions {
                self.automaton
                    .remove(&automaton::prepare(conjunction), slot);
            }
        }
        self.free_slots.push(slot);
        true
    }

    /// Number of automaton states, for diagnostics and tests of structure sharing.
    pub fn state_count(&self) -> usize {
        self.automaton.state_count()
    }

    /// `input` is the JSON being read (empty when `read` reads a parsed value).
    fn run<R>(
        &self,
        input: &[u8],
        read: impl FnOnce(&mut Fields, &Automaton) -> Result<(), EventError>,
        finish: impl FnOnce(&[u32]) -> R,
    ) -> Result<R, EventError> {
        SCRATCH.with(|cell| {
            // A re-entrant call (a callback matching again) gets fresh buffers.
            let mut fresh;
            let mut guard = cell.try_borrow_mut();
            let scratch: &mut Scratch = match guard.as_deref_mut() {
                Ok(s) => s,
                Err(_) => {
                    fresh = Scratch::default();
                    &mut fresh
                }
            };
            read(&mut scratch.fields, &self.automaton)?;
            let Scratch { fields, run, hits } = scratch;
            hits.clear();
            self.automaton
                .run(fields, input, run, self.rules.len(), &mut |slot| {
                    hits.push(slot)
                });
            Ok(finish(hits))
        })
    }

    fn names(&self, slots: &[u32]) -> Vec<&str> {
        slots
            .iter()
            .filter_map(|&s| self.rules[s as usize].as_ref().map(|r| r.name.as_str()))
            .collect()
    }

    /// Names of the rules matching an event given as JSON bytes.
    pub fn matches_json(&self, event: &[u8]) -> Result<Vec<String>, EventError> {
        self.matching_rules(event)
            .map(|names| names.into_iter().map(str::to_owned).collect())
    }

    /// Like [`Matcher::matches_json`], borrowing the names instead of copying them.
    pub fn matching_rules(&self, event: &[u8]) -> Result<Vec<&str>, EventError> {
        self.run(
            event,
            |fields, automaton| fields.read_json(&automaton.paths, event),
            |slots| self.names(slots),
        )
    }

    /// Number of rules matching an event given as JSON bytes (no allocation per event).
    pub fn count_matches(&self, event: &[u8]) -> Result<usize, EventError> {
        self.run(
            event,
            |fields, automaton| fields.read_json(&automaton.paths, event),
            <[u32]>::len,
        )
    }

    /// Calls `f` with the name of each rule matching an event given as JSON bytes.
    pub fn for_each_match(&self, event: &[u8], mut f: impl FnMut(&str)) -> Result<(), EventError> {
        self.run(
            event,
            |fields, automaton| fields.read_json(&automaton.paths, event),
            |slots| {
                for &s in slots {
                    if let Some(rule) = &self.rules[s as usize] {
                        f(&rule.name);
                    }
                }
            },
        )
    }

    /// Names of the rules matching an already parsed event.
    pub fn matches_value(&self, event: &serde_json::Value) -> Result<Vec<String>, EventError> {
        self.run(
            &[],
            |fields, automaton| fields.read_value(&automaton.paths, event),
            |slots| self.names(slots).into_iter().map(str::to_owned).collect(),
        )
    }
}

/// Validates a pattern without adding it anywhere (for the REST API's 422).
pub fn validate_pattern(pattern: &str) -> Result<Pattern, PatternError> {
    Pattern::parse(pattern)
}

/// Whether one pattern matches one event: what `POST /v1/patterns/test` answers.
pub fn pattern_matches(pattern: &Pattern, event: &serde_json::Value) -> Result<bool, PatternError> {
    let mut matcher = Matcher::new();
    matcher.add_pattern("pattern", pattern)?;
    Ok(matcher
        .matches_value(event)
        .map(|hits| !hits.is_empty())
        .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(m: &Matcher, event: &str) -> Vec<String> {
        let mut h = m.matches_json(event.as_bytes()).unwrap();
        h.sort();
        let mut v = m
            .matches_value(&serde_json::from_str(event).unwrap())
            .unwrap();
        v.sort();
        assert_eq!(h, v, "bytes and value paths disagree on {event}");
        h
    }

    #[test]
    fn embedding_api() {
        let mut m = Matcher::new();
        m.add_rule("r1", r#"{"type": ["com.shop.order.created"]}"#)
            .unwrap();
        m.add_rule(
            "big",
            r#"{"type": ["com.shop.order.created"], "data": {"total": [{"numeric": [">", 100]}]}}"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            hits(
                &m,
                r#"{"type":"com.shop.order.created","data":{"total":150}}"#
            ),
            vec!["big", "r1"]
        );
        assert_eq!(
            hits(
                &m,
                r#"{"type":"com.shop.order.created","data":{"total":50}}"#
            ),
            vec!["r1"]
        );
        assert!(m.remove_rule("r1"));
        assert!(!m.remove_rule("r1"));
        assert_eq!(
            hits(
                &m,
                r#"{"type":"com.shop.order.created","data":{"total":150}}"#
            ),
            vec!["big"]
        );
        let err = m.add_rule("bad", r#"{"data": {"total": [{"numeric": [10]}]}}"#);
        assert_eq!(
            err.unwrap_err().to_string(),
            "data.total[0].numeric: expected an operator, got 10"
        );
        assert_eq!(m.len(), 1);
        assert!(m.remove_rule("big"));
        assert_eq!(m.state_count(), 1, "removing every rule frees every state");
    }

    #[test]
    fn arrays_of_objects_do_not_mix_elements() {
        let mut m = Matcher::new();
        m.add_rule("r", r#"{"items": {"sku": ["a"], "qty": [2]}}"#)
            .unwrap();
        assert!(
            hits(
                &m,
                r#"{"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}"#
            )
            .is_empty()
        );
        assert_eq!(
            hits(
                &m,
                r#"{"items": [{"sku": "b", "qty": 1}, {"sku": "a", "qty": 2}]}"#
            ),
            vec!["r"]
        );
    }

    #[test]
    fn shared_prefixes_share_states() {
        let mut m = Matcher::new();
        for i in 0..100 {
            m.add_rule(
                &format!("r{i}"),
                &format!(r#"{{"source": ["shop"], "detail": {{"id": [{{"numeric": ["=", {i}]}}, {{"prefix": "p{i}"}}]}}}}"#),
            )
            .unwrap();
        }
        // start + the shared "source" state (the most selective condition goes first)
        // + one state per id.
        assert_eq!(m.state_count(), 102);
        assert_eq!(
            hits(&m, r#"{"source": "shop", "detail": {"id": 42.0}}"#),
            vec!["r42"]
        );
        assert_eq!(
            hits(&m, r#"{"source": "shop", "detail": {"id": "p42"}}"#),
            vec!["r4", "r42"]
        );
    }

    #[test]
    fn replacing_a_rule_keeps_one_copy() {
        let mut m = Matcher::new();
        m.add_rule("r", r#"{"a": ["x"]}"#).unwrap();
        m.add_rule("r", r#"{"a": ["y"]}"#).unwrap();
        assert_eq!(m.len(), 1);
        assert!(hits(&m, r#"{"a": "x"}"#).is_empty());
        assert_eq!(hits(&m, r#"{"a": "y"}"#), vec!["r"]);
    }

    #[test]
    fn matcher_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Matcher>();
    }
}
#[cfg(test)]
mod number_tests {
    use super::*;

    /// Pattern numbers (read by serde_json) and event numbers (read by the byte flattener)
    /// must round identically, or `=` and exact numbers silently never match.
    #[test]
    fn long_decimals_compare_exactly() {
        let mut m = Matcher::new();
        m.add_rule("r", r#"{"x": [{"numeric": ["=", -122.42916360922355]}]}"#)
            .unwrap();
        m.add_rule("t", r#"{"x": [{"numeric": ["<", -122.41600944012424]}]}"#)
            .unwrap();
        m.add_rule("e", r#"{"x": [-122.42916360922355]}"#).unwrap();
        let mut h = m.matches_json(br#"{"x": -122.42916360922355}"#).unwrap();
        h.sort();
        assert_eq!(h, vec!["e", "r", "t"]);
    }
}
