//! Authentication: login with argon2 passwords, access and refresh JWTs
//! (HS256), sessions in the shared key-value store (TTL = session timeout)
//! with a projection row in `sys_online_session` for listings. Logout and
//! forced logout delete the session, so the token stops working on every
//! node at once; when session state cannot be read, requests fail closed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::collections::HashMap;
use std::sync::Arc;

use lina_cache::{KvCache, KvCacheError, RevisionedCache, StalePolicy};
use lina_coord_api::KeyTtl;
use lina_coord_api::{random_hex128, unix_millis};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ok};
use crate::entity::user;

/// JWT claims of access and refresh tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: i64,
    username: String,
    sid: String,
    typ: String,
    iat: i64,
    exp: i64,
}

/// What the shared store keeps per session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Session id (also the `sid` claim).
    pub token_id: String,
    /// The user.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// `web`, `app`, … as given at login.
    pub client_type: String,
    /// Client address.
    pub ip: String,
    /// User agent.
    pub browser: String,
    /// Operating system (from the user agent, best effort).
    pub os: String,
    /// Unix ms.
    pub login_time: i64,
    /// Unix ms.
    pub last_active_time: i64,
    /// Node that created it.
    pub node_id: String,
}

/// Token and session handling of one node.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl: Duration,
    refresh_ttl: Duration,
    session_ttl: Duration,
    sessions: KvCache,
    attempts: KvCache,
    /// Per user: the live session ids and when each expires (Unix ms),
    /// read from the KV store on a miss. Revisioned per user: login,
    /// refresh and every revocation bump the user's scope, so a request
    /// checks its session with no round trip while the scope is fresh, and
    /// fails closed past maxStale.
    live: RevisionedCache<Arc<HashMap<String, i64>>>,
}

const SESSIONS: &str = "session";
const MAX_ATTEMPTS: i64 = 10;
const ATTEMPT_WINDOW: Duration = Duration::from_secs(300);

impl Auth {
    /// From the configuration and the node's coordinator.
    pub fn new(state: &crate::node::Node) -> anyhow::Result<Auth> {
        let secret = state.config.jwt.secret.expose().as_bytes().to_vec();
        let sessions = KvCache::for_module(state.coordinator.clone(), "auth")?;
        let attempts = KvCache::for_module(state.coordinator.clone(), "auth-attempts")?;
        let session_ttl = state.config.session.timeout.max(Duration::from_secs(60));
        let live = state.caches.domain("session", StalePolicy::FailClosed)?;
        Ok(Auth {
            live,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            access_ttl: state.config.jwt.expire.max(Duration::from_secs(60)),
            refresh_ttl: (state.config.jwt.expire * 7).max(session_ttl),
            session_ttl,
            sessions,
            attempts,
        })
    }

    fn token(&self, session: &Session, typ: &str, ttl: Duration) -> Result<String, ApiError> {
        let now = unix_millis() / 1000;
        let claims = Claims {
            sub: session.user_id,
            username: session.username.clone(),
            sid: session.token_id.clone(),
            typ: typ.into(),
            iat: now,
            exp: now + ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    fn pair(&self, session: &Session) -> Result<serde_json::Value, ApiError> {
        Ok(json!({
            "accessToken": self.token(session, "access", self.access_ttl)?,
            "refreshToken": self.token(session, "refresh", self.refresh_ttl)?,
        }))
    }

    fn decode(&self, token: &str, typ: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::unauthorized(
                    "AUTH_TOKEN_EXPIRED",
                    "error.auth.token.expired",
                    "the token has expired",
                ),
                _ => ApiError::unauthorized(
                    "AUTH_TOKEN_INVALID",
                    "error.auth.token.invalid",
                    "the token is invalid",
                ),
            })?
            .claims;
        if claims.typ != typ {
            return Err(ApiError::unauthorized(
                "AUTH_TOKEN_INVALID",
                "error.auth.token.invalid",
                format!("a {typ} token is required"),
            ));
        }
        Ok(claims)
    }

    /// The session of `sid`, failing closed when it cannot be read.
    pub async fn session(&self, sid: &str) -> Result<Option<Session>, ApiError> {
        self.sessions.get(SESSIONS, sid).await.map_err(kv_error)
    }

