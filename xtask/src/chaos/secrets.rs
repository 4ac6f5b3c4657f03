//! The log scan of the security scenario: no secret (JWT secret, passwords,
//! tokens and their signatures) in any line of any node log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A secret found in a log line (the secret itself is never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The log file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The secret's label.
    pub what: String,
}

/// What a scan read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Files read.
    pub files: usize,
    /// Lines read.
    pub lines: usize,
    /// Secrets looked for.
    pub secrets: usize,
    /// Every occurrence.
    pub findings: Vec<Finding>,
}

/// The lines of `text` containing any of `secrets` (`(label, secret)`), as
/// `(line number, label)`.
pub fn scan_text(text: &str, secrets: &[(String, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (label, secret) in secrets {
            if !secret.is_empty() && line.contains(secret.as_str()) {
                out.push((n + 1, label.clone()));
            }
        }
    }
    out
}

/// Scans every `*.log` file under `dirs` (recursively).
pub fn scan_logs(dirs: &[PathBuf], secrets: &[(String, String)]) -> Result<Scan> {
    let mut files = Vec::new();
    for dir in dirs {
        collect_logs(dir, &mut files)?;
    }
    files.sort();
    let mut scan = Scan {
        secrets: secrets.len(),
        ..Scan::default()
    };
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        scan.files += 1;
        scan.lines += text.lines().count();
        for (line, what) in scan_text(&text, secrets) {
            scan.findings.push(Finding {
                file: file.clone(),
                line,
                what,
            });
        }
    }
    Ok(scan)
}

fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_logs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_by_line_and_label() {
        let secrets = vec![
            ("JWT secret".to_string(), "s3cr3t-value-123".to_string()),
            ("token of bob".to_string(), "eyJabc.def.ghi".to_string()),
        ];
        let text =
            "start\nconfig jwt=s3cr3t-value-123\nok\nBearer eyJabc.def.ghi and s3cr3t-value-123\n";
        assert_eq!(
            scan_text(text, &secrets),
            vec![
                (2, "JWT secret".to_string()),
                (4, "JWT secret".to_string()),
                (4, "token of bob".to_string())
            ]
        );
        assert!(scan_text("nothing here\n", &secrets).is_empty());
    }

    #[test]
    fn every_log_under_the_directories_is_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.log"), "x\nleak-of-the-secret\n").unwrap();
        std::fs::write(dir.path().join("sub/b.log"), "clean\n").unwrap();
        std::fs::write(dir.path().join("c.txt"), "leak-of-the-secret\n").unwrap();
        let secrets = vec![("pw".to_string(), "leak-of-the-secret".to_string())];
        let scan = scan_logs(&[dir.path().to_path_buf()], &secrets).unwrap();
        assert_eq!(scan.files, 2);
        assert_eq!(scan.lines, 3);
        assert_eq!(scan.findings.len(), 1);
        assert_eq!(scan.findings[0].line, 2);
        assert!(scan.findings[0].file.ends_with("a.log"));
    }
}
