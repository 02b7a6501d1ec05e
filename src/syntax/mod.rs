//! Syntax: the pest grammar (grammar/prnn.pest) and the spanned syntax tree it produces.

pub mod ast;
mod parser;

pub use parser::parse;
