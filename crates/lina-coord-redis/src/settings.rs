//! Connection settings, from `cluster.redis` of the configuration or built
//! directly (tests, tools).

use std::time::Duration;

use fred::prelude::{Config, Server, ServerConfig};
use fred::types::config::{TlsConfig, TlsConnector};
use lina_config::RedisConfig;
use lina_coord_api::{ElectionConfig, Error, Result};

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server.
    Standalone {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A master found through Sentinel.
    Sentinel {
        /// The master's service name.
        service_name: String,
        /// Sentinel `(host, port)` list.
        sentinels: Vec<(String, u16)>,
    },
    /// A Redis Cluster, from seed nodes.
    Cluster {
        /// Seed `(host, port)` list.
        nodes: Vec<(String, u16)>,
    },
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of CA certificates to trust instead of the system roots.
    pub ca_file: Option<String>,
}

/// Everything the Redis backend needs to run.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Where Redis is.
    pub topology: Topology,
    /// ACL user name.
    pub username: Option<String>,
    /// Password (of the user, or of `default`).
    pub password: Option<String>,
    /// Sentinel ACL user, when the sentinels need their own.
    pub sentinel_username: Option<String>,
    /// Sentinel password, when the sentinels need their own.
    pub sentinel_password: Option<String>,
    /// Logical database (standalone and Sentinel only).
    pub database: u8,
    /// TLS, when on.
    pub tls: Option<Tls>,
    /// Prefix of every key and channel; used as the hash tag `{namespace}`.
    pub namespace: String,
    /// Timeout of a TCP (and TLS) connect.
    pub connect_timeout: Duration,
    /// Timeout of one command.
    pub command_timeout: Duration,
    /// Lease timing.
    pub election: ElectionConfig,
    /// Membership heartbeat period.
    pub heartbeat: Duration,
    /// Members not seen for this long are not listed.
    pub member_ttl: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("namespace", &self.namespace)
            .field("election", &self.election)
            .finish_non_exhaustive()
    }
}

