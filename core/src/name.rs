use std::fmt;

/// The name of a bus, rule, target, webhook or function: `[A-Za-z0-9._-]{1,64}`.
///
/// Names appear in URLs, file names and metric labels, so the character set is kept to
/// one that is safe in all three.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: names are 1 to 64 characters from A-Z a-z 0-9 . _ -")]
pub struct InvalidName {
    pub name: String,
}

impl Name {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            // "." and ".." would be path components when a name becomes a directory.
            && s != "."
            && s != "..";
        if valid {
            Ok(Name(s.to_owned()))
        } else {
            Err(InvalidName { name: s.to_owned() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["default", "a", "orders.v1", "A_b-c.9", &"x".repeat(64)] {
            assert_eq!(Name::parse(ok).map(|n| n.0), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", ".", "..", "a/b", "a b", "é", "a%2f", &"x".repeat(65)] {
            assert_eq!(
                Name::parse(bad),
                Err(InvalidName {
                    name: bad.to_owned()
                })
            );
        }
    }
}
