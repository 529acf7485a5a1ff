//! What the machine offers, read once where a limit is sized from it: available memory, and
//! the open-file limit that bounds how many connections the server can hold.

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn available_memory() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// Large allocations (16 MiB and more, such as an argon2 hash's 19 MiB) are mapped and handed
/// back to the kernel when freed. glibc otherwise raises its mmap threshold after the first
/// such free and keeps later blocks in per-thread arenas, so a burst of password checks left
/// the process near a gigabyte for good. (At 1 MiB, allocations on the plugin call path were
/// mapped and unmapped per call: 13% fewer sends/s with plugins.)
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called once at start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
    }
}

/// Raises the soft open-file limit to the hard one (a server holds a descriptor per
/// connection), and returns the soft limit in force.
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_available_memory_and_the_open_file_limit() {
        assert!(super::available_memory().unwrap() > 0);
        assert!(super::raise_open_file_limit() >= 256);
    }
}
