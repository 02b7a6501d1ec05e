//! `prnn check SPEC...`: parse and check specs, report every error, compile nothing.

use std::path::PathBuf;

use super::{read_file, Exit, Reporter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Spec files to check.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
}

pub fn run(args: &Args, reporter: &Reporter) -> Exit {
    let mut exit = Exit::Ok;
    let mut failed = 0;
    for path in &args.specs {
        let source = match read_file(path, "spec", reporter) {
            Ok(source) => source,
            Err(code) => {
                println!("error {} (unreadable)", path.display());
                failed += 1;
                exit = exit.max(code);
                continue;
            }
        };
        match prnn::check_source(&source) {
            Ok(model) => println!("ok    {} (model {})", path.display(), model.name),
            Err(error) => {
                failed += 1;
                exit = exit.max(Exit::Spec);
                println!("error {} ({} problem{})", path.display(), error.diagnostics.len(), plural(error.diagnostics.len()));
                reporter.diagnostics(&source, &error.diagnostics);
            }
        }
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
