//! A minimal RESP client, so the tests need no Redis client crate.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// One connection speaking RESP2.
pub struct Resp {
    stream: BufReader<TcpStream>,
}

impl Resp {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Resp> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Resp {
            stream: BufReader::new(stream),
        })
    }

    /// Connects to `host:port` of a `redis://` URL.
    pub async fn connect_url(url: &str) -> std::io::Result<Resp> {
        let rest = url.trim_start_matches("redis://");
        let hostport = rest.rsplit('@').next().unwrap_or(rest);
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let addr: SocketAddr = tokio::net::lookup_host(hostport)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        Self::connect(addr).await
    }

    /// Sends a command and returns the reply's first line (for a bulk string: its value,
    /// or `(nil)`), failing after `limit`.
    pub async fn cmd_within(&mut self, limit: Duration, args: &[&str]) -> std::io::Result<String> {
        timeout(limit, self.cmd_inner(args))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply"))?
    }

    /// [`Resp::cmd_within`] with a 5 s limit.
    pub async fn cmd(&mut self, args: &[&str]) -> String {
        self.cmd_within(Duration::from_secs(5), args)
            .await
            .expect("redis reply")
    }

    async fn cmd_inner(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.get_mut().write_all(out.as_bytes()).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let line = line.trim_end().to_string();
        if let Some(len) = line.strip_prefix('$') {
            let len: i64 = len.parse().map_err(std::io::Error::other)?;
            if len < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0u8; len as usize + 2];
            self.stream.read_exact(&mut buf).await?;
            buf.truncate(len as usize);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        Ok(line)
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}
