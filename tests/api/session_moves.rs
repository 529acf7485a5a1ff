//! WhatsApp Web sessions that move between gateway processes on one PostgreSQL database
//! (only in the `api_postgres` target): real Chromium on the stand-in, a number linked once on
//! node a. Killed, a's session comes up on b from its login snapshot without a new scan, and
//! a's browser dies with it; frozen, b takes the number over with "Use here" while a's page is
//! still open, and a, thawed, closes its browser; no text goes out twice, and no page sends
//! while another page of the number is in use.

use std::path::Path;
use std::time::Duration;

use crate::fake_whatsapp::{ACCOUNT, FakeWa};
use crate::helpers::{db_count, eventually};
use crate::process::{Gateway, write_webdriver_config};
use crate::webdriver::browser_session;

/// A node's config: webdriver sessions on the stand-in at `web`, node `id`, lease `lease`.
fn write_node(dir: &Path, id: &str, web: &str, lease: &str) {
    write_webdriver_config(
        dir,
        web,
        &format!("[cluster]\nnode_id = \"{id}\"\nlease = \"{lease}\"\n"),
    );
}

/// Node a linked by a scan, its login snapshot stored, and node b up beside it.
struct Pair {
    dirs: [tempfile::TempDir; 2],
    a: Gateway,
    b: Gateway,
    db: wa_gateway::config::Config,
}

impl Pair {
    async fn start(fake: &FakeWa) -> Pair {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        write_node(dirs[0].path(), "a", &fake.url, "4s");
        write_node(dirs[1].path(), "b", &fake.url, "4s");
        let url = crate::pg::url_for(&dirs[0].path().join("data")).expect("PostgreSQL");
        let a = Gateway::start(dirs[0].path()).await;
        let mut db =
            wa_gateway::config::Config::load(&dirs[0].path().join("gateway.toml")).unwrap();
        db.storage.database_url = Some(url.clone().into());
        a.wait_state(&["qr"], Duration::from_secs(30)).await;
        fake.scan();
        a.wait_state(&["connected"], Duration::from_secs(20)).await;
        eventually(Duration::from_secs(20), "a login snapshot", || async {
            let n = db_count(
                &db,
                "SELECT COUNT(*) FROM session_profiles WHERE session = 'default'",
            )
            .await;
            (n == 1).then_some(())
        })
        .await;
        let b = Gateway::start_with_env(dirs[1].path(), &[("DATABASE_URL", &url)]).await;
        assert_eq!(b.session("default").await["node"], "a");
        Pair { dirs, a, b, db }
    }

    /// Node a's browser processes.
    fn a_browser(&self) -> Vec<u32> {
        let config =
            wa_gateway::config::Config::load(&self.dirs[0].path().join("gateway.toml")).unwrap();
        wa_gateway::whatsapp::webdriver::profile_processes(&config.browser_profile("default"))
    }
}

/// Texts the account sent, each with how often.
fn counts(fake: &FakeWa) -> std::collections::BTreeMap<String, usize> {
    let mut n = std::collections::BTreeMap::new();
    for (_, text) in fake.sent_by(ACCOUNT) {
        *n.entry(text).or_default() += 1;
    }
    n
}

async fn post(via: &Gateway, tag: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let text = format!("{tag} {i}");
        out.push((
            via.send_ok(&format!("62812000001{i:02}"), &text).await,
            text,
        ));
    }
    out
}

