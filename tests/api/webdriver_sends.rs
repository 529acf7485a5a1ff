//! The WebDriver driver never sends a message twice, however WhatsApp Web renders it: every
//! text under every rendering of the stand-in ([`Render::all`]), retries after a tick held past
//! the send timeout, a page frozen in the middle of a send, Chromium killed between Enter and
//! the tick, and a gateway stopped mid-send. The stand-in counts what reached its "server".

use std::time::{Duration, Instant};

use serde_json::Value;
use wa_gateway::config::Dur;

use crate::fake_whatsapp::{FakeWa, Render};
use crate::helpers::{TestApp, eventually, start};
use crate::webdriver::{
    browser_processes, browser_session, connected_app, deliver, profile, wait_job, wait_state,
};

/// Which of `pids` are still running (zombies waiting to be reaped do not count).
pub(crate) fn alive(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().to_string())
                })
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
        .collect()
}

/// ChromeDriver processes this test process started that are still running.
fn chromedrivers() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if head.ends_with("(chromedriver") && fields.get(1) == Some(&me.as_str()) {
            found.push(pid);
        }
    }
    alive(&found)
}

/// The texts of the Unicode test, a 3,000-character text, a text with a URL, emoji alone.
fn texts() -> Vec<String> {
    let long: String = "Panjang ✓ 長い текст 🚀 ".repeat(150).trim().to_string();
    let three_thousand: String = "Kalimat panjang nomor satu, dua, tiga.\n"
        .repeat(77)
        .chars()
        .take(3000)
        .collect::<String>()
        .trim()
        .to_string();
    vec![
        "Halo 👋🏽 selamat pagi ✨".into(),
        "Line one\nLine two\n\nLine four".into(),
        "Family: 👨‍👩‍👧‍👦 flags: 🇮🇩🇯🇵".into(),
        "مرحبا بالعالم".into(),
        "中文，日本語、한국어".into(),
        "Symbols <b>not html</b> & \"quotes\" 'single' `tick` {{braces}}".into(),
        long,
        "Tab\tinside and trailing text".into(),
        "Last one 😀".into(),
        three_thousand,
        "Your invoice: https://example.com/invoice?id=42&lang=id — pay by Friday 🙏".into(),
        "😀🎉👍🏽🇮🇩".into(),
    ]
}

fn chat(rendering: usize, text: usize) -> String {
    format!("628130{rendering:02}{text:02}77")
}

#[tokio::test]
async fn every_text_arrives_exactly_once_under_every_rendering() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    fake.set_loading_ms(50);
    let app = connected_app(&fake, |_| {}).await;
    let texts = texts();
    let renderings = Render::all();
    let mut jobs = Vec::new();
    for (r, (name, render)) in renderings.iter().enumerate() {
        for (t, text) in texts.iter().enumerate() {
            let number = chat(r, t);
            fake.render(&number, render.clone());
            jobs.push((
                *name,
                render.data_id,
                number.clone(),
                text,
                app.send_ok(&number, text).await,
            ));
        }
    }
    let t0 = Instant::now();
    for (name, data_id, number, text, id) in &jobs {
        let job = wait_job(&app, id, Duration::from_secs(120)).await;
        assert_eq!(job["status"], "completed", "{name}: {job}");
        assert_eq!(job["attempts"], 1, "{name}: {job}");
        assert_eq!(
            fake.sent_to(number),
            vec![text.to_string()],
            "{name}: chat {number}"
        );
        let receipt = &job["receipt"];
        assert_eq!(receipt["alreadySent"], false, "{name}: {receipt}");
        assert!(
            receipt["matchedBy"]
                .as_str()
                .unwrap()
                .starts_with("position"),
            "{name}: {receipt}"
        );
        if *data_id {
            let sent_id = &fake.sent_to_ids(number)[0];
            assert_eq!(
                receipt["bubbleId"].as_str().unwrap(),
                format!("true_{number}@c.us_{sent_id}"),
                "{name}"
            );
        } else {
            assert!(receipt.get("bubbleId").is_none(), "{name}: {receipt}");
        }
    }
    assert_eq!(fake.sent().len(), jobs.len());
    eprintln!(
        "MEASURE {} sends under {} renderings in {:?}",
        jobs.len(),
        renderings.len(),
        t0.elapsed()
    );
    app.stop().await;
}

/// Waits until the job's first attempt failed with `code`.
pub(crate) async fn wait_failed_attempt(app: &TestApp, id: &str, code: &str) -> Value {
    eventually(
        Duration::from_secs(60),
        &format!("job {id} failed an attempt with {code}"),
        || async {
            let job = app.job(id).await;
            (job["attempts"].as_i64().unwrap() >= 1 && job["lastError"]["code"] == code)
                .then_some(job)
        },
    )
    .await
}

