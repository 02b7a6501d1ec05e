//! The TOML run config: binds a spec's inputs to data and sets preprocessing, evaluation and the device.
//!
//! One spec runs on many datasets, so nothing about files lives in the spec. Every key but the data files
//! and their columns has a default (docs/run-config.md); unknown keys are rejected with a "did you mean". Paths are relative to the
//! folder of the config file that writes them; a config may `include` others, so that a dataset's settings are
//! written once.
//!
//! `schema.rs` holds the tables as serde types with their defaults, `include.rs` reads and merges included
//! files, `parse.rs` reads the TOML and turns its errors into diagnostics, `validate.rs` checks what serde
//! cannot, and `bind.rs` matches a config to a spec.

mod bind;
mod include;
pub mod overrides;
mod parse;
mod schema;
mod validate;

pub use bind::bind;
pub use include::Included;
pub use parse::{parse, parse_file};
pub use schema::*;

use crate::diagnostic::Span;

fn span(range: std::ops::Range<usize>) -> Span {
    Span::new(range.start, range.end)
}
