//! Dynamic plugin packages in `plugin.dynamic.storagePath`: one directory
//! per plugin, named after its id, holding
//!
//! ```text
//! {storagePath}/{id}/plugin.json       manifest: id, name, version, description, menus
//! {storagePath}/{id}/frontend/…        frontend assets, served at /x/{id}/assets/…
//! {storagePath}/{id}/plugin.wasm       optional module, served at /x/{id}/wasm
//! ```
//!
//! A package is read whole (at most [`MAX_FILES`] files and [`MAX_BYTES`]
//! bytes) when it is installed or upgraded, and its files are copied into
//! the database, so nodes need no shared disk and a package replaced on disk
//! never changes the installed version under a running cluster.

use std::path::{Component, Path};

use super::PluginManifest;

/// Manifest file name.
pub const MANIFEST: &str = "plugin.json";
/// Stored path of the wasm module.
pub const WASM_PATH: &str = "plugin.wasm";
/// Most files in one package.
pub const MAX_FILES: usize = 2000;
/// Most bytes in one package.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A package read from disk.
#[derive(Debug, Clone)]
pub struct Package {
    /// The manifest.
    pub manifest: PluginManifest,
    /// `(stored path, bytes)`: `plugin.json`, `plugin.wasm`, `frontend/…`.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Reads the manifest of every package directory; a broken package is an
/// `Err` naming it (the others still count).
pub fn scan(storage: &Path) -> Vec<Result<Package, String>> {
    let Ok(entries) = std::fs::read_dir(storage) else {
        return Vec::new();
    };
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(MANIFEST).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|dir| {
            read_manifest(storage, dir).map(|manifest| Package {
                manifest,
                files: Vec::new(),
            })
        })
        .collect()
}

fn read_manifest(storage: &Path, dir: &str) -> Result<PluginManifest, String> {
    let path = storage.join(dir).join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let manifest: PluginManifest = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid manifest: {e}", path.display()))?;
    manifest
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if manifest.id != dir {
        return Err(format!(
            "{}: the manifest id {:?} must equal the directory name",
            path.display(),
            manifest.id
        ));
    }
    Ok(manifest)
}

impl Package {
    /// Reads package `id` with all its files.
    pub fn read(storage: &Path, id: &str) -> Result<Package, String> {
        super::check_id(id)?;
        let manifest = read_manifest(storage, id)?;
        let root = storage.join(id);
        let mut files = vec![(
            MANIFEST.to_string(),
            std::fs::read(root.join(MANIFEST)).map_err(|e| e.to_string())?,
        )];
        let mut total = files[0].1.len() as u64;
        let wasm = root.join(WASM_PATH);
        if wasm.is_file() {
            let bytes = std::fs::read(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
            total += bytes.len() as u64;
            files.push((WASM_PATH.to_string(), bytes));
        }
        let frontend = root.join("frontend");
        let mut stack = vec![frontend.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| e.to_string())?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let rel = path
                        .strip_prefix(&frontend)
                        .map_err(|e| e.to_string())?
                        .components()
                        .map(|c| match c {
                            Component::Normal(s) => Ok(s.to_string_lossy().into_owned()),
                            _ => Err(format!("{}: unexpected path", path.display())),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join("/");
                    if rel.len() > 240 {
                        return Err(format!("{}: path too long", path.display()));
                    }
                    let bytes =
                        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    total += bytes.len() as u64;
                    files.push((format!("frontend/{rel}"), bytes));
                }
                if files.len() > MAX_FILES || total > MAX_BYTES {
                    return Err(format!(
                        "package {id} exceeds {MAX_FILES} files or {MAX_BYTES} bytes"
                    ));
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Package { manifest, files })
    }
}

/// The content type of an asset, by extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, id: &str, version: &str) {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("frontend/js")).unwrap();
        std::fs::write(
            dir.join(MANIFEST),
            format!(r#"{{"id":"{id}","name":"N","version":"{version}"}}"#),
        )
        .unwrap();
        std::fs::write(dir.join("frontend/index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("frontend/js/app.js"), "1").unwrap();
        std::fs::write(dir.join(WASM_PATH), b"\0asm").unwrap();
    }

    #[test]
    fn packages_are_read_whole_and_broken_ones_named() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "alpha", "1.0.0");
        write(tmp.path(), "beta", "2.0.0");
        std::fs::create_dir_all(tmp.path().join("gamma")).unwrap();
        std::fs::write(tmp.path().join("gamma").join(MANIFEST), "{not json").unwrap();
        std::fs::create_dir_all(tmp.path().join("other")).unwrap();
        std::fs::write(
            tmp.path().join("other").join(MANIFEST),
            r#"{"id":"delta","name":"N","version":"1.0.0"}"#,
        )
        .unwrap();
        let found = scan(tmp.path());
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].as_ref().unwrap().manifest.id, "alpha");
        assert_eq!(found[1].as_ref().unwrap().manifest.version, "2.0.0");
        assert!(found[2].as_ref().unwrap_err().contains("invalid manifest"));
        assert!(found[3].as_ref().unwrap_err().contains("directory name"));

        let pkg = Package::read(tmp.path(), "alpha").unwrap();
        let paths: Vec<&str> = pkg.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "frontend/index.html",
                "frontend/js/app.js",
                "plugin.json",
                "plugin.wasm"
            ]
        );
        assert!(Package::read(tmp.path(), "../alpha").is_err());
        assert!(scan(&tmp.path().join("missing")).is_empty());
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("a/b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x.wasm"), "application/wasm");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
