//! Boots the real app (`wa_gateway::run`) on 127.0.0.1:0 with a fresh data directory, and
//! offers one helper per route.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Response, StatusCode};

pub use crate::client::{Api, eventually};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wa_gateway::config::Config;

pub const EMAIL: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery";
pub const SECRET: &str = "test-secret-test-secret-test-secret-!";

pub struct TestApp {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: Config,
    /// The HTTP client, logged in as the test user (`app.get(..)` and the rest, through Deref).
    pub api: Api,
    /// The queue's clock: the system's, unless the test started the app with its own.
    pub clock: wa_gateway::time::Clock,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The test config: no sandbox delay, short backoff (20ms → 160ms), no pacing, a fixed JWT
/// secret.
pub fn test_config(dir: &Path) -> Config {
    let text = format!(
        r#"
[storage]
data_dir = "data"
[auth]
jwt_secret = "{SECRET}"
login_max_failures = 3
[queue]
backoff_base = "20ms"
backoff_max = "160ms"
shutdown_grace = "5s"
[whatsapp.sandbox]
delay = "0ms"
outbox = "outbox.jsonl"
[pacing]
enabled = false
[templates]
otp = "Your code is {{{{code}}}}."
"#
    );
    let mut config =
        Config::parse(&text, "test.toml", dir, std::iter::empty()).expect("test config");
    config.storage.database_url = crate::pg::url_for(&config.data_dir()).map(Into::into);
    config
}

/// The app's database, as the gateway opens it (SQLite file or PostgreSQL).
pub async fn db_pool(config: &Config) -> wa_gateway::db::Pool {
    let store = wa_gateway::db::Store::of(config);
    match store {
        // Writable: some tests prepare the database by hand.
        wa_gateway::db::Store::Sqlite(path) => wa_gateway::db::Pool::Lite(
            sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        ),
        store => wa_gateway::db::open_read_pool(&store).await.unwrap(),
    }
}

/// Runs a statement on the app's database.
pub async fn db_execute(config: &Config, sql: &str) {
    match db_pool(config).await {
        wa_gateway::db::Pool::Lite(p) => drop(sqlx::query(sql).execute(&p).await.unwrap()),
        wa_gateway::db::Pool::Pg(p) => drop(sqlx::query(sql).execute(&p).await.unwrap()),
    }
}

/// A count (or any whole number) from the app's database.
pub async fn db_count(config: &Config, sql: &str) -> i64 {
    match db_pool(config).await {
        wa_gateway::db::Pool::Lite(p) => sqlx::query_scalar(sql).fetch_one(&p).await.unwrap(),
        wa_gateway::db::Pool::Pg(p) => sqlx::query_scalar(sql).fetch_one(&p).await.unwrap(),
    }
}

/// A column of text from the app's database.
pub async fn db_strings(config: &Config, sql: &str) -> Vec<String> {
    match db_pool(config).await {
        wa_gateway::db::Pool::Lite(p) => sqlx::query_scalar(sql).fetch_all(&p).await.unwrap(),
        wa_gateway::db::Pool::Pg(p) => sqlx::query_scalar(sql).fetch_all(&p).await.unwrap(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_clock(wa_gateway::time::Clock::system(), tweak).await
}

/// Starts the app on an existing data directory (a restart).
pub async fn start(dir: tempfile::TempDir, config: Config) -> TestApp {
    start_with_clock(dir, config, wa_gateway::time::Clock::system()).await
}

/// A fresh app whose queue reads `clock`, which the test moves.
pub async fn spawn_app_with_clock(
    clock: wa_gateway::time::Clock,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    tweak(&mut config);
    wa_gateway::cli::add_user(&config, EMAIL, PASSWORD.into())
        .await
        .expect("add user");
    start_with_clock(dir, config, clock).await
}

/// Starts the app on an existing data directory with this clock.
pub async fn start_with_clock(
    dir: tempfile::TempDir,
    config: Config,
    clock: wa_gateway::time::Clock,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(wa_gateway::run_with_clock(
        config.clone(),
        listener,
        shutdown.clone(),
        clock.clone(),
    ));
    TestApp {
        addr,
        dir,
        config,
        api: Api::login_at(format!("http://{addr}"), EMAIL, PASSWORD).await,
        clock,
        shutdown,
        handle: Some(handle),
    }
}

impl TestApp {
    /// Stops the app gracefully and hands back its data directory and config for a restart.
    pub async fn stop(self) -> (tempfile::TempDir, Config) {
        let (dir, config, _) = self.stop_keeping_clock().await;
        (dir, config)
    }

    /// Stops the app; its data directory, config and clock, for a restart at the same time.
    pub async fn stop_keeping_clock(
        mut self,
    ) -> (tempfile::TempDir, Config, wa_gateway::time::Clock) {
        self.shutdown.cancel();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), handle)
            .await
            .expect("app stops in time")
            .expect("join")
            .expect("run returned an error");
        let clock = self.clock.clone();
        (self.dir, self.config.clone(), clock)
    }

    pub fn outbox_path(&self) -> PathBuf {
        self.config.resolve(&self.config.whatsapp.sandbox.outbox)
    }

    /// Lines the sandbox "delivered".
    pub fn outbox(&self) -> Vec<Value> {
        read_outbox(&self.outbox_path())
    }

    pub async fn set_queue(&self, body: Value) -> Value {
        let r = self.post("/api/whatsapp/queue/config", &body).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

pub fn read_outbox(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).expect("outbox line is JSON"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Asserts the error envelope and returns the code.
pub async fn error_code(r: Response, status: StatusCode) -> String {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.expect("error body is JSON");
    let message = body["error"]["message"].as_str().expect("error.message");
    assert!(!message.is_empty());
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string()
}

/// SIGKILL to a process (a browser's, in the tests that kill one).
pub fn kill9(pid: u32) {
    // SAFETY: kill(2) with a pid read from /proc; ESRCH if it is already gone.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// A webhook nobody listens to: its deliveries stay pending, for tests that read them through
/// `GET /api/webhooks/deliveries`.
pub fn unheard_webhook(events: &[&str]) -> wa_gateway::config::WebhookConfig {
    wa_gateway::config::WebhookConfig {
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        secret: SECRET.into(),
        max_attempts: 20,
    }
}
