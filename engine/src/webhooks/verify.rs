//! Signature verification of inbound webhooks (Standard Webhooks, GitHub, Stripe, generic
//! HMAC-SHA256): pure functions of the request's headers, body and the clock.
//!
//! This file imports nothing from the engine, only `switchyard-core` (whose `signature`
//! module computes and compares every MAC, inbound and outbound) and base64, and reads
//! headers through a lookup function rather than a `HeaderMap`, so that `engine/fuzz` can
//! include it with `#[path]` and fuzz exactly the code the server runs without building
//! the engine.

use base64::Engine as _;
use switchyard_core::signature::Signature;

/// How far a signed timestamp may be from our clock (Standard Webhooks and Stripe both
/// recommend five minutes).
pub const TOLERANCE_SECONDS: i64 = 300;
/// The generic scheme's signature header unless the webhook names another.
pub const DEFAULT_HMAC_HEADER: &str = "x-signature";

/// Signature schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`; secret `whsec_…`.
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `Stripe-Signature: t=<ts>,v1=<hex>` over `"{t}.{body}"`.
    Stripe,
    /// A header (default `x-signature`) with the HMAC-SHA256 of the body, hex (optionally
    /// `sha256=`-prefixed) or base64.
    HmacSha256,
}

impl Scheme {
    pub fn parse(s: &str) -> Option<Scheme> {
        Some(match s {
            "standard-webhooks" => Scheme::StandardWebhooks,
            "github" => Scheme::Github,
            "stripe" => Scheme::Stripe,
            "hmac-sha256" => Scheme::HmacSha256,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::HmacSha256 => "hmac-sha256",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Verify {
    pub scheme: Scheme,
    /// The key bytes (Standard Webhooks secrets are decoded from base64). Visible to the
    /// parent module only, which builds it from the stored secret.
    pub(super) key: Vec<u8>,
    /// The generic scheme's header.
    pub header: Option<String>,
}

impl Verify {
    /// Checks a request's signature; the error says what is wrong, for the 401. `headers`
    /// gives a header's value by (lowercase) name, `None` when absent or not visible ASCII.
    pub fn verify<'h>(
        &self,
        headers: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now_s: i64,
    ) -> Result<(), String> {
        let header = |name: &str| header(&headers, name);
        match self.scheme {
            Scheme::StandardWebhooks => {
                let id = header("webhook-id")?;
                let ts = timestamp(header("webhook-timestamp")?, now_s)?;
                let signatures = header("webhook-signature")?;
                let expected = Signature::standard_webhooks(&self.key, id, ts, body);
                let any = signatures.split_whitespace().any(|s| {
                    s.strip_prefix("v1,")
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .is_some_and(|sig| verify_mac(&expected, &sig))
                });
                any.then_some(())
                    .ok_or_else(|| "no v1 signature in webhook-signature matches".to_owned())
            }
            Scheme::Github => {
                let value = header("x-hub-signature-256")?;
                let sig = value
                    .strip_prefix("sha256=")
                    .and_then(hex)
                    .ok_or("x-hub-signature-256 is not sha256=<hex>")?;
                verify_mac(&Signature::of(&self.key, &[body]), &sig)
                    .then_some(())
                    .ok_or_else(|| "x-hub-signature-256 does not match".to_owned())
            }
            Scheme::Stripe => {
                let value = header("stripe-signature")?;
                let mut t = None;
                let mut sigs = Vec::new();
                for part in value.split(',') {
                    match part.trim().split_once('=') {
                        Some(("t", ts)) => t = Some(ts),
                        Some(("v1", s)) => sigs.extend(hex(s)),
                        _ => {}
                    }
                }
                let ts = timestamp(t.ok_or("stripe-signature has no t=")?, now_s)?;
                let expected = Signature::of(&self.key, &[ts.as_bytes(), b".", body]);
                sigs.iter()
                    .any(|s| verify_mac(&expected, s))
                    .then_some(())
                    .ok_or_else(|| "no v1 signature in stripe-signature matches".to_owned())
            }
            Scheme::HmacSha256 => {
                let name = self.header.as_deref().unwrap_or(DEFAULT_HMAC_HEADER);
                let value = header(name)?;
                let value = value.strip_prefix("sha256=").unwrap_or(value);
                let sig = hex(value)
                    .or_else(|| base64::engine::general_purpose::STANDARD.decode(value).ok())
                    .ok_or_else(|| format!("{name} is neither hex nor base64"))?;
                verify_mac(&Signature::of(&self.key, &[body]), &sig)
                    .then_some(())
                    .ok_or_else(|| format!("{name} does not match"))
            }
        }
    }
}

fn header<'h>(headers: impl Fn(&str) -> Option<&'h str>, name: &str) -> Result<&'h str, String> {
    headers(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("missing {name} header"))
}

/// A signed timestamp within tolerance, as the text that was signed.
fn timestamp(text: &str, now_s: i64) -> Result<&str, String> {
    let ts: i64 = text
        .parse()
        .map_err(|_| format!("the timestamp {text:?} is not a number of seconds"))?;
    // `abs_diff`, not `(now_s - ts).abs()`: the sender picks `ts`, and a subtraction far
    // out of range overflowed (a panic in debug builds; in release, a difference of exactly
    // 2^63 wrapped to i64::MIN, whose `abs()` is negative and passed the check).
    if now_s.abs_diff(ts) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(format!(
            "the timestamp is more than {TOLERANCE_SECONDS} s away from the server's clock"
        ));
    }
    Ok(text)
}

/// Whether a presented signature is the expected MAC (compared in constant time).
fn verify_mac(expected: &Option<Signature>, presented: &[u8]) -> bool {
    expected.as_ref().is_some_and(|m| m.matches(presented))
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `api-server/fuzz` (webhook_verify): timestamps far from the clock overflowed
    /// the subtraction.
    #[test]
    fn timestamps_far_out_of_range_are_refused() {
        let now = 1_700_000_000_i64;
        assert_eq!(timestamp("1700000300", now), Ok("1700000300"));
        assert_eq!(timestamp("1699999700", now), Ok("1699999700"));
        let too_far =
            Err("the timestamp is more than 300 s away from the server's clock".to_owned());
        assert_eq!(timestamp("1700000301", now), too_far);
        assert_eq!(timestamp("-9223372036854775808", now), too_far);
        assert_eq!(timestamp("9223372036854775807", -now), too_far);
        // A difference of exactly 2^63 (i64::MIN when wrapped).
        let wraps = (now - i64::MAX - 1).to_string();
        assert_eq!(timestamp(&wraps, now), too_far);
    }
}
