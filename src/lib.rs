//! wa-gateway: a self-hosted WhatsApp API gateway.
//!
//! [`run`] is the whole server: tests call it on `127.0.0.1:0` with a fresh data directory, and
//! `main` calls it with the configured address.

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod hooks;
pub mod media;
pub mod metrics;
pub mod plugins;
pub mod queue;
pub mod serve;
pub mod sessions;
pub mod shutdown;
pub mod system;
pub mod telemetry;
pub mod time;
pub mod webhooks;
pub mod whatsapp;

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppState};
use crate::auth::Keys;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::db::Db;
use crate::hooks::{Builtin, Hooks};
use crate::queue::Queue;
use crate::sessions::Sessions;

/// Environment variables that create the first admin when there is no user yet.
pub const ADMIN_EMAIL_ENV: &str = "GATEWAY_ADMIN_EMAIL";
pub const ADMIN_PASSWORD_ENV: &str = "GATEWAY_ADMIN_PASSWORD";

/// Runs the API and the workers until `shutdown` is cancelled, then stops taking requests, lets
/// active sends finish within `queue.shutdown_grace`, and closes the database.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_clock(config, listener, shutdown, time::Clock::system()).await
}

/// [`run`] with the queue's clock given: tests move it to test rules over time (pacing windows,
/// quiet hours, cooldowns) without waiting.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    clock: time::Clock,
) -> anyhow::Result<()> {
    system::return_large_allocations();
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    // One gateway per data directory; `restore` checks this lock too.
    let _lock = backup::DataDirLock::acquire(&data_dir)?;
    let (db, writer_task) = Db::open(&db::Store::of(&config)).await?;

    let configured = config.auth.jwt_secret.as_ref().map(|s| s.expose_secret());
    let secret = match db.backend() {
        db::Backend::Sqlite => auth::secret::load_or_create(configured, &data_dir)?,
        db::Backend::Postgres => auth::secret::load_or_create_shared(configured, &db).await?,
    };
    let keys = Keys::new(&secret, config.auth.access_ttl.0, config.auth.refresh_ttl.0);
    bootstrap_admin(&db).await?;

    let plugin_hooks = if config.plugins.is_empty() {
        None
    } else {
        let host = plugins::PluginHost::new()?;
        let loaded = plugins::PluginHooks::load(host, &config.plugins, &config.base_dir)
            .map_err(anyhow::Error::msg)?;
        Some(Arc::new(loaded))
    };
    let hooks: Arc<dyn Hooks> = match &plugin_hooks {
        Some(p) => p.clone(),
        None => Arc::new(Builtin),
    };
    let tracker = TaskTracker::new();
    let events = events::Events::new();
    let metrics = Arc::new(metrics::Metrics::default());
    let outbox = webhooks::Outbox::new(&config.webhooks);
    let node = cluster::Node::new(
        config
            .cluster
            .node_id(&data_dir)
            .context("cannot keep this node's id in data_dir")?,
        config.cluster.lease.0,
        listener.local_addr()?.to_string(),
    );
    // Joined before anything is claimed, so no other node takes this one's jobs for a dead one's.
    node.renew(&db)
        .await
        .context("cannot register this node in the database")?;
    tracing::info!(node = %node.id(), "🫀 Node {} joined ({})", node.id(), db::Store::of(&config).describe());
    // Wake-ups between nodes (PostgreSQL, unless poll-only).
    let notify_pool = match &db.read {
        db::Pool::Pg(p) if config.cluster.notify => Some(p.clone()),
        _ => None,
    };
    let queue = Queue::new(
        db.clone(),
        &config.queue,
        hooks,
        queue::Wiring {
            events: events.clone(),
            outbox: outbox.clone(),
            metrics: metrics.clone(),
            clock,
            node: node.clone(),
            notifier: notify_pool.clone().map(crate::db::notify::Notifier::new),
            poll: config.cluster.poll.0,
        },
    )
    .await?;
    if let Some(pool) = notify_pool {
        let (told, missed) = (queue.clone(), queue.clone());
        tracker.spawn(db::notify::listen(
            pool,
            &[db::notify::JOBS],
            move |_, session| told.wake(session),
            move || missed.wake_all(),
            shutdown.child_token(),
        ));
    }
    let beat = CancellationToken::new();
    let heartbeat = queue.beat(beat.clone());
    let config = Arc::new(config);
    let sessions = Sessions::load(
        config.clone(),
        db.clone(),
        queue.clone(),
        events,
        shutdown.child_token(),
        tracker.clone(),
    )
    .await?;
    // Session leases are kept until the last send of a clean stop, then released.
    let owning = CancellationToken::new();
    let owner_loop = tokio::spawn(sessions.clone().keep_owned(owning.clone()));
    if db.backend() == db::Backend::Postgres {
        tokio::spawn(sessions.clone().serve_commands(owning.clone()));
    }
    webhooks::start(
        outbox,
        &db,
        &node,
        queue.events(),
        shutdown.child_token(),
        &tracker,
    );

    let state = AppState(Arc::new(App {
        db: db.clone(),
        keys,
        throttle: Throttle::new(config.auth.login_max_failures, config.auth.login_window.0),
        queue: queue.clone(),
        sessions: sessions.clone(),
        metrics,
        plugins: plugin_hooks.clone(),
        templates: config.templates.clone(),
        media: media::Media::new(&config.media)?,
        max_body_bytes: config.server.max_body_bytes,
        request_timeout: config.server.request_timeout.0,
        event_streams: Arc::new(tokio::sync::Semaphore::new(config.server.max_event_streams)),
    }));

    if let Some(p) = plugin_hooks {
        shutdown::reload_on_sighup(p, shutdown.clone());
    }
    queue.start(shutdown.child_token(), &tracker);
    tracker.spawn(media::prune_unused(
        db.clone(),
        node.clone(),
        config.media.keep_unused.0,
        config.queue.prune_interval.0,
        queue.clock().clone(),
        shutdown.child_token(),
    ));

    let addr = listener.local_addr()?;
    tracing::info!("🌐 Listening on http://{addr}");
    // Keep descriptors for the database, the browser and the log beside the connections.
    let open_files = system::raise_open_file_limit() as usize;
    let max_connections = config
        .server
        .max_connections
        .min(open_files.saturating_sub(128).max(16));
    if max_connections < config.server.max_connections {
        tracing::warn!(
            max_connections,
            open_files,
            "server.max_connections lowered to fit the open-file limit"
        );
    }
    let limits = serve::Limits {
        header_timeout: config.server.header_timeout.0,
        max_connections,
        drain: std::time::Duration::from_secs(5),
    };
    serve::serve(listener, api::router(state), limits, shutdown.clone())
        .await
        .context("HTTP server failed")?;

    tracing::info!(
        active = queue.active(),
        "🛑 Shutting down: waiting for active sends to finish"
    );
    tracker.close();
    if tokio::time::timeout(config.queue.shutdown_grace.0, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            active = queue.active(),
            "sends still active after {}; they will be retried after the next start",
            humantime::format_duration(config.queue.shutdown_grace.0)
        );
        // Nothing the drivers started may outlive the gateway.
        sessions.kill();
    }
    // The last send is over: this node's sessions, jobs and roles are free for the others at
    // once (each session's login kept for the node that takes it).
    owning.cancel();
    let _ = owner_loop.await;
    sessions.release_all().await;
    beat.cancel();
    let _ = heartbeat.await;
    if let Err(e) = node.leave(&db).await {
        tracing::warn!(error = %e, "cannot sign this node off; the others wait for its lease");
    }
    drop(sessions);
    drop(queue);
    drop(db);
    // The writer ends once every handle is gone; don't wait on sends that outlived the grace period.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer_task).await;
    tracing::info!("👋 Stopped");
    Ok(())
}

async fn bootstrap_admin(db: &Db) -> anyhow::Result<()> {
    if db::users::count(&db.read).await? > 0 {
        return Ok(());
    }
    let email = std::env::var(ADMIN_EMAIL_ENV)
        .ok()
        .filter(|e| !e.trim().is_empty());
    let password = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    match (email, password) {
        (Some(email), Some(password)) => {
            cli::create_user(&db.writer, email.trim(), password).await?;
            tracing::info!("👤 Created the first user from {ADMIN_EMAIL_ENV}/{ADMIN_PASSWORD_ENV}");
        }
        _ => tracing::warn!(
            "👤 No user exists yet, so nobody can log in. Create one with `wa-gateway user add --email you@example.com`, \
             or start with {ADMIN_EMAIL_ENV} and {ADMIN_PASSWORD_ENV} set"
        ),
    }
    Ok(())
}
