//! The bounds on what inference keeps, so that no event (or stream of hostile events) can
//! make a discovered schema, or the work to maintain it, grow without limit.

/// Size caps applied by inference and merging.
///
/// Every schema built under the same caps is the same function of the set of observed
/// shapes, whatever the order they arrived in: each cap below is chosen so that applying it
/// after every merge gives the same result as applying it once to everything.
///
/// - **Depth**: a value nested `max_depth` levels below `data` is described by its type only;
///   its properties or items are not inferred.
/// - **Size**: a schema lists at most `max_nodes` subschemas (one per property, one per
///   `items`). Levels are kept whole, from the top, as long as the running total fits; the
///   first level that would go over the total is dropped, with everything below it. This
///   also bounds the width of any one object: an object with more than `max_nodes`
///   properties cuts the schema at its own level.
/// - **Key length**: properties whose name is longer than `max_key_bytes` are not listed.
///
/// Where something was left out, the schema says so in `$comment`, so a reader can tell
/// "not inferred" from "not seen". Strings longer than `max_format_bytes` never get a
/// `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Values nested this many levels below `data` (itself level 0) keep their types but not
    /// their properties or items.
    pub max_depth: u32,
    /// Most property and `items` subschemas in one schema, counted over every level.
    pub max_nodes: usize,
    /// Longest property name, in bytes, that is listed.
    pub max_key_bytes: usize,
    /// Longest string, in bytes, that is checked for a `format`.
    pub max_format_bytes: usize,
}

impl Default for Caps {
    /// Generous for ordinary events, small enough that a schema stays in the hundreds of KiB
    /// even when every property name is as long as allowed.
    fn default() -> Self {
        Caps {
            max_depth: 16,
            max_nodes: 2000,
            max_key_bytes: 256,
            max_format_bytes: 2048,
        }
    }
}
