//! The `prnn` command line, built as two executables from this one file (docs/architecture.md, "Two executables"):
//!
//! - `prnn-torch` (this package, `torch` feature): every command in-process, linked to libtorch;
//! - `prnn` (the `front/` package): the compiler half (`check`, `compile`, `data`, `--help`, `--version`)
//!   in-process without libtorch, so it answers in milliseconds; the commands that need libtorch replace the
//!   process with `prnn-torch` (same arguments, same process ID), found beside it.

// The front binary compiles the compiler-half modules into itself instead of linking the library, because a
// library built with the `torch` feature (which `cargo build` unifies across the workspace) links libtorch.
#![cfg_attr(prnn_front, allow(dead_code))]
#[cfg(prnn_front)]
extern crate self as prnn;
#[cfg(prnn_front)]
include!("compiler_half.rs");

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{Color, Exit, Reporter};

/// prnn compiles parallel-RNN session-based recommender specs (Hidasi et al., RecSys 2016).
///
/// Exit codes: 0 success, 1 internal failure, 2 bad command line, 3 spec errors, 4 run-config errors,
/// 5 missing or unreadable file, 6 bad data, 7 training diverged (NaN or infinite loss) or, for
/// `prnn run`, a cell did not finish.
#[derive(Debug, Parser)]
#[command(name = "prnn", version, about, long_about)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and check specs; report every error in every spec.
    Check(cli::check::Args),
    /// Compile a spec and print its dataflow graph, parameter counts and training plan.
    Compile(cli::compile::Args),
    /// Prepare, inspect or generate session data.
    #[command(subcommand)]
    Data(cli::data::Command),
    /// Train a spec on the data of a run config; writes a run folder with metrics and checkpoints.
    Train(cli::args::TrainArgs),
    /// Evaluate a trained run: Recall@K and MRR@K on its test set, and the rank of every test event.
    Eval(cli::args::EvalArgs),
    /// Run an experiment: train specs over seeds and a sweep, tune on a validation split, fit baselines,
    /// and write the results table, a plot and a paired bootstrap against a base model.
    Run(cli::args::RunArgs),
    /// The top-K next items for a session prefix, from a trained run or a baseline.
    Recommend(cli::args::RecommendArgs),
    /// Serve a trained run over HTTP: each session's next items as it clicks, its state kept in process or in
    /// Redis (docs/serve.md).
    Serve(cli::args::ServeArgs),
    /// Fit a baseline (popularity, item-kNN, session-kNN) and evaluate it like a trained run.
    Baseline(cli::args::BaselineArgs),
    /// Show the libtorch in use, whether CUDA is available, and test each device.
    Doctor,
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of stdout goes away (`prnn compile x | head`);
    // Rust ignores SIGPIPE by default, which turns that into a panic on the next print.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Before anything asks libtorch about CUDA: it caches the first answer.
    #[cfg(feature = "torch")]
    prnn::runtime::cuda::preload();

    let cli = Cli::parse();
    let reporter = Reporter::new(cli.color);
    // A panic is a bug in prnn: report it as the internal-failure exit code, not Rust's 101.
    let outcome = std::panic::catch_unwind(|| -> anyhow::Result<Exit> {
        match &cli.command {
            Command::Check(args) => Ok(cli::check::run(args, &reporter)),
            Command::Compile(args) => cli::compile::run(args).map(|()| Exit::Ok),
            Command::Data(command) => cli::data::run(command).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Train(args) => cli::train::run(args).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Eval(args) => cli::eval::run(args).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Run(args) => cli::experiment::run(args, &reporter).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Recommend(args) => cli::recommend::run(args).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Serve(args) => cli::serve::run(args).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Baseline(args) => cli::baseline::run(args).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Doctor => Ok(cli::doctor::run()),
            #[cfg(not(feature = "torch"))]
            Command::Train(_)
            | Command::Eval(_)
            | Command::Run(_)
            | Command::Recommend(_)
            | Command::Serve(_)
            | Command::Baseline(_)
            | Command::Doctor => Err(cli::runtime::exec().into()),
        }
    });
    let exit = match outcome {
        Ok(Ok(exit)) => exit,
        Ok(Err(failure)) => {
            reporter.report(&failure);
            cli::exit_code(&failure)
        }
        Err(_) => {
            eprintln!("error: internal failure in prnn (the message above says where); please report it with the command line");
            Exit::Internal
        }
    };
    ExitCode::from(exit as u8)
}
