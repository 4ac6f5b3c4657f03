//! [`Problem`] and [`ConfigError`].

use std::fmt;
use std::path::PathBuf;

/// One configuration problem (an error or a warning) at a key path such as
/// `cluster.election.renewInterval` or `i18n.locales[1].locale`.
///
/// `Display` is `path: message`, e.g.
/// `cluster.election.renewInterval: 40s must be below cluster.election.lease 30s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Full key path, LinaPro spelling; empty for the document as a whole.
    pub path: String,
    /// What is wrong: lowercase, names the value, no trailing period.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn render_invalid(problems: &[Problem], warnings: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!(
        "invalid configuration, {n} problem{}:",
        if n == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str(&format!("\n  {problem}"));
    }
    for warning in warnings {
        out.push_str(&format!("\n  warning: {warning}"));
    }
    out
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error("config file {} does not exist", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML, or not a mapping at the top.
    #[error("cannot parse config file {origin}: {message}")]
    Parse {
        /// The file name (or `<string>` for inline YAML).
        origin: String,
        /// What the YAML parser said, with line and column.
        message: String,
    },
    /// The layers could not be merged (should not happen).
    #[error("cannot merge configuration layers: {0}")]
    Merge(#[source] Box<figment::Error>),
    /// The configuration is invalid. `Display` lists every problem, one per
    /// line with its key path, then the warnings.
    #[error("{}", render_invalid(problems, warnings))]
    Invalid {
        /// Every problem found, each with its key path.
        problems: Vec<Problem>,
        /// Warnings found on the way (unknown keys and the like), which may
        /// explain a problem: a misspelt key leaves its default in place.
        warnings: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems, when the configuration is [`ConfigError::Invalid`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }

    /// Whether trying again without changing anything could succeed: only for
    /// transient I/O errors while reading the file.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConfigError::Read { source, .. }
                if matches!(source.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        )
    }
}

/// `Result` with [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
