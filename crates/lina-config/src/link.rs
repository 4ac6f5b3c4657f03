//! `database.default.link`: GoFrame links and plain URLs, parsed.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::{REDACTED, Secret};

/// Default PostgreSQL port when a link names none.
pub const DEFAULT_POSTGRES_PORT: u16 = 5432;

/// Lina's default database link (single-node, no server needed).
pub const DEFAULT_LINK: &str = "sqlite://./data/lina.db";

/// Characters left as they are in a URL's user, password and path segment.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters escaped in a SQLite path (slashes and the like stay).
const SQLITE_PATH: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'?')
    .add(b'#');

/// A parsed `database.default.link`.
///
/// Accepted forms:
///
/// | form | example |
/// | --- | --- |
/// | GoFrame PostgreSQL | `pgsql:user:pass@tcp(host:5432)/db?sslmode=disable` |
/// | URL | `postgres://user:pass@host:5432/db?sslmode=disable`, `postgresql://…` |
/// | SQLite URL | `sqlite://./data/lina.db`, `sqlite:///abs/lina.db`, `sqlite::memory:` |
/// | GoFrame SQLite | `sqlite::@file(./temp/sqlite/linapro.db)` |
///
/// MySQL links are refused: `mysql is not supported by lina; use pgsql or sqlite`.
///
/// ```
/// use lina_config::DatabaseLink;
///
/// let link: DatabaseLink = "pgsql:app:p@ss@tcp(db:5433)/lina?sslmode=disable".parse().unwrap();
/// assert_eq!(
///     link.connection_url().expose(),
///     "postgres://app:p%40ss@db:5433/lina?sslmode=disable"
/// );
/// assert_eq!(link.redacted(), "pgsql:app:***@tcp(db:5433)/lina?sslmode=disable");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLink {
    /// A PostgreSQL server.
    Postgres {
        /// User name (may be empty).
        user: String,
        /// Password (may be empty).
        password: Secret,
        /// Host name or IP address (an IPv6 address without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// Database name (may be empty: the server's default).
        database: String,
        /// Query parameters such as `sslmode=disable`, in order, decoded.
        params: Vec<(String, String)>,
    },
    /// A SQLite file (single-node only).
    Sqlite {
        /// Path of the database file, or `:memory:`.
        path: String,
        /// Query parameters, in order, decoded.
        params: Vec<(String, String)>,
    },
}

/// Why a database link was refused; `Display` is the problem message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(String);

fn err(message: impl Into<String>) -> LinkError {
    LinkError(message.into())
}

impl DatabaseLink {
    /// Whether this is a PostgreSQL link.
    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseLink::Postgres { .. })
    }

    /// Whether this is a SQLite link.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseLink::Sqlite { .. })
    }

    /// `"pgsql"` or `"sqlite"`, as in GoFrame links.
    pub fn kind(&self) -> &'static str {
        match self {
            DatabaseLink::Postgres { .. } => "pgsql",
            DatabaseLink::Sqlite { .. } => "sqlite",
        }
    }

    /// A URL for sqlx / sea-orm: `postgres://user:pass@host:port/db?…` with
    /// user, password and database percent-encoded, or
    /// `sqlite://path?mode=rwc` (the file is created if missing). It holds
    /// the password, so it comes wrapped in a [`Secret`].
    pub fn connection_url(&self) -> Secret {
        Secret::new(self.url(false))
    }

    /// The link in GoFrame form with the password replaced by `***`: safe to
    /// log and to print.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseLink::Postgres {
                user,
                password,
                host,
                port,
                database,
                params,
            } => {
                let pass = if password.is_empty() { "" } else { REDACTED };
                let host = bracket_v6(host);
                let mut out = format!("pgsql:{user}:{pass}@tcp({host}:{port})/{database}");
                push_query(&mut out, params);
                out
            }
            DatabaseLink::Sqlite { .. } => self.url(true),
        }
    }

    fn url(&self, as_written: bool) -> String {
        match self {
            DatabaseLink::Postgres {
                user,
                password,
                host,
                port,
                database,
                params,
            } => {
                let mut out = String::from("postgres://");
                if !user.is_empty() || !password.is_empty() {
                    out.extend(utf8_percent_encode(user, COMPONENT));
                    if !password.is_empty() {
                        out.push(':');
                        out.extend(utf8_percent_encode(password.expose(), COMPONENT));
                    }
                    out.push('@');
                }
                out.push_str(&bracket_v6(host));
                out.push_str(&format!(":{port}/"));
                out.extend(utf8_percent_encode(database, COMPONENT));
                push_query(&mut out, params);
                out
            }
            DatabaseLink::Sqlite { path, params } => {
                if path == ":memory:" {
                    let mut out = String::from("sqlite::memory:");
                    push_query(&mut out, params);
                    return out;
                }
                let mut out = String::from("sqlite://");
                out.extend(utf8_percent_encode(path, SQLITE_PATH));
                if as_written || params.iter().any(|(k, _)| k == "mode") {
                    push_query(&mut out, params);
                } else {
                    let mut with_mode = params.clone();
                    with_mode.push(("mode".into(), "rwc".into()));
                    push_query(&mut out, &with_mode);
                }
                out
            }
        }
    }
}

