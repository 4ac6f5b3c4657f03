//! The load balancer of the rolling restart: which nodes are in rotation,
//! and either a private `nginx` whose upstream block follows the rotation
//! (reloaded with SIGHUP, `proxy_next_upstream error timeout` retrying once)
//! or, without nginx, the same behaviour inside the load generator.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process::ChildGuard;

/// Which nodes take new requests, and a round-robin cursor.
#[derive(Debug)]
pub struct Rotation {
    members: Vec<AtomicBool>,
    next: AtomicUsize,
}

impl Rotation {
    /// `n` nodes, all in rotation.
    pub fn new(n: usize) -> Rotation {
        Rotation {
            members: (0..n).map(|_| AtomicBool::new(true)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Takes node `i` out: no new request goes to it.
    pub fn remove(&self, i: usize) {
        self.members[i].store(false, Ordering::SeqCst);
    }

    /// Puts node `i` back.
    pub fn add(&self, i: usize) {
        self.members[i].store(true, Ordering::SeqCst);
    }

    /// Whether node `i` is in rotation.
    pub fn contains(&self, i: usize) -> bool {
        self.members[i].load(Ordering::SeqCst)
    }

    /// Every node with whether it is in rotation.
    pub fn states(&self) -> Vec<bool> {
        (0..self.members.len()).map(|i| self.contains(i)).collect()
    }

    /// The next node in rotation (round robin), other than `avoid`; `None`
    /// when there is none.
    pub fn pick(&self, avoid: Option<usize>) -> Option<usize> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| Some(i) != avoid && self.contains(i))
    }
}

/// Where nginx might be installed.
pub fn find_nginx() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// The configuration of the private nginx: one upstream per node (`down`
/// when out of rotation), GETs retried once on another node when the
/// connection fails or times out (`proxy_next_upstream error timeout`,
/// `proxy_next_upstream_tries 2`), never on an HTTP status.
pub fn nginx_conf(dir: &Path, listen: u16, upstreams: &[(u16, bool)]) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|(port, up)| {
            format!(
                "        server 127.0.0.1:{port}{};\n",
                if *up { "" } else { " down" }
            )
        })
        .collect();
    format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log notice;\n\
         events {{\n    worker_connections 1024;\n}}\n\
         http {{\n\
         \x20   log_format chaos '$msec $status $request_time \"$request\" upstream=$upstream_addr $upstream_status';\n\
         \x20   access_log {d}/access.log chaos;\n\
         \x20   client_body_temp_path {d}/tmp/body;\n\
         \x20   proxy_temp_path {d}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {d}/tmp/scgi;\n\
         \x20   upstream lina {{\n{servers}    }}\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{listen};\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://lina;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20           proxy_next_upstream error timeout;\n\
         \x20           proxy_next_upstream_tries 2;\n\
         \x20           proxy_connect_timeout 1s;\n\
         \x20           proxy_read_timeout 10s;\n\
         \x20           proxy_buffer_size 64k;\n\
         \x20           proxy_buffers 16 64k;\n\
         \x20           proxy_max_temp_file_size 0;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n"
    )
}

/// A private nginx in front of the nodes, stopped on drop.
pub struct Nginx {
    child: ChildGuard,
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    upstreams: Vec<u16>,
}

impl Nginx {
    /// Starts `binary` on a free port with every upstream in rotation and
    /// waits until it answers `/health` through a node.
    pub async fn start(binary: &Path, dir: &Path, upstreams: Vec<u16>) -> Result<Nginx> {
        std::fs::create_dir_all(dir.join("tmp"))
            .with_context(|| format!("create {}", dir.display()))?;
        let port = lina_testkit::free_port();
        let conf = dir.join("nginx.conf");
        let all: Vec<(u16, bool)> = upstreams.iter().map(|p| (*p, true)).collect();
        std::fs::write(&conf, nginx_conf(dir, port, &all)).context("write nginx.conf")?;
        let mut cmd = Command::new(binary);
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/health");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "nginx exited at start ({status}): {}",
                    super::util::tail(&dir.join("error.log"), 800)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx on port {port} did not answer /health within 10 s: {}",
                    super::util::tail(&dir.join("error.log"), 800)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Nginx {
            child,
            dir: dir.to_path_buf(),
            conf,
            port,
            upstreams,
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Rewrites the upstream block from `rotation` and reloads (SIGHUP);
    /// returns once new workers have started (so the old ones take no new
    /// connections).
    pub async fn apply(&self, rotation: &Rotation) -> Result<()> {
        let upstreams: Vec<(u16, bool)> = self
            .upstreams
            .iter()
            .zip(rotation.states())
            .map(|(p, up)| (*p, up))
            .collect();
        std::fs::write(&self.conf, nginx_conf(&self.dir, self.port, &upstreams))
            .context("write nginx.conf")?;
        let log = self.dir.join("error.log");
        let starts = |text: &str| text.matches("start worker process").count();
        let before = starts(&std::fs::read_to_string(&log).unwrap_or_default());
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGHUP).context("SIGHUP nginx")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if starts(&text) > before {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not reload within 5 s: {}",
                    super::util::tail(&log, 800)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_go_round_robin_over_nodes_in_rotation() {
        let r = Rotation::new(3);
        let picks: Vec<_> = (0..6).map(|_| r.pick(None).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        r.remove(1);
        assert!(!r.contains(1));
        let picks: Vec<_> = (0..6).map(|_| r.pick(None).unwrap()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&2));
        r.add(1);
        assert_eq!(r.states(), vec![true, true, true]);
        let picks: Vec<_> = (0..3).map(|_| r.pick(None).unwrap()).collect();
        assert!(picks.contains(&1));
    }

    #[test]
    fn a_retry_avoids_the_node_that_failed() {
        let r = Rotation::new(3);
        for _ in 0..10 {
            let first = r.pick(None).unwrap();
            let retry = r.pick(Some(first)).unwrap();
            assert_ne!(first, retry);
        }
        r.remove(0);
        r.remove(2);
        // Only node 1 is left: a retry after node 1 failed has nowhere to go.
        assert_eq!(r.pick(None), Some(1));
        assert_eq!(r.pick(Some(1)), None);
        r.remove(1);
        assert_eq!(r.pick(None), None);
        assert_eq!(Rotation::new(0).pick(None), None);
    }

    #[test]
    fn the_nginx_upstreams_follow_the_rotation() {
        let conf = nginx_conf(
            Path::new("/tmp/x"),
            8080,
            &[(1, true), (2, false), (3, true)],
        );
        assert!(conf.contains("server 127.0.0.1:1;\n"), "{conf}");
        assert!(conf.contains("server 127.0.0.1:2 down;\n"), "{conf}");
        assert!(conf.contains("server 127.0.0.1:3;\n"));
        assert!(conf.contains("listen 127.0.0.1:8080;"));
        assert!(conf.contains("proxy_next_upstream error timeout;"));
        assert!(conf.contains("proxy_next_upstream_tries 2;"));
        assert!(conf.contains("pid /tmp/x/nginx.pid;"));
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
