//! Wildcards of many rules as one nondeterministic byte automaton: literal bytes are trie
//! edges, and each `*` is a node entered without consuming input that loops on every byte.
//! Running it keeps the set of live nodes, whose size the per-pattern complexity limit
//! bounds; wildcards that share a beginning share nodes and so share that work.

use crate::pattern::{Wildcard, WildcardToken};

const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
struct Node {
    edges: Vec<(u8, u32)>,
    /// The node for a `*` right after this point.
    star: u32,
    is_star: bool,
    payload: Vec<u32>,
    /// Stored wildcards whose walk goes through this node.
    refs: u32,
}

impl Node {
    fn new(is_star: bool) -> Node {
        Node {
            star: NONE,
            is_star,
            ..Node::default()
        }
    }
}

#[derive(Debug)]
pub(crate) struct WildcardMachine {
    nodes: Vec<Node>,
    free: Vec<u32>,
}

impl Default for WildcardMachine {
    fn default() -> Self {
        WildcardMachine {
            nodes: vec![Node::new(false)],
            free: Vec::new(),
        }
    }
}

/// Reusable buffers for a run.
#[derive(Debug, Default)]
pub(crate) struct WildScratch {
    current: Vec<u32>,
    next: Vec<u32>,
}

impl WildcardMachine {
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes[0].refs == 0
    }

    fn alloc(&mut self, is_star: bool) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = Node::new(is_star);
                id
            }
            None => {
                self.nodes.push(Node::new(is_star));
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn edge(&self, node: u32, byte: u8) -> u32 {
        self.nodes[node as usize]
            .edges
            .iter()
            .find(|(b, _)| *b == byte)
            .map_or(NONE, |(_, n)| *n)
    }

    pub(crate) fn insert(&mut self, wildcard: &Wildcard, value: u32) {
        let mut node = 0u32;
        self.nodes[0].refs += 1;
        for token in wildcard.tokens() {
            let next = match *token {
                WildcardToken::Byte(b) => self.edge(node, b),
                WildcardToken::Star => self.nodes[node as usize].star,
            };
            node = if next != NONE {
                next
            } else {
                let id = self.alloc(*token == WildcardToken::Star);
                match *token {
                    WildcardToken::Byte(b) => self.nodes[node as usize].edges.push((b, id)),
                    WildcardToken::Star => self.nodes[node as usize].star = id,
                }
                id
            };
            self.nodes[node as usize].refs += 1;
        }
        self.nodes[node as usize].payload.push(value);
    }

    pub(crate) fn remove(&mut self, wildcard: &Wildcard, value: u32) {
        let mut walk = vec![0u32];
        let mut node = 0u32;
        for token in wildcard.tokens() {
            node = match *token {
                WildcardToken::Byte(b) => self.edge(node, b),
                WildcardToken::Star => self.nodes[node as usize].star,
            };
            if node == NONE {
                return;
            }
            walk.push(node);
        }
        let payload = &mut self.nodes[node as usize].payload;
        let Some(pos) = payload.iter().position(|v| *v == value) else {
            return;
        };
        payload.swap_remove(pos);
        for (depth, &id) in walk.iter().enumerate() {
            self.nodes[id as usize].refs -= 1;
            if self.nodes[id as usize].refs == 0 && depth > 0 {
                let parent = walk[depth - 1];
                let p = &mut self.nodes[parent as usize];
                if p.star == id {
                    p.star = NONE;
                } else {
                    p.edges.retain(|(_, n)| *n != id);
                }
                // Everything below is unreferenced too; free it all.
                for &dead in &walk[depth..] {
                    self.nodes[dead as usize] = Node::new(false);
                    self.free.push(dead);
                }
                break;
            }
        }
    }

    #[inline]
    fn enter(&self, set: &mut Vec<u32>, node: u32) {
        if !set.contains(&node) {
            set.push(node);
        }
        let star = self.nodes[node as usize].star;
        if star != NONE && !set.contains(&star) {
            set.push(star);
        }
    }

    /// Calls `f` with the payload of every stored wildcard that matches `value`.
    pub(crate) fn run(&self, value: &[u8], scratch: &mut WildScratch, f: &mut impl FnMut(u32)) {
        let WildScratch { current, next } = scratch;
        current.clear();
        self.enter(current, 0);
        for &byte in value {
            next.clear();
            for &id in current.iter() {
                let node = &self.nodes[id as usize];
                if node.is_star && !next.contains(&id) {
                    next.push(id);
                }
                for &(b, target) in &node.edges {
                    if b == byte {
                        self.enter(next, target);
                    }
                }
            }
            std::mem::swap(current, next);
            if current.is_empty() {
                return;
            }
        }
        for &id in current.iter() {
            for v in &self.nodes[id as usize].payload {
                f(*v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &WildcardMachine, value: &str) -> Vec<u32> {
        let mut out = Vec::new();
        m.run(value.as_bytes(), &mut WildScratch::default(), &mut |v| {
            out.push(v)
        });
        out.sort_unstable();
        out
    }

    #[test]
    fn shared_machine_matches_each_wildcard() {
        let mut m = WildcardMachine::default();
        let patterns = ["2*0*1*7", "3*5*2", "143*", "*218", "VA*IL", "", "*"];
        for (i, p) in patterns.iter().enumerate() {
            m.insert(&Wildcard::parse(p).unwrap(), i as u32);
        }
        for value in [
            "2010107", "3552", "1430022", "9218", "VACSTWIL", "", "x", "2607117",
        ] {
            let expected: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| Wildcard::parse(p).unwrap().matches(value.as_bytes()))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(run(&m, value), expected, "{value}");
        }
        for (i, p) in patterns.iter().enumerate() {
            m.remove(&Wildcard::parse(p).unwrap(), i as u32);
        }
        assert!(m.is_empty());
        assert_eq!(m.free.len() + 1, m.nodes.len());
    }
}
