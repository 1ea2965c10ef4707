//! A byte trie whose nodes carry payloads: prefixes (walked forwards) and suffixes (walked
//! over the reversed value) of many rules share their common bytes.

const NONE: u32 = u32::MAX;

/// Edges kept inside the node: most trie nodes have one or two children, and a walk then
/// touches one cache line per byte instead of two.
const INLINE: usize = 2;

#[derive(Debug, Default)]
struct Node {
    inline: [(u8, u32); INLINE],
    inline_len: u8,
    more: Vec<(u8, u32)>,
    payload: Vec<u32>,
}

impl Node {
    #[inline]
    fn edge(&self, byte: u8) -> u32 {
        for &(b, n) in &self.inline[..self.inline_len as usize] {
            if b == byte {
                return n;
            }
        }
        if self.more.is_empty() {
            return NONE;
        }
        self.more
            .iter()
            .find(|(b, _)| *b == byte)
            .map_or(NONE, |(_, n)| *n)
    }

    fn push_edge(&mut self, byte: u8, node: u32) {
        let len = self.inline_len as usize;
        if len < INLINE {
            self.inline[len] = (byte, node);
            self.inline_len += 1;
        } else {
            self.more.push((byte, node));
        }
    }

    fn remove_edge(&mut self, byte: u8) {
        let len = self.inline_len as usize;
        if let Some(pos) = self.inline[..len].iter().position(|(b, _)| *b == byte) {
            // Refill the inline slots from the overflow list.
            self.inline.copy_within(pos + 1..len, pos);
            self.inline_len -= 1;
            if let Some(edge) = self.more.pop() {
                self.inline[self.inline_len as usize] = edge;
                self.inline_len += 1;
            }
        } else {
            self.more.retain(|(b, _)| *b != byte);
        }
    }

    fn has_edges(&self) -> bool {
        self.inline_len > 0
    }
}

#[derive(Debug)]
pub(crate) struct ByteTrie {
    nodes: Vec<Node>,
    free: Vec<u32>,
    len: usize,
}

impl Default for ByteTrie {
    fn default() -> Self {
        ByteTrie {
            nodes: vec![Node::default()],
            free: Vec::new(),
            len: 0,
        }
    }
}

impl ByteTrie {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn step(&self, node: u32, byte: u8) -> u32 {
        self.nodes[node as usize].edge(byte)
    }

    pub(crate) fn insert(&mut self, key: impl Iterator<Item = u8>, value: u32) {
        let mut node = 0u32;
        for byte in key {
            let next = self.step(node, byte);
            node = if next != NONE {
                next
            } else {
                let id = match self.free.pop() {
                    Some(id) => id,
                    None => {
                        self.nodes.push(Node::default());
                        (self.nodes.len() - 1) as u32
                    }
                };
                self.nodes[node as usize].push_edge(byte, id);
                id
            };
        }
        self.nodes[node as usize].payload.push(value);
        self.len += 1;
    }

    /// Removes one `value` stored under `key`, pruning nodes left with nothing.
    pub(crate) fn remove(&mut self, key: impl Iterator<Item = u8>, value: u32) {
        let mut path = vec![(0u32, 0u8)];
        let mut node = 0u32;
        for byte in key {
            node = self.step(node, byte);
            if node == NONE {
                return;
            }
            path.push((node, byte));
        }
        let payload = &mut self.nodes[node as usize].payload;
        let Some(pos) = payload.iter().position(|v| *v == value) else {
            return;
        };
        payload.swap_remove(pos);
        self.len -= 1;
        while path.len() > 1 {
            let Some(&(id, byte)) = path.last() else {
                break;
            };
            let n = &self.nodes[id as usize];
            if !n.payload.is_empty() || n.has_edges() {
                break;
            }
            path.pop();
            let parent = path.last().map_or(0, |p| p.0);
            self.nodes[parent as usize].remove_edge(byte);
            self.nodes[id as usize] = Node::default();
            self.free.push(id);
        }
    }

    /// Calls `f` with the payload of every node on the walk of `value`: the payloads of all
    /// stored keys that are prefixes of `value` (the empty key included).
    #[inline]
    pub(crate) fn for_each_prefix(&self, value: impl Iterator<Item = u8>, f: &mut impl FnMut(u32)) {
        let mut node = 0u32;
        for v in &self.nodes[0].payload {
            f(*v);
        }
        for byte in value {
            node = self.step(node, byte);
            if node == NONE {
                return;
            }
            for v in &self.nodes[node as usize].payload {
                f(*v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_found_and_removal_prunes() {
        let mut t = ByteTrie::default();
        t.insert(b"ab".iter().copied(), 1);
        t.insert(b"abc".iter().copied(), 2);
        t.insert(b"".iter().copied(), 3);
        let mut found = Vec::new();
        t.for_each_prefix(b"abcd".iter().copied(), &mut |v| found.push(v));
        assert_eq!(found, vec![3, 1, 2]);
        t.remove(b"abc".iter().copied(), 2);
        t.remove(b"ab".iter().copied(), 1);
        t.remove(b"".iter().copied(), 3);
        assert!(t.is_empty());
        assert!(!t.nodes[0].has_edges());
        // Many children: inline slots and overflow list together.
        for b in 0..10u8 {
            t.insert([b'x', b'0' + b].into_iter(), u32::from(b));
        }
        for b in (0..10u8).step_by(3) {
            t.remove([b'x', b'0' + b].into_iter(), u32::from(b));
        }
        for b in 0..10u8 {
            let mut found = Vec::new();
            t.for_each_prefix([b'x', b'0' + b].into_iter(), &mut |v| found.push(v));
            let expected = if b % 3 == 0 {
                vec![]
            } else {
                vec![u32::from(b)]
            };
            assert_eq!(found, expected, "x{b}");
        }
    }
}
