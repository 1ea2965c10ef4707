//! Full-text tokens: how `data`'s strings and a query's free text are cut into terms.

/// Cuts text into lowercase tokens at every character that is not a letter or a digit
/// (Unicode `char::is_alphanumeric`), lowercasing character by character.
///
/// The same function cuts `data`'s strings in the event index (`switchyard-core` holds
/// it for both), so a full-text term finds exactly the tokens the index stored.
///
/// ```
/// assert_eq!(switchyard_analytics::tokenize("Payment-FAILED: card_declined"), ["payment", "failed", "card", "declined"]);
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    switchyard_core::text::tokenize(text)
}

/// Whether `terms` occur in `haystack`'s tokens, in order and adjacent.
pub(crate) fn contains_phrase(haystack: &str, terms: &[String]) -> bool {
    if terms.is_empty() {
        return false;
    }
    tokenize(haystack).windows(terms.len()).any(|w| w == terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_need_adjacent_tokens() {
        let terms = |s: &str| tokenize(s);
        assert!(contains_phrase(
            "Card was declined by bank",
            &terms("was declined")
        ));
        assert!(!contains_phrase("declined was", &terms("was declined")));
        assert!(!contains_phrase(
            "card declined",
            &terms("card was declined")
        ));
        assert!(!contains_phrase("declinedx", &terms("declined")));
        assert!(!contains_phrase("anything", &[]));
    }
}
