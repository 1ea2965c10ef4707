//! All rules of a matcher as one automaton.
//!
//! A rule is a set of conjunctions (one per `$or` combination); a conjunction is a list of
//! conditions, each on one field path. States form a trie over conditions: the state
//! reached after conditions `c1..ck` is shared by every conjunction that starts with those
//! same conditions, so rules with common parts (the same `source`, the same `type`) are
//! tested once for all of them. Leaving a state, all conditions on one path live in one
//! [`ValueMachine`], which finds the conditions an event value satisfies through hash maps,
//! byte tries and range tries rather than by trying each. Conditions are ordered most
//! selective first (exact values before ranges, before anything-but and exists), so the
//! walk prunes early; `exists: false` is a transition taken when the event has no value at
//! the path.
//!
//! Matching walks from the start state, following for each state only the paths it has
//! transitions for and only the event values at those paths, so its cost follows the
//! event's fields and the conditions they satisfy, not the number of rules.

mod keys;
mod ranges;
mod trie;
mod value;
mod wild;

use crate::event::Fields;
use crate::fx::FxMap;
use crate::paths::{PathId, Paths};
use crate::pattern::{Condition, ValueMatcher};
use value::ValueMachine;
pub(crate) use value::ValueScratch;

const START: u32 = 0;

/// A state's value machines by path. Most states have exactly one, kept inline so the walk
/// does not follow a pointer to find it.
#[derive(Debug, Default)]
struct Transitions {
    first: Option<(PathId, u32)>,
    rest: Vec<(PathId, u32)>,
}

impl Transitions {
    fn find(&self, path: PathId) -> Option<u32> {
        self.iter().find(|(p, _)| *p == path).map(|(_, m)| m)
    }

    fn push(&mut self, path: PathId, machine: u32) {
        if self.first.is_none() {
            self.first = Some((path, machine));
        } else {
            self.rest.push((path, machine));
        }
    }

    fn remove(&mut self, path: PathId) {
        if self.first.is_some_and(|(p, _)| p == path) {
            self.first = self.rest.pop();
        } else {
            self.rest.retain(|(p, _)| *p != path);
        }
    }

    #[inline]
    fn iter(&self) -> impl Iterator<Item = (PathId, u32)> + '_ {
        self.first.into_iter().chain(self.rest.iter().copied())
    }
}

#[derive(Debug, Default)]
struct State {
    /// Value machines by path.
    transitions: Transitions,
    /// `exists: false` transitions: taken when the event has no value at the path.
    absent: Vec<(PathId, u32)>,
    /// Child states by the canonical text of the condition leading to them, with the
    /// number of conjunctions going through that edge.
    children: FxMap<Box<str>, (u32, u32)>,
    /// Rule slots whose conjunction ends here.
    terminal: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Automaton {
    pub(crate) paths: Paths,
    states: Vec<State>,
    free_states: Vec<u32>,
    machines: Vec<ValueMachine>,
    free_machines: Vec<u32>,
}

impl Default for Automaton {
    fn default() -> Self {
        Automaton {
            paths: Paths::default(),
            states: vec![State::default()],
            free_states: Vec::new(),
            machines: Vec::new(),
            free_machines: Vec::new(),
        }
    }
}

/// How selective a matcher usually is: conditions that let few events through go first.
fn selectivity(m: &ValueMatcher) -> u8 {
    match m {
        ValueMatcher::Exact(_) | ValueMatcher::EqualsIgnoreCase(_) => 0,
        ValueMatcher::Numeric(r) if r.lower.is_some() && r.lower == r.upper => 0,
        ValueMatcher::Prefix { .. }
        | ValueMatcher::Suffix { .. }
        | ValueMatcher::Wildcard(_)
        | ValueMatcher::Cidr(_)
        | ValueMatcher::Numeric(_) => 1,
        ValueMatcher::AnythingBut(_) | ValueMatcher::Exists(true) => 2,
        ValueMatcher::Exists(false) => 3,
    }
}

/// Canonical text of a condition: equal conditions, however written, give equal text.
fn canonical(condition: &Condition) -> Box<str> {
    let mut alternatives: Vec<String> = condition
        .alternatives
        .iter()
        .map(|m| match m {
            ValueMatcher::Exact(crate::pattern::Literal::Number(n)) => {
                format!("number {:016x}", crate::number::key(*n))
            }
            other => format!("{other:?}"),
        })
        .collect();
    alternatives.sort_unstable();
    alternatives.dedup();
    format!("{}\u{0}{}", condition.path, alternatives.join("\u{0}")).into_boxed_str()
}

/// A conjunction in the order the automaton stores it, with its canonical keys.
pub(crate) struct Prepared<'a> {
    steps: Vec<(&'a Condition, Box<str>, Vec<&'a ValueMatcher>)>,
}

