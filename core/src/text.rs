//! Full-text tokens: how `data`'s strings are cut into terms, by the event index when it
//! stores them and by the query language when it searches them. One implementation, so
//! the two cannot disagree.

/// One token of a text: where it is and what it reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Byte offset of the token's first character in the text.
    pub from: usize,
    /// Byte offset just past the token's last character.
    pub to: usize,
    /// The token lowercased, character by character.
    pub text: String,
}

/// The tokens of `text`, in order: runs of letters and digits (Unicode
/// `char::is_alphanumeric`), each lowercased character by character (`char::to_lowercase`,
/// so there is no context-dependent rule such as a final sigma). Tokens are never dropped,
/// however long.
///
/// ```
/// let words: Vec<String> = switchyard_core::text::tokens("Payment-FAILED: card_declined")
///     .map(|t| t.text)
///     .collect();
/// assert_eq!(words, ["payment", "failed", "card", "declined"]);
/// ```
pub fn tokens(text: &str) -> impl Iterator<Item = Token> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let from = find(text, at, true)?;
        let to = find(text, from, false).unwrap_or(text.len());
        at = to;
        let word = text.get(from..to)?;
        // The index cuts every string of every event: ASCII words (most) are lowercased
        // as bytes; the rest character by character.
        let lower = if word.is_ascii() {
            word.to_ascii_lowercase()
        } else {
            let mut lower = String::with_capacity(word.len());
            word.chars().for_each(|c| lower.extend(c.to_lowercase()));
            lower
        };
        Some(Token {
            from,
            to,
            text: lower,
        })
    })
}

/// The byte offset of the first character at or after `start` (a character boundary) that
/// is a letter or digit (`alphanumeric`) or is not one (`!alphanumeric`).
fn find(text: &str, start: usize, alphanumeric: bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = start;
    while let Some(&b) = bytes.get(i) {
        // An ASCII byte is a whole character, and `char::is_alphanumeric` agrees with
        // `is_ascii_alphanumeric` on it.
        let (is, len) = if b.is_ascii() {
            (b.is_ascii_alphanumeric(), 1)
        } else {
            let c = text.get(i..)?.chars().next()?;
            (c.is_alphanumeric(), c.len_utf8())
        };
        if is == alphanumeric {
            return Some(i);
        }
        i += len;
    }
    None
}

/// The tokens' texts: `tokenize("Card-DECLINED") == ["card", "declined"]`.
pub fn tokenize(text: &str) -> Vec<String> {
    tokens(text).map(|t| t.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_what_is_not_a_letter_or_digit_and_lowercases_each_char() {
        assert_eq!(tokenize("  ÉCOLE,straße 42x "), ["école", "straße", "42x"]);
        assert!(tokenize("-- !? ").is_empty());
        assert!(tokenize("").is_empty());
        // Per character: a final capital sigma lowercases to σ, not ς.
        assert_eq!(tokenize("ΟΔΟΣ"), ["οδοσ"]);
        // Lowercasing may add characters that are not alphanumeric; the token keeps them.
        assert_eq!(tokenize("İx"), ["i\u{307}x"]);
        let long = "a".repeat(300);
        assert_eq!(tokenize(&long), std::slice::from_ref(&long));
    }

    #[test]
    fn offsets_point_at_the_original_text() {
        let t: Vec<Token> = tokens("ÀB, c").collect();
        assert_eq!(
            t,
            [
                Token {
                    from: 0,
                    to: 3,
                    text: "àb".into()
                },
                Token {
                    from: 5,
                    to: 6,
                    text: "c".into()
                }
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_split_then_lowercase(text in "\\PC{0,40}") {
            let simple: Vec<String> = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty())
                .map(|t| t.chars().flat_map(char::to_lowercase).collect())
                .collect();
            proptest::prop_assert_eq!(tokenize(&text), simple);
        }
    }
}
