//! The libtorch runtime: which libtorch is loaded, CUDA made available without a second binary, and loops
//! split over libtorch's own CPU threads.

pub mod cuda;
pub mod parallel;
