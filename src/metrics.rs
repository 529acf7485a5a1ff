//! Prometheus metrics, kept in plain atomics and maps (no registry crate) and written in the
//! text exposition format by `GET /metrics`. Labels never carry numbers, texts or tokens.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A histogram with fixed buckets (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.write_series(out, name, "");
    }

    /// The series without the header; `labels` like `session="a",` (with its comma).
    fn write_series(&self, out: &mut String, name: &str, labels: &str) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {n}");
        let plain = labels.trim_end_matches(',');
        let braces = if plain.is_empty() {
            String::new()
        } else {
            format!("{{{plain}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {n}");
    }
}

const LATENCY: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const WAIT: &[f64] = &[0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];
const ATTEMPTS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0];

/// (method, status) → requests, for one route.
type PerRoute = BTreeMap<(&'static str, u16), u64>;

/// One session's sends.
struct SessionSends {
    /// (outcome, error code) → sends.
    by_outcome: BTreeMap<(String, String), u64>,
    seconds: Histogram,
}

/// Everything the gateway counts.
pub struct Metrics {
    /// Sends by session.
    sends: Mutex<BTreeMap<String, SessionSends>>,
    pub wait_seconds: Histogram,
    pub attempts: Histogram,
    /// Passes of the retention pruner (each one every `prune_interval`).
    pub retention_runs: std::sync::atomic::AtomicU64,
    /// (session, result, source) → number checks.
    number_checks: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    /// (session, rule) → times pacing held a session or a message back.
    deferrals: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// session → messages received (each once).
    received: Mutex<BTreeMap<String, u64>>,
    /// route → (method, status) → requests. Keyed by route first so a hit allocates nothing.
    http: Mutex<BTreeMap<String, PerRoute>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sends: Mutex::default(),
            wait_seconds: Histogram::new(WAIT),
            attempts: Histogram::new(ATTEMPTS),
            retention_runs: Default::default(),
            number_checks: Mutex::default(),
            deferrals: Mutex::default(),
            received: Mutex::default(),
            http: Mutex::default(),
        }
    }
}

