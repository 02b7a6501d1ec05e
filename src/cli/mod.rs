//! The command line: one module per subcommand, exit codes, and how diagnostics and failures reach the terminal.
//!
//! Commands return `anyhow` errors whose chains hold the library's typed errors; `main` prints a failure once,
//! with [`Reporter::report`], and [`error::exit_code`] turns it into the exit code.

pub mod args;
#[cfg(feature = "torch")]
pub mod baseline;
pub mod check;
pub mod compile;
pub mod data;
#[cfg(feature = "torch")]
pub mod doctor;
pub mod error;
#[cfg(feature = "torch")]
pub mod eval;
#[cfg(feature = "torch")]
pub mod experiment;
#[cfg(feature = "torch")]
pub mod recommend;
#[cfg(not(feature = "torch"))]
pub mod runtime;
#[cfg(feature = "torch")]
pub mod serve;
#[cfg(feature = "torch")]
pub mod session;
#[cfg(feature = "torch")]
pub mod train;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};

use prnn::config::RunConfig;
use prnn::data::DataError;
use prnn::diagnostic::{render_to, Diagnostic, Source};
use prnn::run::file::{read_text, FileError};

pub use error::exit_code;
use error::Diagnostics;

/// Exit codes, one per failure class (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Ok = 0,
    /// An unexpected failure inside prnn or libtorch.
    Internal = 1,
    /// Bad command line: clap's own code, also used for bad `key=value` overrides and unknown devices.
    Usage = 2,
    /// A spec has errors.
    Spec = 3,
    /// A run config has errors or does not fit the spec.
    Config = 4,
    /// A file is missing or unreadable.
    Io = 5,
    /// A data file (sessions or features) has bad content, or preprocessing leaves nothing.
    Data = 6,
    /// Training diverged: the loss became NaN or infinite.
    Diverged = 7,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Where diagnostics and notes go: stderr, coloured when it is a terminal (or when asked).
pub struct Reporter {
    color: ColorChoice,
}

impl Reporter {
    pub fn new(color: Color) -> Self {
        let color = match color {
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
            Color::Auto if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() => ColorChoice::Auto,
            Color::Auto => ColorChoice::Never,
        };
        Reporter { color }
    }

    pub fn diagnostics(&self, source: &Source, diagnostics: &[Diagnostic]) {
        let mut stream = StandardStream::stderr(self.color);
        // A failed write to stderr leaves nothing better to report it to.
        let _ = render_to(&mut stream, source, diagnostics);
    }

    /// A problem that does not stop the command, e.g. a model whose tuning runs all failed.
    #[cfg(feature = "torch")]
    pub fn error(&self, message: &str, help: Option<&str>) {
        eprintln!("error: {message}");
        if let Some(help) = help {
            eprintln!("  = help: {help}");
        }
    }

    /// A failure that stops the command: its chain, outermost first, one line per error (diagnostics and data
    /// errors with their snippets), then the advice of each error in the chain.
    pub fn report(&self, failure: &anyhow::Error) {
        let mut last: Option<String> = None;
        for cause in failure.chain() {
            if let Some(diagnostics) = cause.downcast_ref::<Diagnostics>() {
                self.diagnostics(&diagnostics.source, &diagnostics.diagnostics);
                continue;
            }
            if let Some(error) = cause.downcast_ref::<DataError>() {
                eprint!("{error}");
                continue;
            }
            let message = cause.to_string();
            match &last {
                None => eprintln!("error: {message}"),
                // An error whose message already quotes its cause (`cannot read ...: No such file`).
                Some(previous) if previous.contains(&message) => continue,
                Some(_) => eprintln!("  caused by: {message}"),
            }
            last = Some(message);
        }
        for help in error::helps(failure) {
            eprintln!("  = help: {help}");
        }
    }
}

/// Reads a spec or run config, as the source its diagnostics point into.
pub fn read_file(path: &Path, what: &'static str) -> Result<Source, FileError> {
    Ok(Source::new(path.display().to_string(), read_text(path, what)?))
}

/// The absolute folder of a file named on the command line. Relative paths in a run config resolve against
/// its folder, and run folders record that folder absolute, so that they work from any current folder. A
/// bare file name's folder is the current one: `Path::parent` gives `""` for it, which `absolute` refuses.
pub fn folder_of(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// Reads and checks a run config and the files it includes; relative paths in each resolve against its folder.
/// Returns the config's source too, for diagnostics of its binding to a spec.
pub fn load_config(path: &Path) -> anyhow::Result<(RunConfig, Source)> {
    let source = read_file(path, "run config")?;
    let config = prnn::config::parse_file(&source, &folder_of(path)).map_err(|diagnostics| Diagnostics::config(&source, diagnostics))?;
    Ok((config, source))
}
