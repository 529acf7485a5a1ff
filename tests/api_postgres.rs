//! The integration suite again, with every gateway keeping its data in PostgreSQL: the same
//! tests as `api` (see `api/pg.rs` for the server they start), so both backends behave alike.
//! Needs Debian's `postgresql` package (or `PG_BIN`, or `TEST_DATABASE_URL`).

#[path = "api/main.rs"]
mod api;
// The suite's modules name each other from the crate root (`crate::helpers`).
use api::*;
// Several nodes on one database: PostgreSQL only.
#[path = "api/nodes.rs"]
mod nodes;
#[path = "api/nodes_restart.rs"]
mod nodes_restart;
#[path = "api/pg_own.rs"]
mod pg_own;
#[path = "api/session_leases.rs"]
mod session_leases;
#[path = "api/session_moves.rs"]
mod session_moves;
