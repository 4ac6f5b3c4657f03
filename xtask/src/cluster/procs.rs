//! Children of the supervisor: spawned in their own process group (so a
//! Ctrl-C in the terminal reaches only the supervisor, which then stops them
//! in order) and, where util-linux's `setpriv` exists, with a parent-death
//! signal (so they do not outlive a supervisor that was SIGKILLed).

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `program` found in `PATH` (or in `extra` directories).
pub fn find_binary(program: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A command for `program` in a process group of its own, delivered
/// `pdeathsig` (e.g. `TERM`) when the spawning thread exits, if `setpriv`
/// is installed. The caller adds arguments, environment and stdio.
pub fn isolated(program: &Path, pdeathsig: &str) -> Command {
    let mut cmd = match find_binary("setpriv", &["/usr/bin", "/bin"]) {
        Some(setpriv) => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", pdeathsig, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.process_group(0).stdin(Stdio::null());
    cmd
}

/// `exit status 1`, `killed by SIGKILL`.
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(signal) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {}", signal.as_str()),
            Err(_) => format!("killed by signal {signal}"),
        },
        None => status.to_string(),
    }
}

/// The last `lines` lines of a text file (empty if unreadable), indented.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a process with this pid exists.
pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

/// Sends `signal` to `pid`, ignoring a process that is gone.
pub fn signal(pid: u32, signal: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), signal);
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Whether nothing listens on 127.0.0.1:`port` (we can bind it).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok()
}

/// Whether a Redis answers PING on 127.0.0.1:`port` within `limit`.
pub async fn redis_pong(port: u16, limit: Duration) -> bool {
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        conn.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
    };
    matches!(tokio::time::timeout(limit, attempt).await, Ok(Ok(true)))
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename {}", tmp.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(describe_exit(ExitStatus::from_raw(1 << 8)), "exit status 1");
        assert_eq!(describe_exit(ExitStatus::from_raw(9)), "killed by SIGKILL");
        assert_eq!(describe_exit(ExitStatus::from_raw(15)), "killed by SIGTERM");
    }

    #[test]
    fn log_tails_keep_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&path, 2), "    | b\n    | c");
        assert_eq!(log_tail(&dir.path().join("missing"), 2), "");
    }

    #[test]
    fn isolated_children_get_their_own_process_group() {
        let mut cmd = isolated(Path::new("/bin/sleep"), "TERM");
        cmd.arg("5");
        let mut child = crate::process::ChildGuard::spawn(&mut cmd).unwrap();
        let pid = child.id();
        // /proc/PID/stat: "pid (comm) state ppid pgrp …"; comm may be
        // `setpriv` for a moment before it execs sleep.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 1..];
        let pgrp: i32 = after_comm
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(pgrp, pid as i32, "the child leads its own group");
        assert_ne!(pgrp, nix::unistd::getpgrp().as_raw());
        child.signal(Signal::SIGKILL);
        assert!(child.try_wait().is_ok());
    }
}
