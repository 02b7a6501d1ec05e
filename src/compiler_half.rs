// The compiler half's modules: included by src/lib.rs, and by src/main.rs when it is built as the front binary
// (`prnn`, front/), which must not link the libtorch-dependent rest of the library.

pub mod check;
pub mod checkpoint_file;
pub mod config;
pub mod data;
pub mod diagnostic;
pub mod ir;
pub mod rng;
pub mod run;
pub mod syntax;

pub use compile::{check_source, compile, compile_source, CompileError};

mod compile;
