//! `[cluster]`: who this gateway node is among the nodes that share one database, and how long
//! its claims last without a heartbeat. With SQLite there is one node; the same rules apply.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Dur, Invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, unique among the nodes on one database. Default: the host name and a
    /// random suffix, so two nodes on one host never share it.
    pub node_id: Option<String>,
    /// How long a node's claims (its active jobs, the leader's role) last without a
    /// heartbeat; it renews them every third of this. A node that dies loses them after this.
    pub lease: Dur,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            lease: Dur::secs(15),
        }
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(id) = &self.node_id {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(Invalid::new(
                    "cluster.node_id",
                    format!("{id:?}: use 1 to 64 letters, digits, '-', '_' or '.'"),
                ));
            }
        }
        if self.lease.0 < Duration::from_millis(300) {
            return Err(Invalid::new("cluster.lease", "must be at least 300ms"));
        }
        Ok(())
    }

    /// The configured `node_id`, else `<host>-<6 random hex digits>`.
    pub fn node_id(&self) -> String {
        match &self.node_id {
            Some(id) => id.clone(),
            None => format!("{}-{:06x}", host_name(), rand::random::<u32>() & 0xff_ffff),
        }
    }
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
    fn a_default_node_id_is_the_host_and_a_suffix_and_differs_per_start() {
        let c = ClusterConfig::default();
        let (a, b) = (c.node_id(), c.node_id());
        assert_ne!(a, b);
        assert!(a.starts_with(&host_name()), "{a}");
        let bad = ClusterConfig {
            node_id: Some("a b".into()),
            ..ClusterConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
