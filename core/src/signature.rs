//! HMAC-SHA256, the one signing primitive: outbound HTTP deliveries are signed with it
//! (Standard Webhooks), inbound webhooks are verified with it (Standard Webhooks, GitHub,
//! Stripe, generic HMAC). One place computes a MAC and one compares it, in constant time.

use base64::Engine as _;
use hmac::Mac as _;
use hmac::digest::CtOutput;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// An HMAC-SHA256 value. Comparing it with what a sender presents takes the same time
/// whatever the bytes are.
#[derive(Clone)]
pub struct Signature(CtOutput<HmacSha256>);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A MAC is as good as a password for its message: never in a log.
        f.write_str("Signature(..)")
    }
}

impl Signature {
    /// The HMAC-SHA256 of the concatenated `parts` under `key`. HMAC takes keys of any
    /// length, so this is never `None` with the `hmac` crate as it is; the type says what
    /// its API allows.
    pub fn of(key: &[u8], parts: &[&[u8]]) -> Option<Signature> {
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(key).ok()?;
        for part in parts {
            mac.update(part);
        }
        Some(Signature(mac.finalize()))
    }

    /// A Standard Webhooks message's signature: the MAC of `"{id}.{timestamp}.{body}"`.
    pub fn standard_webhooks(
        key: &[u8],
        id: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Option<Signature> {
        Signature::of(
            key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        )
    }

    /// Whether `presented` (raw bytes, decoded from hex or base64) is this MAC; constant
    /// time in the bytes (a length other than 32 is refused at once: it is not secret).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let Ok(presented) = <[u8; 32]>::try_from(presented) else {
            return false;
        };
        self.0 == CtOutput::new(presented.into())
    }

    /// The MAC's bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.clone().into_bytes().into()
    }

    /// The `webhook-signature` value Standard Webhooks senders send: `v1,<base64>`.
    pub fn to_standard_webhooks_header(&self) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.to_bytes());
        format!("v1,{encoded}")
    }
}

/// The key of a Standard Webhooks secret: `whsec_` (optional) followed by base64.
pub fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's reference libraries.
    #[test]
    fn standard_webhooks_reference_vector() {
        let key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = key.as_deref().unwrap_or_default();
        let sig = Signature::standard_webhooks(
            key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        )
        .expect("HMAC takes any key");
        assert_eq!(
            sig.to_standard_webhooks_header(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(sig.matches(&sig.to_bytes()));
        assert_eq!(standard_webhooks_key("whsec_!!"), None);
    }

    /// RFC 4231, test case 2: a short key, and a message in two parts.
    #[test]
    fn rfc_4231_vector() {
        let sig = Signature::of(b"Jefe", &[b"what do ya want ", b"for nothing?"])
            .expect("HMAC takes any key");
        let hex: String = sig.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut wrong = sig.to_bytes();
        wrong[31] ^= 1;
        assert!(!sig.matches(&wrong));
        assert!(!sig.matches(&sig.to_bytes()[..31]));
        assert!(!sig.matches(&[]));
    }
}
