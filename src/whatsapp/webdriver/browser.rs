//! Chromium and ChromeDriver as processes: found on PATH, started on a free loopback port with
//! a kept profile, measured, and torn down so that nothing outlives the session.
//!
//! ChromeDriver runs in its own process group, and Chromium's processes stay in it; they are
//! also found by the profile flag on their command line. A [`Family`] is both, and killing it
//! snapshots the process tree before anything dies (orphans lose their parent link). A
//! `Browser` that is dropped without `close` kills its family too, and a ChromeDriver left by a
//! gateway that was killed is found through its pid file at the next launch.
//!
//! A gateway killed with `kill -9` cannot clean up, and ChromeDriver's death alone leaves
//! Chromium running (a live page of the number, which a node taking the session over would
//! meet as "open in another window"). So each ChromeDriver's group also holds a reaper: a
//! `sh` that waits for its stdin to close, which the kernel does when the gateway exits in any
//! way, and then kills its own process group.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

use crate::config::WebDriverConfig;

/// A running WebDriver session on a browser with our profile.
pub struct Browser {
    pub client: Client,
    /// The ChromeDriver we started (none when `webdriver_url` points at one already running).
    driver: Option<tokio::process::Child>,
    /// The reaper in ChromeDriver's group; its stdin closes with us.
    _reaper: Option<tokio::process::Child>,
    family: Family,
    closed: bool,
}

/// Every process of one browser: ChromeDriver's process group (when we started it) and the
/// processes that run with our profile, with their descendants.
#[derive(Debug, Clone)]
pub struct Family {
    driver_group: Option<i32>,
    profile: PathBuf,
}

impl Family {
    /// SIGKILL to all of them, now.
    pub fn kill(&self) {
        // Read the tree first: once a parent dies, its children no longer point at it.
        let tree = profile_processes(&self.profile);
        if let Some(group) = self.driver_group {
            // SAFETY: signalling a process group we created; a stale id is harmless (ESRCH).
            unsafe {
                libc::killpg(group, libc::SIGKILL);
            }
        }
        for pid in tree.into_iter().chain(profile_processes(&self.profile)) {
            // SAFETY: SIGKILL to a pid just read from /proc; ESRCH if it is already gone.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_file(driver_pid_file(&self.profile));
    }
}

/// A file beside the profile: `<profile>.<suffix>`.
fn beside(profile: &Path, suffix: &str) -> PathBuf {
    let name = profile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "browser-profile".into());
    profile.with_file_name(format!("{name}.{suffix}"))
}

/// Where the pid of the ChromeDriver serving a profile is kept while it runs.
fn driver_pid_file(profile: &Path) -> PathBuf {
    beside(profile, "chromedriver.pid")
}

/// Where files wait for the browser to read them while they are sent (each send's own folder,
/// removed after it).
pub fn uploads_dir(profile: &Path) -> PathBuf {
    beside(profile, "uploads")
}

/// Kills the process group of a ChromeDriver that an earlier gateway started for this profile
/// and could not stop (it was killed itself), if that process is still a ChromeDriver.
fn kill_orphaned_driver(profile: &Path) {
    let file = driver_pid_file(profile);
    let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let is_driver = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| {
            c.split(|b| *b == 0)
                .next()
                .map(|a| a.ends_with(b"chromedriver"))
        })
        .unwrap_or(false);
    if is_driver {
        tracing::warn!(pid, "🌍 Killing a ChromeDriver left by an earlier gateway");
        // SAFETY: the group of a process we checked is a ChromeDriver we started.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(file);
}

/// Why a browser could not be started.
pub enum LaunchError {
    /// A program is missing: the message says which and how to install it.
    Unavailable(String),
    Failed(String),
}

