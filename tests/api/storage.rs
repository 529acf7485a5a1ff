//! Backup and restore (run as the binary, as an operator would), schema refusal, retention and
//! the bounded database.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use wa_gateway::config::{Config, Dur};

use crate::helpers::{TestApp, spawn_app_with, start, test_config};

const BIN: &str = env!("CARGO_BIN_EXE_wa-gateway");

/// The config file the binary reads for an app's directory (its data_dir is `data`).
fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, "[storage]\ndata_dir = \"data\"\n").unwrap();
    path
}

fn cli(args: &[&str], config: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .envs(crate::pg::env_for(config))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// On PostgreSQL, `backup` and `restore` (SQLite files) refuse, naming the tools to use.
async fn backup_and_restore_point_to_postgres_tools() {
    let app = crate::helpers::spawn_app().await;
    let config_file = write_config(app.dir.path());
    let file = app.dir.path().join("b.tar");
    for args in [
        ["backup", "--to", file.to_str().unwrap()],
        ["restore", "--from", file.to_str().unwrap()],
    ] {
        let (ok, out) = cli(&args[..], &config_file);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains("PostgreSQL") && out.contains("pg_dump"),
            "{out}"
        );
    }
    assert!(!file.exists());
    app.stop().await;
}

fn generated_secret(c: &mut Config) {
    c.auth.jwt_secret = None;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_5000_jobs_flow_restores_every_job_committed_before_it() {
    if crate::pg::enabled() {
        return backup_and_restore_point_to_postgres_tools().await;
    }
    let app = spawn_app_with(|c| {
        generated_secret(c);
        c.queue.concurrency = 8;
    })
    .await;
    let config_file = write_config(app.dir.path());
    let app = Arc::new(app);
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut producers = Vec::new();
    for p in 0..16 {
        let (app, accepted) = (app.clone(), accepted.clone());
        producers.push(tokio::spawn(async move {
            for i in 0..313 {
                let n = p * 1000 + i;
                let id = app
                    .send_ok(&format!("62812{n:08}"), &format!("flowing {n}"))
                    .await;
                accepted.lock().unwrap().push(id);
            }
        }));
    }
    while accepted.lock().unwrap().len() < 2000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every job whose 202 came back before the backup began must be in it.
    let before: Vec<String> = accepted.lock().unwrap().clone();
    let backup_file = app.dir.path().join("backup.tar");
    let (ok, out) = {
        let (b, c) = (backup_file.clone(), config_file.clone());
        tokio::task::spawn_blocking(move || cli(&["backup", "--to", b.to_str().unwrap()], &c))
            .await
            .unwrap()
    };
    assert!(ok, "{out}");
    assert!(out.contains("wrote") && out.contains("jobs"), "{out}");
    for p in producers {
        p.await.unwrap();
    }
    let total = accepted.lock().unwrap().len();
    assert!(total >= 5000, "{total}");
    assert!(before.len() < total, "the backup ran while jobs flowed");
    let token = app.token.clone();

    // Restore into a fresh directory, as on a new machine.
    let dir2 = tempfile::tempdir().unwrap();
    let config2_file = write_config(dir2.path());
    let (ok, out) = cli(
        &["restore", "--from", backup_file.to_str().unwrap()],
        &config2_file,
    );
    assert!(ok, "{out}");
    assert!(out.contains("restored"), "{out}");
    let mut config2 = test_config(dir2.path());
    generated_secret(&mut config2);
    let app2 = start(dir2, config2).await;
    let secret = app2.config.data_dir().join("jwt-secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "restored secret mode {mode:o}");
    // The first gateway's token works: the secret came with the backup.
    for id in &before {
        let r = app2
            .client
            .get(app2.url(&format!("/api/whatsapp/jobs/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "job {id} missing from the restore"
        );
    }
    eprintln!(
        "backup during flow: {} of {total} jobs committed before it began, all restored",
        before.len()
    );
    app2.stop().await;
    match Arc::try_unwrap(app) {
        Ok(app) => {
            app.stop().await;
        }
        Err(_) => panic!("app still shared"),
    }
}

#[tokio::test]
async fn restore_refuses_a_running_gateways_directory_and_a_corrupted_file() {
    if crate::pg::enabled() {
        return backup_and_restore_point_to_postgres_tools().await;
    }
    let app = spawn_app_with(generated_secret).await;
    let config_file = write_config(app.dir.path());
    let id = app.send_ok("6281234567890", "kept").await;
    app.wait_finished(&id).await;
    let backup_file = app.dir.path().join("b.tar");
    let (ok, out) = cli(
        &["backup", "--to", backup_file.to_str().unwrap()],
        &config_file,
    );
    assert!(ok, "{out}");

    let (ok, out) = cli(
        &["restore", "--from", backup_file.to_str().unwrap()],
        &config_file,
    );
    assert!(
        !ok,
        "restore into a running gateway's directory succeeded: {out}"
    );
    assert!(
        out.contains("is using") && out.contains("stop it first"),
        "{out}"
    );

    // Stopped: a garbage file and a backup with a corrupt database are refused, and the
    // directory is left as it was.
    let (dir, config) = app.stop().await;
    let garbage = dir.path().join("garbage.tar");
    std::fs::write(&garbage, b"this is not a backup at all").unwrap();
    let (ok, out) = cli(
        &["restore", "--from", garbage.to_str().unwrap()],
        &config_file,
    );
    assert!(!ok, "{out}");
    assert!(out.contains("not a wa-gateway backup"), "{out}");

    let corrupt = dir.path().join("corrupt.tar");
    {
        let original = std::fs::File::open(&backup_file).unwrap();
        let mut archive = tar::Archive::new(original);
        let mut builder = tar::Builder::new(std::fs::File::create(&corrupt).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_path_buf();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            if name.to_str() == Some("gateway.db") {
                // Keep the header, scramble the pages.
                for b in bytes.iter_mut().skip(100).step_by(7) {
                    *b ^= 0x5a;
                }
            }
            let mut h = entry.header().clone();
            h.set_cksum();
            builder
                .append_data(&mut h, &name, bytes.as_slice())
                .unwrap();
        }
        builder.finish().unwrap();
    }
    let (ok, out) = cli(
        &["restore", "--from", corrupt.to_str().unwrap()],
        &config_file,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("corrupt") || out.contains("does not open"),
        "{out}"
    );

    let app = start(dir, config).await;
    assert_eq!(app.job(&id).await["status"], "completed");
    app.stop().await;
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    wa_gateway::cli::migrate(&config).await.unwrap();
    let checksum = if crate::pg::enabled() {
        "'\\x00'"
    } else {
        "x'00'"
    };
    crate::helpers::db_execute(
        &config,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (99990101000000, 'from the future', true, {checksum}, 0)"
        ),
    )
    .await;
    let before = snapshot(&config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = wa_gateway::run(config.clone(), listener, Default::default())
        .await
        .expect_err("a newer database must be refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("newer wa-gateway") && msg.contains("99990101000000"),
        "{msg}"
    );
    // Nothing migrated or converted: the same schema and migration history.
    assert!(
        snapshot(&config).await == before,
        "the database was changed"
    );
}

/// The schema and the applied migrations of the app's database.
async fn snapshot(config: &Config) -> (Vec<String>, Vec<String>) {
    let schema = if crate::pg::enabled() {
        "SELECT table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns \
         WHERE table_schema = current_schema() ORDER BY 1"
    } else {
        "SELECT coalesce(sql, '') FROM sqlite_master ORDER BY name"
    };
    (
        crate::helpers::db_strings(config, schema).await,
        crate::helpers::db_strings(
            config,
            "SELECT CAST(version AS TEXT) FROM _sqlx_migrations ORDER BY version",
        )
        .await,
    )
}

/// Starts the app on a directory prepared by hand, with the test user.
async fn start_with_user(dir: tempfile::TempDir, config: Config) -> TestApp {
    wa_gateway::cli::add_user(
        &config,
        crate::helpers::EMAIL,
        crate::helpers::PASSWORD.into(),
    )
    .await
    .unwrap();
    start(dir, config).await
}

async fn insert_history(config: &Config, n: i64) {
    wa_gateway::cli::migrate(config).await.unwrap();
    let long_ago = wa_gateway::time::now_ms() - 3_600_000;
    let (numbers, text) = if crate::pg::enabled() {
        (
            format!("generate_series(1, {n}) AS n(i)"),
            "'history message ' || i || ' ' || repeat('x', 300)",
        )
    } else {
        (
            format!(
                "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) SELECT i FROM n)"
            ),
            "printf('history message %d %.300c', i, 'x')",
        )
    };
    crate::helpers::db_execute(
        config,
        &format!(
            "INSERT INTO jobs (id, message_id, number, chat_id, message, priority, status, attempts,
                               run_at, created_at, updated_at, finished_at)
             SELECT 'job_old_' || i, 'msg_old_' || i, '6281234567890', '6281234567890@c.us',
                    {text}, 1,
                    CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END, 1,
                    {long_ago}, {long_ago}, {long_ago}, {long_ago} + i
             FROM {numbers}"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_100000_finished_jobs_in_batches_and_the_files_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.queue.keep_completed = Dur::secs(60);
    config.queue.keep_failed = Dur::secs(60);
    config.queue.prune_interval = Dur::millis(200);
    insert_history(&config, 100_000).await;
    // PostgreSQL keeps its files and reuses the space (autovacuum); SQLite gives it back.
    let shrinks = !crate::pg::enabled();
    let full = std::fs::metadata(config.database_path()).map_or(0, |m| m.len());
    let app = start_with_user(dir, config).await;
    // Sending goes on while the pruner works.
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(
            app.send_ok(&format!("628139{i:03}5678"), "during pruning")
                .await,
        );
    }
    for id in &ids {
        assert_eq!(app.wait_finished(id).await["status"], "completed");
    }
    let sent_in = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = app.status().await;
        if s["queue"]["failed"] == 0 && s["queue"]["completed"] == 200 {
            let st = &s["storage"];
            if !shrinks
                || st["walBytes"].as_u64().unwrap() < (1 << 20)
                    && st["databaseBytes"].as_u64().unwrap() < (2 << 20)
            {
                break s;
            }
        }
        assert!(Instant::now() < deadline, "not pruned and compacted: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The counts agree with the table.
    let rq = app.get_json("/api/whatsapp/retry-queue").await;
    assert_eq!(rq["counts"]["completed"], 200, "{rq}");
    assert_eq!(rq["counts"]["failed"], 0, "{rq}");
    let st = &status["storage"];
    assert!(st["oldestJobAt"].is_string(), "{status}");
    eprintln!(
        "retention: database {full} bytes with 100,000 finished jobs → {} bytes (WAL {} bytes); 200 sends meanwhile in {sent_in:?}",
        st["databaseBytes"], st["walBytes"]
    );
    let r = app
        .send(&json!({"number": "6281234567890", "message": "still fine"}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test]
async fn retention_zero_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.queue.keep_completed = Dur::secs(0);
    config.queue.keep_failed = Dur::secs(0);
    config.queue.prune_interval = Dur::millis(100);
    insert_history(&config, 1_000).await;
    let app = start_with_user(dir, config).await;
    // Two passes of the pruner, each of which had everything in front of it.
    crate::helpers::eventually(Duration::from_secs(20), "two retention passes", || async {
        let m = app.metrics().await;
        let runs: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("wa_gateway_retention_runs_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        (runs >= 2).then_some(())
    })
    .await;
    let s = app.status().await;
    // The suite really runs on the backend it names.
    let backend = if crate::pg::enabled() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(s["storage"]["backend"], backend, "{s}");
    assert_eq!(s["queue"]["completed"], 900, "{s}");
    assert_eq!(s["queue"]["failed"], 100, "{s}");
    app.stop().await;
}

#[tokio::test]
async fn with_browser_profile_a_backup_carries_every_sessions_login() {
    if crate::pg::enabled() {
        return backup_and_restore_point_to_postgres_tools().await;
    }
    let app = spawn_app_with(generated_secret).await;
    let config_file = write_config(app.dir.path());
    let r = app
        .post(
            "/api/sessions",
            &json!({"name": "sales", "driver": "sandbox"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (dir, config) = app.stop().await;
    // A login as Chromium keeps it: files in each session's profile (no browser needed).
    let write = |session: &str, text: &str| {
        let p = config.browser_profile(session).join("Default");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("Cookies"), text).unwrap();
        std::fs::write(p.join("SingletonLock"), "not copied").unwrap();
    };
    write("default", "default's login");
    write("sales", "sales' login");

    let backup_file = dir.path().join("profiles.tar");
    let (ok, out) = cli(
        &[
            "backup",
            "--with-browser-profile",
            "--to",
            backup_file.to_str().unwrap(),
        ],
        &config_file,
    );
    assert!(ok && out.contains("default, sales"), "{out}");

    // The logins are lost (say, a new disk); the restore brings both back.
    std::fs::remove_dir_all(config.data_dir().join("sessions")).unwrap();
    write("sales", "a newer login that the restore sets aside");
    let (ok, out) = cli(
        &["restore", "--from", backup_file.to_str().unwrap()],
        &config_file,
    );
    assert!(
        ok && out.contains("browser profiles of default, sales"),
        "{out}"
    );
    let read = |session: &str| {
        std::fs::read_to_string(config.browser_profile(session).join("Default/Cookies")).unwrap()
    };
    assert_eq!(read("default"), "default's login");
    assert_eq!(read("sales"), "sales' login");
    assert!(
        !config
            .browser_profile("sales")
            .join("Default/SingletonLock")
            .exists(),
        "Chromium's lock is not copied"
    );
    let aside = out
        .lines()
        .find_map(|l| l.strip_prefix("the files it replaced are in "))
        .expect("where the replaced files went");
    let kept = std::fs::read_to_string(
        std::path::Path::new(aside.trim()).join("sales-browser-profile/Default/Cookies"),
    )
    .unwrap();
    assert_eq!(kept, "a newer login that the restore sets aside");
    let app = start(dir, config).await;
    assert_eq!(app.session("sales").await["state"], "connected");
    app.stop().await;
}
