//! The configuration tree, key for key as in LinaPro's `config.template.yaml`
//! (camelCase keys, Go duration strings), plus Lina's own keys.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::ListenAddr;
use crate::link::DatabaseLink;
use crate::secret::Secret;

/// LinaPro's shipped JWT secret; refused in cluster mode, warned about otherwise.
pub const DEFAULT_JWT_SECRET: &str = "lina-jwt-secret-key-change-in-production";

/// Shortest JWT secret accepted in cluster mode.
pub const MIN_CLUSTER_JWT_SECRET_CHARS: usize = 16;

/// The whole configuration.
///
/// Every struct here has a `Default` that equals Lina's built-in defaults,
/// and field docs name the YAML key. `Debug`, `Display` and `Serialize`
/// redact secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Config {
    /// `server`: HTTP listener.
    pub server: ServerConfig,
    /// `logger`: log output.
    pub logger: LoggerConfig,
    /// `database`: database connection.
    pub database: DatabaseConfig,
    /// `jwt`: token signing.
    pub jwt: JwtConfig,
    /// `session`: online sessions.
    pub session: SessionConfig,
    /// `monitor`: service metrics collection.
    pub monitor: MonitorConfig,
    /// `health`: health probe.
    pub health: HealthConfig,
    /// `shutdown`: graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// `scheduler`: scheduled jobs.
    pub scheduler: SchedulerConfig,
    /// `workspace`: admin workspace frontend settings.
    pub workspace: WorkspaceConfig,
    /// `i18n`: languages.
    pub i18n: I18nConfig,
    /// `cluster`: single-node or cluster mode and Redis coordination.
    pub cluster: ClusterConfig,
    /// `cache`: cluster cache coherence (Lina).
    pub cache: CacheConfig,
    /// `upload`: file uploads.
    pub upload: UploadConfig,
    /// `plugin`: plugin governance.
    pub plugin: PluginConfig,
}

impl Config {
    /// The whole effective configuration as YAML with LinaPro's keys and
    /// formats; secrets (including the database password) appear as `***`.
    ///
    /// ```
    /// let config = lina_config::Config::default();
    /// let yaml = config.effective_yaml();
    /// assert!(yaml.contains("renewInterval: 10s"));
    /// assert!(!yaml.contains(lina_config::DEFAULT_JWT_SECRET));
    /// ```
    pub fn effective_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

impl fmt::Display for Config {
    /// Same as [`Config::effective_yaml`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.effective_yaml())
    }
}

// ---------------------------------------------------------------- server

/// `server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerConfig {
    /// `server.address`: listen address, default `:9120`.
    pub address: ListenAddr,
    /// `server.dumpRouterMap`: print the route table at startup.
    pub dump_router_map: bool,
    /// `server.extensions`.
    pub extensions: ServerExtensions,
}

impl ServerConfig {
    /// The socket address to bind (`:9120` → `0.0.0.0:9120`).
    pub fn bind_addr(&self) -> SocketAddr {
        self.address.socket_addr()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: ":9120".parse().expect("default listen address"),
            dump_router_map: false,
            extensions: ServerExtensions::default(),
        }
    }
}

/// `server.extensions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerExtensions {
    /// `server.extensions.apiDocPath`: path of the OpenAPI JSON document, default `/api.json`.
    pub api_doc_path: String,
}

impl Default for ServerExtensions {
    fn default() -> Self {
        ServerExtensions {
            api_doc_path: "/api.json".into(),
        }
    }
}

// ---------------------------------------------------------------- logger

/// `logger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoggerConfig {
    /// `logger.path`: log file directory; empty means terminal only.
    pub path: String,
    /// `logger.file`: file name pattern, default `{Y-m-d}.log`.
    pub file: String,
    /// `logger.level`: GoFrame level name (`all`, `debug`, `info`, `notice`,
    /// `warning`, `error`, `critical`, `off`, …), default `all`.
    pub level: String,
    /// `logger.stdout`: also write to standard output.
    pub stdout: bool,
    /// `logger.format` (Lina): `text` or `json`, default `text`.
    pub format: LogFormat,
    /// `logger.extensions`.
    pub extensions: LoggerExtensions,
}

impl LoggerConfig {
    /// The format to use: JSON if `logger.format` is `json` or LinaPro's
    /// `logger.extensions.structured` is true, text otherwise.
    pub fn effective_format(&self) -> LogFormat {
        if self.extensions.structured {
            LogFormat::Json
        } else {
            self.format
        }
    }

