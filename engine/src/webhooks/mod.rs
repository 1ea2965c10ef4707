//! Inbound webhooks (SPEC §4): a named endpoint that verifies a provider's signature and
//! wraps whatever body it receives into a CloudEvent on a bus.
//!
//! The event's `id` is the provider's delivery id when it sends one (Standard Webhooks'
//! `webhook-id`, GitHub's `X-GitHub-Delivery`, Stripe's event `id`), so a provider's
//! redelivery is a duplicate on the bus, not a second event.

mod verify;
mod wrap;

use std::collections::HashMap;
use std::sync::Arc;

use jsonpath_rust::parser::model::JpQuery;

use crate::meta::{MetaStore, WebhookRow};
use crate::named::Named;
pub use verify::{Scheme, Verify};
pub use wrap::{BodyError, Refused};

/// A request's headers as a webhook reads them: a value by name (any case), if it is text.
/// The HTTP edge adapts its own header map to this.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

/// Where the event's `type` comes from.
#[derive(Debug, Clone)]
pub enum TypeFrom {
    Header(String),
    Path { text: String, query: JpQuery },
}

/// A webhook, checked and ready to receive.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub bus: String,
    pub source: String,
    pub description: Option<String>,
    pub type_from: Option<TypeFrom>,
    pub verify: Option<Verify>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The type of an event received on a webhook without `type_from`.
pub fn default_type(name: &str) -> String {
    format!("switchyard.webhook.{name}")
}

impl Webhook {
    /// Checks a configuration; the error names the field.
    pub fn from_row(row: &WebhookRow) -> Result<Webhook, String> {
        if row.source.trim().is_empty() {
            return Err("source: must not be empty".to_owned());
        }
        let type_from = row
            .type_from
            .as_deref()
            .map(|t| {
                if t.starts_with('$') {
                    jsonpath_rust::parser::parse_json_path(t)
                        .map(|query| TypeFrom::Path {
                            text: t.to_owned(),
                            query,
                        })
                        .map_err(|e| format!("type_from: {t:?} is not a valid JSONPath: {e}"))
                } else {
                    reqwest::header::HeaderName::from_bytes(t.as_bytes())
                        .map(|h| TypeFrom::Header(h.as_str().to_owned()))
                        .map_err(|_| {
                            format!(
                                "type_from: {t:?} is neither a header name nor a JSONPath (starting with $)"
                            )
                        })
                }
            })
            .transpose()?;
        let verify = match (&row.verify_scheme, &row.secret) {
            (None, _) => None,
            (Some(scheme), secret) => {
                let scheme = Scheme::parse(scheme).ok_or_else(|| {
                    format!(
                        "verify.scheme: {scheme:?} is not one of standard-webhooks, github, stripe, hmac-sha256"
                    )
                })?;
                let secret = secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .ok_or("verify.secret: required with a scheme")?;
                let key = match scheme {
                    Scheme::StandardWebhooks => switchyard_core::signature::standard_webhooks_key(
                        &secret,
                    )
                    .ok_or(
                        "verify.secret: a Standard Webhooks secret is whsec_ followed by base64",
                    )?,
                    Scheme::Github | Scheme::Stripe | Scheme::HmacSha256 => {
                        secret.as_bytes().to_vec()
                    }
                };
                let header = match (&row.verify_header, scheme) {
                    (Some(h), Scheme::HmacSha256) => Some(
                        reqwest::header::HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("verify.header: {h:?} is not a header name"))?
                            .as_str()
                            .to_owned(),
                    ),
                    (Some(_), _) => {
                        return Err(
                            "verify.header: only the hmac-sha256 scheme takes a header".to_owned()
                        );
                    }
                    (None, _) => None,
                };
                Some(Verify {
                    scheme,
                    key,
                    header,
                })
            }
        };
        Ok(Webhook {
            name: row.name.clone(),
            bus: row.bus.clone(),
            source: row.source.clone(),
            description: row.description.clone(),
            type_from,
            verify,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }

    pub fn type_from_text(&self) -> Option<&str> {
        self.type_from.as_ref().map(|t| match t {
            TypeFrom::Header(h) => h.as_str(),
            TypeFrom::Path { text, .. } => text.as_str(),
        })
    }

    /// Checks the request's signature; the error says what is wrong, for the 401.
    pub fn verify(&self, headers: &dyn Headers, body: &[u8], now_s: i64) -> Result<(), String> {
        let Some(v) = &self.verify else {
            return Ok(());
        };
        v.verify(|name| headers.get(name), body, now_s)
    }
}

/// The webhooks of this server, checked once and cached; SQL is the record.
pub struct Webhooks {
    all: Named<Webhook>,
}

impl Webhooks {
    pub async fn load(meta: &MetaStore) -> anyhow::Result<Webhooks> {
        Ok(Webhooks {
            all: Named::new(Self::read(meta).await?),
        })
    }

