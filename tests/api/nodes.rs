//! Several gateway nodes on one PostgreSQL database (only in the `api_postgres` target): they
//! share the queue, the JWT secret and the maintenance role; a node killed or frozen mid-send
//! has its jobs finished by another, and a late outcome of the frozen one changes nothing.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{node, roles};
use crate::helpers::{
    Api, EMAIL, PASSWORD, TestApp, db_count, db_strings, eventually, read_outbox, spawn_app_with,
    start, test_config,
};
use crate::process::{Gateway, write_config};

/// Two gateways on one PostgreSQL database, each with its own data directory and node id, and
/// no JWT secret configured (so they must agree on one through the database).
async fn two_nodes() -> (TestApp, TestApp) {
    let a = spawn_app_with(|c| {
        c.cluster.node_id = Some("a".into());
        c.cluster.lease = wa_gateway::config::Dur(Duration::from_millis(900));
        c.auth.jwt_secret = None;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.storage.database_url = a.config.storage.database_url.clone();
    config.cluster.node_id = Some("b".into());
    config.cluster.lease = a.config.cluster.lease;
    config.auth.jwt_secret = None;
    let b = start(dir, config).await;
    (a, b)
}

#[tokio::test]
async fn two_nodes_on_one_postgres_share_the_queue_the_secret_and_the_maintenance_role() {
    let (a, b) = two_nodes().await;

    // Each node lists both, alive, and exactly one of them runs the maintenance.
    let cluster = b.get_json("/api/cluster").await;
    assert_eq!(cluster["node"], "b");
    let (na, nb) = (node(&cluster, "a").unwrap(), node(&cluster, "b").unwrap());
    assert_eq!(
        (na["this"].as_bool(), nb["this"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(
        (na["alive"].as_bool(), nb["alive"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(na["address"], a.addr.to_string());
    assert_eq!(
        roles(na),
        ["maintenance"],
        "the first node up leads: {cluster}"
    );
    assert!(roles(nb).is_empty(), "{cluster}");

    // A token that node a issued opens node b: the secret was generated once, in the database.
    let a_token_on_b = Api {
        base: b.api.base.clone(),
        client: reqwest::Client::new(),
        token: a.api.token.clone(),
    };
    assert_eq!(a_token_on_b.get_json("/api/cluster").await["node"], "b");
    let fresh = Api::login_at(b.api.base.clone(), EMAIL, PASSWORD).await;
    let b_token_on_a = Api {
        base: a.api.base.clone(),
        client: reqwest::Client::new(),
        token: fresh.token,
    };
    assert_eq!(b_token_on_a.get_json("/api/cluster").await["node"], "a");

    // The first node up runs the one session; both say so.
    assert_eq!(a.session("default").await["node"], "a");
    assert_eq!(b.session("default").await["node"], "a");

    // Sends accepted by either node are sent once, by the node that runs the session.
    let mut ids = Vec::new();
    for i in 0..20 {
        let via = if i % 2 == 0 { &a } else { &b };
        ids.push(via.send_ok("6281234567890", &format!("shared {i}")).await);
    }
    for id in &ids {
        let job = b.wait_finished(id).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let mut sent: Vec<String> = a
        .outbox()
        .into_iter()
        .chain(b.outbox())
        .map(|l| l["jobId"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(sent, want, "each accepted job sent exactly once");

    // A clean stop of the leader: it leaves the list at once and b takes the role.
    let (_dir, config) = a.stop().await;
    let cluster = eventually(Duration::from_secs(10), "b leads", || async {
        let cluster = b.get_json("/api/cluster").await;
        (roles(node(&cluster, "b")?) == ["maintenance"]).then_some(cluster)
    })
    .await;
    assert!(node(&cluster, "a").is_none(), "a signed off: {cluster}");
    assert_eq!(
        db_count(&config, "SELECT COUNT(*) FROM nodes WHERE id = 'a'").await,
        0
    );
}

/// A node's config: the process tests' gateway (concurrency 3, sandbox sends of `delay`) as
/// node `id` with a short lease.
pub(crate) fn node_config(dir: &Path, id: &str, delay: &str, lease: &str) {
    node_config_with(dir, id, delay, lease, "");
}

/// [`node_config`] with more `[cluster]` keys.
fn node_config_with(dir: &Path, id: &str, delay: &str, lease: &str, cluster: &str) {
    write_config(dir, delay);
    let path = dir.join("gateway.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[cluster]\nnode_id = \"{id}\"\nlease = \"{lease}\"\n{cluster}\n"
    ));
    std::fs::write(path, text).unwrap();
}

/// Nodes `a` and `b` as two processes on `a`'s database, and that database's config (for
/// reading it).
async fn two_processes(
    delay: &str,
    lease: &str,
) -> (
    [tempfile::TempDir; 2],
    Gateway,
    Gateway,
    wa_gateway::config::Config,
) {
    two_processes_with(delay, lease, "").await
}

/// [`two_processes`] with more `[cluster]` keys.
async fn two_processes_with(
    delay: &str,
    lease: &str,
    cluster: &str,
) -> (
    [tempfile::TempDir; 2],
    Gateway,
    Gateway,
    wa_gateway::config::Config,
) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    node_config_with(dirs[0].path(), "a", delay, lease, cluster);
    node_config_with(dirs[1].path(), "b", delay, lease, cluster);
    let url = crate::pg::url_for(&dirs[0].path().join("data")).unwrap();
    let a = Gateway::start(dirs[0].path()).await;
    let b = Gateway::start_with_env(dirs[1].path(), &[("DATABASE_URL", &url)]).await;
    let mut config =
        wa_gateway::config::Config::load(&dirs[0].path().join("gateway.toml")).unwrap();
    config.storage.database_url = Some(url.into());
    (dirs, a, b, config)
}

/// Posts `n` texts through `gw`; their job ids.
async fn post(gw: &Api, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(gw.send_ok("6281234567890", &format!("{tag} {i}")).await);
    }
    ids
}

/// Waits until node `id` is sending, as `observer` sees it.
async fn until_sending(observer: &Api, id: &str) {
    eventually(
        Duration::from_secs(20),
        &format!("{id} sending"),
        || async {
            let cluster = observer.get_json("/api/cluster").await;
            (node(&cluster, id)?["activeJobs"].as_i64()? > 0).then_some(())
        },
    )
    .await
}

/// Waits until every job in `ids` completed, asking `gw`.
async fn until_completed(gw: &Api, ids: &[String], within: Duration) {
    for id in ids {
        let job = gw.wait_finished_within(id, within).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
}

/// Job ids in the outboxes of both nodes, and how many went out twice.
pub(crate) fn sent(dirs: &[tempfile::TempDir; 2]) -> (std::collections::HashSet<String>, usize) {
    let lines: Vec<String> = dirs
        .iter()
        .flat_map(|d| read_outbox(&d.path().join("data/outbox.jsonl")))
        .map(|l: Value| l["jobId"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<String> = lines.iter().cloned().collect();
    let twice = lines.len() - unique.len();
    (unique, twice)
}

#[tokio::test]
async fn a_killed_nodes_jobs_are_finished_by_the_other_node_within_its_lease() {
    let (dirs, a, b, db) = two_processes("300ms", "2s").await;
    let ids = post(&a, 30, "kill").await;
    until_sending(&b, "a").await;
    a.signal("-9");

    until_completed(&b, &ids, Duration::from_secs(60)).await;
    let rescued = db_strings(&db, "SELECT node FROM jobs WHERE rescues > 0").await;
    assert!(
        !rescued.is_empty(),
        "a was sending at the kill, so some jobs were rescued"
    );
    assert!(
        rescued.iter().all(|n| n == "b"),
        "rescued jobs went out from b: {rescued:?}"
    );
    let cluster = b.get_json("/api/cluster").await;
    let dead = node(&cluster, "a").expect("a stays listed a while");
    assert_eq!(
        (dead["alive"].as_bool(), dead["activeJobs"].as_i64()),
        (Some(false), Some(0))
    );
    assert_eq!(
        roles(node(&cluster, "b").unwrap()),
        ["maintenance"],
        "{cluster}"
    );

    // The session moved with its jobs.
    assert_eq!(b.session("default").await["node"], "b");

    let (unique, twice) = sent(&dirs);
    assert!(
        ids.iter().all(|id| unique.contains(id)),
        "every accepted job went out"
    );
    // Only a send that went out just before the kill, unrecorded, can go out again.
    assert!(twice <= 3, "{twice} sent twice");
}

#[tokio::test]
async fn a_frozen_nodes_jobs_are_finished_meanwhile_and_its_late_outcomes_change_nothing() {
    let (dirs, a, b, db) = two_processes("300ms", "1s").await;
    let ids = post(&a, 24, "freeze").await;
    until_sending(&b, "a").await;
    a.signal("-STOP");

    // While a is frozen (its sends stuck mid-way), b finishes everything, a's jobs included.
    until_completed(&b, &ids, Duration::from_secs(60)).await;
    let snapshot = "SELECT id || ' ' || node || ' ' || attempts || ' ' || finished_at FROM jobs \
                    WHERE rescues > 0 ORDER BY id";
    let rescued = db_strings(&db, snapshot).await;
    assert!(!rescued.is_empty(), "a was sending when frozen");

    // Thawed, a finds its lease lapsed and rejoins; the outcomes of its stale sends are
    // refused (their lease is gone), so the rows b wrote stay as they are.
    assert_eq!(
        b.session("default").await["node"],
        "b",
        "b took the session"
    );
    a.signal("-CONT");
    a.wait_log(&[
        "this node's lease had lapsed; rejoining",
        "another node took it over; closing its browser here",
    ])
    .await;
    eventually(Duration::from_secs(10), "a alive again", || async {
        let cluster = b.get_json("/api/cluster").await;
        (node(&cluster, "a")?["alive"] == true).then_some(())
    })
    .await;
    let more = post(&a, 6, "after").await;
    until_completed(&a, &more, Duration::from_secs(30)).await;
    assert_eq!(db_strings(&db, snapshot).await, rescued);
    assert_eq!(
        db_count(&db, "SELECT COUNT(*) FROM jobs WHERE status <> 'completed'").await,
        0
    );
    let (unique, twice) = sent(&dirs);
    assert!(ids.iter().chain(&more).all(|id| unique.contains(id)));
    assert!(
        twice <= 3,
        "only the sends frozen mid-way went out twice: {twice}"
    );
}

/// Node a runs the session and looks for jobs on its own only every 30 s (and renews its
/// lease every 20 s, which wakes it too); jobs queued through b go out within seconds because
/// b tells it. With `notify = false` and a short poll, they go out all the same.
#[tokio::test]
async fn a_node_is_told_of_jobs_queued_through_another_and_without_notify_it_polls() {
    for cluster in ["poll = \"30s\"", "notify = false\npoll = \"200ms\""] {
        let (_dirs, a, b, db) = two_processes_with("0ms", "60s", cluster).await;
        assert_eq!(b.session("default").await["node"], "a", "{cluster}");
        // Once a's lane has looked (and found nothing), only a wake-up or the poll moves it.
        let first = post(&a, 1, "warm").await;
        until_completed(&a, &first, Duration::from_secs(10)).await;
        let ids = post(&b, 5, "told").await;
        until_completed(&b, &ids, Duration::from_secs(5)).await;
        let senders = db_strings(&db, "SELECT DISTINCT node FROM jobs").await;
        assert_eq!(senders, ["a"], "{cluster}");
    }
}