/// A program given as a path, or a name looked up on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|c| c.is_file())
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The browser flags: lean (no background networking, sync, extensions or first-run UI), one
/// window of fixed size, the kept profile, and what an automated headless browser needs.
fn browser_args(cfg: &WebDriverConfig, profile: &Path) -> Vec<String> {
    let mut args = vec![
        format!("--user-data-dir={}", profile.display()),
        "--window-size=1280,900".to_string(),
        "--disable-blink-features=AutomationControlled".to_string(),
        "--disable-background-networking".to_string(),
        "--disable-component-update".to_string(),
        "--disable-sync".to_string(),
        "--disable-extensions".to_string(),
        "--disable-default-apps".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--disable-features=Translate,MediaRouter,OptimizationHints".to_string(),
        "--no-first-run".to_string(),
        "--no-default-browser-check".to_string(),
        "--mute-audio".to_string(),
        "--renderer-process-limit=2".to_string(),
        "--in-process-gpu".to_string(),
        "--disable-software-rasterizer".to_string(),
    ];
    if cfg.headless {
        args.push("--headless=new".to_string());
        args.push("--disable-gpu".to_string());
    }
    if is_root() {
        // Chromium refuses to run as root with its sandbox on.
        args.push("--no-sandbox".to_string());
    }
    args.extend(cfg.browser_args.iter().cloned());
    args
}

impl Browser {
    /// Where this browser's files to send wait while they are sent.
    pub fn uploads_dir(&self) -> PathBuf {
        uploads_dir(&self.family.profile)
    }

    pub async fn launch(cfg: &WebDriverConfig, profile: &Path) -> Result<Browser, LaunchError> {
        std::fs::create_dir_all(profile).map_err(|e| {
            LaunchError::Failed(format!(
                "cannot create the browser profile {}: {e}",
                profile.display()
            ))
        })?;
        // A browser left over from a process that died would hold the profile.
        kill_orphaned_driver(profile);
        kill_profile_processes(profile);
        // Files of sends a crash interrupted.
        let _ = std::fs::remove_dir_all(uploads_dir(profile));

        let mut chrome = json!({ "args": browser_args(cfg, profile) });
        let (url, driver) = match &cfg.webdriver_url {
            Some(url) => (url.clone(), None),
            None => {
                let binary = which(&cfg.browser).ok_or_else(|| {
                    LaunchError::Unavailable(format!(
                        "Chromium not found (browser = {:?}): install it with `apt-get install chromium`, or set whatsapp.webdriver.browser to its path",
                        cfg.browser
                    ))
                })?;
                chrome["binary"] = json!(binary);
                let chromedriver = which(&cfg.chromedriver).ok_or_else(|| {
                    LaunchError::Unavailable(format!(
                        "ChromeDriver not found (chromedriver = {:?}): install it with `apt-get install chromium-driver`, or set whatsapp.webdriver.chromedriver to its path",
                        cfg.chromedriver
                    ))
                })?;
                let port =
                    free_port().map_err(|e| LaunchError::Failed(format!("no free port: {e}")))?;
                let mut cmd = tokio::process::Command::new(&chromedriver);
                cmd.arg(format!("--port={port}"))
                    .arg("--allowed-ips=127.0.0.1")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true);
                // Its own process group, so the browser it starts can be killed with it.
                cmd.as_std_mut().process_group(0);
                let child = cmd.spawn().map_err(|e| {
                    LaunchError::Failed(format!("cannot start {}: {e}", chromedriver.display()))
                })?;
                if let Some(pid) = child.id() {
                    let _ = std::fs::write(driver_pid_file(profile), pid.to_string());
                }
                let url = format!("http://127.0.0.1:{port}");
                wait_listening(port, Duration::from_secs(10))
                    .await
                    .map_err(|_| {
                        LaunchError::Failed(format!(
                            "{} did not listen on port {port} within 10s",
                            chromedriver.display()
                        ))
                    })?;
                (url, Some(child))
            }
        };
        let reaper = driver.as_ref().and_then(|d| d.id()).and_then(spawn_reaper);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), chrome);
        // No single command may hang longer than a send or the watchdog allows.
        let limit = cfg.send_timeout.0.min(cfg.session_timeout.0).as_millis() as u64;
        caps.insert(
            "timeouts".into(),
            json!({ "script": limit, "pageLoad": limit, "implicit": 0 }),
        );
        let connect = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await;
        let family = Family {
            driver_group: driver.as_ref().and_then(|d| d.id()).map(|p| p as i32),
            profile: profile.to_path_buf(),
        };
        match connect {
            Ok(client) => Ok(Browser {
                client,
                driver,
                _reaper: reaper,
                family,
                closed: false,
            }),
            Err(e) => {
                family.kill();
                if let Some(mut d) = driver {
                    let _ = d.wait().await;
                }
                Err(LaunchError::Failed(format!(
                    "the browser did not start through WebDriver at {url}: {e}"
                )))
            }
        }
    }

    /// The browser's processes, to kill from elsewhere.
    pub fn family(&self) -> Family {
        self.family.clone()
    }

    /// Ends the session politely (the browser writes its profile to disk), then makes sure no
    /// process of it is left.
    /// `polite` bounds the wait for the browser to end the session itself.
    pub async fn close(mut self, polite: Duration) {
        if !polite.is_zero() {
            let _ = tokio::time::timeout(polite, self.client.clone().close()).await;
        }
        self.family.kill();
        self.closed = true;
        if let Some(mut d) = self.driver.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), d.wait()).await;
        }
    }

    /// Memory the browser's processes hold, summed (PSS).
    pub fn memory_bytes(&self) -> u64 {
        profile_processes(&self.family.profile)
            .into_iter()
            .map(pss_bytes)
            .sum()
    }
}

