//! The libtorch runtime: which libtorch is loaded, CUDA made available without a second binary, loops
//! split over libtorch's own CPU threads, what the CPU offers, how much host memory the process may still take,
//! and child processes that end with their parent.

pub mod child;
pub mod cpu;
pub mod cuda;
pub mod memory;
pub mod parallel;
