//! `prnn check SPEC...`: parse and check specs, report every error, compile nothing.

use std::path::PathBuf;

use super::error::Diagnostics;
use super::{exit_code, read_file, Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Spec files to check.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
}

/// Checks every spec, reporting each one's problems as it goes (a failed spec does not stop the others); the exit
/// code is the highest among the specs'.
pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    let mut exit = Exit::Ok;
    let mut failed = 0;
    for path in &args.specs {
        let failure = match read_file(path, "spec") {
            Err(error) => {
                let failure = anyhow::Error::new(error);
                reporter.report(&failure);
                println!("error {} (unreadable)", path.display());
                failure
            }
            Ok(source) => match prnn::check_source(&source) {
                Ok(model) => {
                    println!("ok    {} (model {})", path.display(), model.name);
                    continue;
                }
                Err(error) => {
                    println!("error {} ({} problem{})", path.display(), error.diagnostics.len(), plural(error.diagnostics.len()));
                    let failure = anyhow::Error::new(Diagnostics::spec(&source, error.diagnostics));
                    reporter.report(&failure);
                    failure
                }
            },
        };
        failed += 1;
        exit = exit.max(exit_code(&failure));
    }
    if args.specs.len() > 1 {
        println!("checked {} specs: {} ok, {failed} failed", args.specs.len(), args.specs.len() - failed);
    }
    exit
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
