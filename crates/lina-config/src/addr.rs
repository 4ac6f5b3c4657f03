//! `server.address`: a listen address in GoFrame form.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A listen address as written in the config (`:9120`, `0.0.0.0:9120`,
/// `127.0.0.1:9120`, `[::]:9120`, `localhost:9120`) together with the socket
/// address it means. An empty host (`:9120`) means every IPv4 interface;
/// `localhost` means `127.0.0.1`. Other host names are refused: no DNS look-up
/// happens while loading configuration.
///
/// ```
/// use lina_config::ListenAddr;
///
/// let addr: ListenAddr = ":9120".parse().unwrap();
/// assert_eq!(addr.socket_addr().to_string(), "0.0.0.0:9120");
/// assert_eq!(addr.to_string(), ":9120");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    text: String,
    addr: SocketAddr,
}

impl ListenAddr {
    /// The socket address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Why a listen address was refused; `Display` is the problem message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a listen address; use [host]:port such as :9120, 0.0.0.0:9120, [::]:9120 or localhost:9120"
)]
pub struct AddrError(String);

impl FromStr for ListenAddr {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<Self, AddrError> {
        let bad = || AddrError(text.to_owned());
        let trimmed = text.trim();
        let addr = if let Ok(addr) = SocketAddr::from_str(trimmed) {
            addr
        } else {
            let (host, port) = trimmed.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let ip = match host {
                "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                h if h.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
                _ => return Err(bad()),
            };
            SocketAddr::new(ip, port)
        };
        Ok(ListenAddr {
            text: trimmed.to_owned(),
            addr,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
