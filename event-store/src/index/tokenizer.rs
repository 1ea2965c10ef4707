//! The tokenizer of `data`'s text: `switchyard_core::text::tokens`, the same function the
//! query language cuts full-text terms with, behind Tantivy's `Tokenizer` trait.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the schema gives the text field's tokenizer. Indexes written before this
/// tokenizer existed name Tantivy's default tokenizer the same way, so registering under
/// it opens them unchanged (their older documents keep the tokens they were indexed with).
pub(crate) const NAME: &str = "default";

#[derive(Clone, Default)]
pub(crate) struct DataTokenizer;

pub(crate) struct DataTokenStream<'a> {
    tokens: Box<dyn Iterator<Item = switchyard_core::text::Token> + 'a>,
    token: Token,
}

impl Tokenizer for DataTokenizer {
    type TokenStream<'a> = DataTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> DataTokenStream<'a> {
        DataTokenStream {
            tokens: Box::new(switchyard_core::text::tokens(text)),
            token: Token::default(),
        }
    }
}

impl TokenStream for DataTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(next) = self.tokens.next() else {
            return false;
        };
        self.token.position = self.token.position.wrapping_add(1);
        self.token.offset_from = next.from;
        self.token.offset_to = next.to;
        self.token.text = next.text;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_the_shared_tokens_with_positions() {
        let mut tokenizer = DataTokenizer;
        let mut stream = tokenizer.token_stream("Card-DECLINED, ΟΔΟΣ");
        let mut seen = Vec::new();
        while let Some(t) = stream.next() {
            seen.push((t.position, t.offset_from, t.offset_to, t.text.clone()));
        }
        assert_eq!(
            seen,
            [
                (0, 0, 4, "card".to_owned()),
                (1, 5, 13, "declined".to_owned()),
                (2, 15, 23, "οδοσ".to_owned()),
            ]
        );
    }
}
