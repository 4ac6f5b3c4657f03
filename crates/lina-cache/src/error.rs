//! Errors of the caches.

use std::time::Duration;

/// Why a revisioned cache could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CacheError<E = std::convert::Infallible> {
    /// The domain's revisions could not be confirmed for longer than
    /// `maxStale` and its policy is `fail_closed` (the server answers 503).
    #[error(
        "cache domain {domain} is stale: revisions unconfirmed for {age:?} (max {max_stale:?})"
    )]
    Stale {
        /// The domain.
        domain: String,
        /// How long since the last confirmation.
        age: Duration,
        /// The domain's limit.
        max_stale: Duration,
    },
    /// The domain's policy is `hide` and its revisions cannot be confirmed:
    /// callers treat the value as absent.
    #[error("cache domain {domain} is hidden until its revisions can be confirmed")]
    Hidden {
        /// The domain.
        domain: String,
    },
    /// The revision of a missing value could not be read, so it cannot be
    /// loaded safely.
    #[error("cache domain {domain}: cannot read the revision of scope {scope}: {source}")]
    Coordination {
        /// The domain.
        domain: String,
        /// The scope.
        scope: String,
        /// The coordination error.
        #[source]
        source: lina_coord_api::Error,
    },
    /// The loader failed.
    #[error("loading {domain}/{scope} failed: {source}")]
    Load {
        /// The domain.
        domain: String,
        /// The scope.
        scope: String,
        /// The loader's error.
        #[source]
        source: E,
    },
}

impl<E> CacheError<E> {
    /// Whether the error means "temporarily unavailable" (503), as opposed to
    /// a loader failure.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, CacheError::Load { .. })
    }
}

/// Errors of the [`crate::KvCache`] facade.
#[derive(Debug, thiserror::Error)]
pub enum KvCacheError {
    /// The key name is longer than the limit.
    #[error("cache key {name:?} is {len} bytes; the limit is {max}")]
    KeyTooLong {
        /// The name given.
        name: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The serialized value is larger than the limit.
    #[error("cache value for {name:?} is {size} bytes of JSON; the limit is {max}")]
    ValueTooLarge {
        /// The key name.
        name: String,
        /// The serialized size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The TTL is outside what the facade accepts.
    #[error("cache ttl {ttl:?} for {name:?} must be between 1ms and {max:?}")]
    BadTtl {
        /// The key name.
        name: String,
        /// The TTL given.
        ttl: Duration,
        /// The longest TTL accepted.
        max: Duration,
    },
    /// The value could not be serialized to JSON.
    #[error("cannot serialize the cache value for {name:?}: {source}")]
    Serialize {
        /// The key name.
        name: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value is not valid JSON for the requested type.
    #[error("cached value for {name:?} does not decode as the requested type: {source}")]
    Decode {
        /// The key name.
        name: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The coordination backend failed (see [`lina_coord_api::Error::is_retryable`]).
    #[error(transparent)]
    Coordination(#[from] lina_coord_api::Error),
}
