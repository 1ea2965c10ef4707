//! API keys (SPEC §2: 403 when a key lacks the role): the admin key, kept in
//! `<data-dir>/admin.key`, and keys made through the API. A key has one role; of those made
//! through the API only the SHA-256 is stored, so a key is shown once, when it is created.
//! The credentials of every edge (the REST API, and the EventBridge API after it).
//!
//! - `admin`: everything, like the admin key.
//! - `publisher`: publishing (`POST /v1/buses/{bus}/events`) and nothing else — the key to
//!   give producers.
//! - `reader`: every `GET`, and the read-only `POST`s: searches, analytics, pattern and
//!   transform tests, function invocations.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::meta::{ApiKeyRow, MetaStore};
use crate::named::Named;

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
        Ok(Keys {
            by_hash: Named::new(Self::read(meta).await?),
        })
    }

    /// Reads the keys again (another node created or revoked one).
    pub async fn reload(&self, meta: &MetaStore) -> anyhow::Result<()> {
        self.by_hash.replace_all(Self::read(meta).await?);
        Ok(())
    }

    async fn read(
        meta: &MetaStore,
    ) -> anyhow::Result<std::collections::HashMap<String, Arc<ApiKey>>> {
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
        Ok(all)
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
        let (hex, secret) = fresh_secret(role)?;
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
        meta.changed().await;
        Ok(Some((key, secret)))
    }

    /// Revokes a key; returns whether it existed.
    pub async fn revoke(&self, meta: &MetaStore, name: &str) -> Result<bool, sqlx::Error> {
        let Some(sha) = meta.delete_api_key(name).await? else {
            return Ok(false);
        };
        self.by_hash.remove(&sha);
        meta.changed().await;
        Ok(true)
    }
}

/// Reads the admin key from `<data-dir>/admin.key`, generating it (mode 0600) on first
/// start. The key is never printed.
pub fn load_or_create_admin_key(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("admin.key");
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to have a new key generated",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
    let (_, key) = fresh_secret(Role::Admin)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(key.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated the admin API key");
    Ok(key)
}

/// A new key for `role`: its random part (hex) and the whole secret, `sy_<role>_<hex>`.
fn fresh_secret(role: Role) -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("sy_{}_{hex}", role.as_str());
    Ok((hex, secret))
}
