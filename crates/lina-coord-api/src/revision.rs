//! The revision capability: numbers that rise with every change of a
//! `(domain, scope)`, each bump announced by an event.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{Epoch, Revision};

/// One `(domain, scope)` whose revision is tracked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// Cache domain (`permission`, `i18n`, …).
    pub domain: String,
    /// Scope within the domain (a tenant, a locale, a plugin id, …).
    pub scope: String,
}

impl RevisionKey {
    /// Builds a key.
    pub fn new(domain: impl Into<String>, scope: impl Into<String>) -> Self {
        RevisionKey {
            domain: domain.into(),
            scope: scope.into(),
        }
    }
}

/// Event kind of the event every [`Revisions::bump`] publishes.
pub const REVISION_EVENT: &str = "revision";

/// Revision counters with epochs.
#[async_trait]
pub trait Revisions: Send + Sync {
    /// Raises the revision of `(domain, scope)` and publishes a
    /// [`REVISION_EVENT`] event carrying it, atomically: a bump without its
    /// event cannot happen (the event itself may still be lost in transit).
    async fn bump(&self, domain: &str, scope: &str) -> Result<Revision>;

    /// The current revision of `(domain, scope)` (value 0 if never bumped).
    async fn current(&self, domain: &str, scope: &str) -> Result<Revision>;

    /// The current revisions of many keys in one round trip, in order.
    async fn current_many(&self, keys: &[RevisionKey]) -> Result<Vec<Revision>>;

    /// The backend's current epoch.
    async fn epoch(&self) -> Result<Epoch>;
}