    /// `logger.level` as a `tracing` filter level (`trace`, `debug`, `info`,
    /// `warn`, `error`, `off`); `None` for a level name Lina does not know.
    pub fn tracing_level(&self) -> Option<&'static str> {
        level_to_tracing(&self.level)
    }
}

pub(crate) fn level_to_tracing(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_lowercase().as_str() {
        "all" | "trace" => "trace",
        "dev" | "develop" | "debu" | "debug" => "debug",
        "" | "info" | "noti" | "notice" => "info",
        "prod" | "product" | "warn" | "warning" => "warn",
        "erro" | "error" | "crit" | "critical" => "error",
        "off" | "none" => "off",
        _ => return None,
    })
}

impl Default for LoggerConfig {
    fn default() -> Self {
        LoggerConfig {
            path: String::new(),
            file: "{Y-m-d}.log".into(),
            level: "all".into(),
            stdout: true,
            format: LogFormat::Text,
            extensions: LoggerExtensions::default(),
        }
    }
}

/// `logger.extensions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoggerExtensions {
    /// `logger.extensions.structured`: JSON structured logs (LinaPro's switch).
    pub structured: bool,
    /// `logger.extensions.traceIDEnabled`: include the trace id in log lines.
    #[serde(rename = "traceIDEnabled")]
    pub trace_id_enabled: bool,
}

/// `logger.format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a log format; use text or json"
            ))),
        }
    }
}

// ---------------------------------------------------------------- database

/// `database`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DatabaseConfig {
    /// `database.default`: the default connection group.
    pub default: DatabaseGroup,
}

/// `database.default`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DatabaseGroup {
    /// `database.default.link`, default `sqlite://./data/lina.db`.
    pub link: DatabaseLink,
    /// `database.default.debug`: log SQL statements.
    pub debug: bool,
}

// ---------------------------------------------------------------- jwt, session

/// `jwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct JwtConfig {
    /// `jwt.secret`: signing secret (LinaPro's default is refused in cluster mode).
    pub secret: Secret,
    /// `jwt.expire`: token lifetime, default `24h`.
    #[serde(with = "crate::duration::serde")]
    pub expire: Duration,
}

impl JwtConfig {
    /// Whether the secret is LinaPro's shipped default.
    pub fn is_default_secret(&self) -> bool {
        self.secret.expose() == DEFAULT_JWT_SECRET
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            secret: Secret::new(DEFAULT_JWT_SECRET),
            expire: Duration::from_secs(24 * 3600),
        }
    }
}

/// `session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SessionConfig {
    /// `session.timeout`: inactivity timeout, default `24h`.
    #[serde(with = "crate::duration::serde")]
    pub timeout: Duration,
    /// `session.cleanupInterval`: expired-session cleanup period, default `5m`.
    #[serde(with = "crate::duration::serde")]
    pub cleanup_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            timeout: Duration::from_secs(24 * 3600),
            cleanup_interval: Duration::from_secs(5 * 60),
        }
    }
}

// ---------------------------------------------------------------- monitor, health, shutdown

/// `monitor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MonitorConfig {
    /// `monitor.interval`: metrics collection period, default `1m`.
    #[serde(with = "crate::duration::serde")]
    pub interval: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_secs(60),
        }
    }
}

/// `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HealthConfig {
    /// `health.timeout`: database probe timeout, default `5s`.
    #[serde(with = "crate::duration::serde")]
    pub timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            timeout: Duration::from_secs(5),
        }
    }
}

/// `shutdown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ShutdownConfig {
    /// `shutdown.timeout`: whole graceful shutdown budget, default `30s`.
    #[serde(with = "crate::duration::serde")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            timeout: Duration::from_secs(30),
        }
    }
}

// ---------------------------------------------------------------- scheduler, workspace, i18n

/// `scheduler`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SchedulerConfig {
    /// `scheduler.defaultTimezone`: IANA zone for jobs without one, default `UTC`.
    pub default_timezone: String,
    /// `scheduler.misfireThreshold` (Lina): a run later than this is a misfire, default `60s`.
    #[serde(with = "crate::duration::serde")]
    pub misfire_threshold: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            default_timezone: "UTC".into(),
            misfire_threshold: Duration::from_secs(60),
        }
    }
}

/// `workspace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkspaceConfig {
    /// `workspace.basePath`: admin workspace route base, default `/admin`.
    pub base_path: String,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            base_path: "/admin".into(),
        }
    }
}

