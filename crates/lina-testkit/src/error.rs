//! The one error type of this crate.

use std::path::PathBuf;

/// Result alias used throughout `lina-testkit`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while providing a test service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service is neither reachable nor startable; the message says what to install or set.
    #[error("{0}")]
    Unavailable(String),
    /// A server process was started but did not come up; carries the tail of its log.
    #[error("{what} did not start: {detail}")]
    StartFailed {
        /// Which server, e.g. "redis-server on port 4242".
        what: String,
        /// Why, usually the end of its log.
        detail: String,
    },
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "create state dir /tmp/lina-testkit-0".
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A database statement or connection failed.
    #[error("{what}: {source}")]
    Db {
        /// What was being done, e.g. "create database lina_t_1".
        what: String,
        /// The underlying error.
        #[source]
        source: sea_orm::DbErr,
    },
    /// A signal could not be delivered to a server process.
    #[error("send {signal} to pid {pid}: {source}")]
    Signal {
        /// The signal name.
        signal: &'static str,
        /// The target process.
        pid: u32,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
    /// A state file of a shared throwaway service could not be understood.
    #[error("corrupt state file {path}: {detail}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A URL could not be parsed or rewritten.
    #[error("invalid url {url}: {detail}")]
    Url {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl Error {
    /// Whether trying again (e.g. after a moment) may succeed.
    ///
    /// Start failures (a port taken by a racing process), I/O and database
    /// errors may be transient; a missing binary or a bad URL is not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::StartFailed { .. } | Error::Io { .. } | Error::Db { .. }
        )
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn db(what: impl Into<String>, source: sea_orm::DbErr) -> Self {
        Error::Db {
            what: what.into(),
            source,
        }
    }
}
