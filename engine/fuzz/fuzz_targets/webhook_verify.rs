//! Any request against a webhook's verifier: arbitrary scheme, key, clock, signature headers
//! and body. Verifying answers `Ok` or a reason and never panics; and a request signed
//! correctly (as the provider would, within the time tolerance) is always accepted.
#![no_main]

// The engine's own file. `Scheme::parse` and `as_str` serve its configuration API only.
#[allow(dead_code)]
#[path = "../../src/webhooks/verify.rs"]
mod verify;

use base64::Engine as _;
use hmac::Mac;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use verify::{Scheme, TOLERANCE_SECONDS, Verify};

/// Every header some scheme reads, plus a custom one for the generic scheme.
const HEADERS: [&str; 7] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-signature",
    "x-custom-sig",
];

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured) -> Result<()> {
    let scheme = *u.choose(&[
        Scheme::StandardWebhooks,
        Scheme::Github,
        Scheme::Stripe,
        Scheme::HmacSha256,
    ])?;
    let sign = u.arbitrary::<bool>()?;
    let key: Vec<u8> = u.arbitrary()?;
    let custom_header = u.arbitrary::<bool>()?;
    let v = Verify {
        scheme,
        key,
        header: custom_header.then(|| "x-custom-sig".to_owned()),
    };
    let now_s: i64 = u.arbitrary()?;
    let mut headers = HeaderMap::new();
    for name in HEADERS {
        let value: &str = u.arbitrary()?;
        // As on the wire: values that are not valid header values never reach the verifier.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    let skew = u.int_in_range(-TOLERANCE_SECONDS..=TOLERANCE_SECONDS)?;
    let hex_or_base64 = u.arbitrary::<bool>()?;
    let body = u.bytes(u.len())?;

    // How the server reads headers (webhooks.rs).
    let lookup = |h: &HeaderMap| {
        v.verify(
            |name| h.get(name).and_then(|v| v.to_str().ok()),
            body,
            now_s,
        )
    };
    let _ = lookup(&headers);

    if sign && let Some(ts) = now_s.checked_add(skew) {
        let ts = ts.to_string();
        let (name, value) = match scheme {
            Scheme::StandardWebhooks => {
                let id = "msg_fuzz";
                headers.insert("webhook-id", HeaderValue::from_static(id));
                headers.insert("webhook-timestamp", header_value(&ts));
                let sig = mac(&v.key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
                let sig = base64::engine::general_purpose::STANDARD.encode(sig);
                ("webhook-signature", format!("v1,{sig}"))
            }
            Scheme::Github => (
                "x-hub-signature-256",
                format!("sha256={}", hex(&mac(&v.key, &[body]))),
            ),
            Scheme::Stripe => {
                let sig = hex(&mac(&v.key, &[ts.as_bytes(), b".", body]));
                ("stripe-signature", format!("t={ts},v1={sig}"))
            }
            Scheme::HmacSha256 => {
                let sig = mac(&v.key, &[body]);
                let sig = if hex_or_base64 {
                    hex(&sig)
                } else {
                    base64::engine::general_purpose::STANDARD.encode(sig)
                };
                let name = if custom_header {
                    "x-custom-sig"
                } else {
                    "x-signature"
                };
                (name, sig)
            }
        };
        headers.insert(name, header_value(&value));
        assert_eq!(lookup(&headers), Ok(()), "a correctly signed request");
    }
    Ok(())
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("digits, hex, base64 and ASCII punctuation")
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
