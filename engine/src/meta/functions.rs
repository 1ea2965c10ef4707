//! Deployed functions: the module as uploaded and its limits.

use sqlx::Row;

use super::MetaStore;

/// A deployed function as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    /// The module as uploaded: binary, or WAT text.
    pub module: Vec<u8>,
    pub sha256: String,
    pub timeout_ms: u64,
    pub memory_mb: u64,
    pub fuel: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl MetaStore {
    /// Creates or replaces a function; returns whether it was created. `created_at_ms` is
    /// kept on replace.
    pub async fn put_function(&self, f: &FunctionRow) -> Result<bool, sqlx::Error> {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.upsert(
            "INSERT INTO functions (name, module, sha256, timeout_ms, memory_mb, fuel, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (name) DO NOTHING",
            "UPDATE functions SET module = $2, sha256 = $3, timeout_ms = $4, memory_mb = $5, fuel = $6, updated_at = $7
             WHERE name = $1",
            |q| {
                q.bind(f.name.clone())
                    .bind(f.module.clone())
                    .bind(f.sha256.clone())
                    .bind(as_i64(f.timeout_ms))
                    .bind(as_i64(f.memory_mb))
                    .bind(as_i64(f.fuel))
                    .bind(f.updated_at_ms)
            },
        )
        .await
    }

    /// Every function, modules included.
    pub async fn list_functions(&self) -> Result<Vec<FunctionRow>, sqlx::Error> {
        self.functions_where("1 = 1", None).await
    }

    /// The stored function `name`, module included.
    pub async fn get_function(&self, name: &str) -> Result<Option<FunctionRow>, sqlx::Error> {
        Ok(self
            .functions_where("name = $1", Some(name))
            .await?
            .into_iter()
            .next())
    }

    /// Every function's name and update time, without the modules.
    pub async fn function_versions(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT name, updated_at FROM functions ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("updated_at")?)))
            .collect()
    }

    async fn functions_where(
        &self,
        condition: &str,
        name: Option<&str>,
    ) -> Result<Vec<FunctionRow>, sqlx::Error> {
        let sql = format!(
            "SELECT name, module, sha256, timeout_ms, memory_mb, fuel, created_at, updated_at
             FROM functions WHERE {condition} ORDER BY name"
        );
        let mut query = sqlx::query(&sql);
        if let Some(name) = name {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let as_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
        rows.iter()
            .map(|row| {
                Ok(FunctionRow {
                    name: row.try_get("name")?,
                    module: row.try_get("module")?,
                    sha256: row.try_get("sha256")?,
                    timeout_ms: as_u64(row.try_get("timeout_ms")?),
                    memory_mb: as_u64(row.try_get("memory_mb")?),
                    fuel: as_u64(row.try_get("fuel")?),
                    created_at_ms: row.try_get("created_at")?,
                    updated_at_ms: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Deletes a function; returns whether it existed.
    pub async fn delete_function(&self, name: &str) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }
}
