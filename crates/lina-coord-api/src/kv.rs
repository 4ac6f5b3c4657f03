//! The key-value capability.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::key::KvKey;

/// Remaining life of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// Short-lived shared state: bytes under scoped keys, with TTLs.
///
/// Typed JSON helpers live in `lina-cache`; this trait moves bytes only.
#[async_trait]
pub trait Kv: Send + Sync {
    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &KvKey) -> Result<Option<Vec<u8>>>;

    /// Sets `key` to `value`, expiring after `ttl` (never when `None`).
    async fn set(&self, key: &KvKey, value: &[u8], ttl: Option<Duration>) -> Result<()>;

    /// Sets `key` only if it does not exist; true when it was set.
    async fn set_nx(&self, key: &KvKey, value: &[u8], ttl: Option<Duration>) -> Result<bool>;

    /// Deletes `key`; true when it existed.
    async fn delete(&self, key: &KvKey) -> Result<bool>;

    /// Deletes `key` only if its value equals `expected`; true when deleted.
    async fn compare_and_delete(&self, key: &KvKey, expected: &[u8]) -> Result<bool>;

    /// Atomically adds `delta` to the integer at `key` (missing counts as 0)
    /// and returns the new value. When `ttl` is given and the key has no
    /// expiry yet (it was just created), the key expires after `ttl`: a
    /// fixed window, as rate limits need. Fails with
    /// [`crate::Error::InvalidArgument`] when the value is not an integer.
    async fn incr_by(&self, key: &KvKey, delta: i64, ttl: Option<Duration>) -> Result<i64>;

    /// Sets the expiry of an existing key; false when the key is missing.
    async fn expire(&self, key: &KvKey, ttl: Duration) -> Result<bool>;

    /// The remaining life of `key`.
    async fn ttl(&self, key: &KvKey) -> Result<KeyTtl>;
}
