//! A PostgreSQL server of one test's own (only in the `api_postgres` target), which the test
//! may stop and start again: the shared one (`pg.rs`) must stay up for the other tests.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::pg::{Cluster, bin_dir, stop_child};

/// A server of the test's own, stopped and removed when dropped.
pub struct OwnServer {
    cluster: Cluster,
    child: Option<std::process::Child>,
}

impl OwnServer {
    pub fn start() -> OwnServer {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wa-gateway-pg-{}-own-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let cluster = Cluster::init(bin_dir(), dir);
        let child = Some(cluster.start());
        OwnServer { cluster, child }
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("{}/postgres", self.cluster.base())
    }

    /// A fast shutdown (SIGINT: open connections are cut, as on a restart or failover).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGINT);
        }
    }

    /// Starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(self.cluster.start());
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGQUIT);
        }
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
    }
}
