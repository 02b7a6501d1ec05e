//! How much host memory this process may still take: the kernel's MemAvailable, the room left under its
//! cgroup's limit and under its address-space limit (`ulimit -v`), and an optional cap from
//! `PRNN_MEMORY_LIMIT`, whichever is smallest.
//!
//! GPU memory is not read: libtorch offers no cheap query of a device's free memory through tch, so runs on
//! CUDA compare only their host-side terms (docs/training.md, "Memory").

use std::path::{Path, PathBuf};

/// The environment variable that caps the memory prnn takes as available, e.g. `PRNN_MEMORY_LIMIT=8GiB`.
pub const LIMIT_VARIABLE: &str = "PRNN_MEMORY_LIMIT";

/// Host memory this process may take, and which reading gave the figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMemory {
    pub bytes: u64,
    pub source: String,
}

/// A `PRNN_MEMORY_LIMIT` that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{LIMIT_VARIABLE}=`{0}` is not a size: give bytes, or a number with a unit such as `512MiB`, `8GiB` or `1.5GB`")]
pub struct BadLimit(pub String);

/// The smallest of MemAvailable, every enclosing cgroup's room, the address space left under `ulimit -v` and
/// `PRNN_MEMORY_LIMIT`; None when none can be read (not Linux, no /proc) and no limit is set.
pub fn host_available() -> Result<Option<HostMemory>, BadLimit> {
    let mut readings: Vec<HostMemory> = Vec::new();
    if let Some(bytes) = std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(mem_available) {
        readings.push(HostMemory { bytes, source: "MemAvailable in /proc/meminfo".into() });
    }
    for dir in cgroup_dirs() {
        if let Some(bytes) = cgroup_room(&dir) {
            readings.push(HostMemory { bytes, source: format!("the limit of cgroup {}", dir.display()) });
        }
    }
    // Under `ulimit -v` an allocation past the limit fails however much memory the machine has: Rust aborts
    // the process and libtorch throws, so a run the other readings let through died at its first large tensor.
    if let Some(bytes) = address_space_limit().and_then(|limit| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        address_space_room(limit, &status)
    }) {
        readings.push(HostMemory { bytes, source: "the address-space limit `ulimit -v` sets".into() });
    }
    if let Some(text) = std::env::var_os(LIMIT_VARIABLE) {
        let text = text.to_string_lossy();
        let bytes = parse_size(&text).ok_or_else(|| BadLimit(text.to_string()))?;
        readings.push(HostMemory { bytes, source: LIMIT_VARIABLE.into() });
    }
    Ok(readings.into_iter().min_by_key(|r| r.bytes))
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    let unit = match words.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// This process's soft limit on its address space (`RLIMIT_AS`, what `ulimit -v` sets), in bytes; None when
/// there is none.
fn address_space_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // Safety: getrlimit writes one `rlimit` into the struct it is given and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}

/// The address space left under `limit`, given `/proc/self/status`: what is mapped already (`VmSize`: libtorch's
/// libraries, the data, thread stacks) counts against it.
fn address_space_room(limit: u64, status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then(|| limit.saturating_sub(kib.saturating_mul(1024)))
}

/// The cgroup folders of this process, innermost first up to the hierarchy's root: a limit set on any of them
/// binds it. Version 2 (`0::/path`) and version 1's memory controller (`N:memory:/path`).
fn cgroup_dirs() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else { return Vec::new() };
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = match (fields.next(), fields.next(), fields.next()) {
            (Some(id), Some(controllers), Some(path)) => (id, controllers, path),
            _ => continue,
        };
        let root = match controllers {
            "" => PathBuf::from("/sys/fs/cgroup"),
            c if c.split(',').any(|c| c == "memory") => PathBuf::from("/sys/fs/cgroup/memory"),
            _ => continue,
        };
        let mut dir = root.join(path.trim_start_matches('/'));
        loop {
            dirs.push(dir.clone());
            if dir == root || !dir.pop() || !dir.starts_with(&root) {
                break;
            }
        }
    }
    dirs
}

/// The room left under one cgroup folder's limit: the limit minus its usage, not counting inactive page cache,
/// which the kernel reclaims before it runs out.
fn cgroup_room(dir: &Path) -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current")) {
        return room(&max, &current, read("memory.stat").as_deref(), "inactive_file");
    }
    let (limit, usage) = (read("memory.limit_in_bytes")?, read("memory.usage_in_bytes")?);
    room(&limit, &usage, read("memory.stat").as_deref(), "total_inactive_file")
}

fn room(limit: &str, usage: &str, stat: Option<&str>, reclaimable_key: &str) -> Option<u64> {
    // `max` (version 2) is no limit; version 1 writes no limit as a number near 2^63.
    let limit: u64 = limit.trim().parse().ok().filter(|&l| l < 1 << 60)?;
    let usage: u64 = usage.trim().parse().ok()?;
    let reclaimable = stat
        .and_then(|stat| stat.lines().find_map(|l| l.strip_prefix(reclaimable_key)?.strip_prefix(' ')?.trim().parse::<u64>().ok()))
        .unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(reclaimable)))
}

/// `123456`, `512MiB`, `8GiB`, `1.5GB`, `64M` (binary for `KiB`..`TiB` and single letters, decimal for `kB`..`TB`).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KiB" => 1024.0,
        "M" | "MiB" => 1024f64.powi(2),
        "G" | "GiB" => 1024f64.powi(3),
        "T" | "TiB" => 1024f64.powi(4),
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    let bytes = value * scale;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   23709880 kB\n";
        assert_eq!(mem_available(meminfo), Some(23_709_880 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_cgroup_limit_leaves_its_room_minus_what_cannot_be_reclaimed() {
        let stat = "anon 1000\ninactive_file 3000\nactive_file 10\n";
        assert_eq!(room("10000\n", "5000\n", Some(stat), "inactive_file"), Some(8000));
        assert_eq!(room("max\n", "5000\n", Some(stat), "inactive_file"), None, "no limit");
        assert_eq!(room("9223372036854771712\n", "5000\n", None, "total_inactive_file"), None, "version 1's no limit");
        assert_eq!(room("4000", "5000", None, "inactive_file"), Some(0));
    }

    #[test]
    fn an_address_space_limit_leaves_what_is_not_mapped_yet() {
        let status = "Name:\tprnn-torch\nVmPeak:\t  500000 kB\nVmSize:\t  446772 kB\nVmRSS:\t  148412 kB\n";
        assert_eq!(address_space_room(6_000_000 * 1024, status), Some((6_000_000 - 446_772) * 1024));
        assert_eq!(address_space_room(1024, status), Some(0), "more mapped than the limit leaves no room");
        assert_eq!(address_space_room(1 << 40, "Name:\tprnn-torch\n"), None, "no VmSize, no reading");
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("123456"), Some(123_456));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size(" 2 GiB "), Some(2 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("8 parsecs"), None);
        assert_eq!(parse_size("1e30"), None);
    }
}
