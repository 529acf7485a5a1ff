//! `[cluster]`: who this gateway node is among the nodes that share one database, and how long
//! its claims last without a heartbeat. With SQLite there is one node; the same rules apply.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Dur, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, unique among the nodes on one database. Default: the host name and a
    /// random suffix, generated once into `<data_dir>/node-id`, so two nodes on one host never
    /// share it and a restarted node is the same node (it takes back its own jobs at once).
    pub node_id: Option<String>,
    /// How long a node's claims (its active jobs, the leader's role) last without a
    /// heartbeat; it renews them every third of this. A node that dies loses them after this.
    pub lease: Dur,
    /// On PostgreSQL, nodes wake each other with `LISTEN/NOTIFY` when they queue work for a
    /// session another node runs. `false`: poll only (PgBouncer in transaction mode cannot
    /// LISTEN).
    pub notify: bool,
    /// How often an idle session looks for jobs it was not told about: queued by another node
    /// while a notification was lost, or by any node with `notify = false`.
    pub poll: Dur,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            lease: Dur::secs(15),
            notify: true,
            poll: Dur::secs(1),
        }
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(id) = self.node_id.as_ref().filter(|id| !valid_id(id)) {
            return Err(Invalid::new(
                "cluster.node_id",
                format!("{id:?}: use 1 to 64 letters, digits, '-', '_' or '.'"),
            ));
        }
        if self.lease.0 < Duration::from_millis(300) {
            return Err(Invalid::new("cluster.lease", "must be at least 300ms"));
        }
        if self.poll.0 < Duration::from_millis(10) {
            return Err(Invalid::new("cluster.poll", "must be at least 10ms"));
        }
        Ok(())
    }

    /// This node's id: the configured `node_id`, else the one kept in `data_dir/node-id`,
    /// created as `<host>-<6 random hex digits>` on the first start. A data directory is used by
    /// one running gateway at a time (its lock), so the kept id is never live twice.
    pub fn node_id(&self, data_dir: &Path) -> std::io::Result<String> {
        if let Some(id) = &self.node_id {
            return Ok(id.clone());
        }
        let path = data_dir.join("node-id");
        match std::fs::read_to_string(&path) {
            Ok(kept) if valid_id(kept.trim()) => return Ok(kept.trim().to_string()),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "node-id is not a valid id; making a new one")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let id = format!("{}-{:06x}", host_name(), rand::random::<u32>() & 0xff_ffff);
        std::fs::write(&path, format!("{id}\n"))?;
        Ok(id)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The machine's host name, reduced to the characters a node id may hold.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let raw = if ok {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(50)
        .collect();
    if name.is_empty() { "node".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_node_id_is_the_host_and_a_suffix_kept_in_its_data_dir() {
        let c = ClusterConfig::default();
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = c.node_id(one.path()).unwrap();
        assert!(a.starts_with(&host_name()), "{a}");
        assert_eq!(c.node_id(one.path()).unwrap(), a, "kept across starts");
        assert_ne!(
            c.node_id(two.path()).unwrap(),
            a,
            "another data_dir, another node"
        );
        let named = ClusterConfig {
            node_id: Some("gw-1".into()),
            ..ClusterConfig::default()
        };
        assert_eq!(named.node_id(one.path()).unwrap(), "gw-1");
        let bad = ClusterConfig {
            node_id: Some("a b".into()),
            ..ClusterConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
