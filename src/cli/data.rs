//! `prnn data prepare|stats|synth`: build and inspect the training-ready dataset of a run config.

use std::path::{Path, PathBuf};

use prnn::data::{self, prepare::render_report, synth, Dataset};

use super::{load_config, Exit};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Read, clean and split the config's sessions, build its item features, cache the result and print
    /// a before/after table.
    Prepare(PrepareArgs),
    /// Print the dataset summary of a run config (from the cache when it is current; writes nothing).
    Stats(StatsArgs),
    /// Write a synthetic dataset whose next item depends on item features (for benchmarks and tests).
    Synth(SynthArgs),
}

#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// The run config whose data to prepare.
    #[arg(value_name = "RUN.TOML")]
    pub config: PathBuf,
    /// Prepare from the files even when a current cache exists (the cache is then rewritten).
    #[arg(long)]
    pub rebuild: bool,
    /// Also write the prepared split as GRU4Rec TSV (train.tsv, test.tsv) into this folder.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// Let `--export` replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Write the cache under DIR/cache instead of the config's `[run] out`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The run config whose data to summarise.
    #[arg(value_name = "RUN.TOML")]
    pub config: PathBuf,
    /// `text` (a table) or `json` (the full report).
    #[arg(long, value_enum, default_value = "text")]
    pub format: StatsFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatsFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Folder to write train.tsv, test.tsv, items.tsv, vectors.npy, vectors.ids and README.md into.
    #[arg(value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = synth::SynthConfig::default().sessions)]
    pub sessions: u64,
    #[arg(long, default_value_t = synth::SynthConfig::default().items)]
    pub items: u32,
    /// Latent item clusters; the features reveal an item's cluster.
    #[arg(long, default_value_t = synth::SynthConfig::default().clusters)]
    pub clusters: u32,
    /// Width of the dense item vectors.
    #[arg(long, default_value_t = synth::SynthConfig::default().dim)]
    pub dim: u32,
    /// Probability that the next event follows its cluster's planted transition.
    #[arg(long, default_value_t = synth::SynthConfig::default().signal)]
    pub signal: f64,
    #[arg(long, default_value_t = synth::SynthConfig::default().seed)]
    pub seed: u64,
    /// Replace files that already exist in DIR.
    #[arg(long)]
    pub force: bool,
}

/// Failures of `prnn data` that are not in the data itself.
#[derive(Debug, thiserror::Error)]
pub enum DataCommandError {
    #[error("cannot generate this dataset: {0}")]
    SynthSettings(#[source] std::io::Error),
    #[error("{} already {}", .0.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", "), if .0.len() == 1 { "exists" } else { "exist" })]
    WouldOverwrite(Vec<PathBuf>),
    #[error("cannot write the prepared split into {}: {source}", dir.display())]
    Export { dir: PathBuf, source: std::io::Error },
    #[error("cannot write the synthetic dataset into {}: {source}", dir.display())]
    Synth { dir: PathBuf, source: std::io::Error },
}

impl DataCommandError {
    pub fn exit(&self) -> Exit {
        match self {
            DataCommandError::SynthSettings(_) => Exit::Usage,
            DataCommandError::WouldOverwrite(_) | DataCommandError::Export { .. } | DataCommandError::Synth { .. } => Exit::Io,
        }
    }

    pub fn help(&self) -> Option<&'static str> {
        match self {
            DataCommandError::SynthSettings(_) => Some("see `prnn data synth --help` for each setting"),
            DataCommandError::WouldOverwrite(_) => Some("choose another folder, or pass --force to replace these files"),
            DataCommandError::Export { .. } | DataCommandError::Synth { .. } => None,
        }
    }
}

pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Prepare(args) => prepare(args),
        Command::Stats(args) => stats(args),
        Command::Synth(args) => synth_dataset(args),
    }
}

