//! What `run-cluster` writes under `target/run-cluster/`: the layout, each
//! node's config file (LinaPro keys), nginx's config; and the checks on the
//! flags those depend on. Pure functions, unit tested.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lina_config::duration::format_duration;

/// The files of one run-cluster directory (`target/run-cluster`).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The directory itself.
    pub dir: PathBuf,
}

impl Layout {
    /// The layout under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }

    /// `node-K.yaml`.
    pub fn node_config(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{}.yaml", node_id(index)))
    }

    /// `node-K.log`: the node's stdout and stderr, appended across restarts.
    pub fn node_log(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{}.log", node_id(index)))
    }

    /// `node-K/`: the node's working directory (relative paths of its config).
    pub fn node_dir(&self, index: usize) -> PathBuf {
        self.dir.join(node_id(index))
    }

    /// `jwt-secret`: generated once, reused by every later start.
    pub fn jwt_secret(&self) -> PathBuf {
        self.dir.join("jwt-secret")
    }

    /// `nginx/`: nginx's prefix directory (config, logs, pid, temp files).
    pub fn nginx_dir(&self) -> PathBuf {
        self.dir.join("nginx")
    }

    /// `nginx/nginx.conf`.
    pub fn nginx_conf(&self) -> PathBuf {
        self.nginx_dir().join("nginx.conf")
    }

    /// `redis/`: data directory and log of the private redis-server.
    pub fn redis_dir(&self) -> PathBuf {
        self.dir.join("redis")
    }

    /// `ctl.sock`: the supervisor's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// `state.json`: the supervisor's pid and its children's, for `ctl` and
    /// for cleaning up after a supervisor that was killed.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
}

/// `node-K` (1-based).
pub fn node_id(index: usize) -> String {
    format!("node-{index}")
}

/// The node ports `base + 1 ..= base + nodes`.
pub fn node_ports(base: u16, nodes: usize) -> Result<Vec<u16>> {
    (1..=nodes)
        .map(|k| {
            u16::try_from(usize::from(base) + k)
                .ok()
                .filter(|p| *p != 0)
                .with_context(|| format!("--base-port {base} + {k} is not a TCP port"))
        })
        .collect()
}

/// A Redis to point the nodes at, from a `redis://` or `rediss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `host:port`.
    pub address: String,
    /// Logical database (the URL's path), default 0.
    pub db: u32,
    /// ACL user, if the URL names one.
    pub username: Option<String>,
    /// Password, if the URL has one.
    pub password: Option<String>,
    /// `rediss://`.
    pub tls: bool,
}

