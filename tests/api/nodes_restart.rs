//! PostgreSQL restarted under two gateway nodes (only in the `api_postgres` target, on a
//! server of the test's own): while it is down a send is refused with a JSON 503, never
//! accepted and lost; once it is back both nodes take sends again, and every job accepted
//! before, during and after the restart ends completed and went out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::node;
use crate::helpers::{Api, eventually};
use crate::nodes::{node_config, sent};
use crate::pg_own::OwnServer;
use crate::process::Gateway;

/// What the load saw: accepted job ids, and the refusals' (status, error code).
#[derive(Default)]
struct Seen {
    accepted: std::sync::Mutex<Vec<String>>,
    refused: std::sync::Mutex<Vec<(u16, String)>>,
}

impl Seen {
    fn accepted(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}

/// Posts texts through `via` in turn until `stop`.
async fn load(via: Vec<Api>, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let api = &via[i % via.len()];
        i += 1;
        let body = json!({"number": "6281234567890", "message": format!("load {i}")});
        let Ok(r) = api
            .client
            .post(api.url("/api/whatsapp/send-message"))
            .bearer_auth(&api.token)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        else {
            continue;
        };
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == 202 {
            seen.accepted
                .lock()
                .unwrap()
                .push(body["jobId"].as_str().unwrap().to_string());
        } else {
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or("not JSON")
                .to_string();
            seen.refused.lock().unwrap().push((status, code));
        }
    }
}

fn copy(gw: &Gateway) -> Api {
    Api {
        base: gw.base.clone(),
        client: reqwest::Client::new(),
        token: gw.token.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_nothing_accepted_and_both_nodes_come_back() {
    let mut server = OwnServer::start();
    let url = server.url();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    node_config(dirs[0].path(), "a", "5ms", "2s");
    node_config(dirs[1].path(), "b", "5ms", "2s");
    let env = [("DATABASE_URL", url.as_str())];
    let a = Gateway::start_with_env(dirs[0].path(), &env).await;
    let b = Gateway::start_with_env(dirs[1].path(), &env).await;

    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    let task = tokio::spawn(load(vec![copy(&a), copy(&b)], seen.clone(), stop.clone()));
    let accepted = |n: usize| {
        let seen = seen.clone();
        async move {
            eventually(
                Duration::from_secs(60),
                &format!("{n} accepted"),
                || async { (seen.accepted() >= n).then_some(()) },
            )
            .await
        }
    };
    accepted(200).await;

    // Down: sends are refused, not accepted.
    tokio::task::block_in_place(|| server.stop());
    let before = seen.accepted();
    eventually(Duration::from_secs(30), "a refusal while down", || async {
        (seen.refused.lock().unwrap().len() >= 5).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| server.restart());
    // Back: both nodes accept again, and both are alive in the cluster's view.
    let back = tokio::time::timeout(Duration::from_secs(60), accepted(before + 200));
    if back.await.is_err() {
        let refused = seen.refused.lock().unwrap().clone();
        panic!(
            "not accepting after the restart; last refusals {:?}\nlog of a:\n{}",
            &refused[refused.len().saturating_sub(5)..],
            a.log()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eventually(Duration::from_secs(30), "both nodes alive", || async {
        let cluster = a.get_json("/api/cluster").await;
        (node(&cluster, "a")?["alive"] == true && node(&cluster, "b")?["alive"] == true)
            .then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();

    let ids = seen.accepted.lock().unwrap().clone();
    for id in &ids {
        let job = b.wait_finished_within(id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let (unique, twice) = sent(&dirs);
    assert!(
        ids.iter().all(|id| unique.contains(id)),
        "an accepted job never went out"
    );
    let refused = seen.refused.lock().unwrap().clone();
    assert!(
        refused
            .iter()
            .all(|(status, code)| *status == 503 && code != "not JSON"),
        "{refused:?}"
    );
    eprintln!(
        "MEASURE PostgreSQL restart under load: {} accepted, {} refused while down ({:?}), {twice} sent twice",
        ids.len(),
        refused.len(),
        refused
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    );
}
