//! The typed shape that inference builds and merging combines: a lattice in which every
//! field merges by a commutative, associative and idempotent rule, so that the schema
//! describing a set of events does not depend on the order they were seen in.

use std::collections::BTreeMap;

use crate::caps::Caps;
use crate::format::Format;

/// What the values seen at one place in `data` looked like: one flag or sub-shape per JSON
/// type. Keywords of JSON Schema apply only to instances of their own type (`properties` to
/// objects, `items` to arrays, `format` to strings), so a value seen both as an object and
/// as an array is described by one node carrying both shapes, never by `anyOf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Node {
    pub(crate) null: bool,
    pub(crate) boolean: bool,
    pub(crate) number: Option<Numeric>,
    pub(crate) string: Option<Strings>,
    pub(crate) array: Option<Array>,
    pub(crate) object: Option<Object>,
}

/// `Integer` < `Number`: a place that held both is a `number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Numeric {
    Integer,
    Number,
}

/// `format` survives only while every string seen at this place had that same format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Strings {
    pub(crate) format: Option<Format>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Array {
    /// `None` until a non-empty array is seen (or when `cut`).
    pub(crate) items: Option<Box<Node>>,
    /// Items exist but lie below the level where the caps cut the schema.
    pub(crate) cut: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Object {
    pub(crate) properties: BTreeMap<String, Property>,
    /// Properties exist but lie below the level where the caps cut the schema.
    pub(crate) cut: bool,
    /// Some property name was over `Caps::max_key_bytes` and is not listed.
    pub(crate) long_keys: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Property {
    pub(crate) schema: Node,
    /// Present in every object seen at this place.
    pub(crate) required: bool,
}

impl Node {
    /// Merges `other` in: the result describes every value either side described.
    pub(crate) fn absorb(&mut self, other: Node) {
        self.null |= other.null;
        self.boolean |= other.boolean;
        self.number = self.number.max(other.number);
        self.string = match (self.string, other.string) {
            (Some(a), Some(b)) => Some(Strings {
                format: if a.format == b.format { a.format } else { None },
            }),
            (a, b) => a.or(b),
        };
        match (&mut self.array, other.array) {
            (Some(a), Some(b)) => a.absorb(b),
            (a @ None, b) => *a = b,
            (Some(_), None) => {}
        }
        match (&mut self.object, other.object) {
            (Some(a), Some(b)) => a.absorb(b),
            (a @ None, b) => *a = b,
            (Some(_), None) => {}
        }
    }

    /// Whether merging `other` in would leave this node as it is. A cheap walk with no
    /// allocation, for the common case of an event whose shape the schema already covers.
    pub(crate) fn covers(&self, other: &Node) -> bool {
        let strings = match (self.string, other.string) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => mine.format.is_none() || mine.format == theirs.format,
        };
        let arrays = match (&self.array, &other.array) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => mine.covers(theirs),
        };
        let objects = match (&self.object, &other.object) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => mine.covers(theirs),
        };
        (self.null || !other.null)
            && (self.boolean || !other.boolean)
            && self.number >= other.number
            && strings
            && arrays
            && objects
    }

    /// Applies the depth and size caps. Run after every inference and merge; the cut level
    /// is recovered from the tree itself (its `cut` marks), which is what makes capping
    /// commute with merging: a level once dropped stays dropped for every later merge.
    pub(crate) fn normalize(&mut self, caps: &Caps) {
        let mut level = self
            .cut_level(0)
            .unwrap_or(caps.max_depth)
            .min(caps.max_depth);
        self.truncate(level, 0);
        let mut counts = Vec::new();
        self.count_levels(0, level as usize, &mut counts);
        let mut total = 0usize;
        for (depth, count) in counts.iter().enumerate().skip(1) {
            total = total.saturating_add(*count);
            if total > caps.max_nodes {
                // Depth `depth` does not fit: its parents, one level up, become the cut.
                level = u32::try_from(depth - 1).unwrap_or(u32::MAX);
                self.truncate(level, 0);
                break;
            }
        }
    }

    /// The shallowest depth holding a `cut` mark.
    fn cut_level(&self, depth: u32) -> Option<u32> {
        if self.array.as_ref().is_some_and(|a| a.cut) || self.object.as_ref().is_some_and(|o| o.cut)
        {
            return Some(depth);
        }
        self.children()
            .filter_map(|child| child.cut_level(depth + 1))
            .min()
    }

    /// Drops everything below `level`, marking the nodes at `level` that had children.
    fn truncate(&mut self, level: u32, depth: u32) {
        if depth >= level {
            if let Some(array) = &mut self.array
                && array.items.take().is_some()
            {
                array.cut = true;
            }
            if let Some(object) = &mut self.object
                && !object.properties.is_empty()
            {
                object.properties.clear();
                object.cut = true;
            }
            return;
        }
        if let Some(items) = self.array.as_mut().and_then(|a| a.items.as_mut()) {
            items.truncate(level, depth + 1);
        }
        if let Some(object) = &mut self.object {
            for property in object.properties.values_mut() {
                property.schema.truncate(level, depth + 1);
            }
        }
    }

    /// Adds the number of subschemas at each depth below this node, down to `limit`, into
    /// `counts` (indexed by depth, grown as needed).
    fn count_levels(&self, depth: usize, limit: usize, counts: &mut Vec<usize>) {
        if depth >= limit {
            return;
        }
        let items = self.array.as_ref().and_then(|a| a.items.as_ref());
        let properties = self.object.as_ref().map_or(0, |o| o.properties.len());
        let here = properties + usize::from(items.is_some());
        if here == 0 {
            return;
        }
        if counts.len() <= depth + 1 {
            counts.resize(depth + 2, 0);
        }
        counts[depth + 1] += here;
        for child in self.children() {
            child.count_levels(depth + 1, limit, counts);
        }
    }

    fn children(&self) -> impl Iterator<Item = &Node> {
        let items = self.array.as_ref().and_then(|a| a.items.as_deref());
        let properties = self
            .object
            .iter()
            .flat_map(|o| o.properties.values().map(|p| &p.schema));
        items.into_iter().chain(properties)
    }
}

