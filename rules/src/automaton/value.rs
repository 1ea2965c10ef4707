//! The value machine of one field path leaving one state: every condition that any rule
//! puts on that path at that point, indexed so that one event value finds the matching
//! conditions without trying them one by one.

use std::net::IpAddr;

use super::keys::{Key, Targets};
use super::ranges::RangeTrie;
use super::trie::ByteTrie;
use super::wild::{WildScratch, WildcardMachine};
use crate::event::{Fields, Scalar};
use crate::fx::FxMap;
use crate::number;
use crate::pattern::{AnythingBut, IpRange, Literal, ValueMatcher};

/// Reusable buffers for matching values.
#[derive(Debug, Default)]
pub(crate) struct ValueScratch {
    folded: Vec<u8>,
    wild: WildScratch,
    excluded: Vec<u32>,
}

/// Lowercases `s` for the ignore-case operators (ASCII fast path; full Unicode otherwise).
pub(crate) fn fold_into(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if s.is_ascii() {
        out.extend_from_slice(s);
        out.make_ascii_lowercase();
    } else {
        out.extend_from_slice(String::from_utf8_lossy(s).to_lowercase().as_bytes());
    }
}

pub(crate) fn fold(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    fold_into(s.as_bytes(), &mut out);
    out
}

fn add_to<K: std::hash::Hash + Eq>(map: &mut FxMap<K, Targets>, key: K, target: u32) {
    match map.get_mut(&key) {
        Some(targets) => targets.push(target),
        None => {
            map.insert(key, Targets::One(target));
        }
    }
}

fn remove_from<K, Q>(map: &mut FxMap<K, Targets>, key: &Q, target: u32)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(targets) = map.get_mut(key)
        && targets.remove(target)
    {
        map.remove(key);
    }
}

fn remove_vec(targets: &mut Vec<u32>, target: u32) {
    if let Some(pos) = targets.iter().position(|t| *t == target) {
        targets.swap_remove(pos);
    }
}

/// The less common indexes, allocated only for machines that use them.
#[derive(Debug, Default)]
struct Rare {
    ignore_case: FxMap<Key, Targets>,
    prefix: ByteTrie,
    prefix_ic: ByteTrie,
    suffix: ByteTrie,
    suffix_ic: ByteTrie,
    wildcard: WildcardMachine,
    cidr4: Option<RangeTrie>,
    cidr6: Option<RangeTrie>,
    exists: Vec<u32>,
    anything_but: AnythingButs,
}

#[derive(Debug, Default)]
pub(crate) struct ValueMachine {
    strings: FxMap<Key, Targets>,
    numbers: FxMap<u64, Targets>,
    ranges: Option<Box<RangeTrie>>,
    trues: Vec<u32>,
    falses: Vec<u32>,
    nulls: Vec<u32>,
    rare: Option<Box<Rare>>,
    /// How many (matcher, target) pairs are stored.
    len: usize,
}