impl RedisTarget {
    /// Parses `redis://[user[:pass]@]host[:port][/db]` (`rediss://` for TLS).
    pub fn parse(url: &str) -> Result<RedisTarget> {
        let parsed =
            url::Url::parse(url.trim()).with_context(|| format!("{url:?} is not a redis URL"))?;
        let tls = match parsed.scheme() {
            "redis" => false,
            "rediss" => true,
            other => bail!("redis URL {url:?} has scheme {other:?}; use redis:// or rediss://"),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .with_context(|| format!("redis URL {url:?} has no host"))?;
        let port = parsed.port().unwrap_or(6379);
        let db = match parsed.path().trim_matches('/') {
            "" => 0,
            db => db
                .parse()
                .with_context(|| format!("redis URL {url:?}: database {db:?} is not a number"))?,
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(decode);
        let password = parsed.password().map(decode);
        Ok(RedisTarget {
            address: format!("{host}:{port}"),
            db,
            username,
            password,
            tls,
        })
    }

    /// `redis://host:port/db` without credentials, for messages.
    pub fn redacted(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = match (&self.username, &self.password) {
            (Some(user), Some(_)) => format!("{user}:***@"),
            (Some(user), None) => format!("{user}@"),
            (None, Some(_)) => ":***@".into(),
            (None, None) => String::new(),
        };
        format!("{scheme}://{auth}{}/{}", self.address, self.db)
    }
}

/// Everything one node's config file says.
#[derive(Debug, Clone)]
pub struct NodeSpec<'a> {
    /// 1-based.
    pub index: usize,
    /// The node's HTTP port on 127.0.0.1.
    pub port: u16,
    /// `postgres://…/lina_cluster`.
    pub database_url: &'a str,
    /// The Redis of the cluster.
    pub redis: &'a RedisTarget,
    /// `cluster.redis.namespace`.
    pub namespace: &'a str,
    /// `jwt.secret`, the same on every node.
    pub jwt_secret: &'a str,
    /// `cluster.election.lease`; `renewInterval` is a third of it.
    pub lease: Duration,
    /// `shutdown.timeout`.
    pub shutdown: Duration,
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A third of `lease`, rounded down to the millisecond.
pub fn renew_interval(lease: Duration) -> Duration {
    Duration::from_millis((lease.as_millis() / 3) as u64)
}

/// One node's config file in LinaPro's key format (cluster mode).
pub fn node_config_yaml(spec: &NodeSpec<'_>) -> String {
    let redis = spec.redis;
    let mut redis_extra = String::new();
    if let Some(user) = &redis.username {
        redis_extra.push_str(&format!("    username: {}\n", q(user)));
    }
    if let Some(password) = &redis.password {
        redis_extra.push_str(&format!("    password: {}\n", q(password)));
    }
    if redis.tls {
        redis_extra.push_str("    tls: true\n");
    }
    format!(
        "# {id} of `cargo xtask run-cluster`: rewritten at every start from the\n\
         # command's flags (see docs/run-cluster.md); LINA_* variables are not passed on.\n\
         server:\n  \
           address: {address}\n\
         logger:\n  \
           level: \"info\"\n  \
           stdout: true\n\
         database:\n  \
           default:\n    \
             link: {link}\n\
         jwt:\n  \
           secret: {secret}\n\
         shutdown:\n  \
           timeout: {shutdown}\n\
         cluster:\n  \
           enabled: true\n  \
           nodeId: {id_q}\n  \
           coordination: \"redis\"\n  \
           election:\n    \
             lease: {lease}\n    \
             renewInterval: {renew}\n  \
           redis:\n    \
             address: {redis_address}\n    \
             db: {db}\n    \
             namespace: {namespace}\n\
         {redis_extra}",
        id = node_id(spec.index),
        id_q = q(&node_id(spec.index)),
        address = q(&format!("127.0.0.1:{}", spec.port)),
        link = q(spec.database_url),
        secret = q(spec.jwt_secret),
        shutdown = q(&format_duration(spec.shutdown)),
        lease = q(&format_duration(spec.lease)),
        renew = q(&format_duration(renew_interval(spec.lease))),
        redis_address = q(&redis.address),
        db = redis.db,
        namespace = q(spec.namespace),
    )
}

/// nginx's config: a load balancer on `127.0.0.1:listen` over the nodes,
/// everything (pid, logs, temp files) under `prefix`.
pub fn nginx_conf(prefix: &Path, listen: u16, node_ports: &[u16]) -> String {
    let p = |rel: &str| q(&prefix.join(rel).display().to_string());
    let servers: String = node_ports
        .iter()
        .map(|port| format!("        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n"))
        .collect();
    format!(
        "# Load balancer of `cargo xtask run-cluster`: rewritten at every start.\n\
         daemon off;\n\
         worker_processes 1;\n\
         pid {pid};\n\
         error_log {error_log} warn;\n\
         \n\
         events {{\n    worker_connections 1024;\n}}\n\
         \n\
         http {{\n    \
             log_format upstream '$time_iso8601 $request_method $request_uri $status '\n                        \
                                 'upstream=$upstream_addr upstream_status=$upstream_status '\n                        \
                                 'time=$request_time';\n    \
             access_log {access_log} upstream;\n    \
             client_body_temp_path {client_body};\n    \
             proxy_temp_path {proxy};\n    \
             fastcgi_temp_path {fastcgi};\n    \
             uwsgi_temp_path {uwsgi};\n    \
             scgi_temp_path {scgi};\n\
         \n    \
             # Passive health checks: a node that fails once is left out for 5s.\n    \
             upstream lina {{\n\
         {servers}        \
                 keepalive 16;\n    \
             }}\n\
         \n    \
             server {{\n        \
                 listen 127.0.0.1:{listen};\n        \
                 location / {{\n            \
                     proxy_pass http://lina;\n            \
                     proxy_http_version 1.1;\n            \
                     proxy_set_header Connection \"\";\n            \
                     proxy_set_header Host $host;\n            \
                     proxy_set_header X-Real-IP $remote_addr;\n            \
                     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n            \
                     proxy_set_header X-Forwarded-Proto $scheme;\n            \
                     proxy_connect_timeout 1s;\n            \
                     proxy_read_timeout 3s;\n            \
                     proxy_send_timeout 3s;\n            \
                     # A refused, timed out or unavailable node: try the next one.\n            \
                     proxy_next_upstream error timeout http_502 http_503;\n            \
                     proxy_next_upstream_tries {tries};\n            \
                     proxy_next_upstream_timeout 10s;\n            \
                     add_header X-Lina-Upstream $upstream_addr always;\n        \
                 }}\n    \
             }}\n\
         }}\n",
        pid = p("nginx.pid"),
        error_log = p("logs/error.log"),
        access_log = p("logs/access.log"),
        client_body = p("temp/client_body"),
        proxy = p("temp/proxy"),
        fastcgi = p("temp/fastcgi"),
        uwsgi = p("temp/uwsgi"),
        scgi = p("temp/scgi"),
        tries = node_ports.len().max(1),
    )
}

/// The temp directories [`nginx_conf`] names, relative to the prefix.
pub const NGINX_TEMP_DIRS: [&str; 5] = [
    "temp/client_body",
    "temp/proxy",
    "temp/fastcgi",
    "temp/uwsgi",
    "temp/scgi",
];

/// A database name run-cluster may create (and, with `--fresh`, drop).
pub fn check_db_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("--db-name {name:?} must be 1 to 63 of a-z, 0-9 and _, not starting with a digit");
    }
    if ["postgres", "template0", "template1"].contains(&name) {
        bail!("--db-name {name:?} is a system database");
    }
    Ok(())
}

