//! The id index of a sealed segment: a file of `(id hash, offset)` pairs sorted by hash,
//! searched with positioned reads, fronted by an in-memory Bloom filter so that most
//! segments are ruled out without touching the disk.

use std::fs::File;
use std::os::unix::fs::FileExt;

pub(super) const PAIR_LEN: u64 = 16;

pub(super) fn encode_pairs(pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() * PAIR_LEN as usize);
    for (hash, offset) in pairs {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    out
}

pub(super) fn decode_pairs(bytes: &[u8]) -> Vec<(u64, u64)> {
    bytes
        .chunks_exact(PAIR_LEN as usize)
        .map(|c| {
            let mut h = [0; 8];
            let mut o = [0; 8];
            h.copy_from_slice(&c[..8]);
            o.copy_from_slice(&c[8..]);
            (u64::from_le_bytes(h), u64::from_le_bytes(o))
        })
        .collect()
}

/// Offsets whose id hash is `hash`, by binary search over the sorted pair file.
pub(super) fn search(file: &File, count: u64, hash: u64) -> std::io::Result<Vec<u64>> {
    let read_pair = |i: u64| -> std::io::Result<(u64, u64)> {
        let mut buf = [0; PAIR_LEN as usize];
        file.read_exact_at(&mut buf, i * PAIR_LEN)?;
        Ok(decode_pairs(&buf)[0])
    };
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if read_pair(mid)?.0 < hash {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut found = Vec::new();
    while lo < count {
        let (h, offset) = read_pair(lo)?;
        if h != hash {
            break;
        }
        found.push(offset);
        lo += 1;
    }
    Ok(found)
}

/// A Bloom filter over id hashes: ten bits per id and seven probes, about 1% false positives.
pub(super) struct Bloom {
    bits: Vec<u64>,
}

const PROBES: u64 = 7;

impl Bloom {
    pub fn new(hashes: impl ExactSizeIterator<Item = u64>) -> Self {
        let words = (hashes.len() * 10).div_ceil(64).max(1);
        let mut bloom = Bloom {
            bits: vec![0; words],
        };
        for h in hashes {
            let bits: Vec<u64> = bloom.probes(h).collect();
            for bit in bits {
                bloom.bits[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        bloom
    }

    pub fn may_contain(&self, hash: u64) -> bool {
        self.probes(hash)
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn probes(&self, hash: u64) -> impl Iterator<Item = u64> {
        let m = self.bits.len() as u64 * 64;
        let (h1, h2) = (hash & 0xffff_ffff, (hash >> 32) | 1);
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn search_finds_every_duplicate_hash() {
        let mut pairs: Vec<(u64, u64)> = (0..1000u64).map(|i| (i / 3 * 7, i)).collect();
        pairs.sort_unstable();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&encode_pairs(&pairs)).unwrap();
        assert_eq!(search(&f, 1000, 7 * 5).unwrap(), vec![15, 16, 17]);
        assert_eq!(search(&f, 1000, 8).unwrap(), Vec::<u64>::new());
        assert_eq!(search(&f, 1000, 0).unwrap(), vec![0, 1, 2]);
        assert_eq!(search(&f, 1000, 333 * 7).unwrap(), vec![999]);
    }

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let hashes: Vec<u64> = (0..10_000u64)
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
            .collect();
        let bloom = Bloom::new(hashes.iter().copied());
        assert!(hashes.iter().all(|&h| bloom.may_contain(h)));
        let false_positives = (10_000..20_000u64)
            .filter(|i| bloom.may_contain(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} false positives in 10000"
        );
    }
}
