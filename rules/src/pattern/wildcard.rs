//! `{"wildcard": "..."}` values: `*` matches any run of characters (including none), `\*`
//! is a literal star and `\\` a literal backslash.

use std::collections::{HashMap, HashSet};

/// Most automaton positions one wildcard may keep alive at once for some input. Each live
/// position costs work on every byte of every value the wildcard is tested against, and
/// many `*` each followed by a character that the `*` also matches make that number grow
/// with the value; EventBridge refuses such patterns as too complex, and so do we.
pub const MAX_WILDCARD_COMPLEXITY: usize = 10;

/// Upper bound on the states explored while measuring complexity, so that measuring a
/// hostile pattern is itself cheap.
const MAX_EXPLORED_STATES: usize = 4096;

/// One piece of a wildcard: a literal byte or a star.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WildcardToken {
    /// Matches exactly this byte.
    Byte(u8),
    /// Matches any run of bytes.
    Star,
}

/// A parsed wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Wildcard {
    tokens: Vec<WildcardToken>,
}

impl Wildcard {
    /// Parses a wildcard, checking escapes, repeated stars and complexity.
    pub fn parse(text: &str) -> Result<Wildcard, String> {
        let mut tokens = Vec::with_capacity(text.len());
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'\\' => match bytes.next() {
                    Some(escaped @ (b'*' | b'\\')) => tokens.push(WildcardToken::Byte(escaped)),
                    _ => {
                        return Err("a backslash may only escape * or \\ in a wildcard".to_owned());
                    }
                },
                b'*' => {
                    if tokens.last() == Some(&WildcardToken::Star) {
                        return Err("consecutive wildcard characters are not allowed".to_owned());
                    }
                    tokens.push(WildcardToken::Star);
                }
                other => tokens.push(WildcardToken::Byte(other)),
            }
        }
        let wildcard = Wildcard { tokens };
        let complexity = wildcard.complexity();
        if complexity > MAX_WILDCARD_COMPLEXITY {
            return Err(format!(
                "wildcard is too complex ({complexity} > {MAX_WILDCARD_COMPLEXITY}): use fewer * or fewer repeated characters after a *"
            ));
        }
        Ok(wildcard)
    }

    /// The tokens, in order.
    pub fn tokens(&self) -> &[WildcardToken] {
        &self.tokens
    }

    /// Whether the wildcard matches `value` (a simple backtracking matcher, used by tests
    /// as the reference the automaton is checked against).
    pub fn matches(&self, value: &[u8]) -> bool {
        let t = &self.tokens;
        let (mut ti, mut vi) = (0, 0);
        let mut resume: Option<(usize, usize)> = None;
        while vi < value.len() {
            match t.get(ti) {
                Some(WildcardToken::Star) => {
                    resume = Some((ti, vi));
                    ti += 1;
                }
                Some(WildcardToken::Byte(b)) if *b == value[vi] => {
                    ti += 1;
                    vi += 1;
                }
                _ => match resume {
                    Some((star, from)) => {
                        ti = star + 1;
                        vi = from + 1;
                        resume = Some((star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        t[ti..].iter().all(|tok| *tok == WildcardToken::Star)
    }

    /// A canonical text form (escapes normalised), used to recognise equal wildcards.
    pub fn canonical(&self) -> String {
        let mut bytes = Vec::with_capacity(self.tokens.len());
        for tok in &self.tokens {
            match tok {
                WildcardToken::Star => bytes.push(b'*'),
                WildcardToken::Byte(b @ (b'*' | b'\\')) => bytes.extend([b'\\', *b]),
                WildcardToken::Byte(b) => bytes.push(*b),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The largest number of positions of this wildcard that some input keeps alive at
    /// once, found by exploring the subset automaton (capped).
    fn complexity(&self) -> usize {
        let t = &self.tokens;
        let closure = |set: &mut Vec<usize>| {
            let mut i = 0;
            while i < set.len() {
                let p = set[i];
                if t.get(p) == Some(&WildcardToken::Star) && !set.contains(&(p + 1)) {
                    set.push(p + 1);
                }
                i += 1;
            }
            set.sort_unstable();
        };
        let mut alphabet: Vec<u8> = t
            .iter()
            .filter_map(|tok| match tok {
                WildcardToken::Byte(b) => Some(*b),
                WildcardToken::Star => None,
            })
            .collect::<HashSet<u8>>()
            .into_iter()
            .collect();
        // One byte that appears nowhere in the wildcard stands for all such bytes.
        if let Some(other) = (0..=255u8).find(|b| !alphabet.contains(b)) {
            alphabet.push(other);
        }
        let mut start = vec![0];
        closure(&mut start);
        let mut max = start.len();
        let mut seen: HashMap<Vec<usize>, ()> = HashMap::new();
        seen.insert(start.clone(), ());
        let mut queue = vec![start];
        while let Some(set) = queue.pop() {
            for &b in &alphabet {
                let mut next = Vec::new();
                for &p in &set {
                    match t.get(p) {
                        Some(WildcardToken::Star) if !next.contains(&p) => next.push(p),
                        Some(WildcardToken::Byte(c)) if *c == b && !next.contains(&(p + 1)) => {
                            next.push(p + 1)
                        }
                        _ => {}
                    }
                }
                if next.is_empty() {
                    continue;
                }
                closure(&mut next);
                if seen.contains_key(&next) {
                    continue;
                }
                max = max.max(next.len());
                if seen.len() >= MAX_EXPLORED_STATES {
                    return usize::MAX;
                }
                seen.insert(next.clone(), ());
                queue.push(next);
            }
        }
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_refuses_many_stars_separated_by_the_same_character() {
        assert!(Wildcard::parse("*:*:*:*:*:event-bus/*").is_err());
        for ok in [
            "arn:aws:events:us-east-1:*:event-bus/*",
            "/Users/*/dir/dir/dir/dir/dir/doc.txt",
            "2*0*1*7",
            "3*5*2",
            "*/init/*",
            "",
            "*",
        ] {
            assert!(Wildcard::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn escapes_and_repeated_stars() {
        assert!(Wildcard::parse("a**b").is_err());
        assert!(Wildcard::parse("a\\b").is_err());
        let w = Wildcard::parse("a\\*b\\\\*").unwrap();
        assert!(w.matches(b"a*b\\xyz"));
        assert!(!w.matches(b"axb\\"));
        assert_eq!(w.canonical(), "a\\*b\\\\*");
    }

    #[test]
    fn reference_matching() {
        let w = Wildcard::parse("/Users/*/doc.txt").unwrap();
        assert!(w.matches(b"/Users/ls_user/dir/dir/doc.txt"));
        assert!(!w.matches(b"/Users/ls_user/dir/notdoc.txtx"));
        assert!(Wildcard::parse("").unwrap().matches(b""));
        assert!(!Wildcard::parse("").unwrap().matches(b"a"));
        assert!(Wildcard::parse("*a").unwrap().matches(b"bba"));
        assert!(!Wildcard::parse("*a").unwrap().matches(b"bab"));
    }
}
