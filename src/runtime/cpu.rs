//! What the host CPU offers beyond the baseline instruction set, read once from `/proc/cpuinfo`, and who else
//! runs on it.

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

#[cfg(test)]
mod tests {
    use super::*;

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
