//! The suite on PostgreSQL: in the `api_postgres` target (or `api` with
//! `TEST_DATABASE=postgres`) every test's gateway keeps its data in
//! a database of its own on a throwaway PostgreSQL server that this test process starts
//! (Debian's `postgresql` package: `initdb` into a temporary folder, `postgres` on a free
//! loopback port, as the unprivileged `postgres` user when run as root) and stops at exit.
//! `TEST_DATABASE_URL` names a server to use instead (its user must be allowed to create
//! databases). Without `TEST_DATABASE`, nothing here runs and the suite uses SQLite.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// True when this run keeps the gateways' data in PostgreSQL: always in the `api_postgres`
/// test target, and in `api` with `TEST_DATABASE=postgres`.
pub fn enabled() -> bool {
    if env!("CARGO_CRATE_NAME") == "api_postgres" {
        return true;
    }
    match std::env::var("TEST_DATABASE").as_deref() {
        Ok("postgres") | Ok("postgresql") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("TEST_DATABASE={other}: use postgres or sqlite"),
    }
}

/// The database URL for a gateway whose data directory is `data_dir`: the same for every
/// gateway, command and restart that uses that directory, a new database for a new one.
/// `None` on SQLite.
pub fn url_for(data_dir: &Path) -> Option<String> {
    if !enabled() {
        return None;
    }
    let key = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    static BY_DIR: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut by_dir = BY_DIR.get_or_init(Default::default).lock().unwrap();
    if let Some(url) = by_dir.get(&key) {
        return Some(url.clone());
    }
    let url = server().create_database();
    by_dir.insert(key, url.clone());
    Some(url)
}

/// The environment that points the binary, started with the config file at `config`, at its
/// database: `DATABASE_URL` on PostgreSQL, nothing on SQLite.
pub fn env_for(config: &Path) -> Vec<(String, String)> {
    if !enabled() {
        return Vec::new();
    }
    let data_dir = match wa_gateway::config::Config::load(config) {
        Ok(c) => c.data_dir(),
        // A test of a broken config: any database will do, the gateway stops before it.
        Err(_) => config.with_file_name("data"),
    };
    url_for(&data_dir)
        .map(|url| vec![("DATABASE_URL".to_string(), url)])
        .unwrap_or_default()
}

struct Server {
    /// `postgres://user@host:port` without a database.
    base: String,
    bin: PathBuf,
}

/// The postmaster this process started, stopped at exit.
static POSTMASTER: Mutex<Option<std::process::Child>> = Mutex::new(None);
static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_server() {
    let child = POSTMASTER.lock().ok().and_then(|mut c| c.take());
    if let Some(mut child) = child {
        // SIGQUIT is PostgreSQL's immediate shutdown.
        stop_child(&mut child, libc::SIGQUIT);
    }
    if let Some(dir) = DATA_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let bin = bin_dir();
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Server {
                base: url.trim_end_matches('/').to_string(),
                bin,
            },
            _ => start(bin),
        }
    })
}

/// Where PostgreSQL's programs are: `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "TEST_DATABASE=postgres needs PostgreSQL's server programs: install Debian's \
             `postgresql` package, or set PG_BIN or TEST_DATABASE_URL"
        )
    })
}

/// The unprivileged account the server runs as when the tests run as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: a NUL-terminated name; the result is read at once, before any other call.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null pointer from getpwnam.
            return Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) });
        }
    }
    panic!("running as root, and no postgres or nobody account to run PostgreSQL as");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL data directory and the port its server listens on, owned by the account
/// [`run_as`] names.
pub(crate) struct Cluster {
    bin: PathBuf,
    pub(crate) dir: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
}

impl Cluster {
    /// `initdb` into a fresh `dir`.
    pub(crate) fn init(bin: PathBuf, dir: PathBuf) -> Cluster {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let c = Cluster {
            bin,
            dir,
            port: free_port(),
            owner,
        };
        let out = c
            .as_owner("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(c.dir.join("data"))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }

    fn as_owner(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c.current_dir(&self.dir);
        c
    }

    /// Starts the server and waits until it takes connections.
    pub(crate) fn start(&self) -> std::process::Child {
        // A throwaway server: no fsync (durability across power cuts is not what the suite
        // checks), room for every test's pool.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let mut child = self
            .as_owner("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=400",
                "-c",
                "shared_buffers=64MB",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start postgres");
        if !self.ready_within(Duration::from_secs(60)) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "PostgreSQL did not start within 60 s: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
        }
        child
    }

    /// Polls `pg_isready` until the server takes connections; false after `within`.
    fn ready_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub(crate) fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

/// Sends `signal` to the postmaster and waits (10 s at most) for it to exit.
pub(crate) fn stop_child(child: &mut std::process::Child, signal: i32) {
    // SAFETY: signalling a child process this process started.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(bin: PathBuf) -> Server {
    let dir = std::env::temp_dir().join(format!("wa-gateway-pg-{}", std::process::id()));
    let cluster = Cluster::init(bin.clone(), dir.clone());
    *POSTMASTER.lock().unwrap() = Some(cluster.start());
    let _ = DATA_DIR.set(dir);
    // SAFETY: registers a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(stop_server);
    }
    Server {
        base: cluster.base(),
        bin,
    }
}

/// Every row of the database at `url`, as `pg_dump --data-only` writes them.
pub fn dump(url: &str) -> Vec<u8> {
    let out = Command::new(server().bin.join("pg_dump"))
        .args(["--data-only", "--dbname"])
        .arg(url)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Server {
    /// A new, empty database; its URL.
    fn create_database(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new(self.bin.join("psql"))
            .arg(format!("{}/postgres", self.base))
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "cannot create a test database: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("{}/{name}", self.base)
    }
}