async fn all_completed(via: &Gateway, jobs: &[(String, String)]) {
    for (id, _) in jobs {
        let job = via.wait_finished_within(id, Duration::from_secs(90)).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
}

/// `session="default"` conflict counters of a node, by action.
async fn conflicts(gw: &Gateway, action: &str) -> u64 {
    let line =
        format!("wa_gateway_session_conflicts_total{{session=\"default\",action=\"{action}\"}} ");
    gw.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&line)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_killed_nodes_number_comes_up_on_the_other_without_a_scan_and_its_browser_dies() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let pair = Pair::start(&fake).await;
    let (a, b) = (&pair.a, &pair.b);
    assert!(!pair.a_browser().is_empty(), "a runs the browser");
    let jobs = post(b, "moved", 8).await;
    // a is sending (the first texts went out from its page) when it is killed.
    eventually(Duration::from_secs(30), "a sending", || async {
        (!fake.sent_by(ACCOUNT).is_empty()).then_some(())
    })
    .await;
    a.signal("-9");

    // The reaper takes a's browser down with it: no page of the number is left open there.
    eventually(Duration::from_secs(10), "a's browser gone", || async {
        pair.a_browser().is_empty().then_some(())
    })
    .await;
    // b takes the session once the lease lapses, from the snapshot: no second scan.
    eventually(Duration::from_secs(60), "b runs the session", || async {
        (b.session("default").await["node"] == "b").then_some(())
    })
    .await;
    b.wait_state(&["connected"], Duration::from_secs(60)).await;
    assert_eq!(fake.scans(), 1, "the move needed a new scan");
    all_completed(b, &jobs).await;
    let more = post(b, "after", 2).await;
    all_completed(b, &more).await;

    let sent = counts(&fake);
    for (_, text) in jobs.iter().chain(&more) {
        assert_eq!(sent.get(text), Some(&1), "{text:?} sent {sent:?}");
    }
    assert_eq!(sent.len(), jobs.len() + more.len(), "{sent:?}");
    assert_eq!(fake.split_sends(), 0);
    let rescued = db_count(
        &pair.db,
        "SELECT COUNT(*) FROM jobs WHERE rescues > 0 AND node = 'b'",
    )
    .await;
    eprintln!("MEASURE kill -9 move: {rescued} jobs rescued by b");
}

#[tokio::test]
async fn a_frozen_node_is_taken_over_with_use_here_and_thawed_it_closes_its_browser() {
    let Some((_one, fake)) = browser_session().await else {
        return;
    };
    let pair = Pair::start(&fake).await;
    let (a, b) = (&pair.a, &pair.b);
    let before = post(b, "before", 2).await;
    all_completed(b, &before).await;
    a.signal("-STOP");

    // a's page stays open (only the gateway is frozen): b's page of the same login meets
    // the conflict screen and, holding the lease, takes the number over.
    eventually(Duration::from_secs(60), "b runs the session", || async {
        (b.session("default").await["node"] == "b").then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "b took the number over",
        || async { (conflicts(b, "took_over").await == 1).then_some(()) },
    )
    .await;
    b.wait_state(&["connected"], Duration::from_secs(30)).await;
    assert_eq!(fake.scans(), 1, "the move needed a new scan");
    let during = post(b, "during", 3).await;
    all_completed(b, &during).await;
    assert!(
        !pair.a_browser().is_empty(),
        "a's browser runs on while a is frozen"
    );

    // Thawed, a finds the session taken and closes its browser; it sends nothing for it.
    a.signal("-CONT");
    a.wait_log(&["another node took it over; closing its browser here"])
        .await;
    eventually(Duration::from_secs(20), "a's browser closed", || async {
        pair.a_browser().is_empty().then_some(())
    })
    .await;
    let after = post(a, "after", 3).await;
    all_completed(a, &after).await;
    assert_eq!(b.session("default").await["node"], "b");

    let sent = counts(&fake);
    for (_, text) in before.iter().chain(&during).chain(&after) {
        assert_eq!(sent.get(text), Some(&1), "{text:?} sent {sent:?}");
    }
    assert_eq!(
        fake.split_sends(),
        0,
        "two pages of the number sent at once"
    );
    // Only the texts from before the freeze went out from a.
    assert_eq!(
        db_count(&pair.db, "SELECT COUNT(*) FROM jobs WHERE node = 'a'").await,
        before.len() as i64
    );
}
