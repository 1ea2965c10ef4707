//! The field paths rules mention, as a trie over dot-separated segments.
//!
//! EventBridge joins nested keys with dots and does not distinguish `{"a": {"b": 1}}` from
//! `{"a.b": 1}`, so both pattern paths and event keys are split at dots before walking the
//! trie. The flattener walks this trie while it reads an event: a key with no child here
//! is a subtree no rule can see, and is skipped without being decoded.

use crate::fx::FxMap;

/// Dense id of a path some rule uses; indexes per-event tables.
pub(crate) type PathId = u32;

/// Children lists longer than this get a hash index.
const INDEX_FROM: usize = 12;

#[derive(Debug, Default)]
pub(crate) struct PathNode {
    /// `(fingerprint, segment, node)`: the fingerprint settles most comparisons with one
    /// integer compare, which matters because every key of an event is looked up here.
    fingerprints: Vec<u64>,
    /// `(segment, node)`, parallel to `fingerprints`.
    children: Vec<(Box<[u8]>, u32)>,
    index: Option<FxMap<Box<[u8]>, u32>>,
    /// Set when some rule uses exactly this path.
    pub(crate) leaf: Option<PathId>,
    parent: u32,
    /// How many registered paths go through or end at this node.
    refs: u32,
}

impl PathNode {
    #[inline]
    pub(crate) fn has_children(&self) -> bool {
        !self.children.is_empty()
    }

    #[inline]
    pub(crate) fn child_count(&self) -> usize {
        self.children.len()
    }

    #[inline]
    fn child(&self, segment: &[u8]) -> Option<u32> {
        self.child_fp(segment, fingerprint(segment))
    }

    #[inline(always)]
    fn child_fp(&self, segment: &[u8], fp: u64) -> Option<u32> {
        if let Some(index) = &self.index {
            return index.get(segment).copied();
        }
        let at = self.fingerprints.iter().position(|f| *f == fp)?;
        let (key, id) = &self.children[at];
        if **key == *segment {
            Some(*id)
        } else {
            // Two segments with one fingerprint (same length and first 7 bytes).
            self.children
                .iter()
                .find(|(key, _)| **key == *segment)
                .map(|(_, id)| *id)
        }
    }
}

/// Length and first seven bytes of a segment, packed.
#[inline]
fn fingerprint(segment: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = segment.len().min(8);
    word[..n].copy_from_slice(&segment[..n]);
    fingerprint_of(u64::from_le_bytes(word), segment.len())
}

/// [`fingerprint`] from the segment's first eight bytes as a little-endian word (bytes
/// past the segment may hold anything: they are masked off).
#[inline(always)]
pub(crate) fn fingerprint_of(word: u64, len: usize) -> u64 {
    let n = len.min(7);
    let kept = if n == 0 {
        0
    } else {
        word & (u64::MAX >> (64 - 8 * n))
    };
    kept | ((len.min(255) as u64) << 56)
}

#[derive(Debug)]
struct PathEntry {
    node: u32,
    refs: u32,
}

/// Registered paths with reference counts (one per rule condition using them).
#[derive(Debug)]
pub(crate) struct Paths {
    nodes: Vec<PathNode>,
    free_nodes: Vec<u32>,
    by_name: FxMap<String, PathId>,
    entries: Vec<Option<PathEntry>>,
    free_ids: Vec<PathId>,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            nodes: vec![PathNode::default()],
            free_nodes: Vec::new(),
            by_name: FxMap::default(),
            entries: Vec::new(),
            free_ids: Vec::new(),
        }
    }
}

pub(crate) const ROOT: u32 = 0;

impl Paths {
    #[inline]
    pub(crate) fn node(&self, id: u32) -> &PathNode {
        &self.nodes[id as usize]
    }

    /// The node reached from `node` by an event key (which may itself contain dots).
    #[inline]
    pub(crate) fn child(&self, node: u32, key: &[u8]) -> Option<u32> {
        let mut word = [0u8; 8];
        let n = key.len().min(8);
        word[..n].copy_from_slice(&key[..n]);
        self.child_hinted(node, key, key.contains(&b'.'), u64::from_le_bytes(word))
    }

    /// [`Paths::child`] when the caller already knows whether `key` has a dot, and the
    /// little-endian word of its first eight bytes.
    #[inline(always)]
    pub(crate) fn child_hinted(
        &self,
        node: u32,
        key: &[u8],
        dotted: bool,
        first_word: u64,
    ) -> Option<u32> {
        // Segments never contain dots, so a dotted key can only match split up.
        if dotted {
            return self.child_dotted(node, key);
        }
        self.node(node)
            .child_fp(key, fingerprint_of(first_word, key.len()))
    }

    #[cold]
    fn child_dotted(&self, node: u32, key: &[u8]) -> Option<u32> {
        let mut current = node;
        for segment in key.split(|b| *b == b'.') {
            current = self.node(current).child(segment)?;
        }
        Some(current)
    }

    /// One past the largest path id handed out: the size of per-path tables.
    pub(crate) fn id_bound(&self) -> usize {
        self.entries.len()
    }

