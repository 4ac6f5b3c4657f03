//! The scheduler's error type.

/// Result alias of the scheduler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the scheduler and its store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field of a request is invalid (maps to 400).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, in the API's spelling (`cronExpr`, `timezone`, …).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The thing does not exist (maps to 404).
    #[error("{what} {id} does not exist")]
    NotFound {
        /// `job`, `job group`, `job log`.
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The request conflicts with the current state (maps to 409).
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The coordination backend failed.
    #[error(transparent)]
    Coordination(#[from] lina_coord_api::Error),
    /// The scheduler is shutting down.
    #[error("the scheduler is shutting down")]
    ShuttingDown,
}

impl Error {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
