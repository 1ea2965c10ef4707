//! A byte trie whose nodes carry payloads: prefixes (walked forwards) and suffixes (walked
//! over the reversed value) of many rules share their common bytes.

const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
struct Node {
    edges: Vec<(u8, u32)>,
    payload: Vec<u32>,
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
        self.nodes[node as usize]
            .edges
            .iter()
            .find(|(b, _)| *b == byte)
            .map_or(NONE, |(_, n)| *n)
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
                self.nodes[node as usize].edges.push((byte, id));
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
            if !n.payload.is_empty() || !n.edges.is_empty() {
                break;
            }
            path.pop();
            let parent = path.last().map_or(0, |p| p.0);
            self.nodes[parent as usize]
                .edges
                .retain(|(b, _)| *b != byte);
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
        assert!(t.nodes[0].edges.is_empty());
    }
}