impl ValueMachine {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Stores `matcher` leading to `target`. `Exists(false)` is not a value condition and
    /// is handled by the state.
    pub(crate) fn add(&mut self, matcher: &ValueMatcher, target: u32) {
        self.len += 1;
        match matcher {
            ValueMatcher::Exact(Literal::String(s)) => {
                add_to(&mut self.strings, Key::new(s.as_bytes()), target)
            }
            ValueMatcher::Exact(Literal::Number(n)) => {
                add_to(&mut self.numbers, number::key(*n), target)
            }
            ValueMatcher::Exact(Literal::Bool(true)) => self.trues.push(target),
            ValueMatcher::Exact(Literal::Bool(false)) => self.falses.push(target),
            ValueMatcher::Exact(Literal::Null) => self.nulls.push(target),
            ValueMatcher::EqualsIgnoreCase(s) => {
                add_to(&mut self.rare().ignore_case, Key::new(&fold(s)), target)
            }
            ValueMatcher::Prefix { value, ignore_case } => {
                if *ignore_case {
                    self.rare()
                        .prefix_ic
                        .insert(fold(value).into_iter(), target)
                } else {
                    self.rare().prefix.insert(value.bytes(), target)
                }
            }
            ValueMatcher::Suffix { value, ignore_case } => {
                if *ignore_case {
                    self.rare()
                        .suffix_ic
                        .insert(fold(value).into_iter().rev(), target)
                } else {
                    self.rare().suffix.insert(value.bytes().rev(), target)
                }
            }
            ValueMatcher::Wildcard(w) => self.rare().wildcard.insert(w, target),
            ValueMatcher::Numeric(range) => {
                if let Some((lo, hi)) = number::key_range(range) {
                    self.ranges
                        .get_or_insert_with(|| Box::new(RangeTrie::new(8)))
                        .insert(&lo.to_be_bytes(), &hi.to_be_bytes(), target);
                }
            }
            ValueMatcher::Cidr(IpRange::V4 { first, last }) => self
                .rare()
                .cidr4
                .get_or_insert_with(|| RangeTrie::new(4))
                .insert(&first.to_be_bytes(), &last.to_be_bytes(), target),
            ValueMatcher::Cidr(IpRange::V6 { first, last }) => self
                .rare()
                .cidr6
                .get_or_insert_with(|| RangeTrie::new(16))
                .insert(&first.to_be_bytes(), &last.to_be_bytes(), target),
            ValueMatcher::Exists(_) => self.rare().exists.push(target),
            ValueMatcher::AnythingBut(ab) => self.rare().anything_but.add(ab, target),
        }
    }

    /// Undoes one `add(matcher, target)`.
    pub(crate) fn remove(&mut self, matcher: &ValueMatcher, target: u32) {
        self.len = self.len.saturating_sub(1);
        match matcher {
            ValueMatcher::Exact(Literal::String(s)) => {
                remove_from(&mut self.strings, s.as_bytes(), target)
            }
            ValueMatcher::Exact(Literal::Number(n)) => {
                remove_from(&mut self.numbers, &number::key(*n), target)
            }
            ValueMatcher::Exact(Literal::Bool(true)) => remove_vec(&mut self.trues, target),
            ValueMatcher::Exact(Literal::Bool(false)) => remove_vec(&mut self.falses, target),
            ValueMatcher::Exact(Literal::Null) => remove_vec(&mut self.nulls, target),
            ValueMatcher::Numeric(range) => {
                if let (Some((lo, hi)), Some(ranges)) = (number::key_range(range), &mut self.ranges)
                {
                    ranges.remove(&lo.to_be_bytes(), &hi.to_be_bytes(), target);
                    if ranges.is_empty() {
                        self.ranges = None;
                    }
                }
            }
            other => {
                let Some(rare) = self.rare.as_mut() else {
                    return;
                };
                match other {
                    ValueMatcher::EqualsIgnoreCase(s) => {
                        remove_from(&mut rare.ignore_case, fold(s).as_slice(), target)
                    }
                    ValueMatcher::Prefix { value, ignore_case } => {
                        if *ignore_case {
                            rare.prefix_ic.remove(fold(value).into_iter(), target)
                        } else {
                            rare.prefix.remove(value.bytes(), target)
                        }
                    }
                    ValueMatcher::Suffix { value, ignore_case } => {
                        if *ignore_case {
                            rare.suffix_ic.remove(fold(value).into_iter().rev(), target)
                        } else {
                            rare.suffix.remove(value.bytes().rev(), target)
                        }
                    }
                    ValueMatcher::Wildcard(w) => rare.wildcard.remove(w, target),
                    ValueMatcher::Cidr(IpRange::V4 { first, last }) => {
                        if let Some(t) = rare.cidr4.as_mut() {
                            t.remove(&first.to_be_bytes(), &last.to_be_bytes(), target)
                        }
                    }
                    ValueMatcher::Cidr(IpRange::V6 { first, last }) => {
                        if let Some(t) = rare.cidr6.as_mut() {
                            t.remove(&first.to_be_bytes(), &last.to_be_bytes(), target)
                        }
                    }
                    ValueMatcher::Exists(_) => remove_vec(&mut rare.exists, target),
                    ValueMatcher::AnythingBut(ab) => rare.anything_but.remove(ab, target),
                    ValueMatcher::Exact(_) | ValueMatcher::Numeric(_) => {}
                }
            }
        }
        if self.len == 0 {
            *self = ValueMachine::default();
        }
    }