/// `i18n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct I18nConfig {
    /// `i18n.default`: locale used when a request has none or an unsupported one, default `zh-CN`.
    #[serde(rename = "default")]
    pub default_locale: String,
    /// `i18n.enabled`: multi-language on; off means only the default locale.
    pub enabled: bool,
    /// `i18n.locales`: offered locales in display order.
    pub locales: Vec<LocaleEntry>,
}

impl Default for I18nConfig {
    fn default() -> Self {
        I18nConfig {
            default_locale: "zh-CN".into(),
            enabled: true,
            locales: vec![
                LocaleEntry {
                    locale: "en-US".into(),
                    native_name: "English".into(),
                },
                LocaleEntry {
                    locale: "zh-CN".into(),
                    native_name: "简体中文".into(),
                },
            ],
        }
    }
}

/// One entry of `i18n.locales`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocaleEntry {
    /// `locale`: BCP 47 tag such as `en-US`.
    pub locale: String,
    /// `nativeName`: the language's own name, such as `English`.
    #[serde(default)]
    pub native_name: String,
}

// ---------------------------------------------------------------- cluster

/// `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterConfig {
    /// `cluster.enabled`: cluster mode (Redis coordination, PostgreSQL), default false.
    pub enabled: bool,
    /// `cluster.nodeId` (Lina; also `LINA_NODE_ID`): this node's id; derived
    /// from host name and port when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// `cluster.coordination`: coordination backend; only `redis`.
    pub coordination: String,
    /// `cluster.election`: leader election lease.
    pub election: ElectionConfig,
    /// `cluster.redis`: the Redis used for coordination.
    pub redis: RedisConfig,
}

impl ClusterConfig {
    /// `cluster.nodeId`, if set.
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: None,
            coordination: "redis".into(),
            election: ElectionConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

/// `cluster.election`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ElectionConfig {
    /// `cluster.election.lease`: leader lease, default `30s`.
    #[serde(with = "crate::duration::serde")]
    pub lease: Duration,
    /// `cluster.election.renewInterval`: lease renewal period, default `10s`
    /// (below `lease`, about a third of it).
    #[serde(with = "crate::duration::serde")]
    pub renew_interval: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease: Duration::from_secs(30),
            renew_interval: Duration::from_secs(10),
        }
    }
}

/// `cluster.redis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RedisConfig {
    /// `cluster.redis.address`: `host:port`, default `127.0.0.1:6379`.
    /// Ignored when `sentinel` is set.
    pub address: String,
    /// `cluster.redis.db`: logical database, default 0.
    pub db: u32,
    /// `cluster.redis.username` (Lina): ACL user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `cluster.redis.password`: empty when Redis has no auth.
    pub password: Secret,
    /// `cluster.redis.namespace` (Lina): prefix of every key, default `lina`.
    pub namespace: String,
    /// `cluster.redis.connectTimeout`, default `3s`.
    #[serde(with = "crate::duration::serde")]
    pub connect_timeout: Duration,
    /// `cluster.redis.readTimeout`, default `2s`.
    #[serde(with = "crate::duration::serde")]
    pub read_timeout: Duration,
    /// `cluster.redis.writeTimeout`, default `2s`.
    #[serde(with = "crate::duration::serde")]
    pub write_timeout: Duration,
    /// `cluster.redis.tls` (Lina): `true`/`false` or `{enabled, caFile, certFile, keyFile, insecureSkipVerify}`.
    pub tls: RedisTls,
    /// `cluster.redis.sentinel` (Lina): find the master through Sentinel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    /// `cluster.redis.clusterNodes` (Lina): seed `host:port` nodes of a Redis
    /// Cluster; when set, `address` is ignored and every key shares the
    /// `{namespace}` hash tag so multi-key scripts stay on one slot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_nodes: Vec<String>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            address: "127.0.0.1:6379".into(),
            db: 0,
            username: None,
            password: Secret::default(),
            namespace: "lina".into(),
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            tls: RedisTls::default(),
            sentinel: None,
            cluster_nodes: Vec::new(),
        }
    }
}

/// `cluster.redis.tls`. In YAML either a bool (`tls: true`) or a map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisTls {
    /// `enabled`: connect with TLS.
    pub enabled: bool,
    /// `caFile`: PEM file of CA certificates to trust instead of the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// `certFile`: PEM client certificate (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// `keyFile`: PEM client key (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// `insecureSkipVerify`: do not verify the server certificate (tests only).
    pub insecure_skip_verify: bool,
}

#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[derive(Default)]
struct RedisTlsMap {
    enabled: bool,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    insecure_skip_verify: bool,
}

