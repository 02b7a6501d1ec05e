//! The `prnn` command line.

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
    #[cfg(feature = "torch")]
    Train(cli::train::Args),
    /// Evaluate a trained run: Recall@K and MRR@K on its test set, and the rank of every test event.
    #[cfg(feature = "torch")]
    Eval(cli::eval::Args),
    /// Run an experiment: train specs over seeds and a sweep, tune on a validation split, fit baselines,
    /// and write the results table, a plot and a paired bootstrap against a base model.
    #[cfg(feature = "torch")]
    Run(cli::experiment::Args),
    /// The top-K next items for a session prefix, from a trained run or a baseline.
    #[cfg(feature = "torch")]
    Recommend(cli::recommend::Args),
    /// Fit a baseline (popularity, item-kNN, session-kNN) and evaluate it like a trained run.
    #[cfg(feature = "torch")]
    Baseline(cli::baseline::Args),
    /// Show the libtorch in use, whether CUDA is available, and test each device.
    #[cfg(feature = "torch")]
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
            Command::Baseline(args) => cli::baseline::run(args).map(|()| Exit::Ok),
            #[cfg(feature = "torch")]
            Command::Doctor => Ok(cli::doctor::run()),
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
