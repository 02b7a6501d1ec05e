//! The TOML run config: binds a spec's inputs to data and sets preprocessing, evaluation and the device.
//!
//! One spec runs on many datasets, so nothing about files lives in the spec. Every key but the data files
//! and their columns has a default (docs/run-config.md); unknown keys are rejected with a "did you mean". Paths are relative to the config
//! file's folder.
//!
//! `schema.rs` holds the tables as serde types with their defaults, `parse.rs` reads the TOML and turns its
//! errors into diagnostics, `validate.rs` checks what serde cannot, and `bind.rs` matches a config to a spec.

mod bind;
pub mod overrides;
mod parse;
mod schema;
mod validate;

pub use bind::bind;
pub use parse::parse;
pub use schema::*;

use crate::diagnostic::Span;

fn span(range: std::ops::Range<usize>) -> Span {
    Span::new(range.start, range.end)
}
