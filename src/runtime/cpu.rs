//! What the host CPU offers beyond the baseline instruction set, read once from `/proc/cpuinfo`.

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