/// A connected app whose sends time out after 2 s and are retried a second later, many times:
/// for tests that hold a send's tick to make its first attempt fail.
pub(crate) async fn retrying_app(fake: &FakeWa) -> TestApp {
    fake.set_loading_ms(50);
    connected_app(fake, |c| {
        c.whatsapp.webdriver.send_timeout = Dur::secs(2);
        c.queue.backoff_base = Dur::secs(1);
        c.queue.max_retries = 10;
    })
    .await
}

#[tokio::test]
async fn a_retry_finds_its_bubble_under_every_rendering_and_does_not_send_again() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = retrying_app(&fake).await;
    // Long enough to be cut with "Read more", with emoji, a link and line breaks.
    let text = "Pengingat 👋🏽 tagihan Anda\nsudah terbit: https://example.com/t/9 \
                silakan dibayar sebelum Jumat 🙏 terima kasih banyak ya, salam hangat";
    let renderings = Render::all();
    let mut jobs = Vec::new();
    for (r, (name, render)) in renderings.iter().enumerate() {
        let number = chat(r, 99);
        fake.render(&number, render.clone());
        fake.hold_ticks(&number);
        jobs.push((*name, number.clone(), app.send_ok(&number, text).await));
    }
    // Each chat's tick comes once its first attempt has timed out (with held ticks, the
    // earlier jobs' retries would otherwise keep the one browser busy).
    for (_, number, id) in &jobs {
        wait_failed_attempt(&app, id, "timeout").await;
        fake.release_ticks(number);
    }
    for (name, number, id) in &jobs {
        let job = wait_job(&app, id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "completed", "{name}: {job}");
        assert!(job["attempts"].as_i64().unwrap() >= 2, "{name}: {job}");
        assert_eq!(
            fake.sent_to(number),
            vec![text.to_string()],
            "{name}: sent twice"
        );
        assert_eq!(job["receipt"]["alreadySent"], true, "{name}: {job}");
        assert_eq!(job["receipt"]["matchedBy"], "text (look-first)", "{name}");
        assert!(job["receipt"]["bubbleTime"].is_string(), "{name}: {job}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_page_frozen_in_the_middle_of_a_send_restarts_within_session_timeout_and_sends_once() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| c.queue.backoff_base = Dur::millis(200)).await;
    let number = "6281200000040";
    fake.render(number, Render::all().pop().unwrap().1);
    let old = browser_processes(&app);
    fake.freeze_on_next_send();
    let id = app.send_ok(number, "frozen mid-send 🧊").await;
    let frozen_at = eventually(
        Duration::from_secs(20),
        "the page froze on the send",
        || async { fake.frozen_at() },
    )
    .await;
    // session_timeout is 4s; stated margin 1.5s (watchdog tick 0.1s, test poll 50ms).
    wait_state(&app, &["restarting"], Duration::from_millis(4000 + 1500)).await;
    let noticed = frozen_at.elapsed();
    let job = wait_job(&app, &id, Duration::from_secs(40)).await;
    let recovered = frozen_at.elapsed();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["receipt"]["alreadySent"], true, "{job}");
    assert_eq!(fake.sent_to(number), vec!["frozen mid-send 🧊"]);
    assert_eq!(fake.scans(), 1, "the restart needed a new scan");
    assert_eq!(
        alive(&old),
        Vec::<u32>::new(),
        "the frozen browser outlived its restart"
    );
    eprintln!(
        "MEASURE mid-send freeze: restart began {noticed:?} after the freeze (session_timeout 4s), job completed after {recovered:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn chromium_killed_between_enter_and_the_tick_sends_once() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| c.queue.backoff_base = Dur::millis(200)).await;
    let number = "6281200000041";
    fake.hold_ticks(number);
    let id = app.send_ok(number, "killed mid-send").await;
    fake.wait_received(number).await;
    let old = browser_processes(&app);
    let t0 = Instant::now();
    for pid in &old {
        crate::helpers::kill9(*pid);
    }
    fake.release_ticks(number);
    let job = wait_job(&app, &id, Duration::from_secs(40)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(job["attempts"].as_i64().unwrap() >= 2, "{job}");
    assert_eq!(fake.sent_to(number), vec!["killed mid-send"]);
    assert_eq!(alive(&old), Vec::<u32>::new());
    eprintln!(
        "MEASURE mid-send kill: job completed {:?} after Chromium was killed",
        t0.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_gateway_stopped_in_the_middle_of_a_send_leaves_no_browser_and_sends_once_after() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        c.queue.shutdown_grace = Dur::millis(500);
        c.queue.backoff_base = Dur::millis(200);
    })
    .await;
    let number = "6281200000042";
    fake.hold_ticks(number);
    let id = app.send_ok(number, "stopped mid-send").await;
    fake.wait_received(number).await;
    let profile = profile(&app);
    let (dir, config) = app.stop().await;
    assert_eq!(
        wa_gateway::whatsapp::webdriver::profile_processes(&profile),
        Vec::<u32>::new(),
        "browser processes outlived the gateway"
    );
    assert_eq!(
        chromedrivers(),
        Vec::<u32>::new(),
        "ChromeDriver outlived the gateway"
    );

    fake.release_ticks(number);
    let app = start(dir, config).await;
    wait_state(&app, &["connected"], Duration::from_secs(30)).await;
    let job = wait_job(&app, &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(fake.sent_to(number), vec!["stopped mid-send"]);
    assert_eq!(fake.scans(), 1);
    app.stop().await;
    assert_eq!(chromedrivers(), Vec::<u32>::new());
}

#[tokio::test]
async fn chats_open_in_the_running_app_without_a_reload_and_fall_back_to_send() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    // The real site takes seconds to load; the stand-in takes 3 s here too.
    fake.set_loading_ms(3000);
    let app = connected_app(&fake, |c| {
        c.whatsapp.webdriver.ready_timeout = Dur::secs(60);
    })
    .await;
    let loads = fake.loads();
    let t0 = std::time::Instant::now();
    let chats = ["6281234500101", "6281234500102", "6281234500103"];
    for round in 0..2 {
        for chat in chats {
            deliver(&app, chat, &format!("in-app {round} to {chat}")).await;
        }
    }
    let in_app = t0.elapsed();
    assert_eq!(fake.loads(), loads, "no send loaded the app again");
    for chat in chats {
        assert_eq!(
            fake.sent_to(chat),
            vec![format!("in-app 0 to {chat}"), format!("in-app 1 to {chat}")]
        );
    }
    // A number that is not on WhatsApp shows the dialog in the app too.
    fake.unregister("6281234500199");
    let id = app.send_ok("6281234500199", "nobody").await;
    let job = wait_job(&app, &id, Duration::from_secs(30)).await;
    assert_eq!(job["lastError"]["code"], "not-registered", "{job}");
    assert_eq!(fake.loads(), loads);

    // When the app ignores the link, the driver loads /send?phone= instead.
    fake.set_in_app_links(false);
    let t1 = std::time::Instant::now();
    deliver(&app, "6281234500104", "by a fresh load").await;
    let reload = t1.elapsed();
    assert_eq!(fake.loads(), loads + 1);
    assert_eq!(fake.sent_to("6281234500104"), vec!["by a fresh load"]);
    eprintln!(
        "MEASURE in-app: 6 sends in {in_app:.1?} ({:.0?} each); with a 3 s app load: {reload:.1?} for one",
        in_app / 6
    );
    app.stop().await;
}

#[tokio::test]
async fn a_paced_session_shows_typing_for_a_time_that_grows_with_the_text_within_its_bound() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, |c| {
        paced_without_limits(c);
        c.pacing.typing = "40ms/char, max 2s".into();
    })
    .await;
    // 10, 30 and 200 characters: 400 ms, 1.2 s, and the 2 s bound.
    let texts = [
        "0123456789".to_string(),
        "typing grows with every letter".to_string(),
        "x".repeat(200),
    ];
    for (i, text) in texts.iter().enumerate() {
        deliver(&app, &format!("62812555000{}", 10 + i), text).await;
    }
    let typed: Vec<u64> = texts
        .iter()
        .map(|t| {
            let s = fake.sent();
            s.iter().find(|m| &m.text == t).expect("sent").typing_ms
        })
        .collect();
    // From the first word in the box to Enter: the wanted time, plus a WebDriver round trip.
    let slack = 700;
    for (got, want) in typed.iter().zip([400, 1_200, 2_000]) {
        assert!(
            (want..want + slack).contains(got),
            "typing {typed:?} ms, wanted about {want}"
        );
    }
    assert!(typed[0] < typed[1] && typed[1] < typed[2], "{typed:?}");
}

/// Pacing on with every rule off: only the typing and cooldown under test apply.
fn paced_without_limits(c: &mut wa_gateway::config::Config) {
    let p = &mut c.pacing;
    p.enabled = true;
    p.gap = "0s".into();
    (p.per_minute, p.per_hour, p.per_day) = (0, 0, 0);
    (p.per_recipient_per_hour, p.first_contact_per_day) = (0, 0);
    p.warmup = vec![];
    p.typing = "off".into();
}

#[tokio::test]
async fn a_ban_screen_fails_the_send_rate_limited_and_rests_the_session() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = connected_app(&fake, paced_without_limits).await;
    deliver(&app, "6281255500020", "before the ban").await;
    fake.ban_account(crate::fake_whatsapp::ACCOUNT);
    let started = Instant::now();
    let id = app.send_ok("6281255500021", "after the ban").await;
    let job = wait_job(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["lastError"]["code"], "rate-limited", "{job}");
    assert!(
        job["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("block page"),
        "{job}"
    );
    // Well before the send timeout: the block page ends the wait.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let s = app.session("default").await;
    assert_eq!(s["pacing"]["state"], "cooldown", "{s}");
    assert!(fake.sent_to("6281255500021").is_empty());
}
