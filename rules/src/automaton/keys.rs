//! Compact map keys and values for the value machines' hash maps. With many rules these maps
//! are large and cold, and each pointer followed during a lookup is a likely cache miss:
//! short keys are stored inside the entry, and the usual single target needs no allocation.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

const INLINE: usize = 22;

/// A byte string, inline up to 22 bytes.
#[derive(Clone, Debug)]
pub(crate) enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    pub(crate) fn new(b: &[u8]) -> Key {
        if b.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

/// Hashes exactly as `[u8]` does, so maps can be searched with a plain slice.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The states one stored value leads to: almost always one.
#[derive(Clone, Debug)]
pub(crate) enum Targets {
    One(u32),
    Many(Vec<u32>),
}

impl Targets {
    pub(crate) fn push(&mut self, target: u32) {
        match self {
            Targets::One(first) => *self = Targets::Many(vec![*first, target]),
            Targets::Many(all) => all.push(target),
        }
    }

    /// Removes `target`; returns whether none are left.
    pub(crate) fn remove(&mut self, target: u32) -> bool {
        match self {
            Targets::One(only) => *only == target,
            Targets::Many(all) => {
                if let Some(pos) = all.iter().position(|t| *t == target) {
                    all.swap_remove(pos);
                }
                match all.as_slice() {
                    [] => true,
                    [last] => {
                        *self = Targets::One(*last);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    #[inline]
    pub(crate) fn for_each(&self, f: &mut impl FnMut(u32)) {
        match self {
            Targets::One(t) => f(*t),
            Targets::Many(all) => all.iter().for_each(|t| f(*t)),
        }
    }

    #[inline]
    pub(crate) fn extend_into(&self, out: &mut Vec<u32>) {
        match self {
            Targets::One(t) => out.push(*t),
            Targets::Many(all) => out.extend_from_slice(all),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fx::FxMap;

    #[test]
    fn keys_find_by_slice_and_targets_shrink() {
        let mut map: FxMap<Key, Targets> = FxMap::default();
        let long = vec![b'x'; 40];
        map.insert(Key::new(b"short"), Targets::One(1));
        map.insert(Key::new(&long), Targets::One(2));
        assert!(matches!(map.get(&b"short"[..]), Some(Targets::One(1))));
        assert!(matches!(map.get(long.as_slice()), Some(Targets::One(2))));
        assert!(!map.contains_key(&b"shor"[..]));
        let mut t = Targets::One(1);
        t.push(2);
        t.push(3);
        assert!(!t.remove(1));
        assert!(!t.remove(3));
        assert!(matches!(t, Targets::One(2)));
        assert!(t.remove(2));
    }
}
