//! The libtorch runtime: which libtorch is loaded, CUDA made available without a second binary, loops
//! split over libtorch's own CPU threads, what the CPU offers, and how much host memory the process may still take.

pub mod cpu;
pub mod cuda;
pub mod memory;
pub mod parallel;
