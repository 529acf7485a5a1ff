//! What the real binary says and refuses at start: logs that mask numbers and never show
//! bodies, tokens or passwords; JSON logs; bad configs named; the hint when no user exists.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::process::{ADMIN_PW, BIN, Gateway, write_config};

#[tokio::test]
async fn the_log_masks_numbers_and_never_shows_bodies_tokens_or_passwords() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "0ms");
    let gw = Gateway::start(dir.path()).await;
    let id = gw.send_ok("6281234567890", "BODY-SECRET-1234").await;
    gw.send_ok("6281200000000", "BODY-SECRET-5678").await;
    assert_eq!(gw.wait_finished(&id).await["status"], "completed");
    // Every line of both jobs is written before the checks below.
    let log = gw
        .wait_log(&["✅ Job", "failed permanently: not-registered"])
        .await;
    assert!(
        log.contains("62812****7890"),
        "masked number expected in:\n{log}"
    );
    assert!(log.contains("📥 Message queued"), "{log}");
    assert!(log.contains("✅ Job"), "{log}");
    assert!(log.contains("failed permanently: not-registered"), "{log}");
    for secret in [
        "6281234567890",
        "BODY-SECRET",
        ADMIN_PW,
        gw.token.as_str(),
        "rt_",
    ] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line_for_log_shippers() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "0ms");
    let gw = Gateway::start_with_env(dir.path(), &[("GATEWAY__LOG__FORMAT", "json")]).await;
    let r = gw
        .try_send_text("6281234567890", "BODY-SECRET-JSON")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let log = gw.wait_log(&["completed"]).await;
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        messages.push(v["message"].as_str().unwrap_or_default().to_string());
    }
    assert!(messages.iter().any(|m| m.contains("Listening on")), "{log}");
    assert!(log.contains("62812****7890"), "{log}");
    assert!(
        !log.contains("6281234567890") && !log.contains("BODY-SECRET"),
        "{log}"
    );
}

#[tokio::test]
async fn a_bad_config_stops_start_up_naming_the_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    for (text, key) in [
        ("[queue]\nbackoff_base = \"fast\"\n", "queue.backoff_base"),
        ("[queue]\nconcurency = 3\n", "concurency"),
        ("[server]\nbind = \"nowhere\"\n", "server.bind"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = serve_fails(&path);
        assert!(
            err.contains(key) && err.contains("gateway.toml"),
            "{key}: {err}"
        );
    }
    let err = serve_fails(std::path::Path::new("/nonexistent/gateway.toml"));
    assert!(err.contains("/nonexistent/gateway.toml"), "{err}");
}

/// `wa-gateway serve --config <config>` run to its end, which must be a failure: its stderr.
fn serve_fails(config: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .envs(crate::pg::env_for(config))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{} started", config.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn with_no_user_the_log_says_how_to_create_one() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "0ms");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .envs(crate::pg::env_for(&dir.path().join("gateway.toml")))
        .env_remove("GATEWAY_ADMIN_EMAIL")
        .env_remove("GATEWAY_ADMIN_PASSWORD")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    let found = loop {
        match lines.next() {
            Some(Ok(line)) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("wa-gateway user add") {
                    break true;
                }
                if line.contains("Listening on") {
                    break false;
                }
            }
            _ => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "{seen}");
    if crate::pg::enabled() {
        // With PostgreSQL the generated secret lives in the database, shared by all nodes.
        let mut config =
            wa_gateway::config::Config::load(&dir.path().join("gateway.toml")).unwrap();
        config.storage.database_url = crate::pg::url_for(&config.data_dir()).map(Into::into);
        let sql = "SELECT COUNT(*) FROM shared_secrets WHERE name = 'jwt'";
        assert_eq!(crate::helpers::db_count(&config, sql).await, 1);
        assert!(!dir.path().join("data/jwt-secret").exists());
        return;
    }
    // The secret was generated with owner-only permissions.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data/jwt-secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The `[[plugins]]` part of the committed gateway.toml, with absolute paths.
fn bundled_plugins() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let toml = std::fs::read_to_string(format!("{root}/gateway.toml")).unwrap();
    let at = toml
        .find("[[plugins]]")
        .expect("gateway.toml loads plugins");
    toml[at..].replace("path = \"plugins/", &format!("path = \"{root}/plugins/"))
}

#[tokio::test]
async fn the_binary_compiles_its_plugins_in_a_child_process_and_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    crate::process::write_config(dir.path(), "0ms");
    let path = dir.path().join("gateway.toml");
    let config = std::fs::read_to_string(&path).unwrap() + &bundled_plugins();
    std::fs::write(&path, config).unwrap();
    let gw = crate::process::Gateway::start(dir.path()).await;
    let log = gw.log();
    let compiled = log.matches("plugin compiled in a child process").count();
    assert_eq!(compiled, 4, "one child per bundled plugin:\n{log}");
    let id = gw.send_ok("0812 3456 7890", "hello").await;
    let job = gw.wait_finished(&id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["chatId"], "6281234567890@c.us");
    let plugins = gw.get_json("/api/plugins").await;
    let calls = |name: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["calls"].as_u64().unwrap())
    };
    assert!(calls("number-format") >= Some(1), "{plugins}");

    // A file that is no component: start-up stops with the child's reason.
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"garbage").unwrap();
    let config = std::fs::read_to_string(&path).unwrap().replace(
        &format!("{}/plugins/dist/templates.wasm", env!("CARGO_MANIFEST_DIR")),
        &broken.display().to_string(),
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, config).unwrap();
    drop(gw);
    let err = serve_fails(&bad);
    assert!(
        err.contains("broken.wasm")
            && err.contains("is not a WebAssembly component")
            && err.contains("magic header"),
        "{err}"
    );
}