/// A label value, escaped for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// One send of a session ended: `outcome` is `completed`, `retry` or `failed`; `code`
    /// empty on success.
    pub fn send(&self, session: &str, outcome: &str, code: &str, took: Duration) {
        let mut sends = self.sends.lock().expect("metrics lock");
        if !sends.contains_key(session) {
            sends.insert(
                session.to_string(),
                SessionSends {
                    by_outcome: BTreeMap::new(),
                    seconds: Histogram::new(LATENCY),
                },
            );
        }
        if let Some(s) = sends.get_mut(session) {
            *s.by_outcome
                .entry((outcome.to_string(), code.to_string()))
                .or_default() += 1;
            s.seconds.observe(took.as_secs_f64());
        }
    }

    /// A session received `n` new messages.
    pub fn received(&self, session: &str, n: usize) {
        *self
            .received
            .lock()
            .expect("metrics lock")
            .entry(session.to_string())
            .or_default() += n as u64;
    }

    /// A number check answered: whether the number is on WhatsApp, and whether from the cache.
    pub fn number_check(&self, session: &str, exists: bool, cached: bool) {
        let result = if exists { "exists" } else { "not_exists" };
        let source = if cached { "cache" } else { "driver" };
        *self
            .number_checks
            .lock()
            .expect("metrics lock")
            .entry((session.to_string(), result, source))
            .or_default() += 1;
    }

    /// Pacing held back a session or a message by `rule` (a rule's name, `cooldown`, or
    /// `plugin` for a reason of a pace plugin's own).
    pub fn paced(&self, session: &str, rule: &str) {
        let rule = wa_pacing::Rule::parse(rule)
            .map(wa_pacing::Rule::as_str)
            .unwrap_or(if rule == "cooldown" {
                "cooldown"
            } else {
                "plugin"
            });
        *self
            .deferrals
            .lock()
            .expect("metrics lock")
            .entry((session.to_string(), rule))
            .or_default() += 1;
    }

    /// Counted on every request: no allocation once a route has been seen.
    pub fn http(&self, method: &axum::http::Method, route: &str, status: u16) {
        use axum::http::Method;
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "OTHER",
        };
        let mut http = self.http.lock().expect("metrics lock");
        if !http.contains_key(route) {
            http.insert(route.to_string(), BTreeMap::new());
        }
        if let Some(per_route) = http.get_mut(route) {
            *per_route.entry((method, status)).or_default() += 1;
        }
    }

    /// The text format, with the gauges passed in by the caller (they live elsewhere).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP wa_gateway_jobs Jobs by state.\n# TYPE wa_gateway_jobs gauge"
        );
        for (state, n) in &gauges.jobs {
            let _ = writeln!(o, "wa_gateway_jobs{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_sends_total Sends by session, outcome and error code.\n# TYPE wa_gateway_sends_total counter"
        );
        let sends = self.sends.lock().expect("metrics lock");
        for (session, s) in sends.iter() {
            for ((outcome, code), n) in &s.by_outcome {
                let _ = writeln!(
                    o,
                    "wa_gateway_sends_total{{session=\"{}\",outcome=\"{}\",code=\"{}\"}} {n}",
                    label(session),
                    label(outcome),
                    label(code)
                );
            }
        }
        let name = "wa_gateway_send_duration_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time of one send through a session's WhatsApp driver.\n# TYPE {name} histogram"
        );
        for (session, s) in sends.iter() {
            s.seconds
                .write_series(&mut o, name, &format!("session=\"{}\",", label(session)));
        }
        drop(sends);
        self.wait_seconds.write(
            &mut o,
            "wa_gateway_queue_wait_seconds",
            "Time a job waited from due to claimed.",
        );
        self.attempts.write(
            &mut o,
            "wa_gateway_job_attempts",
            "Attempts a job took, when it finished.",
        );
        let plugin_metrics: [(&str, &str, PluginValue); 3] = [
            ("wa_gateway_plugin_calls_total", "Plugin calls.", |p| {
                p.calls as f64
            }),
            (
                "wa_gateway_plugin_failures_total",
                "Plugin calls that failed (trap, limit, panic).",
                |p| p.failures as f64,
            ),
            (
                "wa_gateway_plugin_call_seconds_total",
                "Time spent in plugin calls.",
                |p| p.seconds,
            ),
        ];
        for (name, help, value) in plugin_metrics {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in &gauges.plugins {
                let _ = writeln!(
                    o,
                    "{name}{{plugin=\"{}\",hook=\"{}\"}} {}",
                    label(&p.name),
                    p.hook,
                    value(p)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_retention_runs_total Passes of the retention pruner.\n# TYPE wa_gateway_retention_runs_total counter\nwa_gateway_retention_runs_total {}",
            self.retention_runs
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP wa_gateway_browser_restarts_total Browser restarts by session and cause.\n# TYPE wa_gateway_browser_restarts_total counter"
        );
        for (session, cause, n) in &gauges.restarts {
            let _ = writeln!(
                o,
                "wa_gateway_browser_restarts_total{{session=\"{}\",cause=\"{cause}\"}} {n}",
                label(session)
            );
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_session_conflicts_total WhatsApp Web's \"open in another window\" screens (another browser on the number), by session and what this node did: took_over (it held the lease), closed (it did not), left (takeover_on_conflict = false).\n# TYPE wa_gateway_session_conflicts_total counter"
        );
        for (session, action, n) in &gauges.conflicts {
            let _ = writeln!(
                o,
                "wa_gateway_session_conflicts_total{{session=\"{}\",action=\"{action}\"}} {n}",
                label(session)
            );
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_whatsapp_state 1 for each session's current state.\n# TYPE wa_gateway_whatsapp_state gauge"
        );
        for (session, now) in &gauges.states {
            for state in crate::whatsapp::SessionState::ALL {
                let _ = writeln!(
                    o,
                    "wa_gateway_whatsapp_state{{session=\"{}\",state=\"{state}\"}} {}",
                    label(session),
                    u8::from(*now == state)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_number_checks_total Number checks by session, result and source (driver or cache).\n# TYPE wa_gateway_number_checks_total counter"
        );
        for ((session, result, source), n) in
            self.number_checks.lock().expect("metrics lock").iter()
        {
            let _ = writeln!(
                o,
                "wa_gateway_number_checks_total{{session=\"{}\",result=\"{result}\",source=\"{source}\"}} {n}",
                label(session)
            );
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_pacing_deferrals_total Times pacing held back a session or a message, by session and rule.\n# TYPE wa_gateway_pacing_deferrals_total counter"
        );
        for ((session, rule), n) in self.deferrals.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                o,
                "wa_gateway_pacing_deferrals_total{{session=\"{}\",rule=\"{rule}\"}} {n}",
                label(session)
            );
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_messages_received_total Messages sessions received (each once), by session.\n# TYPE wa_gateway_messages_received_total counter"
        );
        for (session, n) in self.received.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                o,
                "wa_gateway_messages_received_total{{session=\"{}\"}} {n}",
                label(session)
            );
        }
        let _ = writeln!(
            o,
            "# HELP wa_gateway_http_requests_total HTTP requests by route and status.\n# TYPE wa_gateway_http_requests_total counter"
        );
        for (route, per_route) in self.http.lock().expect("metrics lock").iter() {
            for ((method, status), n) in per_route {
                let _ = writeln!(
                    o,
                    "wa_gateway_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    label(route)
                );
            }
        }
        o
    }
}

/// One figure of a plugin, for the per-plugin counters.
type PluginValue = fn(&PluginFigures) -> f64;

/// Values read from elsewhere at scrape time.
pub struct Gauges {
    pub jobs: Vec<(&'static str, i64)>,
    pub plugins: Vec<PluginFigures>,
    /// (session, cause, restarts).
    pub restarts: Vec<(String, &'static str, u64)>,
    /// (session, action, conflict screens met).
    pub conflicts: Vec<(String, &'static str, u64)>,
    /// Each session's state.
    pub states: Vec<(String, crate::whatsapp::SessionState)>,
}

pub struct PluginFigures {
    pub name: String,
    pub hook: &'static str,
    pub calls: u64,
    pub failures: u64,
    pub seconds: f64,
}
