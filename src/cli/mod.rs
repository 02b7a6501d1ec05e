//! The command line: one module per subcommand, exit codes, and how diagnostics reach the terminal.

#[cfg(feature = "torch")]
pub mod baseline;
pub mod check;
pub mod compile;
pub mod data;
#[cfg(feature = "torch")]
pub mod doctor;
#[cfg(feature = "torch")]
pub mod eval;
#[cfg(feature = "torch")]
pub mod experiment;
#[cfg(feature = "torch")]
pub mod recommend;
#[cfg(feature = "torch")]
pub mod session;
#[cfg(feature = "torch")]
pub mod train;

use std::io::IsTerminal;
use std::path::Path;

use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};

use prnn::config::RunConfig;
use prnn::data::DataError;
use prnn::diagnostic::{render_to, Diagnostic, Source};

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

    /// A problem in a data file: code, file and line, the line itself, and the fix.
    pub fn data_error(&self, error: &DataError) {
        eprint!("{error}");
    }

    /// A problem with no source snippet, e.g. a missing file.
    pub fn error(&self, message: &str, help: Option<&str>) {
        eprintln!("error: {message}");
        if let Some(help) = help {
            eprintln!("  = help: {help}");
        }
    }
}

/// Reads a text file, reporting a missing or unreadable one with what to do about it.
pub fn read_file(path: &Path, what: &str, reporter: &Reporter) -> Result<Source, Exit> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Source::new(path.display().to_string(), text)),
        Err(error) => {
            let help = match error.kind() {
                std::io::ErrorKind::NotFound => Some("check the path; relative paths start from the current folder"),
                std::io::ErrorKind::InvalidData => Some("the file must be UTF-8 text"),
                _ => None,
            };
            reporter.error(&format!("cannot read {what} `{}`: {error}", path.display()), help);
            Err(Exit::Io)
        }
    }
}

/// Reads and checks a run config; relative paths in it resolve against its folder.
pub fn load_config(path: &Path, reporter: &Reporter) -> Result<RunConfig, Exit> {
    let source = read_file(path, "run config", reporter)?;
    let base = path.parent().unwrap_or(Path::new("."));
    prnn::config::parse(&source.text, base).map_err(|diagnostics| {
        reporter.diagnostics(&source, &diagnostics);
        Exit::Config
    })
}