    /// Reads the webhooks again (another node changed one).
    pub async fn reload(&self, meta: &MetaStore) -> anyhow::Result<()> {
        self.all.replace_all(Self::read(meta).await?);
        Ok(())
    }

    async fn read(meta: &MetaStore) -> anyhow::Result<HashMap<String, Arc<Webhook>>> {
        let mut all = HashMap::new();
        for row in meta.list_webhooks().await? {
            match Webhook::from_row(&row) {
                Ok(w) => {
                    all.insert(w.name.clone(), Arc::new(w));
                }
                Err(e) => {
                    tracing::error!(webhook = %row.name, error = %e, "stored webhook is invalid; skipped")
                }
            }
        }
        Ok(all)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Webhook>> {
        self.all.get(name)
    }

    pub fn list(&self) -> Vec<Arc<Webhook>> {
        self.all.list().into_iter().map(|(_, w)| w).collect()
    }

    /// Stores and caches a checked webhook; returns whether it was created.
    pub async fn put(&self, meta: &MetaStore, row: WebhookRow) -> anyhow::Result<Arc<Webhook>> {
        meta.put_webhook(&row).await?;
        let created_at_ms = self
            .get(&row.name)
            .map_or(row.created_at_ms, |w| w.created_at_ms);
        let mut w = Webhook::from_row(&row).map_err(anyhow::Error::msg)?;
        w.created_at_ms = created_at_ms;
        let w = Arc::new(w);
        self.all.insert(&w.name, w.clone());
        meta.changed().await;
        Ok(w)
    }

    pub async fn remove(&self, meta: &MetaStore, name: &str) -> Result<bool, sqlx::Error> {
        let existed = meta.delete_webhook(name).await?;
        meta.changed().await;
        Ok(self.all.remove(name) || existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_core::StructureError;

    type HeaderMap = Vec<(String, String)>;

    impl Headers for HeaderMap {
        fn get(&self, name: &str) -> Option<&str> {
            self.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn row(scheme: Option<&str>, secret: Option<&str>) -> WebhookRow {
        WebhookRow {
            name: "gh".into(),
            bus: "default".into(),
            source: "https://github.com/acme/shop".into(),
            description: None,
            type_from: Some("x-github-event".into()),
            verify_scheme: scheme.map(str::to_owned),
            secret: secret.map(str::to_owned),
            verify_header: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// GitHub's documented example: secret "It's a Secret to Everybody", payload
    /// "Hello, World!".
    #[test]
    fn github_reference_vector() {
        let w =
            Webhook::from_row(&row(Some("github"), Some("It's a Secret to Everybody"))).unwrap();
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers(&[("x-hub-signature-256", sig)]);
        assert_eq!(w.verify(&h, b"Hello, World!", 0), Ok(()));
        assert_eq!(
            w.verify(&h, b"Hello, World?", 0),
            Err("x-hub-signature-256 does not match".to_owned())
        );
        assert_eq!(
            w.verify(&HeaderMap::new(), b"Hello, World!", 0),
            Err("missing x-hub-signature-256 header".to_owned())
        );
    }

    /// The Standard Webhooks reference vector, through the verifier.
    #[test]
    fn standard_webhooks_reference_vector() {
        let w = Webhook::from_row(&row(
            Some("standard-webhooks"),
            Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ))
        .unwrap();
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,bm9ldHZhbGlk v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(w.verify(&h, body, 1614265330 + 10), Ok(()));
        assert_eq!(
            w.verify(&h, body, 1614265330 + 301),
            Err("the timestamp is more than 300 s away from the server's clock".to_owned())
        );
        assert!(w.verify(&h, b"{}", 1614265330).is_err());
    }

    #[test]
    fn configurations_are_checked() {
        let err = |r: WebhookRow| Webhook::from_row(&r).unwrap_err();
        assert_eq!(
            err(row(Some("svix"), Some("x"))),
            "verify.scheme: \"svix\" is not one of standard-webhooks, github, stripe, hmac-sha256"
        );
        assert_eq!(
            err(row(Some("github"), None)),
            "verify.secret: required with a scheme"
        );
        assert_eq!(
            err(row(Some("standard-webhooks"), Some("whsec_!!"))),
            "verify.secret: a Standard Webhooks secret is whsec_ followed by base64"
        );
        let mut r = row(None, None);
        r.type_from = Some("$[".into());
        assert!(err(r).starts_with("type_from: \"$[\" is not a valid JSONPath"));
        let mut r = row(None, None);
        r.type_from = Some("bad header".into());
        assert!(err(r).starts_with("type_from: \"bad header\" is neither"));
    }

    proptest::proptest! {
        /// Whatever a sender puts in the headers and the body, verifying and wrapping
        /// answer (Ok or a reason) and never panic.
        #[test]
        fn no_request_panics(
            scheme in proptest::sample::select(vec!["standard-webhooks", "github", "stripe", "hmac-sha256"]),
            type_from in proptest::sample::select(vec!["x-event", "$.type", "$..a[0]"]),
            values in proptest::collection::vec("[ -~]{0,80}", 6),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut r = row(Some(scheme), Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
            r.type_from = Some(type_from.to_owned());
            let w = Webhook::from_row(&r).unwrap();
            let names = [
                "webhook-id", "webhook-timestamp", "webhook-signature",
                "x-hub-signature-256", "stripe-signature", "x-signature",
            ];
            let mut h = HeaderMap::new();
            for (name, value) in names.iter().zip(&values) {
                h.push(((*name).to_owned(), value.clone()));
            }
            h.push(("x-event".to_owned(), "e".to_owned()));
            let _ = w.verify(&h, &body, 1_700_000_000);
            if let Ok(event) = w.event(&h, &body, "t", || "id".into()) {
                proptest::prop_assert!(event.get("type").is_some_and(Value::is_string));
            }
        }
    }

    #[test]
    fn bodies_become_cloudevents() {
        let mut r = row(None, None);
        r.type_from = Some("$.action".into());
        let w = Webhook::from_row(&r).unwrap();
        let h = headers(&[
            ("content-type", "application/json"),
            ("x-github-delivery", "d-1"),
        ]);
        let e = w
            .event(
                &h,
                br#"{"action": "opened", "n": 1}"#,
                "2026-01-01T00:00:00Z",
                || "fresh".into(),
            )
            .unwrap();
        assert_eq!(
            e,
            json!({"specversion": "1.0", "id": "d-1", "source": "https://github.com/acme/shop",
                   "type": "opened", "time": "2026-01-01T00:00:00Z", "webhook": "gh",
                   "datacontenttype": "application/json", "data": {"action": "opened", "n": 1}})
        );
        assert_eq!(
            w.event(&h, b"{}", "t", || "x".into()).unwrap_err(),
            BodyError::NoType("the body has no non-empty string at $.action".into())
        );
        assert_eq!(
            w.event(&h, br#"{"action":"a","action":"b"}"#, "t", || "x".into())
                .unwrap_err(),
            BodyError::Structure(StructureError::DuplicateKey {
                key: "action".into(),
                path: "data".into()
            })
        );
        let w = Webhook::from_row(&row(None, None)).unwrap();
        let h = headers(&[("content-type", "text/plain"), ("x-github-event", "push")]);
        let e = w.event(&h, b"hello", "t", || "fresh".into()).unwrap();
        assert_eq!(
            (&e["id"], &e["type"], &e["data"], &e["datacontenttype"]),
            (
                &json!("fresh"),
                &json!("push"),
                &json!("hello"),
                &json!("text/plain")
            )
        );
        let e = w.event(&h, &[0xff, 0x00], "t", || "fresh".into()).unwrap();
        assert_eq!(e["data_base64"], "/wA=");
    }
}