pub(crate) fn prepare(conjunction: &[Condition]) -> Prepared<'_> {
    let mut steps: Vec<(&Condition, Box<str>, Vec<&ValueMatcher>)> = conjunction
        .iter()
        .map(|c| {
            // Drop repeated alternatives so each is stored once per target.
            let mut seen: Vec<String> = Vec::new();
            let mut alternatives = Vec::new();
            for m in &c.alternatives {
                let id = format!("{m:?}");
                if !seen.contains(&id) {
                    seen.push(id);
                    alternatives.push(m);
                }
            }
            (c, canonical(c), alternatives)
        })
        .collect();
    steps.sort_by(|a, b| {
        let rank = |c: &Condition| c.alternatives.iter().map(selectivity).max().unwrap_or(0);
        (rank(a.0), &a.0.path).cmp(&(rank(b.0), &b.0.path))
    });
    Prepared { steps }
}

/// Per-event working memory of a run.
#[derive(Debug, Default)]
pub(crate) struct RunScratch {
    stack: Vec<(u32, u32, u32)>,
    trails: Vec<(u32, u32)>,
    state_stamp: Vec<u32>,
    rule_stamp: Vec<u32>,
    stamp: u32,
    values: ValueScratch,
}

impl Automaton {
    fn alloc_state(&mut self) -> u32 {
        match self.free_states.pop() {
            Some(id) => id,
            None => {
                self.states.push(State::default());
                (self.states.len() - 1) as u32
            }
        }
    }

    pub(crate) fn state_count(&self) -> usize {
        self.states.len() - self.free_states.len()
    }

    fn machine_for(&mut self, state: u32, path: PathId) -> u32 {
        if let Some(m) = self.states[state as usize].transitions.find(path) {
            return m;
        }
        let id = match self.free_machines.pop() {
            Some(id) => id,
            None => {
                self.machines.push(ValueMachine::default());
                (self.machines.len() - 1) as u32
            }
        };
        self.states[state as usize].transitions.push(path, id);
        id
    }

    /// Adds one conjunction of rule `rule`.
    pub(crate) fn insert(&mut self, conjunction: &Prepared<'_>, rule: u32) {
        let mut state = START;
        for (condition, key, alternatives) in &conjunction.steps {
            let path = self.paths.acquire(&condition.path);
            if let Some((child, uses)) = self.states[state as usize].children.get_mut(key) {
                *uses += 1;
                state = *child;
                continue;
            }
            let child = self.alloc_state();
            for m in alternatives {
                if let ValueMatcher::Exists(false) = m {
                    self.states[state as usize].absent.push((path, child));
                } else {
                    let vm = self.machine_for(state, path);
                    self.machines[vm as usize].add(m, child);
                }
            }
            self.states[state as usize]
                .children
                .insert(key.clone(), (child, 1));
            state = child;
        }
        self.states[state as usize].terminal.push(rule);
    }

    /// Removes one conjunction previously inserted for `rule`.
    pub(crate) fn remove(&mut self, conjunction: &Prepared<'_>, rule: u32) {
        // Find the walk first: states are freed from the deepest up.
        let mut walk = Vec::with_capacity(conjunction.steps.len());
        let mut state = START;
        for (_, key, _) in &conjunction.steps {
            let Some(&(child, _)) = self.states[state as usize].children.get(key) else {
                return;
            };
            walk.push((state, child));
            state = child;
        }
        let terminal = &mut self.states[state as usize].terminal;
        if let Some(pos) = terminal.iter().position(|r| *r == rule) {
            terminal.swap_remove(pos);
        }
        for ((condition, key, alternatives), (parent, child)) in
            conjunction.steps.iter().zip(walk).rev()
        {
            let path = self.paths_id(&condition.path);
            self.paths.release(&condition.path);
            let Some(edge) = self.states[parent as usize].children.get_mut(key) else {
                continue;
            };
            edge.1 -= 1;
            if edge.1 > 0 {
                continue;
            }
            self.states[parent as usize].children.remove(key);
            for m in alternatives {
                if let ValueMatcher::Exists(false) = m {
                    self.states[parent as usize]
                        .absent
                        .retain(|&(p, t)| !(p == path && t == child));
                } else if let Some(vm) = self.states[parent as usize].transitions.find(path) {
                    let machine = &mut self.machines[vm as usize];
                    machine.remove(m, child);
                    if machine.is_empty() {
                        self.states[parent as usize].transitions.remove(path);
                        self.free_machines.push(vm);
                    }
                }
            }
            self.states[child as usize] = State::default();
            self.free_states.push(child);
        }
    }

