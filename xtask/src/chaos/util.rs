//! Small shared pieces: a clock for one scenario, the secrets a run must
//! never find in a log, paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::process::workspace_root;

/// A scenario's time base: monotonic offsets for measuring, and their
/// Unix-ms equivalents for comparing with database rows.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    t0: Instant,
    unix0_ms: i64,
}

impl Clock {
    /// Starts now.
    pub fn new() -> Clock {
        let unix0_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            t0: Instant::now(),
            unix0_ms,
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The Unix ms of an offset.
    pub fn unix_ms(&self, at: Duration) -> i64 {
        self.unix0_ms + at.as_millis() as i64
    }

    /// Now as Unix ms (from the monotonic clock, so it agrees with offsets).
    pub fn unix_now(&self) -> i64 {
        self.unix_ms(self.now())
    }
}

/// Strings that must never appear in a node's log (the JWT secret,
/// passwords, tokens), each with a label that can be shown instead of it.
/// Shared by everything that creates them.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    inner: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Secrets {
    /// Remembers `secret` as `label` (strings under 8 characters are
    /// ignored: they would match by chance).
    pub fn add(&self, label: &str, secret: &str) {
        if secret.len() >= 8 {
            self.inner
                .lock()
                .expect("secrets")
                .entry(secret.to_string())
                .or_insert_with(|| label.to_string());
        }
    }

    /// Remembers a JWT and, apart, its signature (the part a log line
    /// must not carry even when the rest is cut).
    pub fn add_token(&self, label: &str, token: &str) {
        self.add(label, token);
        if let Some(signature) = token.rsplit('.').next()
            && signature.len() >= 32
        {
            self.add(&format!("{label} signature"), signature);
        }
    }

    /// Every `(label, secret)` so far.
    pub fn all(&self) -> Vec<(String, String)> {
        self.inner
            .lock()
            .expect("secrets")
            .iter()
            .map(|(s, l)| (l.clone(), s.clone()))
            .collect()
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// `path` relative to the workspace root when it is inside it.
pub fn show_path(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The last `max` bytes of a file, for error messages.
pub fn tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).trim().to_string()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A random alphanumeric string.
pub fn random_string(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Milliseconds of a duration, for messages: `1234 ms`.
pub fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Sends one inline command to the Redis on `port` (after `AUTH` when a
/// password is given) and returns the first line of the answer.
pub async fn redis_command(
    port: u16,
    password: Option<&str>,
    command: &str,
) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .context("connect to redis-server timed out")?
    .context("connect to redis-server")?;
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if let Some(password) = password {
        stream
            .get_mut()
            .write_all(format!("AUTH {password}\r\n").as_bytes())
            .await?;
        stream.read_line(&mut line).await?;
        line.clear();
    }
    stream
        .get_mut()
        .write_all(format!("{command}\r\n").as_bytes())
        .await?;
    tokio::time::timeout(Duration::from_secs(2), stream.read_line(&mut line))
        .await
        .context("redis-server did not answer within 2 s")??;
    Ok(line.trim_end().to_string())
}
