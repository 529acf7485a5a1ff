//! The bundled plugins, loaded as real components through the host.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wa_gateway::config::{Config, PluginConfig, PluginHook, PluginLimits};

use crate::helpers::{spawn_app_with, test_config};

fn dist(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/dist")
        .join(file)
}

pub fn plugin(name: &str, hook: PluginHook, file: &str, config: &[(&str, &str)]) -> PluginConfig {
    PluginConfig {
        name: name.into(),
        hook,
        path: dist(file),
        sha256: None,
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: PluginLimits::default(),
    }
}

fn bundled(c: &mut Config) {
    c.plugins = vec![
        plugin(
            "number-format",
            PluginHook::FormatNumber,
            "number_format.wasm",
            &[("country_code", "62")],
        ),
        plugin(
            "error-classifier",
            PluginHook::ClassifyError,
            "error_classifier.wasm",
            &[("retryable", "rate-limited"), ("delay_rate-limited", "10")],
        ),
        plugin("templates", PluginHook::Render, "templates.wasm", &[]),
        plugin(
            "priority-rules",
            PluginHook::AssignPriority,
            "priority_rules.wasm",
            &[("high_templates", "otp"), ("low_keywords", "promo")],
        ),
    ];
}

#[tokio::test]
async fn the_number_format_plugin_applies_the_62_rules() {
    let app = spawn_app_with(bundled).await;
    for raw in [
        "081234567890",
        "+62 812-3456-7890",
        "812 3456 7890",
        "(0812) 3456.7890",
    ] {
        let r = app.send(&json!({"number": raw, "message": "hi"})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{raw}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["chatId"], "6281234567890@c.us", "{raw}");
    }
    let r = app.send(&json!({"number": "0812", "message": "hi"})).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_number");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too short"),
        "{body}"
    );
}

#[tokio::test]
async fn the_templates_and_priority_plugins_shape_the_job() {
    let app = spawn_app_with(bundled).await;
    let r = app
        .send(&json!({"number": "081234567890", "template": "otp", "variables": {"code": "99"}}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["priority"], "high",
        "otp is a high template in the config"
    );
    assert_eq!(
        app.job(body["jobId"].as_str().unwrap()).await["message"],
        "Your code is 99."
    );

    let r = app
        .send(&json!({"number": "081234567890", "message": "big promo today"}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["priority"], "low");
    let r = app
        .send(&json!({"number": "081234567890", "message": "big promo", "priority": "high"}))
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["priority"],
        "high",
        "the requested priority wins"
    );

    let r = app
        .send(&json!({"number": "081234567890", "template": "otp", "variables": {}}))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "template_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`code`"),
        "{body}"
    );
}

#[tokio::test]
async fn the_classifier_plugin_can_make_a_permanent_code_retryable() {
    let app = spawn_app_with(bundled).await;
    let id = app.send_ok("6281200000004", "rate limited").await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 6, "retried as configured: {job}");
    assert_eq!(job["lastError"]["code"], "rate-limited");
}

async fn start_error(tweak: impl FnOnce(&mut Config)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = wa_gateway::run(config, listener, tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("start-up must fail");
    format!("{err:#}")
}

#[tokio::test]
async fn bad_plugin_files_stop_start_up_naming_the_file_and_the_problem() {
    let err = start_error(|c| {
        c.plugins = vec![plugin("nf", PluginHook::FormatNumber, "missing.wasm", &[])]
    })
    .await;
    assert!(
        err.contains("missing.wasm") && err.contains("cannot read"),
        "{err}"
    );

    let not_wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_wasm.path(), b"not a component").unwrap();
    let path = not_wasm.path().to_path_buf();
    let err = start_error(|c| {
        let mut p = plugin("nf", PluginHook::FormatNumber, "x", &[]);
        p.path = path;
        c.plugins = vec![p];
    })
    .await;
    assert!(err.contains("is not a WebAssembly component"), "{err}");

    let err = start_error(|c| {
        c.plugins = vec![plugin("nf", PluginHook::Render, "number_format.wasm", &[])]
    })
    .await;
    assert!(
        err.contains("number_format.wasm") && err.contains("does not serve hook render"),
        "{err}"
    );

    let err = start_error(|c| {
        let mut p = plugin("nf", PluginHook::FormatNumber, "number_format.wasm", &[]);
        p.sha256 = Some("00".repeat(32));
        c.plugins = vec![p];
    })
    .await;
    assert!(
        err.contains("pins") && err.contains("refusing a changed file"),
        "{err}"
    );
}

fn hostile(hook: PluginHook, mode: &str) -> PluginConfig {
    let mut p = plugin("hostile", hook, "unused", &[("mode", mode)]);
    p.path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/fixtures/hostile.wasm");
    p
}

#[tokio::test]
async fn a_looping_a_memory_eating_a_panicking_and_a_sleeping_plugin_each_get_a_clear_503() {
    for (mode, expect) in [
        ("loop", "time limit"),
        ("memory", "memory"),
        ("panic", "hostile fixture panics"),
        ("sleep", "time limit"),
    ] {
        let mut p = hostile(PluginHook::FormatNumber, mode);
        if mode == "memory" {
            // Filling 16 MiB can take longer than 20ms on a loaded machine: let memory be the limit hit.
            p.limits.time = wa_gateway::config::Dur::secs(2);
        }
        let app = spawn_app_with(|c| c.plugins = vec![p]).await;
        let r = app
            .send(&json!({"number": "081234567890", "message": "x"}))
            .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{mode}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "plugin_failed", "{mode}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("hostile") && msg.contains(expect),
            "{mode}: {msg}"
        );
        // How fast each is stopped is in the message ("stopped after 21ms (time limit
        // 20ms)"); the cost of calls is measured by `cargo bench --bench plugins`.
        eprintln!("{mode}: {msg}");
        // The gateway keeps serving, and the plugin keeps being called (a fresh instance each time).
        let r = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app
            .send(&json!({"number": "081234567890", "message": "x"}))
            .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let list = app.get_json("/api/plugins").await;
        assert_eq!(list["plugins"][0]["failures"], 2, "{list}");
    }
}