impl Drop for Browser {
    /// A browser whose session task was dropped (the runtime ended mid-send) still dies.
    fn drop(&mut self) {
        if !self.closed {
            self.family.kill();
        }
    }
}

/// Starts the reaper in process group `group`: once its stdin (a pipe only this process holds
/// the other end of) closes, it kills the group, ChromeDriver and Chromium with it. Being in
/// the group, it also keeps the group's id from being reused while it waits.
fn spawn_reaper(group: u32) -> Option<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.args(["-c", "read _line; kill -KILL 0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(false);
    cmd.as_std_mut().process_group(group as i32);
    match cmd.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the browser reaper; a killed gateway may leave Chromium running");
            None
        }
    }
}

async fn wait_listening(port: u16, within: Duration) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(())
}

/// Processes whose command line names our profile directory, with their descendants.
pub fn profile_processes(profile: &Path) -> Vec<u32> {
    let flag = format!("--user-data-dir={}", profile.display());
    let mut parents: Vec<(u32, u32)> = Vec::new();
    let mut roots = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return roots;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes()) {
            roots.push(pid);
        }
        if let Some(ppid) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                let after = s.rsplit_once(')')?.1.to_string();
                after.split_whitespace().nth(1)?.parse::<u32>().ok()
            })
        {
            parents.push((pid, ppid));
        }
    }
    let mut all = roots.clone();
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        for (child, parent) in &parents {
            if *parent == p && !all.contains(child) {
                all.push(*child);
            }
        }
        i += 1;
    }
    all
}

fn kill_profile_processes(profile: &Path) {
    for pid in profile_processes(profile) {
        // SAFETY: sending SIGKILL to a pid we just read; ESRCH if it is already gone.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// A `kB` field of a `/proc/<pid>/` file, in bytes.
fn proc_kb(pid: u32, file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// Resident set size of a process, in bytes (0 when it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    proc_kb(pid, "status", "VmRSS:").unwrap_or(0)
}

/// Proportional set size (shared pages split between the processes sharing them), so the sum
/// over the browser's processes is what it really holds; RSS where PSS is not available.
pub fn pss_bytes(pid: u32) -> u64 {
    proc_kb(pid, "smaps_rollup", "Pss:").unwrap_or_else(|| rss_bytes(pid))
}
