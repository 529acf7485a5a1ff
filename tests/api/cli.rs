//! The `user` and `migrate` commands, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("gateway.toml"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn users_can_be_added_listed_changed_and_removed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        "[storage]\ndata_dir = \"data\"\n",
    )
    .unwrap();

    let (ok, out) = run(dir.path(), &["migrate"], None);
    assert!(ok, "{out}");
    assert!(dir.path().join("data/gateway.db").exists());

    let (ok, out) = run(
        dir.path(),
        &[
            "user",
            "add",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        Some("first password\n"),
    );
    assert!(ok, "{out}");
    let (ok, out) = run(
        dir.path(),
        &[
            "user",
            "add",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        Some("first password\n"),
    );
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = run(
        dir.path(),
        &[
            "user",
            "add",
            "--email",
            "b@example.com",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok && out.contains("at least 8"), "{out}");

    let (ok, out) = run(dir.path(), &["user", "list"], None);
    assert!(
        ok && out.contains("a@example.com") && !out.contains("argon2"),
        "{out}"
    );

    let (ok, out) = run(
        dir.path(),
        &[
            "user",
            "passwd",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        Some("second password\n"),
    );
    assert!(ok, "{out}");
    let (ok, out) = run(
        dir.path(),
        &[
            "user",
            "passwd",
            "--email",
            "zz@example.com",
            "--password-stdin",
        ],
        Some("second password\n"),
    );
    assert!(!ok && out.contains("no user"), "{out}");

    let (ok, out) = run(
        dir.path(),
        &["user", "remove", "--email", "a@example.com"],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = run(dir.path(), &["user", "list"], None);
    assert!(ok && !out.contains("a@example.com"), "{out}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["user", "--help"],
        &["user", "add", "--help"],
        &["migrate", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}