    /// Registers one more use of `path`, returning its id.
    pub(crate) fn acquire(&mut self, path: &str) -> PathId {
        if let Some(&id) = self.by_name.get(path) {
            if let Some(entry) = self.entries[id as usize].as_mut() {
                entry.refs += 1;
            }
            return id;
        }
        let mut current = ROOT;
        self.nodes[ROOT as usize].refs += 1;
        for segment in path.as_bytes().split(|b| *b == b'.') {
            current = match self.nodes[current as usize].child(segment) {
                Some(next) => next,
                None => self.add_child(current, segment),
            };
            self.nodes[current as usize].refs += 1;
        }
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as PathId
            }
        };
        self.entries[id as usize] = Some(PathEntry {
            node: current,
            refs: 1,
        });
        self.nodes[current as usize].leaf = Some(id);
        self.by_name.insert(path.to_owned(), id);
        id
    }

    /// Drops one use of `path`; the path leaves the trie with its last use.
    pub(crate) fn release(&mut self, path: &str) {
        let Some(&id) = self.by_name.get(path) else {
            return;
        };
        let Some(entry) = self.entries[id as usize].as_mut() else {
            return;
        };
        entry.refs -= 1;
        if entry.refs > 0 {
            return;
        }
        let node = entry.node;
        self.entries[id as usize] = None;
        self.free_ids.push(id);
        self.by_name.remove(path);
        self.nodes[node as usize].leaf = None;
        // Walk back to the root dropping one reference per node; unreferenced nodes go.
        let mut current = node;
        loop {
            let parent = self.nodes[current as usize].parent;
            let n = &mut self.nodes[current as usize];
            n.refs -= 1;
            let dead = n.refs == 0 && current != ROOT;
            if dead {
                self.remove_child(parent, current);
                self.nodes[current as usize] = PathNode::default();
                self.free_nodes.push(current);
            }
            if current == ROOT {
                break;
            }
            current = parent;
        }
    }

    fn add_child(&mut self, parent: u32, segment: &[u8]) -> u32 {
        let node = PathNode {
            parent,
            ..PathNode::default()
        };
        let id = match self.free_nodes.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let p = &mut self.nodes[parent as usize];
        p.fingerprints.push(fingerprint(segment));
        p.children.push((segment.into(), id));
        if let Some(index) = &mut p.index {
            index.insert(segment.into(), id);
        } else if p.children.len() > INDEX_FROM {
            p.index = Some(
                p.children
                    .iter()
                    .map(|(key, id)| (key.clone(), *id))
                    .collect(),
            );
        }
        id
    }

    fn remove_child(&mut self, parent: u32, child: u32) {
        let p = &mut self.nodes[parent as usize];
        if let Some(pos) = p.children.iter().position(|(_, id)| *id == child) {
            p.fingerprints.swap_remove(pos);
            let (key, _) = p.children.swap_remove(pos);
            if let Some(index) = &mut p.index {
                index.remove(&key);
            }
        }
        if p.children.len() <= INDEX_FROM {
            p.index = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_and_nesting_reach_the_same_path() {
        let mut paths = Paths::default();
        let id = paths.acquire("detail.state.status");
        let detail = paths.child(ROOT, b"detail").unwrap();
        let via_nesting = paths.child(paths.child(detail, b"state").unwrap(), b"status");
        let via_dots = paths.child(detail, b"state.status");
        assert_eq!(via_nesting, via_dots);
        assert_eq!(paths.node(via_dots.unwrap()).leaf, Some(id));
        assert_eq!(paths.child(ROOT, b"other"), None);
    }

    #[test]
    fn segments_sharing_a_fingerprint_are_told_apart() {
        let mut paths = Paths::default();
        let x = paths.acquire("abcdefgX");
        let y = paths.acquire("abcdefgY");
        let leaf = |key: &[u8]| paths.child(ROOT, key).and_then(|n| paths.node(n).leaf);
        assert_eq!(leaf(b"abcdefgX"), Some(x));
        assert_eq!(leaf(b"abcdefgY"), Some(y));
        assert_eq!(leaf(b"abcdefgZ"), None);
    }

    #[test]
    fn release_removes_unused_nodes_and_reuses_ids() {
        let mut paths = Paths::default();
        let a = paths.acquire("a.b");
        let c = paths.acquire("a.c");
        paths.acquire("a.b");
        paths.release("a.b");
        assert!(paths.child(ROOT, b"a.b").is_some());
        paths.release("a.b");
        assert!(paths.child(ROOT, b"a.b").is_none());
        assert!(paths.child(ROOT, b"a.c").is_some());
        let d = paths.acquire("x");
        assert_eq!(d, a);
        assert_ne!(d, c);
        for i in 0..40 {
            paths.acquire(&format!("wide.k{i}"));
        }
        let wide = paths.child(ROOT, b"wide").unwrap();
        assert!(paths.child(wide, b"k39").is_some());
        for i in 0..40 {
            paths.release(&format!("wide.k{i}"));
        }
        assert!(paths.child(ROOT, b"wide").is_none());
    }
}
