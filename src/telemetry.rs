//! Logging on stderr, filtered by `RUST_LOG` or `[log] level`: readable lines, or one JSON
//! object per line (`[log] format = "json"`) for log shippers.
//!
//! What the gateway logs never includes tokens, passwords or message bodies, and phone numbers
//! are masked (`62812****7890`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(level: &str) {
    init_with(level, LogFormat::Text)
}

pub fn init_with(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},sqlx=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