impl Array {
    fn covers(&self, other: &Array) -> bool {
        if self.cut {
            return true;
        }
        match (&self.items, &other.items) {
            _ if other.cut => false,
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(mine), Some(theirs)) => mine.covers(theirs),
        }
    }

    fn absorb(&mut self, other: Array) {
        self.cut |= other.cut;
        if self.cut {
            self.items = None;
            return;
        }
        match (&mut self.items, other.items) {
            (Some(a), Some(b)) => a.absorb(*b),
            (a @ None, b) => *a = b,
            (Some(_), None) => {}
        }
    }
}

impl Object {
    fn covers(&self, other: &Object) -> bool {
        if other.long_keys && !self.long_keys {
            return false;
        }
        if self.cut {
            return true;
        }
        if other.cut {
            return false;
        }
        let required_kept = self
            .properties
            .iter()
            .filter(|(_, mine)| mine.required)
            .all(|(key, _)| {
                other
                    .properties
                    .get(key)
                    .is_some_and(|theirs| theirs.required)
            });
        required_kept
            && other.properties.iter().all(|(key, theirs)| {
                self.properties
                    .get(key)
                    .is_some_and(|mine| mine.schema.covers(&theirs.schema))
            })
    }

    fn absorb(&mut self, other: Object) {
        self.cut |= other.cut;
        self.long_keys |= other.long_keys;
        if self.cut {
            self.properties.clear();
            return;
        }
        let mut theirs = other.properties;
        for (key, property) in &mut self.properties {
            match theirs.remove(key) {
                Some(their) => {
                    property.required &= their.required;
                    property.schema.absorb(their.schema);
                }
                None => property.required = false,
            }
        }
        for (key, mut their) in theirs {
            their.required = false;
            self.properties.insert(key, their);
        }
    }
}
