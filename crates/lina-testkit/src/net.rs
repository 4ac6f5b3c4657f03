//! Ports, polling and a raw Redis PING.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and releasing it, so another process
/// may take it before you do; servers started by this crate retry on a new
/// port when that happens.
///
/// ```
/// let port = lina_testkit::free_port();
/// assert!(port > 0);
/// ```
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// Polls `f` every `poll` until it returns `true` or `deadline` has passed.
///
/// Returns whether `f` returned `true`. `f` is always called at least once,
/// and once more at the deadline. Use this instead of sleeping for a fixed
/// time and hoping a thing has happened.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// let start = std::time::Instant::now();
/// let ok = lina_testkit::wait_until(Duration::from_secs(2), Duration::from_millis(5), || async move {
///     start.elapsed() > Duration::from_millis(20)
/// })
/// .await;
/// assert!(ok);
/// # }
/// ```
pub async fn wait_until<F, Fut>(deadline: Duration, poll: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        sleep(poll.min(end - now)).await;
    }
}

/// What a server answered to an inline `PING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ping {
    /// `+PONG`: up and no authentication needed.
    Pong,
    /// `-NOAUTH`: up, but a password is required.
    NoAuth,
    /// Connected, but no or another answer within the time limit.
    Other,
    /// The connection was refused or timed out.
    Unreachable,
}

impl Ping {
    /// Whether the server is up (answers, perhaps asking for a password).
    pub(crate) fn is_up(self) -> bool {
        matches!(self, Ping::Pong | Ping::NoAuth)
    }
}

/// Sends `PING\r\n` to `addr` and classifies the answer, all within `limit`.
pub(crate) async fn redis_ping(addr: SocketAddr, limit: Duration) -> Ping {
    let attempt = async {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => return Ping::Unreachable,
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return Ping::Other;
        }
        let mut buf = [0u8; 64];
        let mut len = 0;
        while len < buf.len() {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
            if buf[..len].contains(&b'\n') {
                break;
            }
        }
        let answer = &buf[..len];
        if answer.starts_with(b"+PONG") {
            Ping::Pong
        } else if answer.starts_with(b"-NOAUTH") {
            Ping::NoAuth
        } else {
            Ping::Other
        }
    };
    timeout(limit, attempt).await.unwrap_or(Ping::Unreachable)
}

/// Whether something accepts TCP connections at `addr` within `limit`.
pub(crate) async fn tcp_open(addr: SocketAddr, limit: Duration) -> bool {
    matches!(timeout(limit, TcpStream::connect(addr)).await, Ok(Ok(_)))
}
