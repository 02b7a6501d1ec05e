//! What the host CPU offers beyond the baseline instruction set, read once from `/proc/cpuinfo`, who else
//! runs on it, and how many threads a run may start on it.

use std::sync::OnceLock;

/// The CPU's feature flags as Linux lists them (`avx512_bf16`, `amx_bf16`, ...); empty elsewhere.
fn flags() -> &'static [String] {
    static FLAGS: OnceLock<Vec<String>> = OnceLock::new();
    FLAGS.get_or_init(|| {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let line = cpuinfo.lines().find(|line| line.starts_with("flags")).unwrap_or_default();
        line.split_once(':').map_or_else(Vec::new, |(_, flags)| flags.split_whitespace().map(str::to_owned).collect())
    })
}

/// Whether the CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX): libtorch's bfloat16
/// products then run about three times as fast as float32 ones; without it they are emulated and slower.
pub fn has_bfloat16_products() -> bool {
    flags().iter().any(|flag| flag == "avx512_bf16" || flag == "amx_bf16")
}

/// The process IDs of the other processes of this machine running the executable named `name` (as
/// `/proc/PID/comm` names it); empty where `/proc` cannot be read.
pub fn other_processes_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim_end() == name))
        .collect()
}

/// The most CPU threads a run starts per core. libtorch's OpenMP team starts every thread asked for, each with
/// its own 8 MiB stack, and waits for all of them at the end of each parallel loop: on 2 cores, a small
/// evaluation took 5 s on 200 threads where 2 took 0.5, and did not finish in a minute on 1,000.
pub const THREADS_PER_CORE: usize = 4;

/// The cores this process may run on (its affinity mask and cgroup quota; 1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU threads a run uses when `asked` for (`--threads` or `[run] threads`; 0 is one per core) on `cores`
/// cores: what it asked, or [`THREADS_PER_CORE`] per core when it asked for more.
pub fn threads_for(asked: u64, cores: usize) -> Threads {
    let most = cores.max(1).saturating_mul(THREADS_PER_CORE);
    let used = match asked {
        0 => cores.max(1),
        n => usize::try_from(n).unwrap_or(usize::MAX).min(most),
    };
    Threads { asked, used, capped: asked > most as u64 }
}

/// A run's CPU threads: what was asked, what is used, and whether the cap cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    pub asked: u64,
    pub used: usize,
    pub capped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_beyond_four_per_core_are_capped_and_zero_is_one_per_core() {
        assert_eq!(threads_for(0, 2), Threads { asked: 0, used: 2, capped: false });
        assert_eq!(threads_for(3, 2), Threads { asked: 3, used: 3, capped: false });
        assert_eq!(threads_for(8, 2), Threads { asked: 8, used: 8, capped: false });
        assert_eq!(threads_for(9, 2), Threads { asked: 9, used: 8, capped: true });
        assert_eq!(threads_for(100_000, 2), Threads { asked: 100_000, used: 8, capped: true });
        assert_eq!(threads_for(u64::MAX, 64), Threads { asked: u64::MAX, used: 256, capped: true });
        assert_eq!(threads_for(5, 0), Threads { asked: 5, used: 4, capped: true }, "no cores known counts as one");
    }

    #[test]
    fn other_processes_are_found_by_name_and_this_one_is_not() {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", std::process::id())).unwrap();
        assert!(!other_processes_named(comm.trim_end()).contains(&std::process::id()));
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert!(other_processes_named("sleep").contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
