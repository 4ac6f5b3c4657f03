//! Log output from `logger.*`: text for people, JSON for production.

use lina_config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `logger.level` applies to Lina's own
/// crates; dependencies log at most at `info`. `RUST_LOG` overrides both.
pub(crate) fn init(config: &Config) {
    // An unknown level is warned about at load; log at `info` rather than not at all.
    let level = config.logger.tracing_level().unwrap_or("info");
    let dependencies = match level {
        "trace" | "debug" => "info",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{dependencies},lina={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.logger.effective_format() {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}