    /// Calls `f` with the target of every stored condition that `value` satisfies (a
    /// target may come more than once).
    #[inline]
    pub(crate) fn run(
        &self,
        value: Scalar,
        fields: &Fields,
        input: &[u8],
        scratch: &mut ValueScratch,
        f: &mut impl FnMut(u32),
    ) {
        match value {
            Scalar::Str {
                start,
                len,
                borrowed,
            } => {
                let s = fields.text(input, start, len, borrowed);
                if !self.strings.is_empty()
                    && let Some(targets) = self.strings.get(s)
                {
                    targets.for_each(f);
                }
                if let Some(rare) = &self.rare {
                    rare.run_string(s, scratch, f);
                }
            }
            Scalar::Num(n) => {
                if !self.numbers.is_empty()
                    && let Some(targets) = self.numbers.get(&number::key(n))
                {
                    targets.for_each(f);
                }
                if let Some(ranges) = &self.ranges
                    && !n.is_nan()
                {
                    ranges.lookup(&number::key(n).to_be_bytes(), f);
                }
                if let Some(rare) = &self.rare {
                    rare.run_other(value, scratch, f);
                }
            }
            Scalar::True | Scalar::False | Scalar::Null => {
                let targets = match value {
                    Scalar::True => &self.trues,
                    Scalar::False => &self.falses,
                    _ => &self.nulls,
                };
                targets.iter().for_each(|t| f(*t));
                if let Some(rare) = &self.rare {
                    rare.run_other(value, scratch, f);
                }
            }
        }
    }
}

impl Rare {
    #[inline]
    fn run_string(&self, s: &[u8], scratch: &mut ValueScratch, f: &mut impl FnMut(u32)) {
        self.exists.iter().for_each(|t| f(*t));
        if !self.prefix.is_empty() {
            self.prefix.for_each_prefix(s.iter().copied(), f);
        }
        if !self.suffix.is_empty() {
            self.suffix.for_each_prefix(s.iter().rev().copied(), f);
        }
        if !self.ignore_case.is_empty() || !self.prefix_ic.is_empty() || !self.suffix_ic.is_empty()
        {
            let mut folded = std::mem::take(&mut scratch.folded);
            fold_into(s, &mut folded);
            if let Some(targets) = self.ignore_case.get(folded.as_slice()) {
                targets.for_each(f);
            }
            if !self.prefix_ic.is_empty() {
                self.prefix_ic.for_each_prefix(folded.iter().copied(), f);
            }
            if !self.suffix_ic.is_empty() {
                self.suffix_ic
                    .for_each_prefix(folded.iter().rev().copied(), f);
            }
            scratch.folded = folded;
        }
        if !self.wildcard.is_empty() {
            self.wildcard.run(s, &mut scratch.wild, f);
        }
        if self.cidr4.is_some() || self.cidr6.is_some() {
            let address = std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.parse::<IpAddr>().ok());
            match (address, &self.cidr4, &self.cidr6) {
                (Some(IpAddr::V4(a)), Some(t), _) => t.lookup(&u32::from(a).to_be_bytes(), f),
                (Some(IpAddr::V6(a)), _, Some(t)) => t.lookup(&u128::from(a).to_be_bytes(), f),
                _ => {}
            }
        }
        if !self.anything_but.is_empty() {
            self.anything_but.run_string(s, scratch, f);
        }
    }

    #[inline]
    fn run_other(&self, value: Scalar, scratch: &mut ValueScratch, f: &mut impl FnMut(u32)) {
        self.exists.iter().for_each(|t| f(*t));
        if !self.anything_but.is_empty() {
            scratch.excluded.clear();
            if let Scalar::Num(n) = value
                && let Some(ids) = self.anything_but.numbers.get(&number::key(n))
            {
                ids.extend_into(&mut scratch.excluded);
            }
            self.anything_but.emit(&scratch.excluded, f);
        }
    }
}

