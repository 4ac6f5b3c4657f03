//! Rules across keys, run after the tree deserialized.

use std::collections::HashSet;
use std::time::Duration;

use crate::duration::GoDuration;
use crate::model::{Config, MIN_CLUSTER_JWT_SECRET_CHARS, level_to_tracing};
use crate::problem::Problem;

/// Workspace base paths LinaPro reserves for the core service.
const RESERVED_WORKSPACE_PATHS: &[&str] = &["/api", "/x", "/x-assets"];

struct Checker<'a> {
    failed: &'a HashSet<String>,
    errors: &'a mut Vec<Problem>,
    warnings: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    /// Whether `path` (or a parent) already failed to deserialize: its value
    /// is then the default and rules about it would only add noise.
    fn broken(&self, path: &str) -> bool {
        self.failed.iter().any(|f| {
            f.is_empty()
                || path == f
                || path
                    .strip_prefix(f.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Problem::new(path, message));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem::new(path, message));
    }

    fn positive(&mut self, path: &str, value: Duration) -> bool {
        if self.broken(path) {
            return false;
        }
        if value.is_zero() {
            self.error(path, "0s must be greater than 0s");
            return false;
        }
        true
    }
}

/// Checks every cross-key rule, adding to `errors` and `warnings`.
pub(crate) fn validate(
    config: &Config,
    failed: &HashSet<String>,
    errors: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let mut c = Checker {
        failed,
        errors,
        warnings,
    };
    let cluster = &config.cluster;
    let cluster_mode = cluster.enabled && !c.broken("cluster.enabled");

    // Durations that must be positive.
    for (path, value) in [
        ("jwt.expire", config.jwt.expire),
        ("session.timeout", config.session.timeout),
        ("session.cleanupInterval", config.session.cleanup_interval),
        ("monitor.interval", config.monitor.interval),
        ("health.timeout", config.health.timeout),
        ("shutdown.timeout", config.shutdown.timeout),
        (
            "scheduler.misfireThreshold",
            config.scheduler.misfire_threshold,
        ),
    ] {
        c.positive(path, value);
    }

    // Leader election lease.
    let lease = cluster.election.lease;
    let renew = cluster.election.renew_interval;
    let lease_ok = c.positive("cluster.election.lease", lease);
    let renew_ok = c.positive("cluster.election.renewInterval", renew);
    if lease_ok && renew_ok {
        if renew >= lease {
            c.error(
                "cluster.election.renewInterval",
                format!(
                    "{} must be below cluster.election.lease {}",
                    GoDuration(renew),
                    GoDuration(lease)
                ),
            );
        } else {
            let third = lease / 3;
            let slack = third / 4;
            if renew + slack < third || renew > third + slack {
                c.warn(
                    "cluster.election.renewInterval",
                    format!(
                        "{} is not about a third of cluster.election.lease {}; {} is recommended",
                        GoDuration(renew),
                        GoDuration(lease),
                        GoDuration(third)
                    ),
                );
            }
        }
    }

    // Cache coherence.
    let poll_ok = c.positive("cache.revisionPoll", config.cache.revision_poll);
    let stale_ok = c.positive("cache.maxStale", config.cache.max_stale);
    if poll_ok && stale_ok && config.cache.max_stale < config.cache.revision_poll {
        c.error(
            "cache.maxStale",
            format!(
                "{} must not be below cache.revisionPoll {}",
                GoDuration(config.cache.max_stale),
                GoDuration(config.cache.revision_poll)
            ),
        );
    }

    // Logger.
    if !c.broken("logger.level") && level_to_tracing(&config.logger.level).is_none() {
        c.warn(
            "logger.level",
            format!(
                "{:?} is not a known level (logging at info); use all, debug, info, notice, warning, error, critical or off",
                config.logger.level
            ),
        );
    }

    // Scheduler, workspace, i18n, plugins.
    if !c.broken("scheduler.defaultTimezone") && config.scheduler.default_timezone.trim().is_empty()
    {
        c.error(
            "scheduler.defaultTimezone",
            "must not be empty; use an iana zone such as UTC",
        );
    }
    let base = config.workspace.base_path.as_str();
    if !c.broken("workspace.basePath") {
        if !base.starts_with('/') {
            c.error("workspace.basePath", format!("{base:?} must start with /"));
        } else if let Some(reserved) = RESERVED_WORKSPACE_PATHS.iter().find(|r| {
            base == **r
                || base
                    .strip_prefix(**r)
                    .is_some_and(|rest| rest.starts_with('/'))
        }) {
            c.error(
                "workspace.basePath",
                format!("{base} is inside {reserved}, which the core service reserves"),
            );
        }
    }
    let i18n = &config.i18n;
    if !c.broken("i18n")
        && i18n.enabled
        && !i18n.locales.is_empty()
        && !i18n.locales.iter().any(|l| l.locale == i18n.default_locale)
    {
        c.warn(
            "i18n.default",
            format!("{} is not one of i18n.locales", i18n.default_locale),
        );
    }
    for (i, locale) in i18n.locales.iter().enumerate() {
        let path = format!("i18n.locales[{i}].locale");
        if locale.locale.trim().is_empty() && !c.broken(&path) {
            c.error(&path, "must not be empty");
        }
    }
    for (i, plugin) in config.plugin.auto_enable.iter().enumerate() {
        let path = format!("plugin.autoEnable[{i}].id");
        if plugin.id.trim().is_empty() && !c.broken(&path) {
            c.error(&path, "must not be empty");
        }
    }

    // Node id.
    if let Some(id) = cluster.node_id.as_deref()
        && !c.broken("cluster.nodeId")
    {
        if id.is_empty() || id.chars().count() > 128 {
            c.error(
                "cluster.nodeId",
                format!("{id:?} must be 1 to 128 characters"),
            );
        } else if id.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            c.error(
                "cluster.nodeId",
                format!("{id:?} must not contain whitespace or control characters"),
            );
        }
    }

    // Coordination backend.
    let coordination = cluster.coordination.trim();
    if !c.broken("cluster.coordination") && !coordination.eq_ignore_ascii_case("redis") {
        if cluster_mode {
            c.error(
                "cluster.coordination",
                format!("{coordination:?} is not supported; cluster mode needs redis"),
            );
        } else {
            c.warn(
                "cluster.coordination",
                format!(
                    "{coordination:?} is not supported; only redis is (unused in single-node mode)"
                ),
            );
        }
    }

    // JWT secret.
    let jwt = &config.jwt;
    if !c.broken("jwt.secret") {
        let chars = jwt.secret.char_count();
        if jwt.secret.expose().trim().is_empty() {
            c.error("jwt.secret", "must not be empty");
        } else if jwt.is_default_secret() {
            if cluster_mode {
                c.error(
                    "jwt.secret",
                    "the default secret is refused in cluster mode; set a random secret of at least 16 characters",
                );
            } else {
                c.warn(
                    "jwt.secret",
                    "the default secret is in use; set a random secret before production",
                );
            }
        } else if chars < MIN_CLUSTER_JWT_SECRET_CHARS {
            let message = format!(
                "a secret of {chars} characters is too short; use at least {MIN_CLUSTER_JWT_SECRET_CHARS}"
            );
            if cluster_mode {
                c.error("jwt.secret", message);
            } else {
                c.warn("jwt.secret", message);
            }
        }
    }

    if !cluster_mode {
        return;
    }

    // Cluster mode: PostgreSQL and a reachable Redis.
    if !c.broken("database.default.link") && config.database.default.link.is_sqlite() {
        c.error(
            "database.default.link",
            "sqlite supports single-node mode only; cluster mode (cluster.enabled: true) needs a pgsql link",
        );
    }
    let redis = &cluster.redis;
    if !redis.cluster_nodes.is_empty() && !c.broken("cluster.redis.clusterNodes") {
        if redis.sentinel.is_some() {
            c.error(
                "cluster.redis.clusterNodes",
                "cannot be combined with cluster.redis.sentinel; choose one connection mode",
            );
        }
        for (i, addr) in redis.cluster_nodes.iter().enumerate() {
            if !is_host_port(addr) {
                c.error(
                    &format!("cluster.redis.clusterNodes[{i}]"),
                    format!("{addr:?} is not host:port"),
                );
            }
        }
    }
    match &redis.sentinel {
        Some(sentinel) if !c.broken("cluster.redis.sentinel") => {
            if sentinel.service_name.trim().is_empty() {
                c.error("cluster.redis.sentinel.serviceName", "must not be empty");
            }
            if sentinel.addresses.is_empty() {
                c.error(
                    "cluster.redis.sentinel.addresses",
                    "must list at least one sentinel host:port",
                );
            }
            for (i, addr) in sentinel.addresses.iter().enumerate() {
                if !is_host_port(addr) {
                    c.error(
                        &format!("cluster.redis.sentinel.addresses[{i}]"),
                        format!("{addr:?} is not host:port"),
                    );
                }
            }
        }
        Some(_) => {}
        None if c.broken("cluster.redis.address") || !redis.cluster_nodes.is_empty() => {}
        None => {
            if redis.address.trim().is_empty() {
                c.error(
                    "cluster.redis.address",
                    "must not be empty in cluster mode unless cluster.redis.sentinel is set",
                );
            } else if !is_host_port(&redis.address) {
                c.error(
                    "cluster.redis.address",
                    format!("{:?} is not host:port", redis.address),
                );
            }
        }
    }
    if !c.broken("cluster.redis.namespace")
        && (redis.namespace.is_empty()
            || redis
                .namespace
                .chars()
                .any(|ch| ch.is_whitespace() || ch == '{' || ch == '}'))
    {
        c.error(
            "cluster.redis.namespace",
            format!(
                "{:?} must be non-empty without whitespace or braces",
                redis.namespace
            ),
        );
    }
    for (path, value) in [
        ("cluster.redis.connectTimeout", redis.connect_timeout),
        ("cluster.redis.readTimeout", redis.read_timeout),
        ("cluster.redis.writeTimeout", redis.write_timeout),
    ] {
        c.positive(path, value);
    }
}

/// `host:port` or `[v6]:port` with a non-empty host and a numeric port.
fn is_host_port(text: &str) -> bool {
    let text = text.trim();
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner.ends_with(']') && inner.len() > 1
    } else {
        !host.is_empty() && !host.contains(':')
    };
    host_ok && port.parse::<u16>().is_ok()
}