fn prepare(args: &PrepareArgs) -> anyhow::Result<()> {
    let (mut config, _) = load_config(&args.config)?;
    if let Some(out) = &args.out {
        config.run.out = out.clone();
    }
    if let Some(dir) = &args.export {
        refuse_overwrite(dir, &["train.tsv", "test.tsv"], args.force)?;
    }
    let started = std::time::Instant::now();
    let (dataset, source) = if args.rebuild {
        data::prepare(&config).and_then(|dataset| {
            let key = data::cache::key(&config)?;
            let path = data::cache::store(&dataset, &config.run.out.join("cache"), &key)?;
            Ok((dataset, data::Source::Prepared { cache: Some(path), note: None }))
        })?
    } else {
        data::load(&config, true)?
    };
    print!("{}", render_report(&dataset.report));
    println!();
    match &source {
        data::Source::Cache(path) => println!("cache: {} (current; loaded in {:.2} s)", path.display(), started.elapsed().as_secs_f64()),
        data::Source::Prepared { cache, note } => {
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            if let Some(path) = cache {
                println!("cache: {} (written; prepared in {:.2} s)", path.display(), started.elapsed().as_secs_f64());
            }
        }
    }
    if let Some(dir) = &args.export {
        export(&dataset, dir).map_err(|source| DataCommandError::Export { dir: dir.clone(), source })?;
        println!("exported: {} and {}", dir.join("train.tsv").display(), dir.join("test.tsv").display());
    }
    Ok(())
}

fn stats(args: &StatsArgs) -> anyhow::Result<()> {
    let (config, _) = load_config(&args.config)?;
    let (dataset, source) = data::load(&config, false)?;
    if let data::Source::Prepared { note: Some(note), .. } = &source {
        eprintln!("note: {note}; `prnn data prepare` writes a new one");
    }
    match args.format {
        StatsFormat::Text => print!("{}", render_report(&dataset.report)),
        StatsFormat::Json => println!("{}", serde_json::to_string_pretty(&dataset.report).expect("reports serialise")),
    }
    Ok(())
}

fn synth_dataset(args: &SynthArgs) -> anyhow::Result<()> {
    let config = synth::SynthConfig {
        sessions: args.sessions,
        items: args.items,
        clusters: args.clusters,
        dim: args.dim,
        signal: args.signal,
        seed: args.seed,
        ..synth::SynthConfig::default()
    };
    config.validate().map_err(DataCommandError::SynthSettings)?;
    refuse_overwrite(&args.out, &synth::FILES, args.force)?;
    let summary =
        synth::write_dataset(&config, &args.out, args.force).map_err(|source| DataCommandError::Synth { dir: args.out.clone(), source })?;
    println!(
        "wrote {}: train {} events in {} sessions, test {} events in {} sessions, {} items",
        args.out.display(),
        summary.train_events,
        summary.train_sessions,
        summary.test_events,
        summary.test_sessions,
        summary.items
    );
    Ok(())
}

/// Seconds with at most millisecond digits: offsets are stored as f32 seconds after the session's start, so
/// further digits would be rounding noise, not data.
fn format_time(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Refuses to replace existing files unless `--force` is given.
fn refuse_overwrite(dir: &Path, names: &[&str], force: bool) -> Result<(), DataCommandError> {
    let existing: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).filter(|p| p.exists()).collect();
    if existing.is_empty() || force {
        Ok(())
    } else {
        Err(DataCommandError::WouldOverwrite(existing))
    }
}

/// Writes the prepared split in GRU4Rec's format, with the original session and item IDs. Each file is written
/// under a temporary name and renamed into place once complete, so a kill or a full disk leaves the files that
/// were there before (and at worst a `.NAME-*.partial` file, removed by the next export), never a file cut in
/// mid-row.
fn export(dataset: &Dataset, dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let names = ["train.tsv", "test.tsv"];
    remove_leftovers(dir, &names)?;
    let mut written = Vec::new();
    for (name, sessions) in names.into_iter().zip([&dataset.train, &dataset.test]) {
        let temporary = tempfile::Builder::new().prefix(&format!(".{name}-")).suffix(".partial").tempfile_in(dir)?;
        let mut out = std::io::BufWriter::new(temporary);
        writeln!(out, "SessionId\tItemId\tTime")?;
        for s in 0..sessions.len() {
            let key = sessions.key_text(s);
            for event in sessions.session(s) {
                let time = sessions.start[s] + f64::from(event.offset);
                writeln!(out, "{key}\t{}\t{}", dataset.items.get_str(event.item), format_time(time))?;
            }
        }
        let temporary = out.into_inner().map_err(|error| error.into_error())?;
        // Temporary files are private (0600); an export is as readable as the data it came from.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            temporary.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        temporary.as_file().sync_all()?;
        written.push((temporary, dir.join(name)));
    }
    // Both files are complete before either replaces what was there.
    for (temporary, target) in written {
        temporary.persist(&target).map_err(|error| error.error)?;
    }
    Ok(())
}

/// Removes the temporary files a killed export left in `dir`.
fn remove_leftovers(dir: &Path, names: &[&str]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let leftover = file_name.ends_with(".partial") && names.iter().any(|name| file_name.starts_with(&format!(".{name}-")));
        if leftover && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
