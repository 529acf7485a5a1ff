//! Cost of the plugin hooks per call, through the gateway's own host, with the plugins the
//! committed gateway.toml loads. Run: `cargo bench --bench plugins`.

use std::time::{Duration, Instant};

use wa_gateway::config::Config;
use wa_gateway::domain::Priority;
use wa_gateway::hooks::{Builtin, Failure, Hooks, Outgoing};
use wa_gateway::plugins::{PluginHooks, PluginHost};

/// Calls per hook; a debug build (as `cargo test --all-targets` runs this) only checks that the
/// benchmark works.
const CALLS: usize = if cfg!(debug_assertions) { 50 } else { 5_000 };

fn measure(name: &str, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..CALLS / 25 {
        f(); // warm up
    }
    let mut samples: Vec<Duration> = (0..CALLS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    let (p50, p99) = (samples[CALLS / 2], samples[CALLS * 99 / 100]);
    println!(
        "{name:<28} p50 {:>7.1} µs   p99 {:>7.1} µs",
        micros(p50),
        micros(p99)
    );
    (p50, p99)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn one_message(h: &dyn Hooks) {
    let digits = h.format_number("0812-3456-7890").expect("formats");
    let text = h
        .render("Your code is {{code}}.", &[("code".into(), "4821".into())])
        .expect("renders");
    let p = h.assign_priority(&Outgoing {
        chat_id: format!("{digits}@c.us"),
        number: digits,
        text,
        template: Some("otp".into()),
        requested: None,
        metadata: Vec::new(),
    });
    // The bundled rules make an otp template high; the built-in keeps normal.
    assert!(matches!(
        p.expect("assigns"),
        Priority::High | Priority::Normal
    ));
    h.classify_error(&Failure {
        code: "timeout".into(),
        message: "bench".into(),
        attempt: 1,
    });
}

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.toml");
    let config = Config::load(&path).expect("gateway.toml");
    let host = PluginHost::new().expect("plugin host");
    let hooks = PluginHooks::load(host, &config.plugins, &config.base_dir).expect("plugins load");

    let build = if cfg!(debug_assertions) {
        "debug build: run `cargo bench` for real figures"
    } else {
        "release build"
    };
    println!("{CALLS} calls each, fresh instance per call ({build}):");
    measure("format-number", || {
        hooks.format_number("0812-3456-7890").unwrap();
    });
    measure("render", || {
        hooks
            .render("Your code is {{code}}.", &[("code".into(), "4821".into())])
            .unwrap();
    });
    measure("assign-priority", || {
        hooks
            .assign_priority(&Outgoing {
                number: "6281234567890".into(),
                chat_id: "6281234567890@c.us".into(),
                text: "Your OTP is 4821".into(),
                template: None,
                requested: None,
                metadata: Vec::new(),
            })
            .unwrap();
    });
    measure("classify-error", || {
        hooks.classify_error(&Failure {
            code: "timeout".into(),
            message: "bench".into(),
            attempt: 1,
        });
    });
    let (plugins_p50, plugins_p99) = measure("all four, one message", || one_message(&hooks));
    let (builtin_p50, builtin_p99) = measure("all four, built-in rules", || one_message(&Builtin));
    println!(
        "added by the plugins per message: p50 {:.1} µs, p99 {:.1} µs (target: under 100 µs)",
        micros(plugins_p50.saturating_sub(builtin_p50)),
        micros(plugins_p99.saturating_sub(builtin_p99))
    );
    pace();
}

/// The pace hook once per paced send, with a full day behind it: 1,000 sends (the default
/// `per_day`), the bundled plugin against the built-in rules.
fn pace() {
    let pacing = wa_gateway::config::PluginConfig {
        name: "pacing".into(),
        hook: wa_gateway::config::PluginHook::Pace,
        path: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/dist/pacing.wasm"),
        sha256: None,
        config: Default::default(),
        limits: Default::default(),
    };
    let host = PluginHost::new().expect("plugin host");
    let hooks = PluginHooks::load(host, &[pacing], std::path::Path::new(".")).expect("loads");
    let now = wa_gateway::time::now_ms();
    let request = wa_gateway::hooks::PaceRequest {
        session: "default".into(),
        chat_id: "6281234567890@c.us".into(),
        number: "6281234567890".into(),
        text: "Your code is 4821.".into(),
        priority: Priority::Normal,
        rules: wa_pacing::Rules::defaults(),
        overrides: Vec::new(),
        now,
        local_ms: 12 * 3_600_000,
        recent: (0..1_000)
            .map(|i| wa_pacing::Sent {
                at: now - 86_000_000 + i * 86_000,
                first_contact: i % 10 == 0,
            })
            .collect(),
        to_recipient: vec![now - 600_000],
        first_contact: false,
        day: Some(30),
        gap_draw: 1 << 31,
    };
    let plugin = hooks.pace(&request);
    assert_eq!(
        plugin,
        Builtin.pace(&request),
        "the plugin decides as the built-in rules"
    );
    measure("pace, plugin, 1,000 sent", || {
        hooks.pace(&request);
    });
    measure("pace, built-in, 1,000 sent", || {
        Builtin.pace(&request);
    });
}
