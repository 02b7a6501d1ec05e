//! `prnn doctor`: which libtorch is loaded, whether CUDA works, and the devices prnn can use.

use prnn::runtime::cuda::{self, CudaLibrary};
use tch::{Device, Kind, Tensor};

use super::Exit;

/// Runs a tiny matrix product on a device, so "available" means "computes", not only "detected".
fn smoke_test(device: Device) -> Result<(), String> {
    std::panic::catch_unwind(|| {
        let a = Tensor::ones([64, 64], (Kind::Float, device));
        let product = a.matmul(&a).sum(Kind::Float).double_value(&[]);
        if product == 64.0 * 64.0 * 64.0 {
            Ok(())
        } else {
            Err(format!("a 64x64 product of ones summed to {product}, expected 262144"))
        }
    })
    .unwrap_or_else(|panic| {
        let text = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Err(text.unwrap_or_else(|| "libtorch raised an error".into()))
    })
}

pub fn run() -> Exit {
    let cuda_library = cuda::preload();
    println!("prnn {}", env!("CARGO_PKG_VERSION"));
    let loaded = cuda::loaded_torch_version().unwrap_or_else(|| "unknown (no version.py beside lib/)".into());
    let built = option_env!("PRNN_BUILT_AGAINST_TORCH").unwrap_or("unknown");
    // tch is pinned to =0.24.0 in Cargo.toml, the release that binds libtorch 2.11.0.
    println!("libtorch      {loaded} (built against {built}; tch 0.24.0)");
    match cuda::libtorch_dir() {
        Some(dir) => println!("  loaded from  {}", dir.display()),
        None => println!("  loaded from  unknown (/proc/self/maps has no libtorch_cpu.so)"),
    }
    match cuda_library {
        CudaLibrary::Loaded(path) => println!("libtorch_cuda loaded from {}", path.display()),
        CudaLibrary::Absent => println!("libtorch_cuda absent: this is the CPU-only install (PRNN_TORCH=cuda installs the full one)"),
        // The minimal install ships libtorch_cuda.so without the CUDA libraries it needs.
        CudaLibrary::Failed { reason, .. } if reason.contains("cannot open shared object file") => {
            println!("libtorch_cuda not usable: CPU-only install ({reason}); PRNN_TORCH=cuda installs the full one")
        }
        CudaLibrary::Failed { path, reason } => println!("libtorch_cuda present at {} but failed to load: {reason}", path.display()),
    }
    let cuda_available = tch::Cuda::is_available();
    let device_count = if cuda_available { tch::Cuda::device_count() } else { 0 };
    println!("CUDA          {}", if cuda_available { format!("available, {device_count} device(s)") } else { "not available".into() });
    if cuda_available {
        println!("cuDNN         {}", if tch::Cuda::cudnn_is_available() { "available" } else { "not available" });
    }
    println!("devices");
    let mut exit = Exit::Ok;
    let mut devices = vec![(String::from("cpu"), Device::Cpu)];
    devices.extend((0..device_count).map(|i| (format!("cuda:{i}"), Device::Cuda(i as usize))));
    for (name, device) in devices {
        let threads = if device == Device::Cpu { format!(" ({} threads)", tch::get_num_threads()) } else { String::new() };
        match smoke_test(device) {
            Ok(()) => println!("  {name:<8} ok{threads}"),
            Err(reason) => {
                println!("  {name:<8} FAILED: {reason}");
                exit = Exit::Internal;
            }
        }
    }
    exit
}
