//! Small operating-system helpers: binaries, processes, logs, locks.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// Finds `name` in `$PATH`, then in `extra` directories.
pub(crate) fn find_binary(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .chain(extra.iter())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `max` bytes of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            let text = String::from_utf8_lossy(&bytes[start..]).trim().to_string();
            if text.is_empty() {
                format!("(log {} is empty)", path.display())
            } else {
                format!("log {}: …{text}", path.display())
            }
        }
        Err(e) => format!("(no log {}: {e})", path.display()),
    }
}

/// Sends `signal` to `pid`.
pub(crate) fn signal(pid: u32, signal: Signal) -> Result<()> {
    kill(Pid::from_raw(pid as i32), signal).map_err(|source| Error::Signal {
        signal: signal.as_str(),
        pid,
        source,
    })
}

/// The one-letter state of a process from `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, …).
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Whether `pid` names a live (not zombie) process.
pub(crate) fn alive(pid: u32) -> bool {
    !matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

/// Stops a process that is not our child: SIGTERM, wait up to `grace`, then SIGKILL.
pub(crate) fn terminate(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    let _ = signal(pid, Signal::SIGCONT);
    let _ = signal(pid, Signal::SIGTERM);
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = signal(pid, Signal::SIGKILL);
    let end = Instant::now() + Duration::from_secs(2);
    while alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Creates `dir` (and parents) if needed and makes it traversable by other
/// users, so a server running as the `postgres` user can reach its own subdirectory.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("create directory {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod 755 {}", dir.display()), e))
}

/// An exclusive advisory lock on a file, released on drop (when the file closes).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` is ours. Call it off the async runtime.
    pub(crate) fn acquire(path: &Path) -> Result<Self> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("open lock file {}", path.display()), e))?;
        file.lock()
            .map_err(|e| Error::io(format!("lock {}", path.display()), e))?;
        Ok(FileLock { _file: file })
    }

    /// Like [`FileLock::acquire`], on a blocking thread.
    pub(crate) async fn acquire_async(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::acquire(&path))
            .await
            .map_err(|e| Error::io("join lock thread", std::io::Error::other(e)))?
    }
}