impl<'de> Deserialize<'de> for RedisTls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(enabled) => Ok(RedisTls {
                enabled,
                ..RedisTls::default()
            }),
            serde_json::Value::Null => Ok(RedisTls::default()),
            value @ serde_json::Value::Object(_) => {
                let map: RedisTlsMap = serde_json::from_value(value).map_err(D::Error::custom)?;
                Ok(RedisTls {
                    enabled: map.enabled,
                    ca_file: map.ca_file,
                    cert_file: map.cert_file,
                    key_file: map.key_file,
                    insecure_skip_verify: map.insecure_skip_verify,
                })
            }
            other => Err(D::Error::custom(format!(
                "{other} is not a tls setting; use true, false or {{enabled, caFile, certFile, keyFile, insecureSkipVerify}}"
            ))),
        }
    }
}

/// `cluster.redis.sentinel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SentinelConfig {
    /// `serviceName`: the master's name in Sentinel.
    pub service_name: String,
    /// `addresses`: Sentinel `host:port` list.
    pub addresses: Vec<String>,
    /// `username`: Sentinel ACL user (the master uses `cluster.redis.username`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `password`: Sentinel password (the master uses `cluster.redis.password`).
    pub password: Secret,
}

// ---------------------------------------------------------------- cache, upload, plugin

/// `cache` (Lina).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CacheConfig {
    /// `cache.revisionPoll`: how often cache revisions are checked, default `1s`.
    #[serde(with = "crate::duration::serde")]
    pub revision_poll: Duration,
    /// `cache.maxStale`: longest a node serves cached data it could not
    /// confirm as current, default `10s`.
    #[serde(with = "crate::duration::serde")]
    pub max_stale: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            revision_poll: Duration::from_secs(1),
            max_stale: Duration::from_secs(10),
        }
    }
}

/// `upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UploadConfig {
    /// `upload.path`: upload directory, default `temp/upload`.
    pub path: String,
    /// `upload.maxSize`: largest upload in MB, default 100.
    pub max_size: u64,
}

impl UploadConfig {
    /// `upload.maxSize` in bytes.
    pub fn max_size_bytes(&self) -> u64 {
        self.max_size.saturating_mul(1024 * 1024)
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            path: "temp/upload".into(),
            max_size: 100,
        }
    }
}

/// `plugin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PluginConfig {
    /// `plugin.allowForceUninstall`: platform admins may force an audited
    /// uninstall after a lifecycle guard vetoed it, default true.
    pub allow_force_uninstall: bool,
    /// `plugin.dynamic`.
    pub dynamic: DynamicPluginConfig,
    /// `plugin.autoEnable`: plugins installed and enabled at startup.
    #[serde(deserialize_with = "null_as_default")]
    pub auto_enable: Vec<AutoEnablePlugin>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            allow_force_uninstall: true,
            dynamic: DynamicPluginConfig::default(),
            auto_enable: Vec::new(),
        }
    }
}

/// `plugin.dynamic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DynamicPluginConfig {
    /// `plugin.dynamic.storagePath`: dynamic plugin artifacts, default `temp/output`.
    pub storage_path: String,
}

impl Default for DynamicPluginConfig {
    fn default() -> Self {
        DynamicPluginConfig {
            storage_path: "temp/output".into(),
        }
    }
}

/// One entry of `plugin.autoEnable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoEnablePlugin {
    /// `id`: plugin id.
    pub id: String,
    /// `withMockData`: also load the plugin's demo data on install, default false.
    #[serde(default)]
    pub with_mock_data: bool,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A configuration with every optional part filled in, so that serializing
/// it yields every key Lina knows (the schema for unknown-key detection and
/// environment-variable matching).
pub(crate) fn schema_sample() -> Config {
    let mut c = Config::default();
    c.cluster.node_id = Some(String::new());
    c.cluster.redis.username = Some(String::new());
    c.cluster.redis.tls = RedisTls {
        ca_file: Some(String::new()),
        cert_file: Some(String::new()),
        key_file: Some(String::new()),
        ..RedisTls::default()
    };
    c.cluster.redis.sentinel = Some(SentinelConfig {
        addresses: vec![String::new()],
        username: Some(String::new()),
        ..SentinelConfig::default()
    });
    c.cluster.redis.cluster_nodes = vec![String::new()];
    c.plugin.auto_enable = vec![AutoEnablePlugin {
        id: String::new(),
        with_mock_data: false,
    }];
    c
}