    fn paths_id(&self, path: &str) -> PathId {
        let mut node = crate::paths::ROOT;
        for segment in path.split('.') {
            match self.paths.child(node, segment.as_bytes()) {
                Some(n) => node = n,
                None => return PathId::MAX,
            }
        }
        self.paths.node(node).leaf.unwrap_or(PathId::MAX)
    }

    /// Calls `on_rule` once with each rule slot whose conjunction the event's fields satisfy
    /// (`input`: the event bytes the fields were read from, empty for parsed events).
    pub(crate) fn run(
        &self,
        fields: &Fields,
        input: &[u8],
        scratch: &mut RunScratch,
        rule_bound: usize,
        on_rule: &mut impl FnMut(u32),
    ) {
        let RunScratch {
            stack,
            trails,
            state_stamp,
            rule_stamp,
            stamp,
            values,
        } = scratch;
        if state_stamp.len() < self.states.len() {
            state_stamp.resize(self.states.len(), 0);
        }
        if rule_stamp.len() < rule_bound {
            rule_stamp.resize(rule_bound, 0);
        }
        *stamp = stamp.wrapping_add(1);
        if *stamp == 0 {
            state_stamp.iter_mut().for_each(|s| *s = 0);
            rule_stamp.iter_mut().for_each(|s| *s = 0);
            *stamp = 1;
        }
        let stamp = *stamp;
        stack.clear();
        trails.clear();
        stack.push((START, 0, 0));
        state_stamp[START as usize] = stamp;
        while let Some((state_id, trail_start, trail_len)) = stack.pop() {
            let state = &self.states[state_id as usize];
            for &rule in &state.terminal {
                if rule_stamp[rule as usize] != stamp {
                    rule_stamp[rule as usize] = stamp;
                    on_rule(rule);
                }
            }
            for (path, vm) in state.transitions.iter() {
                let mut index = fields.first(path);
                while index != u32::MAX {
                    let field = &fields.fields[index as usize];
                    index = field.next;
                    let field_trail = fields.trail(field);
                    let (start, len) = if field_trail.is_empty() {
                        (trail_start, trail_len)
                    } else {
                        let held =
                            &trails[trail_start as usize..(trail_start + trail_len) as usize];
                        if !consistent(held, field_trail) {
                            continue;
                        }
                        let start = trails.len() as u32;
                        trails.extend_from_within(
                            trail_start as usize..(trail_start + trail_len) as usize,
                        );
                        for &entry in field_trail {
                            if !trails[start as usize..].contains(&entry) {
                                trails.push(entry);
                            }
                        }
                        (start, trails.len() as u32 - start)
                    };
                    self.machines[vm as usize].run(
                        field.value,
                        fields,
                        input,
                        values,
                        &mut |target| {
                            if len == 0 {
                                if state_stamp[target as usize] == stamp {
                                    return;
                                }
                                state_stamp[target as usize] = stamp;
                            }
                            stack.push((target, start, len));
                        },
                    );
                }
            }
            for &(path, target) in &state.absent {
                if !fields.has(path) {
                    if trail_len == 0 {
                        if state_stamp[target as usize] == stamp {
                            continue;
                        }
                        state_stamp[target as usize] = stamp;
                    }
                    stack.push((target, trail_start, trail_len));
                }
            }
        }
    }
}

/// Whether a field from the array elements in `field` can join fields already taken from
/// the elements in `held`: never two different elements of the same array.
#[inline]
fn consistent(held: &[(u32, u32)], field: &[(u32, u32)]) -> bool {
    field
        .iter()
        .all(|(array, index)| held.iter().all(|(a, i)| a != array || i == index))
}
