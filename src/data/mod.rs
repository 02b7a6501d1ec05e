//! Data: session files and item features read, cleaned and split into a training-ready dataset, with a cache.

pub mod error;
pub mod features;
pub mod intern;
pub mod synth;
pub mod table;

pub use error::{DataCode, DataError};
