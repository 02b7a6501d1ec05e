//! Syntax: the pest grammar (grammar/prnn.pest) and the spanned syntax tree it produces.

pub mod ast;
pub mod limits;
mod parser;

pub use parser::parse;
