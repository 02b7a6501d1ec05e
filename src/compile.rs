//! The front half of the pipeline in one call: source text -> checked model -> graph IR and plan.

use crate::check;
use crate::diagnostic::{Diagnostic, Source};
use crate::ir::Compiled;
use crate::syntax;

/// A spec that failed to compile, with every diagnostic found.
#[derive(Debug, Clone)]
pub struct CompileError {
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and checks a spec; every problem found is returned at once.
pub fn check_source(source: &Source) -> Result<check::Model, CompileError> {
    let spec = syntax::parse(&source.text).map_err(|diagnostics| CompileError { diagnostics })?;
    check::check(&spec).map_err(|diagnostics| CompileError { diagnostics })
}

/// Parses, checks and lowers a spec to its graph and plan.
pub fn compile_source(source: &Source) -> Result<Compiled, CompileError> {
    check_source(source).map(Compiled::new)
}

/// Compiles spec text named `name` (the name appears in diagnostics).
pub fn compile(name: &str, text: &str) -> Result<Compiled, CompileError> {
    compile_source(&Source::new(name, text))
}
