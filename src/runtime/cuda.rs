//! Loads libtorch_cuda.so at start-up when the installed torch has it.
//!
//! rustc links with `--as-needed` and nothing in prnn references libtorch_cuda.so directly, so a normal
//! link drops it and libtorch then reports no CUDA. Loading it by hand, before the first tch call that asks
//! about CUDA (libtorch caches the answer), gives one binary that runs on the CPU-only install and uses
//! CUDA wherever the full install is present.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What happened when prnn tried to load libtorch_cuda.so.
#[derive(Debug, Clone)]
pub enum CudaLibrary {
    Loaded(PathBuf),
    /// The torch install has no CUDA library: the minimal CPU install.
    Absent,
    /// It exists but could not be loaded (e.g. no NVIDIA driver); the loader's message.
    Failed {
        path: PathBuf,
        reason: String,
    },
}

static PRELOAD: OnceLock<CudaLibrary> = OnceLock::new();

/// The folder holding the libtorch this process loaded, read from the process's memory map.
pub fn libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
}

/// Loads libtorch_cuda.so from beside the loaded libtorch_cpu.so. Call first thing in `main`; later calls
/// return the first result.
pub fn preload() -> &'static CudaLibrary {
    PRELOAD.get_or_init(|| {
        let Some(dir) = libtorch_dir() else {
            return CudaLibrary::Absent;
        };
        let path = dir.join("libtorch_cuda.so");
        if !path.exists() {
            return CudaLibrary::Absent;
        }
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).expect("paths have no NUL bytes");
        // SAFETY: dlopen is given a valid NUL-terminated path; the handle is kept for the process's life.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a thread-local C string describing the last dlopen failure, or NULL.
            let reason = unsafe {
                let message = libc::dlerror();
                if message.is_null() {
                    "unknown loader error".to_string()
                } else {
                    CStr::from_ptr(message).to_string_lossy().into_owned()
                }
            };
            return CudaLibrary::Failed { path, reason };
        }
        CudaLibrary::Loaded(path)
    })
}

/// The version of the loaded torch, from the `version.py` a PyPI install keeps beside `lib/`.
pub fn loaded_torch_version() -> Option<String> {
    let text = std::fs::read_to_string(libtorch_dir()?.join("../version.py")).ok()?;
    text.lines().find_map(|line| line.strip_prefix("__version__ = ")).map(|quoted| quoted.trim().trim_matches('\'').to_string())
}
