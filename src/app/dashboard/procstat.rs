//! CPU time and memory of this process and of its threads, read from
//! `/proc/self/stat`, `/proc/self/statm` and `/proc/self/task/*/stat`. The
//! parsers are pure (unit tested); the readers return `None` where `/proc`
//! is not available.

/// `comm`, utime + stime (clock ticks) from a `stat` line.
pub fn parse_stat(line: &str) -> Option<(&str, u64)> {
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses,
    // so it ends at the last ')'.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Resident pages from a `statm` line (its second field).
pub fn parse_statm_resident(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second of the CPU times.
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Bytes per memory page.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// CPU ticks used by the whole process so far.
pub fn process_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&s).map(|(_, t)| t)
}

/// Resident set size in bytes.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm_resident(&s).map(|p| p * page_size())
}

/// CPU ticks of each `worker-{id}` thread, indexed by worker id.
pub fn worker_ticks(workers: usize) -> Vec<Option<u64>> {
    let mut out = vec![None; workers];
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(s) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((comm, ticks)) = parse_stat(&s) {
            if let Some(id) = comm
                .strip_prefix("worker-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some(slot) = out.get_mut(id) {
                    *slot = Some(ticks);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_comm() {
        let line =
            "4242 (worker-1) S 1 4242 4242 0 -1 4194624 150 0 0 0 37 12 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_stat(line), Some(("worker-1", 49)));
        let odd = "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(odd), Some(("a) b (c)", 11)));
        assert_eq!(parse_stat("7 (x) R 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn statm_resident() {
        assert_eq!(parse_statm_resident("1000 250 100 1 0 300 0\n"), Some(250));
        assert_eq!(parse_statm_resident("1000"), None);
    }

    #[test]
    fn this_process_is_readable() {
        assert!(process_ticks().is_some());
        assert!(rss_bytes().unwrap() > 0);
        assert_eq!(worker_ticks(2).len(), 2);
    }
}
