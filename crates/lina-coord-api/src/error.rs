//! The one error type of the coordination contract.

use std::time::Duration;

/// Result alias used throughout the coordination contract.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a coordination backend can fail with.
///
/// [`Error::is_retryable`] says whether trying the same call again later can
/// succeed: callers retry transient errors with a deadline and give up on the
/// others at once.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend could not be reached (connection refused or lost).
    #[error("coordination backend unavailable: {0}")]
    Unavailable(String),
    /// The backend did not answer within the configured timeout.
    #[error("coordination call timed out after {0:?}")]
    Timeout(Duration),
    /// The lock is held by another owner and the wait (if any) ran out.
    #[error("lock {name} is held by another owner")]
    LockBusy {
        /// Lock name.
        name: String,
    },
    /// The lock is no longer held by this owner (expired, or taken over).
    #[error("lock {name} is no longer held by this owner")]
    LockLost {
        /// Lock name.
        name: String,
    },
    /// A caller passed a value the contract does not accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The backend answered with something the contract does not expect.
    #[error("coordination backend error: {0}")]
    Backend(String),
    /// The coordinator has been shut down.
    #[error("coordinator is shut down")]
    Closed,
}

impl Error {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Timeout(_) | Error::LockBusy { .. }
        )
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}
