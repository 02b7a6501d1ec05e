//! The libtorch runtime: which libtorch is loaded, and CUDA made available without a second binary.

pub mod cuda;