fn host_port(what: &str, addr: &str) -> Result<(String, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| Error::invalid(format!("{what} {addr:?} is not host:port")))?;
    let port = port
        .parse()
        .map_err(|_| Error::invalid(format!("{what} {addr:?} has no valid port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port))
}

impl RedisSettings {
    /// Settings for a standalone server with default timings: command
    /// timeout 2 s, lease 30 s renewed every 10 s.
    pub fn standalone(host: &str, port: u16, namespace: &str) -> Self {
        RedisSettings {
            topology: Topology::Standalone {
                host: host.to_string(),
                port,
            },
            username: None,
            password: None,
            sentinel_username: None,
            sentinel_password: None,
            database: 0,
            tls: None,
            namespace: namespace.to_string(),
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(2),
            election: ElectionConfig::new(Duration::from_secs(30), Duration::from_secs(10))
                .expect("default lease is valid"),
            heartbeat: Duration::from_secs(5),
            member_ttl: Duration::from_secs(15),
        }
    }

    /// Settings from a `redis://[user:password@]host:port[/db]` URL.
    pub fn from_url(url: &str, namespace: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| Error::invalid(format!("redis url {url:?} must start with redis://")))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (addr, db) = match rest.split_once('/') {
            Some((addr, db)) if !db.is_empty() => (
                addr,
                db.parse()
                    .map_err(|_| Error::invalid(format!("redis url {url:?} has a bad database")))?,
            ),
            Some((addr, _)) => (addr, 0),
            None => (rest, 0),
        };
        let (host, port) = host_port("redis address", addr)?;
        let mut settings = RedisSettings::standalone(&host, port, namespace);
        settings.database = db;
        if let Some(auth) = auth {
            match auth.split_once(':') {
                Some((user, password)) => {
                    settings.username = Some(user.to_string()).filter(|u| !u.is_empty());
                    settings.password = Some(password.to_string());
                }
                None => settings.password = Some(auth.to_string()),
            }
        }
        Ok(settings)
    }

    /// Settings from `cluster.redis` and `cluster.election` of the configuration.
    pub fn from_config(
        redis: &RedisConfig,
        election: &lina_config::ElectionConfig,
    ) -> Result<Self> {
        let topology = if let Some(sentinel) = &redis.sentinel {
            Topology::Sentinel {
                service_name: sentinel.service_name.clone(),
                sentinels: sentinel
                    .addresses
                    .iter()
                    .map(|a| host_port("sentinel address", a))
                    .collect::<Result<_>>()?,
            }
        } else if !redis.cluster_nodes.is_empty() {
            Topology::Cluster {
                nodes: redis
                    .cluster_nodes
                    .iter()
                    .map(|a| host_port("cluster node", a))
                    .collect::<Result<_>>()?,
            }
        } else {
            let (host, port) = host_port("redis address", &redis.address)?;
            Topology::Standalone { host, port }
        };
        if redis.tls.cert_file.is_some() || redis.tls.key_file.is_some() {
            return Err(Error::invalid(
                "cluster.redis.tls certFile/keyFile (mutual TLS) is not supported; use a password or an ACL user",
            ));
        }
        if redis.tls.insecure_skip_verify {
            return Err(Error::invalid(
                "cluster.redis.tls.insecureSkipVerify is not supported; give the CA in caFile instead",
            ));
        }
        let election = ElectionConfig::new(election.lease, election.renew_interval)?;
        let heartbeat = (election.renew_interval / 2).max(Duration::from_millis(100));
        Ok(RedisSettings {
            topology,
            username: redis.username.clone().filter(|u| !u.is_empty()),
            password: Some(redis.password.expose().to_string()).filter(|p| !p.is_empty()),
            sentinel_username: redis
                .sentinel
                .as_ref()
                .and_then(|s| s.username.clone())
                .filter(|u| !u.is_empty()),
            sentinel_password: redis
                .sentinel
                .as_ref()
                .map(|s| s.password.expose().to_string())
                .filter(|p| !p.is_empty()),
            database: u8::try_from(redis.db)
                .map_err(|_| Error::invalid(format!("redis db {} is out of range", redis.db)))?,
            tls: redis.tls.enabled.then(|| Tls {
                ca_file: redis.tls.ca_file.clone(),
            }),
            namespace: redis.namespace.clone(),
            connect_timeout: redis.connect_timeout,
            command_timeout: redis.read_timeout.max(redis.write_timeout),
            election,
            heartbeat,
            member_ttl: heartbeat * 3,
        })
    }

    /// The fred client configuration.
    pub(crate) fn fred_config(&self) -> Result<Config> {
        let server = match &self.topology {
            Topology::Standalone { host, port } => ServerConfig::new_centralized(host, *port),
            Topology::Sentinel {
                service_name,
                sentinels,
            } => ServerConfig::Sentinel {
                hosts: sentinels
                    .iter()
                    .map(|(h, p)| Server::new(h.as_str(), *p))
                    .collect(),
                service_name: service_name.clone(),
                username: self.sentinel_username.clone(),
                password: self.sentinel_password.clone(),
            },
            Topology::Cluster { nodes } => ServerConfig::new_clustered(
                nodes
                    .iter()
                    .map(|(h, p)| (h.as_str(), *p))
                    .collect::<Vec<_>>(),
            ),
        };
        let tls = match &self.tls {
            None => None,
            Some(tls) => Some(tls_config(tls)?),
        };
        Ok(Config {
            server,
            username: self.username.clone(),
            password: self.password.clone(),
            database: match self.topology {
                Topology::Cluster { .. } => None,
                _ => Some(self.database),
            },
            tls,
            ..Config::default()
        })
    }
}

fn tls_config(tls: &Tls) -> Result<TlsConfig> {
    let connector = match &tls.ca_file {
        None => TlsConnector::default_rustls().map_err(|e| {
            Error::Backend(format!("cannot load the system root certificates: {e}"))
        })?,
        Some(path) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::invalid(format!("cannot read tls caFile {path}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    Error::invalid(format!("bad certificate in tls caFile {path}: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::invalid(format!("bad certificate in tls caFile {path}: {e}"))
                })?;
            }
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            TlsConnector::from(config)
        }
    };
    Ok(connector.into())
}
