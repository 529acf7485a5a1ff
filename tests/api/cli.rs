//! The `user`, `session` and `migrate` commands, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");

pub(crate) fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    // `--config` goes after the command: `wa-gateway user add --config FILE ...`.
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(dir.join("gateway.toml"))
        .envs(crate::pg::env_for(&dir.join("gateway.toml")))
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

/// `wa-gateway user add --email EMAIL --password-stdin`, with `password` on stdin.
fn user_add(dir: &std::path::Path, email: &str, password: &str) -> (bool, String) {
    run(
        dir,
        &["user", "add", "--email", email, "--password-stdin"],
        Some(&format!("{password}\n")),
    )
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
    if crate::pg::enabled() {
        assert!(out.contains("PostgreSQL database"), "{out}");
    } else {
        assert!(dir.path().join("data/gateway.db").exists());
    }

    let (ok, out) = user_add(dir.path(), "a@example.com", "first password");
    assert!(ok, "{out}");
    let (ok, out) = user_add(dir.path(), "a@example.com", "first password");
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = user_add(dir.path(), "b@example.com", "short");
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
        &["session", "--help"],
        &["session", "qr", "--help"],
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

fn plugin_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("plugin")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn plugin_file(rel: &str) -> String {
    format!("{}/plugins/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn plugin_check_tells_which_hooks_a_file_serves() {
    let (ok, out) = plugin_cli(&["check", &plugin_file("dist/number_format.wasm")]);
    assert!(
        ok && out.contains("serves: format-number") && out.contains("sha256: "),
        "{out}"
    );
    let (ok, out) = plugin_cli(&["check", &plugin_file("fixtures/hostile.wasm")]);
    assert!(
        ok && out.contains("format-number, classify-error, render, assign-priority"),
        "{out}"
    );
    let (ok, out) = plugin_cli(&[
        "check",
        &format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert!(
        !ok && out.contains("is not a WebAssembly component"),
        "{out}"
    );
}

/// (plugin file, hook, input, extra flags, succeeds, expected in the output)
type CallCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
    &'static str,
);

#[test]
fn plugin_call_runs_a_hook_without_a_server() {
    let cases: [CallCase; 7] = [
        (
            "dist/number_format.wasm",
            "format-number",
            "(0812) 3456.7890",
            &[],
            true,
            "ok: 6281234567890",
        ),
        (
            "dist/number_format.wasm",
            "format-number",
            "07700 900123",
            &["--config", "country_code=44"],
            true,
            "ok: 447700900123",
        ),
        (
            "dist/number_format.wasm",
            "format-number",
            "0812",
            &[],
            true,
            "rejected: too short",
        ),
        (
            "dist/templates.wasm",
            "render",
            "Hi {{name}}",
            &["--var", "name=Ani"],
            true,
            "ok: Hi Ani",
        ),
        (
            "dist/error_classifier.wasm",
            "classify-error",
            "blocked",
            &[],
            true,
            "permanent: blocked",
        ),
        (
            "dist/priority_rules.wasm",
            "assign-priority",
            "big promo",
            &["--config", "low_keywords=promo"],
            true,
            "low",
        ),
        (
            "fixtures/hostile.wasm",
            "format-number",
            "1",
            &["--config", "mode=loop"],
            false,
            "time limit",
        ),
    ];
    for (file, hook, input, extra, succeeds, expect) in cases {
        let file = plugin_file(file);
        let mut args = vec!["call", file.as_str(), "--hook", hook, "--input", input];
        args.extend_from_slice(extra);
        let (ok, out) = plugin_cli(&args);
        assert!(ok == succeeds && out.contains(expect), "{args:?}: {out}");
    }
}

/// A folder with a gateway.toml that points the command line at `app`'s data directory.
pub(crate) fn config_for(app: &crate::helpers::TestApp) -> tempfile::TempDir {
    let cli = tempfile::tempdir().unwrap();
    std::fs::write(
        cli.path().join("gateway.toml"),
        format!(
            "[storage]\ndata_dir = {:?}\n",
            app.config.data_dir().display().to_string()
        ),
    )
    .unwrap();
    cli
}

#[tokio::test]
async fn sessions_are_listed_added_and_removed_from_the_command_line() {
    let app = crate::helpers::spawn_app().await;
    // The CLI finds the gateway's database through a config naming the same data_dir.
    let cli = config_for(&app);
    let dir = cli.path();
    // While the gateway runs: list and qr read what it mirrors; add and remove point to the API.
    let (ok, out) = run(dir, &["session", "list"], None);
    assert!(ok && out.contains("default\tsandbox\tconnected"), "{out}");
    let (ok, out) = run(dir, &["session", "qr", "default"], None);
    assert!(
        !ok && out.contains("no QR code") && out.contains("connected"),
        "{out}"
    );
    let (ok, out) = run(dir, &["session", "add", "sales"], None);
    assert!(!ok && out.contains("/api/sessions"), "{out}");
    let id = app.send_via("default", "6281234567890", "kept").await;
    app.wait_finished(&id).await;
    app.session_action("default", "stop").await;
    let waiting = app.send_via("default", "6281234567890", "never sent").await;
    let (ok, out) = run(dir, &["session", "list"], None);
    assert!(ok && out.contains("default\tsandbox\tstopped"), "{out}");
    let (data, config) = app.stop().await;

    // Stopped: add and remove work on the database.
    let (ok, out) = run(
        dir,
        &["session", "add", "sales", "--driver", "sandbox"],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = run(dir, &["session", "add", "sales"], None);
    assert!(!ok && out.contains("exists"), "{out}");
    let (ok, out) = run(dir, &["session", "add", "Bad Name"], None);
    assert!(!ok && out.contains("must match"), "{out}");
    let (ok, out) = run(dir, &["session", "remove", "default"], None);
    assert!(ok && out.contains("1 unfinished job(s) failed"), "{out}");
    let (ok, out) = run(dir, &["session", "remove", "nobody"], None);
    assert!(!ok && out.contains("no session"), "{out}");

    let app = crate::helpers::start(data, config).await;
    let list = app.get_json("/api/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list["sessions"][0]["name"], "sales");
    assert_eq!(list["sessions"][0]["state"], "connected");
    let job = app.job(&waiting).await;
    assert_eq!(job["lastError"]["code"], "session_deleted");
}
