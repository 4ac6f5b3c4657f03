//! [`KvCache`]: typed JSON values with TTLs in the shared key-value store,
//! scoped by tenant and owner, for plugin authors and host modules.

use std::sync::Arc;
use std::time::Duration;

use lina_coord_api::{Coordinator, KeyTtl, KvKey, Scope};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::KvCacheError;

/// Size and TTL limits of a [`KvCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest namespace or key name, in bytes.
    pub max_name: usize,
    /// Largest serialized value, in bytes.
    pub max_value: usize,
    /// Longest TTL: the store is for short-lived state only.
    pub max_ttl: Duration,
}

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_name: 200,
            max_value: 64 * 1024,
            max_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Typed, TTL-bound values shared by every node, under one owner's scope.
///
/// Every value expires: this is for short-lived state (sessions, counters,
/// snapshots), not a database. Keys are `(namespace, name)` inside the
/// owner's scope, so two plugins can never read or overwrite each other's
/// entries, whatever names they choose.
#[derive(Clone)]
pub struct KvCache {
    coordinator: Arc<dyn Coordinator>,
    scope: Scope,
    limits: KvLimits,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvCache")
            .field("scope", &self.scope)
            .field("limits", &self.limits)
            .finish()
    }
}

impl KvCache {
    /// A cache under `scope`, with default limits.
    pub fn new(coordinator: Arc<dyn Coordinator>, scope: Scope) -> Self {
        KvCache {
            coordinator,
            scope,
            limits: KvLimits::default(),
        }
    }

    /// The cache of plugin `plugin_id`.
    pub fn for_plugin(
        coordinator: Arc<dyn Coordinator>,
        plugin_id: &str,
    ) -> Result<Self, KvCacheError> {
        Ok(KvCache::new(coordinator, Scope::plugin(plugin_id)?))
    }

    /// The cache of host module `module`.
    pub fn for_module(
        coordinator: Arc<dyn Coordinator>,
        module: &str,
    ) -> Result<Self, KvCacheError> {
        Ok(KvCache::new(coordinator, Scope::module(module)?))
    }

    /// The same cache limited to one tenant.
    pub fn with_tenant(mut self, tenant: &str) -> Result<Self, KvCacheError> {
        self.scope = self.scope.with_tenant(tenant)?;
        Ok(self)
    }

    /// The same cache with other limits.
    pub fn with_limits(mut self, limits: KvLimits) -> Self {
        self.limits = limits;
        self
    }

    fn key(&self, namespace: &str, name: &str) -> Result<KvKey, KvCacheError> {
        for part in [namespace, name] {
            if part.len() > self.limits.max_name {
                return Err(KvCacheError::KeyTooLong {
                    name: part.chars().take(40).collect::<String>() + "…",
                    len: part.len(),
                    max: self.limits.max_name,
                });
            }
        }
        Ok(KvKey::new(self.scope.clone(), namespace, name)?)
    }

    fn check_ttl(&self, name: &str, ttl: Duration) -> Result<(), KvCacheError> {
        if ttl < Duration::from_millis(1) || ttl > self.limits.max_ttl {
            return Err(KvCacheError::BadTtl {
                name: name.to_string(),
                ttl,
                max: self.limits.max_ttl,
            });
        }
        Ok(())
    }

    /// The value under `(namespace, name)`, if present and unexpired.
    pub async fn get<T: DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>, KvCacheError> {
        let key = self.key(namespace, name)?;
        match self.coordinator.kv().get(&key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| KvCacheError::Decode {
                        name: name.to_string(),
                        source,
                    })
            }
        }
    }

    fn encode<T: Serialize>(&self, name: &str, value: &T) -> Result<Vec<u8>, KvCacheError> {
        let bytes = serde_json::to_vec(value).map_err(|source| KvCacheError::Serialize {
            name: name.to_string(),
            source,
        })?;
        if bytes.len() > self.limits.max_value {
            return Err(KvCacheError::ValueTooLarge {
                name: name.to_string(),
                size: bytes.len(),
                max: self.limits.max_value,
            });
        }
        Ok(bytes)
    }

    /// Stores `value` under `(namespace, name)` for `ttl`.
    pub async fn set<T: Serialize>(
        &self,
        namespace: &str,
        name: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), KvCacheError> {
        self.check_ttl(name, ttl)?;
        let key = self.key(namespace, name)?;
        let bytes = self.encode(name, value)?;
        Ok(self.coordinator.kv().set(&key, &bytes, Some(ttl)).await?)
    }

    /// Stores `value` only if nothing is stored; true when it was stored.
    pub async fn set_if_absent<T: Serialize>(
        &self,
        namespace: &str,
        name: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, KvCacheError> {
        self.check_ttl(name, ttl)?;
        let key = self.key(namespace, name)?;
        let bytes = self.encode(name, value)?;
        Ok(self
            .coordinator
            .kv()
            .set_nx(&key, &bytes, Some(ttl))
            .await?)
    }

    /// Deletes `(namespace, name)`; true when it existed.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<bool, KvCacheError> {
        let key = self.key(namespace, name)?;
        Ok(self.coordinator.kv().delete(&key).await?)
    }

    /// Adds `delta` to the counter `(namespace, name)` atomically and returns
    /// the new value; a new counter expires after `ttl` (a fixed window).
    pub async fn incr(
        &self,
        namespace: &str,
        name: &str,
        delta: i64,
        ttl: Duration,
    ) -> Result<i64, KvCacheError> {
        self.check_ttl(name, ttl)?;
        let key = self.key(namespace, name)?;
        Ok(self
            .coordinator
            .kv()
            .incr_by(&key, delta, Some(ttl))
            .await?)
    }

    /// The remaining life of `(namespace, name)`.
    pub async fn ttl(&self, namespace: &str, name: &str) -> Result<KeyTtl, KvCacheError> {
        let key = self.key(namespace, name)?;
        Ok(self.coordinator.kv().ttl(&key).await?)
    }
}
