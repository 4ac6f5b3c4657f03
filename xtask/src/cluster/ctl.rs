//! The control channel of a running `run-cluster`: `cargo xtask run-cluster
//! ctl <action>` writes one line to the supervisor's unix socket
//! (`target/run-cluster/ctl.sock`) and prints the lines it answers. An answer
//! whose first line starts with `error: ` makes the command fail.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

/// What `ctl` asks of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Request {
    /// SIGKILL a node (a crash: its lease runs out before another node leads).
    Kill {
        /// `node-2` or `2`.
        node: String,
    },
    /// SIGTERM a node (a clean stop: it hands leadership over at once).
    Stop {
        /// `node-2` or `2`.
        node: String,
    },
    /// SIGSTOP a node (a stall: it keeps its connections but answers nothing).
    Pause {
        /// `node-2` or `2`.
        node: String,
    },
    /// SIGCONT a paused node.
    Resume {
        /// `node-2` or `2`.
        node: String,
    },
    /// Stop a node cleanly if it runs (SIGKILL after the grace period), then
    /// start it again; starts a node that has exited.
    Restart {
        /// `node-2` or `2`.
        node: String,
    },
    /// Kill the private redis-server and start an empty one on the same port
    /// (refused when the cluster uses a Redis run-cluster did not start).
    RestartRedis,
    /// SIGSTOP the private redis-server.
    PauseRedis,
    /// SIGCONT the private redis-server.
    ResumeRedis,
    /// Every process, its pid, state and last seen role.
    Status,
}

impl Request {
    /// The line sent on the socket.
    pub fn to_line(&self) -> String {
        match self {
            Request::Kill { node } => format!("kill {node}"),
            Request::Stop { node } => format!("stop {node}"),
            Request::Pause { node } => format!("pause {node}"),
            Request::Resume { node } => format!("resume {node}"),
            Request::Restart { node } => format!("restart {node}"),
            Request::RestartRedis => "restart-redis".into(),
            Request::PauseRedis => "pause-redis".into(),
            Request::ResumeRedis => "resume-redis".into(),
            Request::Status => "status".into(),
        }
    }

    /// Parses a line of the socket protocol.
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let node = |w: &[&str]| match w {
            [node] => Ok(node.to_string()),
            _ => Err(format!("{:?} needs one node, e.g. node-2", words[0])),
        };
        match words.as_slice() {
            ["kill", rest @ ..] => Ok(Request::Kill { node: node(rest)? }),
            ["stop", rest @ ..] => Ok(Request::Stop { node: node(rest)? }),
            ["pause", rest @ ..] => Ok(Request::Pause { node: node(rest)? }),
            ["resume", rest @ ..] => Ok(Request::Resume { node: node(rest)? }),
            ["restart", rest @ ..] => Ok(Request::Restart { node: node(rest)? }),
            ["restart-redis"] => Ok(Request::RestartRedis),
            ["pause-redis"] => Ok(Request::PauseRedis),
            ["resume-redis"] => Ok(Request::ResumeRedis),
            ["status"] => Ok(Request::Status),
            [] => Err("empty request".into()),
            _ => Err(format!(
                "unknown request {line:?}; use kill|stop|pause|resume|restart <node>, \
                 restart-redis, pause-redis, resume-redis or status"
            )),
        }
    }
}

/// The 1-based index of `node` (`node-2` or `2`) among `count` nodes.
pub fn node_index(node: &str, count: usize) -> Result<usize, String> {
    let number = node.strip_prefix("node-").unwrap_or(node);
    match number.parse::<usize>() {
        Ok(k) if (1..=count).contains(&k) => Ok(k),
        _ => Err(format!(
            "no node {node:?}: the cluster has node-1 … node-{count}"
        )),
    }
}

/// How long `ctl` waits for the answer (a restart waits for a clean stop).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// Sends `request` to the supervisor listening on `socket`, prints its
/// answer, and fails when the answer is an error.
pub fn send(socket: &Path, request: &Request) -> Result<()> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            bail!(
                "no run-cluster is running (nothing listens on {}): start one with \
                 `cargo xtask run-cluster`",
                socket.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("connect to {}", socket.display())),
    };
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    writeln!(stream, "{}", request.to_line()).context("send the request")?;
    let mut failed = false;
    for (i, line) in BufReader::new(stream).lines().enumerate() {
        let line = line.context("read the supervisor's answer")?;
        if i == 0 && line.starts_with("error: ") {
            failed = true;
        }
        println!("{line}");
    }
    if failed {
        bail!("the supervisor refused `{}`", request.to_line());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_line() {
        let all = [
            Request::Kill {
                node: "node-2".into(),
            },
            Request::Stop { node: "3".into() },
            Request::Pause {
                node: "node-1".into(),
            },
            Request::Resume {
                node: "node-1".into(),
            },
            Request::Restart {
                node: "node-3".into(),
            },
            Request::RestartRedis,
            Request::PauseRedis,
            Request::ResumeRedis,
            Request::Status,
        ];
        for request in all {
            assert_eq!(Request::parse(&request.to_line()), Ok(request));
        }
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        assert!(Request::parse("").is_err());
        assert!(
            Request::parse("kill")
                .unwrap_err()
                .contains("needs one node")
        );
        assert!(Request::parse("kill node-1 node-2").is_err());
        assert!(
            Request::parse("flush")
                .unwrap_err()
                .contains("unknown request")
        );
        assert!(Request::parse("restart-redis now").is_err());
    }

    #[test]
    fn nodes_are_named_or_numbered() {
        assert_eq!(node_index("node-2", 3), Ok(2));
        assert_eq!(node_index("3", 3), Ok(3));
        assert!(node_index("node-4", 3).is_err());
        assert!(node_index("node-0", 3).is_err());
        assert!(node_index("leader", 3).is_err());
    }

    #[test]
    fn sending_without_a_supervisor_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = send(&dir.path().join("ctl.sock"), &Request::Status).unwrap_err();
        assert!(
            err.to_string().contains("no run-cluster is running"),
            "{err}"
        );
    }
}
