//! Several WhatsApp accounts in one gateway, end to end in real headless Chromium: the
//! stand-in plays one phone per account, each browser profile is its own linked device.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wa_gateway::config::DriverKind;
use wa_gateway::whatsapp::webdriver::profile_processes;

use super::webdriver::{browser_session, use_webdriver};
use crate::fake_whatsapp::FakeWa;
use crate::helpers::{TestApp, eventually, kill9, spawn_app_with, start};

const UP: Duration = Duration::from_secs(40);

/// A gateway whose `default` is the sandbox and whose browser sessions open the stand-in.
async fn gateway(fake: &FakeWa) -> TestApp {
    spawn_app_with(|c| {
        use_webdriver(c, fake);
        c.whatsapp.driver = DriverKind::Sandbox;
        c.whatsapp.max_browsers = Some(4);
    })
    .await
}

async fn create_browser_session(app: &TestApp, name: &str) {
    let r = app
        .post(
            "/api/sessions",
            &json!({"name": name, "driver": "webdriver"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "create {name}");
}

/// The session's QR code as the API serves it, once it has one.
async fn qr_of(app: &TestApp, name: &str) -> String {
    eventually(UP, &format!("a QR code for {name}"), || async {
        let r = app.get(&format!("/api/sessions/{name}/qr")).await;
        if r.status() != StatusCode::OK {
            return None;
        }
        let body: Value = r.json().await.unwrap();
        body["qr"].as_str().map(str::to_string)
    })
    .await
}

/// The phone of `account` scans the code the session shows (again if it rotated meanwhile).
async fn link(app: &TestApp, fake: &FakeWa, name: &str, account: &str) {
    eventually(UP, &format!("{account} scanned {name}'s code"), || async {
        let qr = qr_of(app, name).await;
        fake.scan_code(&qr, account).then_some(())
    })
    .await;
}

fn processes(app: &TestApp, name: &str) -> Vec<u32> {
    profile_processes(&app.config.browser_profile(name))
}

/// Sends one text through each session and waits until all are delivered.
async fn send_round(app: &TestApp, sessions: &[&str], to: &str, round: &str) {
    let mut ids = Vec::new();
    for s in sessions {
        ids.push(app.send_via(s, to, &format!("{round} from {s}")).await);
    }
    for id in ids {
        let job = app.wait_finished_within(&id, UP).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
}

#[tokio::test]
async fn three_browser_sessions_each_send_as_their_own_account_and_fail_alone() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = gateway(&fake).await;
    let accounts = BTreeMap::from([
        ("a", "6281100000011"),
        ("b", "6281100000022"),
        ("c", "6281100000033"),
    ]);
    let names: Vec<&str> = accounts.keys().copied().collect();
    for name in &names {
        create_browser_session(&app, name).await;
    }

    // Each browser shows its own code, the one its page shows.
    let mut codes = BTreeMap::new();
    for name in &names {
        app.wait_session_state(name, &["qr"], UP).await;
        let qr = qr_of(&app, name).await;
        assert!(
            fake.device_showing(&qr).is_some(),
            "{name}'s QR is on a page"
        );
        codes.insert(qr, *name);
    }
    assert_eq!(codes.len(), 3, "three different codes: {codes:?}");
    let devices: std::collections::BTreeSet<String> = codes
        .keys()
        .filter_map(|q| fake.device_showing(q))
        .collect();
    assert_eq!(devices.len(), 3, "three devices");

    for (name, account) in &accounts {
        link(&app, &fake, name, account).await;
    }
    for (name, account) in &accounts {
        let s = app.wait_session_state(name, &["connected"], UP).await;
        assert_eq!(s["me"], *account, "{s}");
    }
    let scans = fake.scans();

    // No cross-talk: every message arrives from its session's account only.
    send_round(&app, &names, "6281234500001", "first").await;
    for (name, account) in &accounts {
        assert_eq!(
            fake.sent_by(account),
            vec![("6281234500001".to_string(), format!("first from {name}"))],
            "{account}"
        );
    }

    // SIGKILL of b's Chromium restarts b alone, without a scan; a and c keep sending meanwhile.
    let b_pids = processes(&app, "b");
    assert!(!b_pids.is_empty());
    let others: Vec<u32> = processes(&app, "a")
        .into_iter()
        .chain(processes(&app, "c"))
        .collect();
    for pid in &b_pids {
        kill9(*pid);
    }
    send_round(&app, &["a", "c"], "6281234500002", "during b's restart").await;
    app.wait_session_state("b", &["connected"], UP).await;
    send_round(&app, &["b"], "6281234500002", "after the kill").await;
    assert_eq!(fake.scans(), scans, "no new scan");
    let still: Vec<u32> = processes(&app, "a")
        .into_iter()
        .chain(processes(&app, "c"))
        .collect();
    assert!(
        others.iter().all(|p| still.contains(p)),
        "a's and c's browsers were not restarted"
    );

    // A gateway restart brings all three back connected without a scan.
    let (dir, config) = app.stop().await;
    assert!(
        names
            .iter()
            .all(|n| profile_processes(&config.browser_profile(n)).is_empty())
    );
    let app = start(dir, config).await;
    for name in &names {
        app.wait_session_state(name, &["connected"], UP).await;
    }
    assert_eq!(fake.scans(), scans, "no new scan after the restart");
    send_round(&app, &names, "6281234500003", "after the restart").await;

    // Logged out from c's phone: only c is held.
    fake.logout_account(accounts["c"]);
    app.wait_session_state("c", &["logged_out", "qr"], UP).await;
    let held = app.send_via("c", "6281234500004", "held with c").await;
    send_round(&app, &["a", "b"], "6281234500004", "while c is out").await;
    assert_eq!(app.job(&held).await["status"], "waiting");

    for (name, account) in &accounts {
        let got: Vec<String> = fake
            .sent_by(account)
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        assert!(
            got.iter().all(|t| t.ends_with(&format!("from {name}"))),
            "{account} sent only {name}'s messages: {got:?}"
        );
    }

    // Deleting c stops its browser, deletes its profile and fails its waiting job.
    let r = app.delete("/api/sessions/c").await;
    assert_eq!(r.status(), StatusCode::OK);
    let job = app.job(&held).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["lastError"]["code"], "session_deleted");
    assert!(!app.config.browser_profile("c").exists());
    eventually(UP, "c's browser gone", || async {
        processes(&app, "c").is_empty().then_some(())
    })
    .await;
    send_round(&app, &["a", "b"], "6281234500005", "after c was deleted").await;
}

#[tokio::test]
async fn a_session_links_with_a_pairing_code_and_a_logout_asks_for_a_new_one() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let app = gateway(&fake).await;
    create_browser_session(&app, "p").await;
    app.wait_session_state("p", &["qr"], UP).await;
    // The terminal shows the same code (`wa-gateway session qr p`, while the gateway runs).
    let cli = crate::cli::config_for(&app);
    let art = wa_gateway::whatsapp::qr::unicode(&qr_of(&app, "p").await).unwrap();
    eventually(UP, "the CLI prints the QR code", || async {
        let (ok, out) = crate::cli::run(cli.path(), &["session", "qr", "p"], None);
        (ok && out.contains(&art)).then_some(())
    })
    .await;
    let r = app
        .post(
            "/api/sessions/p/pairing-code",
            &json!({"phone": "+62 811-0000-0099"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let code = r.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code.len(), 8, "{code}");
    app.wait_session_state("p", &["pairing"], UP).await;
    assert!(fake.confirm_pairing(&code));
    let s = app.wait_session_state("p", &["connected"], UP).await;
    assert_eq!(s["me"], "6281100000099");
    // The link starts the number's warm-up.
    eventually(UP, "linkedAt is set", || async {
        let s = app.session("p").await;
        s["pacing"]["linkedAt"].is_string().then_some(())
    })
    .await;
    // Number checks through the browser, both ways, without sending anything.
    fake.unregister("6281234500404");
    let yes = app
        .get_json("/api/sessions/p/contacts/6281234500008/exists")
        .await;
    assert_eq!(yes["exists"], true, "{yes}");
    let no = app
        .get_json("/api/sessions/p/contacts/6281234500404/exists")
        .await;
    assert_eq!(no["exists"], false, "{no}");
    assert!(fake.sent().is_empty(), "a check sends nothing");
    send_round(&app, &["p"], "6281234500009", "paired").await;
    assert_eq!(
        fake.sent_by("6281100000099"),
        vec![("6281234500009".to_string(), "paired from p".to_string())]
    );
    // Logged in: no pairing code.
    let r = app
        .post(
            "/api/sessions/p/pairing-code",
            &json!({"phone": "6281100000099"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // Logout through the API: the phone no longer lists the device, the profile is gone, and
    // the next start shows a new QR.
    assert_eq!(fake.linked_accounts(), ["6281100000099"]);
    let out = app.session_action("p", "logout").await;
    assert_eq!(out["state"], "logged_out");
    assert!(
        out["pacing"]["linkedAt"].is_null(),
        "the next link may be another number: {out}"
    );
    assert!(fake.linked_accounts().is_empty(), "the device is unlinked");
    assert!(!app.config.browser_profile("p").exists());
    app.session_action("p", "start").await;
    app.wait_session_state("p", &["qr"], UP).await;
}