/// A Redis namespace the nodes accept (no whitespace or braces).
pub fn check_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty()
        || namespace
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}')
    {
        bail!("--namespace {namespace:?} must be non-empty without whitespace or braces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(redis: &'a RedisTarget, index: usize) -> NodeSpec<'a> {
        NodeSpec {
            index,
            port: 9120 + index as u16,
            database_url: "postgres://postgres@127.0.0.1:5432/lina_cluster",
            redis,
            namespace: "lina-cluster",
            jwt_secret: "0123456789abcdef0123456789abcdef",
            lease: Duration::from_secs(10),
            shutdown: Duration::from_secs(10),
        }
    }

    #[test]
    fn node_config_is_valid_cluster_config_with_linapro_keys() {
        let redis = RedisTarget::parse("redis://127.0.0.1:6390").unwrap();
        let yaml = node_config_yaml(&spec(&redis, 2));
        let loaded = lina_config::load_from(Some(&yaml), std::iter::empty())
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert!(
            loaded.warnings.is_empty(),
            "{:?}\n{yaml}",
            loaded
                .warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        );
        let c = &loaded.config;
        assert_eq!(c.server.bind_addr().to_string(), "127.0.0.1:9122");
        assert!(c.cluster.enabled);
        assert_eq!(c.cluster.node_id(), Some("node-2"));
        assert_eq!(c.cluster.coordination, "redis");
        assert_eq!(c.cluster.redis.address, "127.0.0.1:6390");
        assert_eq!(c.cluster.redis.namespace, "lina-cluster");
        assert_eq!(c.cluster.election.lease, Duration::from_secs(10));
        assert_eq!(
            c.cluster.election.renew_interval,
            Duration::from_millis(3333)
        );
        assert_eq!(c.jwt.secret.expose(), "0123456789abcdef0123456789abcdef");
        assert_eq!(c.shutdown.timeout, Duration::from_secs(10));
        assert_eq!(
            c.database.default.link.connection_url().expose(),
            "postgres://postgres@127.0.0.1:5432/lina_cluster"
        );
        assert_eq!(c.logger.tracing_level(), Some("info"));
    }

    #[test]
    fn node_config_carries_redis_credentials_db_and_tls() {
        let redis = RedisTarget::parse("rediss://app:p%40ss%20w@cache.local:6380/3").unwrap();
        assert_eq!(
            redis,
            RedisTarget {
                address: "cache.local:6380".into(),
                db: 3,
                username: Some("app".into()),
                password: Some("p@ss w".into()),
                tls: true,
            }
        );
        assert_eq!(redis.redacted(), "rediss://app:***@cache.local:6380/3");
        let yaml = node_config_yaml(&spec(&redis, 1));
        let loaded = lina_config::load_from(Some(&yaml), std::iter::empty()).unwrap();
        let r = &loaded.config.cluster.redis;
        assert_eq!(r.address, "cache.local:6380");
        assert_eq!(r.db, 3);
        assert_eq!(r.username.as_deref(), Some("app"));
        assert_eq!(r.password.expose(), "p@ss w");
        assert!(r.tls.enabled);
        assert!(!yaml.contains("LINA_CLUSTER"), "no env in the file");
    }

    #[test]
    fn redis_urls_are_checked() {
        assert_eq!(
            RedisTarget::parse("redis://localhost").unwrap().address,
            "localhost:6379"
        );
        assert!(RedisTarget::parse("http://localhost:6379").is_err());
        assert!(RedisTarget::parse("redis://localhost:6379/x").is_err());
        assert!(RedisTarget::parse("localhost:6379").is_err());
    }

    #[test]
    fn short_leases_render_in_go_durations() {
        assert_eq!(
            renew_interval(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        let redis = RedisTarget::parse("redis://127.0.0.1:6379").unwrap();
        let mut s = spec(&redis, 1);
        s.lease = Duration::from_millis(1500);
        let yaml = node_config_yaml(&s);
        assert!(yaml.contains("lease: \"1.5s\""), "{yaml}");
        assert!(yaml.contains("renewInterval: \"500ms\""), "{yaml}");
        lina_config::load_from(Some(&yaml), std::iter::empty()).unwrap();
    }

    #[test]
    fn nginx_conf_balances_over_every_node_with_retries() {
        let conf = nginx_conf(
            Path::new("/w/target/run-cluster/nginx"),
            9120,
            &[9121, 9122, 9123],
        );
        assert!(conf.contains("listen 127.0.0.1:9120;"));
        for port in [9121, 9122, 9123] {
            assert!(
                conf.contains(&format!(
                    "server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
                )),
                "{conf}"
            );
        }
        assert!(conf.contains("proxy_next_upstream error timeout http_502 http_503;"));
        assert!(conf.contains("proxy_next_upstream_tries 3;"));
        assert!(conf.contains("daemon off;"));
        assert!(conf.contains("pid \"/w/target/run-cluster/nginx/nginx.pid\";"));
        for dir in NGINX_TEMP_DIRS {
            assert!(
                conf.contains(&format!("\"/w/target/run-cluster/nginx/{dir}\"")),
                "{dir}"
            );
        }
        // Nothing outside the prefix.
        assert!(!conf.contains("/var/"), "{conf}");
        // Braces balance.
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }

    #[test]
    fn ports_follow_the_base_port() {
        assert_eq!(node_ports(9120, 3).unwrap(), [9121, 9122, 9123]);
        assert!(node_ports(65534, 3).is_err());
    }

    #[test]
    fn database_names_and_namespaces_are_checked() {
        check_db_name("lina_cluster").unwrap();
        check_db_name("lina_cluster_2").unwrap();
        for bad in [
            "",
            "postgres",
            "template1",
            "Lina",
            "lina-cluster",
            "1abc",
            "a\"b",
        ] {
            assert!(check_db_name(bad).is_err(), "{bad:?}");
        }
        check_namespace("lina-cluster").unwrap();
        for bad in ["", "a b", "{x}"] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layout_names_files_per_node() {
        let layout = Layout::new("/t/run-cluster");
        assert_eq!(
            layout.node_config(2),
            Path::new("/t/run-cluster/node-2.yaml")
        );
        assert_eq!(layout.node_log(3), Path::new("/t/run-cluster/node-3.log"));
        assert_eq!(layout.socket(), Path::new("/t/run-cluster/ctl.sock"));
    }
}
