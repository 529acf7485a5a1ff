//! The browser profiles in a backup: every session's login, without Chromium's locks and
//! caches. `default`'s lies in `browser-profile/`, the others in `sessions/<name>/browser-profile/`.

use std::path::{Path, PathBuf};

use crate::config::Config;

pub(super) const PROFILE_DIR: &str = "browser-profile";

/// Where a session's profile lies in the archive.
pub(super) fn profile_in_archive(session: &str) -> PathBuf {
    if session == crate::sessions::DEFAULT {
        PathBuf::from(PROFILE_DIR)
    } else {
        Path::new("sessions").join(session).join(PROFILE_DIR)
    }
}

/// Every session's browser profile on disk: `default`'s (wherever `profile_dir` puts it) and
/// each `<data_dir>/sessions/<name>/browser-profile`.
pub(super) fn session_profiles(config: &Config) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let default = config.browser_profile(crate::sessions::DEFAULT);
    if default.is_dir() {
        out.push((crate::sessions::DEFAULT.to_string(), default));
    }
    let dir = config.data_dir().join("sessions");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != crate::sessions::DEFAULT && crate::config::valid_session_name(n))
        .collect();
    names.sort();
    for name in names {
        let p = config.browser_profile(&name);
        if p.is_dir() {
            out.push((name, p));
        }
    }
    out
}

pub(super) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// The browser profile, without Chromium's lock links and caches (best effort while the
/// browser runs: files that vanish mid-copy are skipped).
pub(crate) fn append_profile<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    profile: &Path,
    at: &Path,
) -> anyhow::Result<()> {
    fn walk<W: std::io::Write>(
        tar: &mut tar::Builder<W>,
        dir: &Path,
        rel: &Path,
    ) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let n = name.to_string_lossy();
            if n.starts_with("Singleton") || n.contains("Cache") || n == "Crashpad" {
                continue;
            }
            let path = entry.path();
            let inner = rel.join(&name);
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(tar, &path, &inner)?,
                Ok(t) if t.is_file() => {
                    if let Err(e) = tar.append_path_with_name(&path, &inner)
                        && path.exists()
                    {
                        return Err(e.into());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    walk(tar, profile, at)
}
