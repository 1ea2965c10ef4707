//! Switchyard's rule engine: Amazon EventBridge event patterns, compiled together into one
//! automaton, and the transforms that shape what a target receives. Pure library: no IO.
//!
//! # Why an automaton
//!
//! A bus may hold thousands of rules and every event must be tested against all of them.
//! Testing rule after rule makes each event cost as much as the rule count; instead all
//! rules are merged into one structure whose walk costs what the *event* contains. The
//! design follows aws/event-ruler and Quamina:
//!
//! - **Flattened paths.** Patterns and events are both seen as `(dot.joined.path, scalar)`
//!   pairs, which is how EventBridge defines matching (`{"a": {"b": 1}}` and `{"a.b": 1}`
//!   are the same field). The set of paths any rule mentions is kept as a trie, and the
//!   event is flattened straight from its bytes in one pass guided by it: keys no rule can
//!   reach are never decoded and whole subtrees are skipped by bracket counting. That keeps
//!   a large event cheap when rules look at a handful of its fields.
//! - **One state trie over conditions.** Each rule becomes conjunctions of per-path
//!   conditions (one per `$or` combination), ordered most selective first. Rules that start
//!   with the same conditions share states, so a thousand rules on one `source` test that
//!   `source` once. Adding or removing a rule touches only its own branch, with reference
//!   counts on shared edges: no recompilation of the rest.
//! - **A value machine per (state, path).** All conditions on a path at a state are
//!   indexed together: exact values in hash maps (numbers by value, so `5` matches `5.0`),
//!   prefixes and suffixes in byte tries (case-folded tries for `equals-ignore-case`),
//!   wildcards in one shared nondeterministic byte automaton, numeric ranges and CIDR
//!   blocks in range tries over order-preserving byte encodings (a number becomes 8 bytes
//!   whose byte order is numeric order, so a range is a range of byte strings), and
//!   anything-but as "all members minus those whose exclusions the value hits".
//! - **Array consistency.** Fields record which element of which array of objects they
//!   came from; one rule never combines fields from two different elements of one array.
//!
//! Limits that keep one rule from costing everyone: wildcards have a complexity ceiling
//! ([`MAX_WILDCARD_COMPLEXITY`]) and `$or` a ceiling on expanded combinations
//! ([`MAX_OR_COMBINATIONS`]).
//!
//! ```
//! let mut m = switchyard_rules::Matcher::new();
//! m.add_rule("r1", r#"{"type": ["com.shop.order.created"]}"#)?;
//! let hits: Vec<String> = m.matches_json(br#"{"type":"com.shop.order.created"}"#)?;
//! assert_eq!(hits, vec!["r1".to_owned()]);
//! m.remove_rule("r1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod automaton;
mod error;
mod event;
mod fx;
mod matcher;
mod number;
mod paths;
mod pattern;
#[cfg(test)]
mod reference;
mod transform;

pub use error::{EventError, PatternError, TransformError};
pub use matcher::{Matcher, pattern_matches, validate_pattern};
pub use pattern::{
    AnythingBut, Bound, Condition, Conjunction, IpRange, Literal, MAX_OR_COMBINATIONS,
    MAX_WILDCARD_COMPLEXITY, NumericRange, Pattern, ValueMatcher, Wildcard, WildcardToken,
};
pub use transform::{
    MAX_PATH_LEN, MAX_PATH_NESTING, MAX_TEMPLATE_COST, MAX_TEMPLATE_LEN, MAX_TEMPLATE_NESTING,
    MAX_TEMPLATE_OUTPUT, MAX_TEMPLATE_VARS, Transform,
};