/// Anything-but conditions: each matches unless the value hits one of its exclusions, so
/// the exclusions are indexed (by value, prefix, suffix, wildcard) and a lookup subtracts
/// the members they name from all members.
#[derive(Debug, Default)]
struct AnythingButs {
    /// `(member id, target)`.
    members: Vec<(u32, u32)>,
    ids: FxMap<(String, u32), u32>,
    next_id: u32,
    strings: FxMap<Key, Targets>,
    numbers: FxMap<u64, Targets>,
    ignore_case: FxMap<Key, Targets>,
    prefixes: ByteTrie,
    suffixes: ByteTrie,
    wildcards: WildcardMachine,
}

/// Text that identifies an anything-but condition, to find its member id again.
fn identity(ab: &AnythingBut) -> String {
    format!("{ab:?}")
}

impl AnythingButs {
    fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn add(&mut self, ab: &AnythingBut, target: u32) {
        let id = self.next_id;
        self.next_id += 1;
        self.members.push((id, target));
        self.ids.insert((identity(ab), target), id);
        self.index(ab, id, true);
    }

    fn remove(&mut self, ab: &AnythingBut, target: u32) {
        let Some(id) = self.ids.remove(&(identity(ab), target)) else {
            return;
        };
        self.members.retain(|(m, _)| *m != id);
        self.index(ab, id, false);
    }

    fn index(&mut self, ab: &AnythingBut, id: u32, add: bool) {
        let apply = |map: &mut FxMap<Key, Targets>, key: &[u8]| {
            if add {
                add_to(map, Key::new(key), id)
            } else {
                remove_from(map, key, id)
            }
        };
        match ab {
            AnythingBut::Strings(values) => {
                for v in values {
                    apply(&mut self.strings, v.as_bytes());
                }
            }
            AnythingBut::IgnoreCase(values) => {
                for v in values {
                    apply(&mut self.ignore_case, &fold(v));
                }
            }
            AnythingBut::Numbers(values) => {
                for v in values {
                    if add {
                        add_to(&mut self.numbers, number::key(*v), id)
                    } else {
                        remove_from(&mut self.numbers, &number::key(*v), id)
                    }
                }
            }
            AnythingBut::Prefixes(values) => {
                for v in values {
                    if add {
                        self.prefixes.insert(v.bytes(), id)
                    } else {
                        self.prefixes.remove(v.bytes(), id)
                    }
                }
            }
            AnythingBut::Suffixes(values) => {
                for v in values {
                    if add {
                        self.suffixes.insert(v.bytes().rev(), id)
                    } else {
                        self.suffixes.remove(v.bytes().rev(), id)
                    }
                }
            }
            AnythingBut::Wildcards(values) => {
                for w in values {
                    if add {
                        self.wildcards.insert(w, id)
                    } else {
                        self.wildcards.remove(w, id)
                    }
                }
            }
        }
    }

    #[inline]
    fn run_string(&self, s: &[u8], scratch: &mut ValueScratch, f: &mut impl FnMut(u32)) {
        let ValueScratch {
            folded,
            wild,
            excluded,
        } = scratch;
        excluded.clear();
        if let Some(ids) = self.strings.get(s) {
            ids.extend_into(excluded);
        }
        if !self.ignore_case.is_empty() {
            fold_into(s, folded);
            if let Some(ids) = self.ignore_case.get(folded.as_slice()) {
                ids.extend_into(excluded);
            }
        }
        let mut exclude = |id: u32| excluded.push(id);
        if !self.prefixes.is_empty() {
            self.prefixes
                .for_each_prefix(s.iter().copied(), &mut exclude);
        }
        if !self.suffixes.is_empty() {
            self.suffixes
                .for_each_prefix(s.iter().rev().copied(), &mut exclude);
        }
        if !self.wildcards.is_empty() {
            self.wildcards.run(s, wild, &mut exclude);
        }
        self.emit(excluded, f);
    }

    #[inline]
    fn emit(&self, excluded: &[u32], f: &mut impl FnMut(u32)) {
        if excluded.is_empty() {
            self.members.iter().for_each(|(_, t)| f(*t));
        } else {
            for (id, target) in &self.members {
                if !excluded.contains(id) {
                    f(*target);
                }
            }
        }
    }
}
