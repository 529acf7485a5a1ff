//! `/api/plugins`: what is loaded, how it does, and reload without restart.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::routes::{ApiRouter, Method};
use crate::app::AppState;
use crate::error::ApiError;

pub fn routes() -> ApiRouter {
    ApiRouter::authenticated()
        .route(
            Method::Get,
            "/",
            "Loaded plugins with their calls, failures and mean call time.",
            list_plugins,
        )
        .route(
            Method::Post,
            "/reload",
            "Load and check every plugin again, then swap them in at once.",
            reload_plugins,
        )
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PluginView {
    name: String,
    hook: &'static str,
    path: String,
    sha256: String,
    calls: u64,
    failures: u64,
    /// Mean wall time of a call (fresh instance + run), in microseconds.
    mean_micros: f64,
}

#[derive(Serialize, schemars::JsonSchema)]
struct PluginList {
    plugins: Vec<PluginView>,
}

fn views(state: &AppState) -> Vec<PluginView> {
    let Some(plugins) = &state.plugins else {
        return Vec::new();
    };
    plugins
        .list()
        .into_iter()
        .map(|p| PluginView {
            name: p.name.clone(),
            hook: p.hook.as_str(),
            path: p.path.display().to_string(),
            sha256: p.sha256.clone(),
            calls: p.calls(),
            failures: p.failures(),
            mean_micros: (p.mean_micros() * 10.0).round() / 10.0,
        })
        .collect()
}

async fn list_plugins(State(state): State<AppState>) -> Json<PluginList> {
    Json(PluginList {
        plugins: views(&state),
    })
}

async fn reload_plugins(State(state): State<AppState>) -> Result<Json<PluginList>, ApiError> {
    let Some(plugins) = state.plugins.clone() else {
        return Ok(Json(PluginList {
            plugins: Vec::new(),
        }));
    };
    tokio::task::spawn_blocking(move || plugins.reload())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|why| {
            ApiError::Conflict(
                "plugin_reload_failed",
                format!("{why}; the plugins loaded before stay in use"),
            )
        })?;
    Ok(Json(PluginList {
        plugins: views(&state),
    }))
}
