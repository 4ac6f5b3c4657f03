//! The response envelope and the one place where errors become HTTP
//! statuses, envelope codes, `errorCode`s and `messageKey`s.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::json;

/// `{"code": 0, "message": "ok", "data": …}`.
pub fn ok<T: Serialize>(data: T) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({"code": 0, "message": "ok", "data": data})))
}

/// An error answer: status, envelope code, stable `errorCode`, `messageKey`
/// and a message for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Envelope code (50 internal, 51 validation, 53 invalid parameter, 60
    /// operation failed, 61 not authorized / forbidden, 65 not found).
    pub code: u16,
    /// Stable machine-readable code.
    pub error_code: &'static str,
    /// i18n key of the message.
    pub message_key: &'static str,
    /// The message.
    pub message: String,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: u16,
        error_code: &'static str,
        message_key: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            error_code,
            message_key,
            message: message.into(),
        }
    }

    /// 400, a field failed validation.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            51,
            "VALIDATION_FAILED",
            "error.validation.failed",
            message,
        )
    }

    /// 400, the request could not be read (bad JSON, wrong types, bad query).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            53,
            "INVALID_PARAMETER",
            "error.invalid.parameter",
            message,
        )
    }

    /// 401 with a specific code.
    pub fn unauthorized(
        error_code: &'static str,
        message_key: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            61,
            error_code,
            message_key,
            message,
        )
    }

    /// 403, a permission is missing.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            61,
            "PERMISSION_DENIED",
            "error.permission.denied",
            format!("permission {permission} is required"),
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            65,
            "NOT_FOUND",
            "error.not.found",
            message,
        )
    }

    /// 409, the operation conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            60,
            "OPERATION_FAILED",
            "error.operation.failed",
            message,
        )
    }

    /// 429, too many attempts.
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            60,
            "TOO_MANY_ATTEMPTS",
            "error.too.many.attempts",
            message,
        )
    }

    /// 503, a dependency is unavailable (fail closed).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            50,
            "SERVICE_UNAVAILABLE",
            "error.service.unavailable",
            message,
        )
    }

    /// 500, a bug or an unexpected failure (logged, not detailed to the client).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50,
            "INTERNAL_ERROR",
            "error.internal",
            "internal error",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.error_code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({
            "code": self.code,
            "message": self.message,
            "errorCode": self.error_code,
            "messageKey": self.message_key,
            "data": null,
        }))
    }
}

impl From<lina_coord_api::Error> for ApiError {
    fn from(error: lina_coord_api::Error) -> Self {
        if error.is_retryable() || matches!(error, lina_coord_api::Error::Closed) {
            ApiError::unavailable(format!("coordination unavailable: {error}"))
        } else if let lina_coord_api::Error::InvalidArgument(message) = error {
            ApiError::invalid_parameter(message)
        } else {
            ApiError::internal(error)
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        if db_unavailable(&error) {
            ApiError::unavailable(format!("database unavailable: {error}"))
        } else {
            ApiError::internal(error)
        }
    }
}

/// Whether a database error means the database could not be reached or
/// dropped the connection (a restart, a failover, a network cut): a 503,
/// not a bug. SQLSTATE classes 08 (connection exception) and 57
/// (operator intervention: `admin_shutdown`, `cannot_connect_now`, …).
pub fn db_unavailable(error: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    match error {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match &**e {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                Sqlx::Database(db) => db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<lina_scheduler::Error> for ApiError {
    fn from(error: lina_scheduler::Error) -> Self {
        use lina_scheduler::Error as E;
        match error {
            E::Invalid { .. } => ApiError::validation(error.to_string()),
            E::NotFound { .. } => ApiError::not_found(error.to_string()),
            E::Conflict(message) => ApiError::conflict(message),
            // A concurrent duplicate got past the store's own check.
            E::Database(db) => match db.sql_err() {
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                    ApiError::conflict("a job or job group with this name or code already exists")
                }
                _ => db.into(),
            },
            E::Coordination(c) => c.into(),
            E::ShuttingDown => ApiError::unavailable("the node is shutting down"),
        }
    }
}

impl<E: std::fmt::Display> From<lina_cache::CacheError<E>> for ApiError {
    fn from(error: lina_cache::CacheError<E>) -> Self {
        if error.is_unavailable() {
            ApiError::unavailable(error.to_string())
        } else {
            ApiError::internal(error)
        }
    }
}

/// Body, query and path extractor settings: a client mistake is a 400 with
/// the envelope, never a 500.
pub fn extractor_config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(1 << 20).error_handler(
        |err, _req: &HttpRequest| {
            ApiError::invalid_parameter(format!("invalid JSON body: {err}")).into()
        },
    ))
    .app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::invalid_parameter(format!("invalid query: {err}")).into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _req| {
        ApiError::invalid_parameter(format!("invalid path parameter: {err}")).into()
    }));
}
