//! Black-box tests of the `lina-server` binary.

mod check_config;
mod cluster;
mod faults;
mod serve;

use std::path::Path;
use std::process::Command;

/// The server binary with no `LINA_*` variable inherited from the caller.
pub fn server(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lina-server"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LINA_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

mod admin;
mod api;
mod harness;
mod i18n;
mod jobs;
mod menus_online;
mod plugins;