#[tokio::test]
async fn a_failing_assign_priority_plugin_is_a_503_and_queues_nothing() {
    let app =
        spawn_app_with(|c| c.plugins = vec![hostile(PluginHook::AssignPriority, "loop")]).await;
    let r = app
        .send(&json!({"number": "6281234567890", "message": "x", "priority": "high"}))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hostile"),
        "{body}"
    );
    let counts = app.get_json("/api/whatsapp/retry-queue").await["counts"].clone();
    assert_eq!(counts["waiting"], 0);
}

#[tokio::test]
async fn a_failing_classify_error_plugin_falls_back_to_the_built_in_rule() {
    let app =
        spawn_app_with(|c| c.plugins = vec![hostile(PluginHook::ClassifyError, "panic")]).await;
    // The built-in table says timeout is retryable, so 0001 still completes on its third attempt.
    let id = app.send_ok("6281200000001", "x").await;
    let job = app.wait_finished(&id).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["attempts"], 3);
    let list = app.get_json("/api/plugins").await;
    assert_eq!(
        list["plugins"][0]["failures"], 2,
        "both classifications failed: {list}"
    );
}

#[tokio::test]
async fn a_well_behaved_plugin_logs_through_the_host() {
    let app =
        spawn_app_with(|c| c.plugins = vec![hostile(PluginHook::FormatNumber, "behave")]).await;
    let r = app
        .send(&json!({"number": "081234567890", "message": "x"}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let list = app.get_json("/api/plugins").await;
    let p = &list["plugins"][0];
    assert_eq!(p["name"], "hostile");
    assert_eq!(p["hook"], "format-number");
    assert_eq!(p["calls"], 1);
    assert_eq!(p["failures"], 0);
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
}

#[tokio::test]
async fn reload_swaps_in_a_formatter_configured_for_another_country_without_a_rebuild() {
    // The plugin file is copied so the test can change what is on disk.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nf.wasm");
    std::fs::copy(dist("number_format.wasm"), &file).unwrap();
    let app = spawn_app_with(|c| {
        let mut p = plugin(
            "nf",
            PluginHook::FormatNumber,
            "x",
            &[("country_code", "62")],
        );
        p.path = file.clone();
        c.plugins = vec![p];
    })
    .await;
    let chat = |r: Value| r["chatId"].as_str().unwrap_or_default().to_string();
    let r = app
        .send(&json!({"number": "07700 900123", "message": "x"}))
        .await;
    assert_eq!(chat(r.json().await.unwrap()), "627700900123@c.us");

    // A broken file: reload fails, says why, and the old plugin stays.
    std::fs::write(&file, b"garbage").unwrap();
    let r = app.post("/api/plugins/reload", &json!({})).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_reload_failed");
    let r = app
        .send(&json!({"number": "07700 900123", "message": "x"}))
        .await;
    assert_eq!(chat(r.json().await.unwrap()), "627700900123@c.us");

    // The hostile fixture as formatter in place of nf: digits only, no country rules.
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("plugins/fixtures/hostile.wasm"),
        &file,
    )
    .unwrap();
    let r = app.post("/api/plugins/reload", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .send(&json!({"number": "07700 900123", "message": "x"}))
        .await;
    assert_eq!(chat(r.json().await.unwrap()), "07700900123@c.us");
}

#[tokio::test]
async fn the_committed_gateway_toml_loads_all_four_bundled_plugins() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let committed = Config::load(&path).expect("gateway.toml parses");
    assert_eq!(committed.plugins.len(), 4);
    // The paths in gateway.toml are relative to its folder; the test app lives elsewhere.
    let plugins: Vec<PluginConfig> = committed
        .plugins
        .iter()
        .map(|p| PluginConfig {
            path: committed.resolve(&p.path),
            ..p.clone()
        })
        .collect();
    let app = spawn_app_with(|c| c.plugins = plugins).await;
    let names: Vec<String> = app.get_json("/api/plugins").await["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "number-format",
            "error-classifier",
            "templates",
            "priority-rules"
        ]
    );
    let r = app
        .send(&json!({"number": "0812-3456-7890", "message": "Your OTP is 1234"}))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["chatId"], "6281234567890@c.us");
    assert_eq!(body["priority"], "high");
    // Per-plugin counters in /metrics.
    let metrics = app.metrics().await;
    for line in [
        "wa_gateway_plugin_calls_total{plugin=\"number-format\",hook=\"format-number\"} 1",
        "wa_gateway_plugin_failures_total{plugin=\"number-format\",hook=\"format-number\"} 0",
        "wa_gateway_plugin_calls_total{plugin=\"priority-rules\",hook=\"assign-priority\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in:\n{metrics}");
    }
    assert!(metrics.contains("wa_gateway_plugin_call_seconds_total{plugin=\"templates\""));
}
