//! Integration tests: the real server over HTTP, each test with its own SQLite file and port.

mod auth;
mod cli;
mod helpers;
mod jobs;
mod plugins;
mod process;
mod queue;
mod sandbox;
