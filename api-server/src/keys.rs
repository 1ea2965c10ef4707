//! API keys besides the admin key (SPEC §2: 403 when a key lacks the role). A key has one
//! role; only its SHA-256 is stored, so a key is shown once, when it is created.
//!
//! - `admin`: everything, like the admin key.
//! - `publisher`: publishing (`POST /v1/buses/{bus}/events`) and nothing else — the key to
//!   give producers.
//! - `reader`: every `GET`, and the read-only `POST`s: searches, analytics, pattern and
//!   transform tests, function invocations.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use switchyard_engine::meta::{ApiKeyRow, MetaStore};
use switchyard_engine::named::Named;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Publisher,
    Reader,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "publisher" => Role::Publisher,
            "reader" => Role::Reader,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Publisher => "publisher",
            Role::Reader => "reader",
        }
    }
}

/// A stored key, without its secret.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it by.
    pub prefix: String,
    pub created_at_ms: i64,
}

/// Keys by the SHA-256 of their secret.
pub struct Keys {
    by_hash: Named<ApiKey>,
}

pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Keys {
    pub async fn load(meta: &MetaStore) -> anyhow::Result<Keys> {
        let mut all = std::collections::HashMap::new();
        for row in meta.list_api_keys().await? {
            let Some(role) = Role::parse(&row.role) else {
                tracing::error!(key = %row.name, role = %row.role, "stored API key has an unknown role; skipped");
                continue;
            };
            all.insert(
                row.sha256.clone(),
                Arc::new(ApiKey {
                    name: row.name,
                    role,
                    prefix: row.prefix,
                    created_at_ms: row.created_at_ms,
                }),
            );
        }
        Ok(Keys {
            by_hash: Named::new(all),
        })
    }

    /// The key a request presented, if it is one of ours.
    pub fn find(&self, presented: &str) -> Option<Arc<ApiKey>> {
        self.by_hash.get(&hash(presented))
    }

    /// Every key, by name.
    pub fn list(&self) -> Vec<Arc<ApiKey>> {
        let mut all: Vec<_> = self.by_hash.list().into_iter().map(|(_, k)| k).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Creates a key; returns it with its secret, which is not kept. `None` if the name is
    /// taken.
    pub async fn create(
        &self,
        meta: &MetaStore,
        name: &str,
        role: Role,
        now_ms: i64,
    ) -> anyhow::Result<Option<(Arc<ApiKey>, String)>> {
        if self.list().iter().any(|k| k.name == name) {
            return Ok(None);
        }
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret = format!("sy_{}_{hex}", role.as_str());
        let row = ApiKeyRow {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            sha256: hash(&secret),
            prefix: format!("sy_{}_{}", role.as_str(), hex.get(..6).unwrap_or_default()),
            created_at_ms: now_ms,
        };
        if !meta.insert_api_key(&row).await? {
            return Ok(None);
        }
        let key = Arc::new(ApiKey {
            name: row.name,
            role,
            prefix: row.prefix,
            created_at_ms: now_ms,
        });
        self.by_hash.insert(&row.sha256, key.clone());
        Ok(Some((key, secret)))
    }

    /// Revokes a key; returns whether it existed.
    pub async fn revoke(&self, meta: &MetaStore, name: &str) -> Result<bool, sqlx::Error> {
        let Some(sha) = meta.delete_api_key(name).await? else {
            return Ok(false);
        };
        self.by_hash.remove(&sha);
        Ok(true)
    }
}
