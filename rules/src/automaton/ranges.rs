//! Ranges of fixed-width byte keys (numbers as order-preserving 8-byte keys, IPv4 as 4
//! bytes, IPv6 as 16) in one trie. A range `[lo, hi]` is stored like a segment tree over
//! bytes: at the node where `lo` and `hi` part, the bytes strictly between them cover whole
//! subtrees; below, each side covers the bytes above `lo` (resp. below `hi`) one level at a
//! time. Every node keeps its covers as sorted byte segments with the targets covering each,
//! so a lookup is one walk down the key's bytes, and only ranges that contain the key are
//! visited, however many ranges the field has.

const NONE: u32 = u32::MAX;

#[derive(Debug, Default)]
struct Node {
    children: Vec<(u8, u32)>,
    /// `(first byte, targets)` segments covering 0..=255 in order; empty when no cover.
    segments: Vec<(u8, Vec<u32>)>,
}

#[derive(Debug)]
pub(crate) struct RangeTrie {
    width: usize,
    nodes: Vec<Node>,
    len: usize,
}

impl RangeTrie {
    pub(crate) fn new(width: usize) -> RangeTrie {
        RangeTrie {
            width,
            nodes: vec![Node::default()],
            len: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn child(&mut self, node: u32, byte: u8, create: bool) -> u32 {
        if let Some(&(_, c)) = self.nodes[node as usize]
            .children
            .iter()
            .find(|(b, _)| *b == byte)
        {
            return c;
        }
        if !create {
            return NONE;
        }
        self.nodes.push(Node::default());
        let id = (self.nodes.len() - 1) as u32;
        self.nodes[node as usize].children.push((byte, id));
        id
    }

    /// Adds `target` for every key in `lo..=hi` (`lo <= hi`, both `width` bytes).
    pub(crate) fn insert(&mut self, lo: &[u8], hi: &[u8], target: u32) {
        self.len += 1;
        self.cover(0, 0, Some(lo), Some(hi), target, true);
    }

    pub(crate) fn remove(&mut self, lo: &[u8], hi: &[u8], target: u32) {
        self.len = self.len.saturating_sub(1);
        self.cover(0, 0, Some(lo), Some(hi), target, false);
    }

    fn cover(
        &mut self,
        node: u32,
        depth: usize,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        target: u32,
        add: bool,
    ) {
        let last = depth + 1 == self.width;
        let lb = lo.map_or(0, |l| l[depth]);
        let hb = hi.map_or(255, |h| h[depth]);
        let lo_full = last || lo.is_none_or(|l| l[depth + 1..].iter().all(|&b| b == 0));
        let hi_full = last || hi.is_none_or(|h| h[depth + 1..].iter().all(|&b| b == 255));
        if lb == hb {
            if lo_full && hi_full {
                self.update(node, lb, lb, target, add);
            } else {
                let c = self.child(node, lb, add);
                if c != NONE {
                    let lo = if lo_full { None } else { lo };
                    let hi = if hi_full { None } else { hi };
                    self.cover(c, depth + 1, lo, hi, target, add);
                }
            }
            return;
        }
        let start = if lo_full { lb } else { lb + 1 };
        let end = if hi_full { hb } else { hb - 1 };
        if start <= end {
            self.update(node, start, end, target, add);
        }
        if !lo_full {
            let c = self.child(node, lb, add);
            if c != NONE {
                self.cover(c, depth + 1, lo, None, target, add);
            }
        }
        if !hi_full {
            let c = self.child(node, hb, add);
            if c != NONE {
                self.cover(c, depth + 1, None, hi, target, add);
            }
        }
    }

    fn update(&mut self, node: u32, start: u8, end: u8, target: u32, add: bool) {
        let segments = &mut self.nodes[node as usize].segments;
        if segments.is_empty() {
            if !add {
                return;
            }
            segments.push((0, Vec::new()));
        }
        split(segments, start);
        if end < 255 {
            split(segments, end + 1);
        }
        for (first, targets) in segments.iter_mut() {
            if *first >= start && *first <= end {
                if add {
                    targets.push(target);
                } else if let Some(pos) = targets.iter().position(|t| *t == target) {
                    targets.swap_remove(pos);
                }
            }
        }
        if !add {
            // Merge neighbours that became equal, so churn does not fragment the node.
            let mut merged: Vec<(u8, Vec<u32>)> = Vec::with_capacity(segments.len());
            for (first, mut targets) in segments.drain(..) {
                targets.sort_unstable();
                match merged.last() {
                    Some((_, prev)) if *prev == targets => {}
                    _ => merged.push((first, targets)),
                }
            }
            if merged.len() == 1 && merged[0].1.is_empty() {
                merged.clear();
            }
            *segments = merged;
        }
    }

    /// Calls `f` with every target whose range contains `key`.
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8], f: &mut impl FnMut(u32)) {
        let mut node = &self.nodes[0];
        for &byte in key {
            if !node.segments.is_empty() {
                let i = node.segments.partition_point(|(first, _)| *first <= byte);
                for t in &node.segments[i - 1].1 {
                    f(*t);
                }
            }
            match node.children.iter().find(|(b, _)| *b == byte) {
                Some(&(_, c)) => node = &self.nodes[c as usize],
                None => return,
            }
        }
    }
}

/// Makes `at` the first byte of a segment.
fn split(segments: &mut Vec<(u8, Vec<u32>)>, at: u8) {
    let i = segments.partition_point(|(first, _)| *first <= at);
    if segments[i - 1].0 != at {
        let copy = segments[i - 1].1.clone();
        segments.insert(i, (at, copy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(t: &RangeTrie, key: u16) -> Vec<u32> {
        let mut out = Vec::new();
        t.lookup(&key.to_be_bytes(), &mut |v| out.push(v));
        out.sort_unstable();
        out
    }

    #[test]
    fn matches_brute_force_on_two_byte_keys() {
        let ranges: Vec<(u16, u16)> = vec![
            (0, 0),
            (0, u16::MAX),
            (5, 300),
            (256, 511),
            (255, 256),
            (1000, 1000),
            (0x1200, 0x12ff),
            (0x1201, 0x13fe),
            (40000, 65535),
        ];
        let mut t = RangeTrie::new(2);
        for (i, (lo, hi)) in ranges.iter().enumerate() {
            t.insert(&lo.to_be_bytes(), &hi.to_be_bytes(), i as u32);
        }
        let check = |t: &RangeTrie, live: &[usize]| {
            for key in (0..=u16::MAX).step_by(7).chain([
                0, 5, 255, 256, 300, 301, 511, 512, 1000, 0x1200, 0x12ff, 0x13fe, 0x13ff, 65535,
            ]) {
                let expected: Vec<u32> = live
                    .iter()
                    .filter(|&&i| (ranges[i].0..=ranges[i].1).contains(&key))
                    .map(|&i| i as u32)
                    .collect();
                assert_eq!(found(t, key), expected, "key {key}");
            }
        };
        check(&t, &(0..ranges.len()).collect::<Vec<_>>());
        for i in [1, 3, 6] {
            t.remove(
                &ranges[i].0.to_be_bytes(),
                &ranges[i].1.to_be_bytes(),
                i as u32,
            );
        }
        check(&t, &[0, 2, 4, 5, 7, 8]);
    }
}
