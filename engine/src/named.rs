//! Named things held in memory, checked or compiled once, with SQL as the record:
//! deployed functions and webhooks. Readers never wait on SQL.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

pub struct Named<T> {
    all: RwLock<HashMap<String, Arc<T>>>,
}

impl<T> Named<T> {
    pub fn new(all: HashMap<String, Arc<T>>) -> Self {
        Named {
            all: RwLock::new(all),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<T>> {
        self.read().get(name).cloned()
    }

    /// Every one, by name.
    pub fn list(&self) -> Vec<(String, Arc<T>)> {
        let mut all: Vec<_> = self
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Replaces every one (reloaded from SQL).
    pub fn replace_all(&self, all: HashMap<String, Arc<T>>) {
        *self.all.write().unwrap_or_else(PoisonError::into_inner) = all;
    }

    pub fn insert(&self, name: &str, value: Arc<T>) {
        self.all
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), value);
    }

    /// Returns whether it was there.
    pub fn remove(&self, name: &str) -> bool {
        self.all
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<T>>> {
        self.all.read().unwrap_or_else(PoisonError::into_inner)
    }
}
