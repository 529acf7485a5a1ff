//! `GET /api/cluster`: the gateway nodes on this database, for operators and the dashboard.
//! With SQLite it lists the one node.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;
use crate::time::rfc3339;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated().route(
        Method::Get,
        "/cluster",
        "The gateway nodes on this database: alive or lately dead, their roles and active jobs.",
        cluster,
    )
}

/// One node.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct NodeView {
    /// `[cluster] node_id`, or the host name and a random suffix.
    id: String,
    /// The address its API listens on.
    address: String,
    version: String,
    started_at: String,
    /// Its last heartbeat.
    heartbeat_at: String,
    /// False once its lease lapsed: its jobs went back to waiting for the other nodes.
    alive: bool,
    /// Roles held: `maintenance` (retention, webhook deliveries) runs on one node.
    roles: Vec<String>,
    /// Jobs it is sending now.
    active_jobs: i64,
    /// The sessions it runs now (it holds their leases), by name: read from the leases
    /// themselves, so every node answers alike.
    sessions: Vec<String>,
    /// The node that answered this request.
    this: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    /// The node that answered.
    node: String,
    /// `sqlite` or `postgres`.
    backend: &'static str,
    nodes: Vec<NodeView>,
}

async fn cluster(State(state): State<AppState>) -> Result<Json<Cluster>, ApiError> {
    let me = state.queue.node().id().to_string();
    let now = crate::time::now_ms();
    let owners = crate::db::owners::list(&state.db.read).await?;
    let run_by = |node: &str| -> Vec<String> {
        owners
            .iter()
            .filter(|o| o.owner_at(now) == Some(node))
            .map(|o| o.session.clone())
            .collect()
    };
    let nodes = crate::db::cluster::list(&state.db.read)
        .await?
        .into_iter()
        .map(|n| NodeView {
            sessions: run_by(&n.row.id),
            this: n.row.id == me,
            alive: n.row.expires_at > now,
            id: n.row.id,
            address: n.row.address,
            version: n.row.version,
            started_at: rfc3339(n.row.started_at),
            heartbeat_at: rfc3339(n.row.heartbeat_at),
            roles: n.roles,
            active_jobs: n.active_jobs,
        })
        .collect();
    Ok(Json(Cluster {
        node: me,
        backend: state.db.backend().as_str(),
        nodes,
    }))
}
