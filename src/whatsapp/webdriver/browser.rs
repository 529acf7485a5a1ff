//! Chromium and ChromeDriver as processes: found on PATH, started on a free loopback port with
//! a kept profile, measured, and torn down so that nothing outlives the session.

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
    profile: PathBuf,
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
    pub async fn launch(cfg: &WebDriverConfig, profile: &Path) -> Result<Browser, LaunchError> {
        std::fs::create_dir_all(profile).map_err(|e| {
            LaunchError::Failed(format!(
                "cannot create the browser profile {}: {e}",
                profile.display()
            ))
        })?;
        // A browser left over from a process that died would hold the profile.
        kill_profile_processes(profile);

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
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), chrome);
        caps.insert(
            "timeouts".into(),
            json!({ "script": 10_000, "pageLoad": 60_000, "implicit": 0 }),
        );
        let connect = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await;
        let mut browser = Browser {
            client: match connect {
                Ok(c) => c,
                Err(e) => {
                    if let Some(mut d) = driver {
                        kill_group(&d);
                        let _ = d.wait().await;
                    }
                    kill_profile_processes(profile);
                    return Err(LaunchError::Failed(format!(
                        "the browser did not start through WebDriver at {url}: {e}"
                    )));
                }
            },
            driver: None,
            profile: profile.to_path_buf(),
        };
        browser.driver = driver;
        Ok(browser)
    }

    /// Ends the session politely (the browser writes its profile to disk), then makes sure no
    /// process of it is left.
    /// `polite` bounds the wait for the browser to end the session itself.
    pub async fn close(self, polite: Duration) {
        let Browser {
            client,
            driver,
            profile,
        } = self;
        let _ = tokio::time::timeout(polite, client.close()).await;
        if let Some(mut d) = driver {
            kill_group(&d);
            let _ = tokio::time::timeout(Duration::from_secs(5), d.wait()).await;
        }
        kill_profile_processes(&profile);
    }

    /// Memory the browser's processes hold, summed (PSS).
    pub fn memory_bytes(&self) -> u64 {
        profile_processes(&self.profile)
            .into_iter()
            .map(pss_bytes)
            .sum()
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

fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: signalling a process group we created; a stale id is harmless (ESRCH).
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
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
