//! Build script: gives the binary a run path to the libtorch it was built against.
//!
//! torch-sys links libtorch but sets no rpath, so without this the binary only runs with LD_LIBRARY_PATH set.
//! libtorch_cuda.so is deliberately not linked: `prnn` dlopens it at start-up when present (src/runtime/cuda.rs),
//! so one binary runs on the CPU-only install and uses CUDA wherever the full install is found.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=grammar/prnn.pest");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    // A PyPI torch carries its version in version.py beside lib/; a plain libtorch zip has build-version.
    let torch_dir = std::path::Path::new(&lib_dir).join("..");
    let version = std::fs::read_to_string(torch_dir.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| line.strip_prefix("__version__ = ")).map(|quoted| quoted.trim().trim_matches('\'').to_string())
        })
        .or_else(|| std::fs::read_to_string(torch_dir.join("build-version")).ok().map(|v| v.trim().to_string()));
    if let Some(version) = version {
        println!("cargo:rustc-env=PRNN_BUILT_AGAINST_TORCH={version}");
    }
    println!("cargo:rustc-env=PRNN_BUILT_AGAINST_LIBTORCH_LIB={lib_dir}");
}
