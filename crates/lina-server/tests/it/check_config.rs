use std::path::PathBuf;

use crate::server;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lina-config/tests/fixtures")
        .join(name)
}

#[test]
fn accepts_linapro_template() {
    let dir = tempfile::tempdir().unwrap();
    let out = server(dir.path())
        .args(["check-config", "--config"])
        .arg(fixture("linapro-template.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("renewInterval:"), "{stdout}");
    assert!(
        stdout.contains("secret: '***'")
            || stdout.contains("secret: \"***\"")
            || stdout.contains("secret: ***"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("change-in-production"),
        "secret printed:\n{stdout}"
    );
}

#[test]
fn reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "cluster:\n  enabled: true\n  election:\n    lease: 30s\n    renewInterval: 40s\ndatabase:\n  default:\n    link: \"sqlite::@file(./temp/lina.db)\"\n",
    )
    .unwrap();
    let out = server(dir.path())
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains("cluster.election.renewInterval"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sqlite supports single-node mode only"),
        "{stderr}"
    );
    assert!(stderr.contains("jwt.secret"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "printed a config although it is invalid"
    );
}

#[test]
fn serve_refuses_an_invalid_config_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "cluster:\n  election:\n    lease: 30\n").unwrap();
    let out = server(dir.path())
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("cluster.election.lease"), "{stderr}");
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = server(dir.path())
        .args(["check-config", "--config", "nope.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("nope.yaml"), "{stderr}");
}

#[test]
fn lina_config_names_the_file_and_the_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.yaml");
    std::fs::write(&file, "server:\n  address: \":9333\"\n").unwrap();
    let out = server(dir.path())
        .arg("check-config")
        .env("LINA_CONFIG", &file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(":9333"), "{stdout}");
    let out = server(dir.path())
        .args(["check-config", "--config"])
        .arg(fixture("linapro-template.yaml"))
        .env("LINA_CONFIG", &file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains(":9333"), "{stdout}");
}
