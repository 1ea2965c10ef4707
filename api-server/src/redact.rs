//! What a key that is not an admin's sees of a secret: enough to recognise it, never
//! enough to use it. Secrets are target header values, signing secrets and the
//! passwords in target URLs.

use serde_json::Value;

/// `whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw` → `whsec_…LaSw`; short values are hidden
/// whole. A prefix up to the first `_` is kept when it is short (it names the kind of
/// secret, not the secret).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let prefix: String = match chars.iter().position(|c| *c == '_') {
        Some(i) if i < 8 => chars[..=i].iter().collect(),
        _ => String::new(),
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}…{tail}")
}

/// `amqp://user:pass@host/vhost` → `amqp://user:…@host/vhost`. Text that is not a URL
/// with a password comes back as it was.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:…"),
        // `redis://token@host`: a lone userinfo is often the credential itself.
        None => "…".to_owned(),
    };
    format!(
        "{}{masked}{}",
        &url[..scheme_end + 3],
        &url[scheme_end + 3 + at..]
    )
}

/// Masks the secrets of one target's kind-specific settings (`http`, `nats`, …) in place.
pub fn target_settings(settings: &mut Value) {
    let Some(obj) = settings.as_object_mut() else {
        return;
    };
    if let Some(Value::String(url)) = obj.get_mut("url") {
        *url = mask_url_password(url);
    }
    if let Some(Value::String(secret)) = obj.get_mut("signing_secret") {
        *secret = mask(secret);
    }
    if let Some(Value::Object(headers)) = obj.get_mut("headers") {
        for value in headers.values_mut() {
            if let Value::String(v) = value {
                *v = mask(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn masks_keep_a_recognisable_shape() {
        assert_eq!(
            mask("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "whsec_…LaSw"
        );
        assert_eq!(mask("Bearer s3cr3t-t0ken-abcd"), "…abcd");
        assert_eq!(mask("short"), "…");
        assert_eq!(
            mask_url_password("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:…@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            mask_url_password("redis://:hunter2@redis:6379/0"),
            "redis://:…@redis:6379/0"
        );
        assert_eq!(
            mask_url_password("redis://tok3n@redis:6379"),
            "redis://…@redis:6379"
        );
        assert_eq!(
            mask_url_password("https://crm.example/hook?a=b@c"),
            "https://crm.example/hook?a=b@c"
        );
        assert_eq!(
            mask_url_password("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }

    #[test]
    fn target_settings_lose_their_secrets() {
        let mut http = json!({
            "url": "https://user:pa55word@crm.example/hook",
            "headers": {"Authorization": "Bearer 0123456789abcdef", "x-team": "crm"},
            "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "timeout_ms": 1000
        });
        target_settings(&mut http);
        assert_eq!(
            http,
            json!({
                "url": "https://user:…@crm.example/hook",
                "headers": {"Authorization": "…cdef", "x-team": "…"},
                "signing_secret": "whsec_…LaSw",
                "timeout_ms": 1000
            })
        );
    }
}