    /// Deletes a session everywhere (logout, forced logout, disabled user).
    pub async fn revoke(&self, db: &impl ConnectionTrait, sid: &str) -> Result<bool, ApiError> {
        let owner = self.owner_of(db, sid).await?;
        let existed = self
            .sessions
            .delete(SESSIONS, sid)
            .await
            .map_err(kv_error)?;
        let backend = db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "DELETE FROM sys_online_session WHERE token_id = $1",
            _ => "DELETE FROM sys_online_session WHERE token_id = ?",
        };
        db.execute_raw(Statement::from_sql_and_values(backend, sql, [sid.into()]))
            .await?;
        if let Some(user_id) = owner {
            self.changed(user_id).await?;
        }
        Ok(existed)
    }

    /// The user a session belongs to, from the projection.
    async fn owner_of(
        &self,
        db: &impl ConnectionTrait,
        sid: &str,
    ) -> Result<Option<i64>, ApiError> {
        let backend = db.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "SELECT user_id FROM sys_online_session WHERE token_id = $1",
            _ => "SELECT user_id FROM sys_online_session WHERE token_id = ?",
        };
        let row = db
            .query_one_raw(Statement::from_sql_and_values(backend, sql, [sid.into()]))
            .await?;
        Ok(row.and_then(|r| r.try_get::<i64>("", "user_id").ok()))
    }

    /// Announces a change of the user's sessions to every node.
    pub async fn changed(&self, user_id: i64) -> Result<(), ApiError> {
        self.live.bump(&user_id.to_string()).await?;
        Ok(())
    }

    /// Whether session `sid` of `user_id` is live: from memory while fresh.
    async fn is_live(
        &self,
        db: &DatabaseConnection,
        user_id: i64,
        sid: &str,
    ) -> Result<bool, ApiError> {
        let sessions = self.sessions.clone();
        let db = db.clone();
        let live = self
            .live
            .get_or_load(&user_id.to_string(), || async move {
                let backend = db.get_database_backend();
                let sql = match backend {
                    DbBackend::Postgres => {
                        "SELECT token_id FROM sys_online_session WHERE user_id = $1"
                    }
                    _ => "SELECT token_id FROM sys_online_session WHERE user_id = ?",
                };
                let rows = db
                    .query_all_raw(Statement::from_sql_and_values(
                        backend,
                        sql,
                        [user_id.into()],
                    ))
                    .await
                    .map_err(ApiError::from)?;
                let mut live = HashMap::new();
                let now = unix_millis();
                for row in rows {
                    let Ok(token) = row.try_get::<String>("", "token_id") else {
                        continue;
                    };
                    // The KV store decides: a session lives while its key does.
                    if let KeyTtl::Expires(left) =
                        sessions.ttl(SESSIONS, &token).await.map_err(kv_error)?
                    {
                        live.insert(token, now + left.as_millis() as i64);
                    }
                }
                Ok::<_, ApiError>(Arc::new(live))
            })
            .await
            .map_err(|e| match e {
                lina_cache::CacheError::Load { source, .. } => source,
                other => ApiError::from(other),
            })?;
        if let Some(expires) = live.get(sid) {
            return Ok(*expires > unix_millis());
        }
        // Not among the sessions this node loaded: a session created on
        // another node since, whose announcement has not arrived yet, or a
        // revoked one. The KV store decides (one read; revocation deletes
        // the key before it is announced).
        Ok(matches!(
            self.sessions.ttl(SESSIONS, sid).await.map_err(kv_error)?,
            KeyTtl::Expires(left) if !left.is_zero()
        ))
    }
}

fn kv_error(error: KvCacheError) -> ApiError {
    match error {
        KvCacheError::Coordination(lina_coord_api::Error::InvalidArgument(message))
        | KvCacheError::KeyTooLong { name: message, .. } => ApiError::invalid_parameter(message),
        KvCacheError::Coordination(e) => {
            ApiError::unavailable(format!("session state unavailable: {e}"))
        }
        other => ApiError::internal(other),
    }
}

/// A request authenticated by a valid access token of a live session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// The session.
    pub token_id: String,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("app state missing"))?;
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "AUTH_TOKEN_MISSING",
                        "error.auth.token.missing",
                        "a bearer token is required",
                    )
                })?;
            let claims = state.auth.decode(token, "access")?;
            match state
                .auth
                .is_live(&state.node.db, claims.sub, &claims.sid)
                .await?
            {
                true => Ok(AuthUser {
                    user_id: claims.sub,
                    username: claims.username,
                    token_id: claims.sid,
                }),
                false => Err(ApiError::unauthorized(
                    "AUTH_SESSION_REVOKED",
                    "error.auth.session.revoked",
                    "the session has ended; log in again",
                )),
            }
        })
    }
}

/// Body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginBody {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// `web`, `app`, …
    #[serde(default)]
    pub client_type: String,
}

