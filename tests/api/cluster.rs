//! A node on its database: `GET /api/cluster`, the maintenance role, a clean stop that signs
//! the node off. Several nodes on one PostgreSQL database: `nodes.rs`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{db_count, spawn_app_with};

/// The node called `id` in a `GET /api/cluster` answer.
pub(crate) fn node<'a>(cluster: &'a Value, id: &str) -> Option<&'a Value> {
    cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
}

pub(crate) fn roles(node: &Value) -> Vec<&str> {
    node["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_cluster_lists_this_node_with_its_role_and_a_clean_stop_signs_it_off() {
    let app = spawn_app_with(|c| c.cluster.node_id = Some("node-a".into())).await;
    let cluster = app.get_json("/api/cluster").await;
    let backend = if crate::pg::enabled() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(cluster["node"], "node-a", "{cluster}");
    assert_eq!(cluster["backend"], backend, "{cluster}");
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 1, "{cluster}");
    let me = node(&cluster, "node-a").unwrap();
    assert_eq!(me["this"], true);
    assert_eq!(me["alive"], true);
    assert_eq!(me["address"], app.addr.to_string());
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(roles(me), ["maintenance"]);
    assert_eq!(me["activeJobs"], 0);
    assert_eq!(me["sessions"], serde_json::json!(["default"]), "{cluster}");

    let (_dir, config) = app.stop().await;
    assert_eq!(db_count(&config, "SELECT COUNT(*) FROM nodes").await, 0);
    assert_eq!(db_count(&config, "SELECT COUNT(*) FROM leaders").await, 0);
}

#[tokio::test]
async fn the_cluster_needs_a_token() {
    let app = spawn_app_with(|_| {}).await;
    let r = app
        .client
        .get(app.url("/api/cluster"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
}
