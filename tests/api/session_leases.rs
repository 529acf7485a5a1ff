//! Sessions across nodes on one PostgreSQL database (only in the `api_postgres` target): each
//! session runs on one node at a time; the nodes share them out, a send through any node is
//! delivered by the session's node, commands reach that node, a node added later takes a
//! share, and a clean stop hands its sessions over at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::eventually_shows;
use crate::helpers::{Api, TestApp, db_strings, spawn_app_with, start, test_config};

const LEASE: Duration = Duration::from_millis(900);

/// Node `id` on `first`'s database (or a new one), with a short lease.
async fn node(id: &str, first: Option<&TestApp>) -> TestApp {
    let id = id.to_string();
    match first {
        None => {
            spawn_app_with(|c| {
                c.cluster.node_id = Some(id);
                c.cluster.lease = wa_gateway::config::Dur(LEASE);
            })
            .await
        }
        Some(a) => {
            let dir = tempfile::tempdir().unwrap();
            let mut config = test_config(dir.path());
            config.storage.database_url = a.config.storage.database_url.clone();
            config.cluster.node_id = Some(id);
            config.cluster.lease = a.config.cluster.lease;
            start(dir, config).await
        }
    }
}

/// Session name → the node that runs it, as `api` lists them.
async fn placement(api: &Api) -> BTreeMap<String, Value> {
    let list = api.get_json("/api/sessions").await;
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["node"].clone()))
        .collect()
}

/// How many sessions each node runs, as `api` sees it.
async fn per_node(api: &Api) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for node in placement(api).await.into_values() {
        *out.entry(node.as_str().unwrap_or("none").to_string())
            .or_default() += 1;
    }
    out
}

/// Waits until `api` sees exactly `want` sessions per node.
async fn until_spread(api: &Api, want: &[(&str, usize)]) -> BTreeMap<String, Value> {
    let want: BTreeMap<String, usize> = want.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    eventually_shows(
        Duration::from_secs(20),
        &format!("sessions spread {want:?}"),
        || async {
            let seen = per_node(api).await;
            if seen == want {
                Ok(placement(api).await)
            } else {
                Err(format!("{seen:?}"))
            }
        },
    )
    .await
}

#[tokio::test]
async fn sessions_spread_over_the_nodes_sends_go_out_from_their_node_and_a_clean_stop_hands_them_over()
 {
    let a = node("a", None).await;
    for name in ["s1", "s2", "s3"] {
        let r = a
            .post("/api/sessions", &json!({"name": name, "driver": "sandbox"}))
            .await;
        assert!(r.status().is_success(), "{}", r.status());
    }
    // Alone, a runs all four; b joins and takes half of them, one at a time.
    until_spread(&a, &[("a", 4)]).await;
    let b = node("b", Some(&a)).await;
    let placed = until_spread(&b, &[("a", 2), ("b", 2)]).await;
    // Each node reads the owners every third of a lease: a sees the same within a round.
    eventually_shows(Duration::from_secs(5), "a sees b's placement", || async {
        let seen = placement(&a).await;
        if seen == placed {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
    // GET /api/cluster reads the leases themselves: each node lists the same sessions per node.
    for via in [&a, &b] {
        let cluster = via.get_json("/api/cluster").await;
        for id in ["a", "b"] {
            let mut listed: Vec<String> = crate::cluster::node(&cluster, id).unwrap()["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            listed.sort();
            let want: Vec<String> = placed
                .iter()
                .filter(|(_, n)| n.as_str() == Some(id))
                .map(|(s, _)| s.clone())
                .collect();
            assert_eq!(listed, want, "{cluster}");
        }
    }

    // A send through either node, for any session, goes out from the node that runs it.
    let mut ids = Vec::new();
    for (i, session) in placed.keys().enumerate() {
        for via in [&a, &b] {
            ids.push((
                session.clone(),
                via.send_via(session, "6281234567890", &format!("{session} {i}"))
                    .await,
            ));
        }
    }
    for (_, id) in &ids {
        assert_eq!(b.wait_finished(id).await["status"], "completed");
    }
    let sent = db_strings(
        &a.config,
        "SELECT session || ' ' || node FROM jobs ORDER BY session",
    )
    .await;
    for line in &sent {
        let (session, by) = line.split_once(' ').unwrap();
        assert_eq!(Some(by), placed[session].as_str(), "{sent:?}");
    }

    // Commands through a node that does not run the session reach the one that does.
    let (on_a, _) = placed.iter().find(|(_, n)| *n == "a").unwrap();
    let restarted = b.session_action(on_a, "restart").await;
    assert_eq!(restarted["name"], on_a.as_str());
    let stopped = b.session_action(on_a, "stop").await;
    assert_eq!(stopped["started"], false);
    eventually_shows(Duration::from_secs(10), "the stop reached a", || async {
        let s = a.session(on_a).await;
        match (s["state"].as_str(), s["node"].is_null()) {
            (Some("stopped"), true) => Ok(()),
            _ => Err(s.to_string()),
        }
    })
    .await;
    b.session_action(on_a, "start").await;
    until_spread(&b, &[("a", 2), ("b", 2)]).await;

    // A node added later takes a share: four sessions over three nodes.
    let c = node("c", Some(&a)).await;
    eventually_shows(Duration::from_secs(20), "c runs a session", || async {
        let seen = per_node(&c).await;
        let counts: Vec<usize> = seen.values().copied().collect();
        let fair = seen.get("c").is_some_and(|n| *n >= 1)
            && !seen.contains_key("none")
            && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1;
        if fair {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;

    // A clean stop of a: its sessions move to b and c within a few rounds, not a lease.
    let (_dir, _config) = a.stop().await;
    let after = eventually_shows(Duration::from_secs(5), "a's sessions moved", || async {
        let seen = per_node(&b).await;
        let total: usize = seen.values().sum();
        if !seen.contains_key("a") && !seen.contains_key("none") && total == 4 {
            Ok(seen)
        } else {
            Err(format!("{seen:?}"))
        }
    })
    .await;
    assert_eq!(after.values().sum::<usize>(), 4, "{after:?}");
    // Sends still go out, from the new nodes.
    for session in placed.keys() {
        let id = c.send_via(session, "6281234567890", "after the stop").await;
        assert_eq!(c.wait_finished(&id).await["status"], "completed");
    }
    drop(b);
}
