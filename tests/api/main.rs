//! Integration tests: the real server over HTTP, each test with its own SQLite file and port.

mod auth;
mod cli;
mod client;
mod dashboard;
mod edge;
mod events;
mod fake_whatsapp;
mod helpers;
mod jobs;
mod metrics;
mod openapi;
mod pacing;
mod pacing_api;
mod plugins;
mod process;
mod process_logs;
mod queue;
mod sandbox;
mod sessions;
mod steps;
mod storage;
mod webdriver;
mod webdriver_recovery;
mod webdriver_sends;
mod webdriver_sessions;
mod webhooks;