fn user_agent_os(agent: &str) -> &'static str {
    let agent = agent.to_lowercase();
    [
        ("windows", "Windows"),
        ("android", "Android"),
        ("iphone", "iOS"),
        ("mac os", "macOS"),
        ("linux", "Linux"),
    ]
    .into_iter()
    .find(|(needle, _)| agent.contains(needle))
    .map(|(_, name)| name)
    .unwrap_or("")
}

/// `POST /api/v1/auth/login`.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.username.trim().is_empty() || body.password.is_empty() {
        return Err(ApiError::validation("username and password are required"));
    }
    let ip = req
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    // Rate limit per user and address across the cluster (fixed window).
    let attempt_key = format!("{}@{}", body.username.trim(), ip);
    let attempts = state
        .auth
        .attempts
        .incr("login", &attempt_key, 1, ATTEMPT_WINDOW)
        .await
        .map_err(kv_error)?;
    if attempts > MAX_ATTEMPTS {
        return Err(ApiError::too_many(format!(
            "too many login attempts for {}; try again later",
            body.username.trim()
        )));
    }
    let found = user::Entity::find()
        .filter(user::Column::Username.eq(body.username.trim()))
        .one(&state.node.db)
        .await?;
    let password_ok = {
        let stored = found.as_ref().map(|u| u.password_hash.clone());
        let password = body.password.clone();
        web::block(move || stored.is_some_and(|s| crate::password::verify(&password, &s)))
            .await
            .map_err(ApiError::internal)?
    };
    let Some(user) = found.filter(|_| password_ok) else {
        return Err(ApiError::unauthorized(
            "AUTH_INVALID_CREDENTIALS",
            "error.auth.invalid.credentials",
            "wrong user name or password",
        ));
    };
    if user.status != 1 {
        return Err(ApiError::unauthorized(
            "AUTH_USER_DISABLED",
            "error.auth.user.disabled",
            "the user is disabled",
        ));
    }
    let _ = state.auth.attempts.delete("login", &attempt_key).await;
    let agent = req
        .headers()
        .get("User-Agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(128)
        .collect::<String>();
    let now = unix_millis();
    let session = Session {
        token_id: random_hex128(),
        user_id: user.id,
        username: user.username.clone(),
        client_type: if body.client_type.is_empty() {
            "web".into()
        } else {
            body.client_type.chars().take(32).collect()
        },
        ip,
        os: user_agent_os(&agent).into(),
        browser: agent,
        login_time: now,
        last_active_time: now,
        node_id: state.node.node_id.to_string(),
    };
    state
        .auth
        .sessions
        .set(
            SESSIONS,
            &session.token_id,
            &session,
            state.auth.session_ttl,
        )
        .await
        .map_err(kv_error)?;
    project(&state.node.db, &session).await?;
    state.auth.changed(session.user_id).await?;
    ok(state.auth.pair(&session)?)
}

async fn project(db: &impl ConnectionTrait, s: &Session) -> Result<(), ApiError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO sys_online_session (token_id, user_id, username, client_type, ip, browser, os, login_time, last_active_time, node_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        }
        _ => {
            "INSERT INTO sys_online_session (token_id, user_id, username, client_type, ip, browser, os, login_time, last_active_time, node_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        }
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            s.token_id.clone().into(),
            s.user_id.into(),
            s.username.clone().into(),
            s.client_type.clone().into(),
            s.ip.clone().into(),
            s.browser.clone().into(),
            s.os.clone().into(),
            s.login_time.into(),
            s.last_active_time.into(),
            s.node_id.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Body of `POST /api/v1/auth/refresh`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    /// The refresh token of the login.
    pub refresh_token: String,
}

/// `POST /api/v1/auth/refresh`.
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let claims = state.auth.decode(&body.refresh_token, "refresh")?;
    let Some(mut session) = state.auth.session(&claims.sid).await? else {
        return Err(ApiError::unauthorized(
            "AUTH_SESSION_REVOKED",
            "error.auth.session.revoked",
            "the session has ended; log in again",
        ));
    };
    session.last_active_time = unix_millis();
    state
        .auth
        .sessions
        .set(
            SESSIONS,
            &session.token_id,
            &session,
            state.auth.session_ttl,
        )
        .await
        .map_err(kv_error)?;
    let db = &state.node.db;
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE sys_online_session SET last_active_time = $1 WHERE token_id = $2"
        }
        _ => "UPDATE sys_online_session SET last_active_time = ? WHERE token_id = ?",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            session.last_active_time.into(),
            session.token_id.clone().into(),
        ],
    ))
    .await?;
    state.auth.changed(session.user_id).await?;
    ok(state.auth.pair(&session)?)
}

/// `POST /api/v1/auth/logout`.
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    state.auth.revoke(&state.node.db, &user.token_id).await?;
    ok(serde_json::Value::Null)
}