impl Default for DatabaseLink {
    fn default() -> Self {
        DatabaseLink::Sqlite {
            path: "./data/lina.db".into(),
            params: Vec::new(),
        }
    }
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn push_query(out: &mut String, params: &[(String, String)]) {
    if params.is_empty() {
        return;
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    out.push('?');
    out.push_str(&ser.finish());
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn unsupported(kind: &str) -> LinkError {
    match kind.to_ascii_lowercase().as_str() {
        "mysql" | "mariadb" => err("mysql is not supported by lina; use pgsql or sqlite"),
        other => err(format!(
            "database type {other} is not supported by lina; use pgsql or sqlite"
        )),
    }
}

fn is_postgres_kind(kind: &str) -> bool {
    matches!(
        kind.to_ascii_lowercase().as_str(),
        "pgsql" | "postgres" | "postgresql"
    )
}

fn parse_port(text: &str, link_kind: &str) -> Result<u16, LinkError> {
    text.parse::<u16>().map_err(|_| {
        err(format!(
            "{link_kind} link port {text:?} is not a port number"
        ))
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]` into host and port.
fn split_host_port(addr: &str) -> Result<(String, u16), LinkError> {
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(err(format!("pgsql link address {addr} has no closing ]")));
        };
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p, "pgsql")?,
            None if after.is_empty() => DEFAULT_POSTGRES_PORT,
            None => return Err(err(format!("pgsql link address {addr} is not host:port"))),
        };
        return Ok((host.to_owned(), port));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Ok((host.to_owned(), parse_port(port, "pgsql")?))
        }
        Some(_) => Ok((addr.to_owned(), DEFAULT_POSTGRES_PORT)), // bare IPv6
        None => Ok((addr.to_owned(), DEFAULT_POSTGRES_PORT)),
    }
}

/// GoFrame link: `type:user:pass@protocol(address)/db?params`.
fn parse_goframe(kind: &str, rest: &str) -> Result<DatabaseLink, LinkError> {
    // The password may hold ':' and '@'; the '@' that ends it is the first one
    // followed by `word(`, as in GoFrame's own pattern.
    let at = rest
        .match_indices('@')
        .map(|(i, _)| i)
        .find(|&i| {
            let after = &rest[i + 1..];
            let word = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            word > 0 && after[word..].starts_with('(')
        })
        .ok_or_else(|| {
            err(format!(
                "{kind} link must look like {kind}:user:password@tcp(host:port)/database"
            ))
        })?;
    let userinfo = &rest[..at];
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let after = &rest[at + 1..];
    let open = after.find('(').unwrap_or_default();
    let protocol = &after[..open];
    let Some(close) = after[open..].find(')').map(|i| open + i) else {
        return Err(err(format!(
            "{kind} link has no closing ) after {protocol}("
        )));
    };
    let address = &after[open + 1..close];
    let tail = &after[close + 1..];
    let tail = tail.strip_prefix('/').unwrap_or(tail);
    let (database, query) = tail.split_once('?').unwrap_or((tail, ""));
    let params = parse_query(query);

    if kind.eq_ignore_ascii_case("sqlite") {
        if address.is_empty() {
            return Err(err("sqlite link has an empty file path"));
        }
        return Ok(DatabaseLink::Sqlite {
            path: address.to_owned(),
            params,
        });
    }
    if !protocol.eq_ignore_ascii_case("tcp") {
        return Err(err(format!(
            "pgsql link protocol {protocol} is not supported; use tcp(host:port)"
        )));
    }
    let (host, port) = split_host_port(address)?;
    if host.is_empty() {
        return Err(err("pgsql link has an empty host"));
    }
    Ok(DatabaseLink::Postgres {
        user: user.to_owned(),
        password: Secret::new(password),
        host,
        port,
        database: database.to_owned(),
        params,
    })
}

fn parse_postgres_url(text: &str) -> Result<DatabaseLink, LinkError> {
    let url =
        url::Url::parse(text).map_err(|e| err(format!("postgres link is not a valid url: {e}")))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| err("postgres link has invalid utf-8 in its user, password or database"))
    };
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => "localhost".to_owned(),
    };
    let database = decode(url.path().trim_start_matches('/'))?;
    Ok(DatabaseLink::Postgres {
        user: decode(url.username())?,
        password: Secret::new(decode(url.password().unwrap_or(""))?),
        host,
        port: url.port().unwrap_or(DEFAULT_POSTGRES_PORT),
        database,
        params: parse_query(url.query().unwrap_or("")),
    })
}

fn parse_sqlite_path(rest: &str) -> Result<DatabaseLink, LinkError> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| err("sqlite link path is not valid utf-8"))?
        .into_owned();
    if path.is_empty() {
        return Err(err("sqlite link has an empty file path"));
    }
    Ok(DatabaseLink::Sqlite {
        path,
        params: parse_query(query),
    })
}

impl FromStr for DatabaseLink {
    type Err = LinkError;

    fn from_str(text: &str) -> Result<Self, LinkError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(err("database link is empty; use pgsql:… or sqlite://…"));
        }
        let Some((kind, rest)) = text.split_once(':') else {
            return Err(err(format!(
                "{text:?} is not a database link; use pgsql:user:pass@tcp(host:port)/db, postgres://… or sqlite://…"
            )));
        };
        if let Some(after) = rest.strip_prefix("//") {
            return if is_postgres_kind(kind) {
                parse_postgres_url(text)
            } else if kind.eq_ignore_ascii_case("sqlite") {
                parse_sqlite_path(after)
            } else {
                Err(unsupported(kind))
            };
        }
        if is_postgres_kind(kind) {
            return parse_goframe(kind, rest);
        }
        if kind.eq_ignore_ascii_case("sqlite") {
            if rest == ":memory:" || rest.starts_with(":memory:?") {
                let query = rest.split_once('?').map_or("", |(_, q)| q);
                return Ok(DatabaseLink::Sqlite {
                    path: ":memory:".into(),
                    params: parse_query(query),
                });
            }
            if rest.contains('@') && rest.contains('(') {
                return parse_goframe("sqlite", rest);
            }
            return parse_sqlite_path(rest);
        }
        Err(unsupported(kind))
    }
}

impl fmt::Display for DatabaseLink {
    /// The redacted form (see [`DatabaseLink::redacted`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseLink {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseLink {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_with_colon_and_at() {
        let link: DatabaseLink = "pgsql:u:a:b@c@tcp(h:1)/d".parse().unwrap();
        let DatabaseLink::Postgres {
            password,
            host,
            port,
            ..
        } = &link
        else {
            panic!()
        };
        assert_eq!(password.expose(), "a:b@c");
        assert_eq!((host.as_str(), *port), ("h", 1));
        assert_eq!(
            link.connection_url().expose(),
            "postgres://u:a%3Ab%40c@h:1/d"
        );
    }

    #[test]
    fn ipv6_host() {
        let link: DatabaseLink = "pgsql:u:p@tcp([::1]:5433)/d".parse().unwrap();
        assert_eq!(
            link.connection_url().expose(),
            "postgres://u:p@[::1]:5433/d"
        );
        let link: DatabaseLink = "postgres://u@[::1]/d".parse().unwrap();
        assert_eq!(link.connection_url().expose(), "postgres://u@[::1]:5432/d");
    }
}
