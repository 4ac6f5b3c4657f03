//! Temporary SQLite databases.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::error::{Error, Result};

/// A SQLite database file in a temporary directory, removed on drop.
///
/// ```
/// let db = lina_testkit::temp_sqlite()?;
/// assert!(db.url().starts_with("sqlite://"));
/// assert!(db.url().ends_with("?mode=rwc"));
/// # Ok::<(), lina_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct TempSqlite {
    dir: TempDir,
    path: PathBuf,
    url: String,
}

impl TempSqlite {
    /// `sqlite://<path>?mode=rwc` (the file is created on first connect).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database file (it may not exist yet).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary directory holding the file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Creates a temporary directory and the URL of a SQLite database in it.
pub fn temp_sqlite() -> Result<TempSqlite> {
    let dir = tempfile::Builder::new()
        .prefix("lina-sqlite-")
        .tempdir()
        .map_err(|e| Error::io("create temp dir for sqlite", e))?;
    let path = dir.path().join("lina.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    Ok(TempSqlite { dir, path, url })
}
