//! Damaged files, odd arguments and leftovers from the command line: each gets a clear error naming the file
//! and what to do, never a panic, and nothing half-written survives a kill or a full disk.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use common::{prnn, stderr};

fn setup(sessions: u64) -> (common::Synthetic, PathBuf) {
    let data = common::synthetic(prnn::data::synth::SynthConfig { sessions, items: 200, clusters: 4, dim: 4, ..Default::default() });
    let spec = data.dir.path().join("small.prnn");
    std::fs::write(&spec, common::small_spec(2)).unwrap();
    (data, spec)
}

/// A message as snapshots keep it: the temporary folder as TMP, the repository as REPO.
fn plain(message: &str, dir: &Path) -> String {
    message.replace(&dir.display().to_string(), "TMP").replace(env!("CARGO_MANIFEST_DIR"), "REPO")
}

/// `dir/name` followed by the byte 0xff, which no UTF-8 text holds.
fn not_utf8(dir: &Path, name: &str) -> PathBuf {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0xff);
    dir.join(PathBuf::from(OsString::from_vec(bytes)))
}

#[test]
fn run_folders_may_have_any_name_and_recorded_paths_that_are_not_text_are_refused() {
    let (data, spec) = setup(150);
    let dir = data.dir.path();
    // An output folder is only a place: any bytes will do.
    let out = not_utf8(dir, "run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.join("checkpoint.safetensors").is_file());
    let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert!(recorded["command_line"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().ends_with("run\u{fffd}")), "{recorded}");
    let output = prnn().arg("eval").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let baseline = not_utf8(dir, "baseline");
    let output = prnn().args(["baseline", "popularity", "--config"]).arg(&data.config).arg("--out").arg(&baseline).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let experiment = not_utf8(dir, "experiment");
    let output = prnn().arg("run").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&experiment).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(experiment.join("results.md").is_file());

    // A spec or config path is recorded in JSON, which holds text: refused before anything runs, with exit 2.
    let config = not_utf8(dir, "run.toml");
    std::fs::copy(&data.config, &config).unwrap();
    let odd_spec = not_utf8(dir, "small.prnn");
    std::fs::copy(&spec, &odd_spec).unwrap();
    let refusals = [
        ("train_spec", prnn().arg("train").arg(&odd_spec).arg("--config").arg(&data.config).output().unwrap()),
        ("train_config", prnn().arg("train").arg(&spec).arg("--config").arg(&config).output().unwrap()),
        ("baseline_config", prnn().args(["baseline", "popularity", "--config"]).arg(&config).output().unwrap()),
        ("run_spec", prnn().arg("run").arg(&odd_spec).arg("--config").arg(&data.config).output().unwrap()),
    ];
    for (name, output) in refusals {
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stderr(&output));
        insta::assert_snapshot!(format!("not_utf8_{name}"), plain(&stderr(&output), dir));
    }
    // Nothing was written for the refused commands.
    assert!(!dir.join("runs").exists() || std::fs::read_dir(dir.join("runs")).unwrap().all(|e| e.unwrap().file_name() == "cache"));
}

/// `prnn ARGS` with the size of any file it writes capped at `blocks` (of 512 bytes in POSIX `sh`): a write past
/// it kills the process, as a full disk stops a write mid-file.
fn prnn_with_file_limit(blocks: u64, args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -f {blocks}; exec \"$@\""))
        .arg("sh")
        .arg(assert_cmd::cargo::cargo_bin("prnn-torch"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_export_cut_short_leaves_the_files_that_were_there_and_the_next_export_completes() {
    let (data, _) = setup(400);
    let dir = data.dir.path();
    let export = dir.join("export");
    // The cache is written first, so that the limited runs below write only the export.
    let output = prnn().arg("data").arg("prepare").arg(&data.config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let args = |force: bool| -> Vec<&std::ffi::OsStr> {
        let mut args = vec!["data".as_ref(), "prepare".as_ref(), data.config.as_os_str(), "--export".as_ref(), export.as_os_str()];
        if force {
            args.push("--force".as_ref());
        }
        args
    };
    let files = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };

    let cut = prnn_with_file_limit(8, &args(false));
    assert_ne!(cut.status.code(), Some(0), "the export outgrew 4 KiB and was stopped");
    assert!(!export.join("train.tsv").exists(), "no train.tsv cut in mid-row: {:?}", files(&export));
    assert!(files(&export).iter().any(|name| name.starts_with(".train.tsv-")), "the kill came mid-write: {:?}", files(&export));
    let output = prnn().args(args(false)).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "a re-run is not refused: {}", stderr(&output));
    assert_eq!(files(&export), ["test.tsv", "train.tsv"], "the killed export's temporary file is removed");
    let complete = std::fs::read(export.join("train.tsv")).unwrap();
    assert!(complete.len() > 4096 && complete.ends_with(b"\n"));

    // Replacing an export: a cut-short `--force` leaves the complete files as they were.
    let cut = prnn_with_file_limit(8, &args(true));
    assert_ne!(cut.status.code(), Some(0));
    assert_eq!(std::fs::read(export.join("train.tsv")).unwrap(), complete);
    let output = prnn().args(args(true)).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(files(&export), ["test.tsv", "train.tsv"]);
    assert_eq!(std::fs::read(export.join("train.tsv")).unwrap(), complete, "the same data exports the same bytes");
}

#[test]
fn damaged_caches_checkpoints_and_records_are_never_trusted() {
    let (data, spec) = setup(300);
    let dir = data.dir.path();
    let run = dir.join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).arg("epochs=1").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // A cache sealed with a valid checksum whose events name an item that does not exist: prepared again.
    let config = common::run_config(&data.config);
    let key = prnn::data::cache::key(&config).unwrap();
    let cache_dir = config.run.out.join("cache");
    let mut dataset = prnn::data::cache::load(&cache_dir, &key).unwrap().unwrap();
    dataset.train.events[3].item = 1_000_000;
    prnn::data::cache::store(&dataset, &cache_dir, &key).unwrap();
    let output = prnn()
        .arg("train")
        .arg(&spec)
        .arg("--config")
        .arg(&data.config)
        .arg("--out")
        .arg(dir.join("again"))
        .arg("epochs=1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("train events name item 1000000, beyond the 191 items") && stderr(&output).contains("prepared again"),
        "{}",
        stderr(&output)
    );
    assert!(dir.join("again/checkpoint.safetensors").is_file());

    // 2,000 garbled bytes inside a checkpoint: an I/O error naming it, with what to do, never other metrics.
    let checkpoint = run.join("checkpoint.safetensors");
    let intact = std::fs::read(&checkpoint).unwrap();
    let mut garbled = intact.clone();
    let middle = garbled.len() / 2;
    for (i, byte) in garbled[middle - 1000..middle + 1000].iter_mut().enumerate() {
        *byte = byte.wrapping_mul(31).wrapping_add(i as u8);
    }
    std::fs::write(&checkpoint, &garbled).unwrap();
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    insta::assert_snapshot!("garbled_checkpoint_eval", plain(&stderr(&output), dir));
    assert!(!run.join("eval.json").exists(), "nothing was evaluated");
    std::fs::write(&checkpoint, &intact).unwrap();

    // A run record whose version was edited.
    let record_path = run.join("run.json");
    let record = std::fs::read_to_string(&record_path).unwrap();
    std::fs::write(&record_path, record.replace("\"prnn_version\": \"0.1.0\"", "\"prnn_version\": \"9.9.9\"")).unwrap();
    for (command, rest) in [("eval", vec![]), ("recommend", vec!["--session", "x"])] {
        let output = prnn().arg(command).arg(&run).args(rest).output().unwrap();
        assert_eq!(output.status.code(), Some(5), "{command}: {}", stderr(&output));
        insta::assert_snapshot!(format!("edited_record_{command}"), plain(&stderr(&output), dir));
    }
    std::fs::write(&record_path, &record).unwrap();
    let output = prnn().arg("eval").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "the record as prnn wrote it reads again: {}", stderr(&output));
}

/// Whether process `pid` is still running (a zombie, dead but not yet reaped, counts as gone).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

#[test]
fn a_killed_prnn_run_takes_its_running_cell_with_it_and_the_re_run_finishes() {
    let (data, spec) = setup(2_500);
    std::fs::write(&spec, common::small_spec(8)).unwrap();
    let dir = data.dir.path();
    let experiment = dir.join("experiment");
    let run = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("prnn-torch"))
            .arg("run")
            .arg(&spec)
            .arg("--config")
            .arg(&data.config)
            .arg("--out")
            .arg(&experiment)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut parent = run();
    // The cell's lock names the child training it.
    let lock = experiment.join("cells/small-seed1/.lock");
    let child: u32 = loop {
        let pid = std::fs::read_to_string(&lock).ok().and_then(|text| text.split_whitespace().nth(1).and_then(|pid| pid.parse().ok()));
        if let Some(pid) = pid {
            break pid;
        }
        assert!(parent.try_wait().unwrap().is_none(), "prnn run ended before its cell started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(running(child));
    parent.kill().unwrap(); // SIGKILL: no chance to clean up
    parent.wait().unwrap();
    // The child is signalled as its parent dies; a failure shows as this loop never ending, which CI's own
    // limit reports.
    while running(child) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let cell = experiment.join("cells/small-seed1");
    let trained = std::fs::read_to_string(cell.join("metrics.jsonl")).unwrap_or_default().lines().count();
    assert!(trained < 8, "the cell stopped with its parent instead of training on as an orphan ({trained} epochs)");

    let mut again = run();
    assert!(again.wait().unwrap().success(), "the re-run resumes the cell and finishes");
    assert!(experiment.join("results.md").is_file());
    let epochs: Vec<u64> = std::fs::read_to_string(cell.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, (1..=8).collect::<Vec<u64>>(), "each epoch once");
}

#[test]
fn a_full_disk_leaves_no_line_without_its_checkpoint_and_a_resume_cleans_up_and_restores() {
    let (data, spec) = setup(400);
    let dir = data.dir.path();
    let output = prnn().arg("data").arg("prepare").arg(&data.config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let run = dir.join("run");
    let args: Vec<&std::ffi::OsStr> =
        vec!["train".as_ref(), spec.as_os_str(), "--config".as_ref(), data.config.as_os_str(), "--out".as_ref(), run.as_os_str()];
    // Files are capped at 32 KiB: the folder's small files fit, the first checkpoint (about 200 KiB) does not.
    let cut = prnn_with_file_limit(64, &args);
    assert_ne!(cut.status.code(), Some(0));
    assert!(!run.join("checkpoint.safetensors").exists());
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    assert_eq!(lines, "", "no metrics line for an epoch whose checkpoint was never written");
    let leftovers = |run: &Path| {
        std::fs::read_dir(run).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".partial")).count()
    };
    assert_eq!(leftovers(&run), 1, "the cut checkpoint write");
    assert!(run.join("catalogue.safetensors").is_file(), "the write cut was the checkpoint's");
    assert!(std::fs::read_dir(&run).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".checkpoint.safetensors-")));

    let output = prnn().arg("train").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("bytes of checkpoint writes that a killed run left unfinished"), "{}", stderr(&output));
    assert_eq!(leftovers(&run), 0);
    let complete = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(complete.lines().count(), 2);

    // Stopped after the last checkpoint and before its line: the resume writes the line the checkpoint keeps.
    let first = complete.lines().next().unwrap();
    std::fs::write(run.join("metrics.jsonl"), format!("{first}\n")).unwrap();
    let output = prnn().arg("train").arg("--resume").arg(&run).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(), complete, "the same line, time included");
    let events = prnn::run::tensorboard::read_events(&std::fs::read(run.join("events.out.tfevents.prnn")).unwrap()).unwrap();
    assert_eq!(events.iter().map(|e| e.step).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn smaller_ones_byte_order_marks_one_event_sessions_huge_fields_many_unknown_items_and_cut_gz_files() {
    let (data, spec) = setup(300);
    let dir = data.dir.path();

    // A byte-order mark before a spec or a config is accepted.
    let bom_spec = dir.join("bom.prnn");
    std::fs::write(&bom_spec, format!("\u{feff}{}", std::fs::read_to_string(&spec).unwrap())).unwrap();
    let output = prnn().arg("check").arg(&bom_spec).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bom_config = dir.join("bom.toml");
    std::fs::write(&bom_config, format!("\u{feff}{}", std::fs::read_to_string(&data.config).unwrap())).unwrap();
    let output = prnn().args(["data", "stats"]).arg(&bom_config).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    // Sessions of one event only: a data error saying why, not "0 events" and success.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = prnn()
        .current_dir(repo)
        .args(["train", "specs/id_only.prnn", "--config", "tests/bad-data/no_trainable_session/run.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    insta::assert_snapshot!("no_trainable_session", plain(&stderr(&output), dir));

    // A 1 MB field in a bad row: its value is cut in the message.
    let huge = dir.join("huge");
    std::fs::create_dir(&huge).unwrap();
    std::fs::write(huge.join("train.tsv"), format!("SessionId\tItemId\tTime\n1\ta\t0\n1\tb\t{}\n", "9".repeat(1 << 20) + "x")).unwrap();
    std::fs::write(huge.join("test.tsv"), "SessionId\tItemId\tTime\n2\ta\t5\n2\tb\t6\n").unwrap();
    std::fs::write(huge.join("run.toml"), "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n").unwrap();
    let output = prnn().args(["data", "stats"]).arg(huge.join("run.toml")).output().unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output).len());
    assert!(stderr(&output).len() < 2_000, "a message of {} bytes", stderr(&output).len());
    insta::assert_snapshot!("huge_field", plain(&stderr(&output), dir));

    // A cut .gz: the line it broke in.
    let gz = dir.join("gz");
    std::fs::create_dir(&gz).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &std::fs::read(dir.join("train.tsv")).unwrap()).unwrap();
    let compressed = encoder.finish().unwrap();
    std::fs::write(gz.join("train.tsv.gz"), &compressed[..compressed.len() / 2]).unwrap();
    std::fs::copy(dir.join("test.tsv"), gz.join("test.tsv")).unwrap();
    std::fs::write(gz.join("run.toml"), "[data]\ntrain = \"train.tsv.gz\"\ntest = \"test.tsv\"\n").unwrap();
    let output = prnn().args(["data", "stats"]).arg(gz.join("run.toml")).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot be read past line "), "{}", stderr(&output));
    assert!(stderr(&output).contains("train.tsv.gz:"), "{}", stderr(&output));
    // An item table cut short, likewise.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &std::fs::read(dir.join("items.tsv")).unwrap()).unwrap();
    let compressed = encoder.finish().unwrap();
    std::fs::write(gz.join("items.tsv.gz"), &compressed[..compressed.len() / 2]).unwrap();
    std::fs::copy(dir.join("train.tsv"), gz.join("train.tsv")).unwrap();
    let items_config = "[data]\ntrain = \"train.tsv\"\ntest = \"test.tsv\"\n\n\
                        [inputs.category]\nkind = \"sparse\"\nitems = \"items.tsv.gz\"\ncolumns = [\"category\"]\nencoding = \"categorical\"\n";
    std::fs::write(gz.join("items.toml"), items_config).unwrap();
    let output = prnn().args(["data", "stats"]).arg(gz.join("items.toml")).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot be read past line ") && stderr(&output).contains("items.tsv.gz:"), "{}", stderr(&output));

    // Many unknown items in a session: a few named, the rest counted.
    let run = dir.join("run");
    let output = prnn().arg("train").arg(&spec).arg("--config").arg(&data.config).arg("--out").arg(&run).arg("epochs=2").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let known = std::fs::read_to_string(dir.join("test.tsv")).unwrap().lines().nth(1).unwrap().split('\t').nth(1).unwrap().to_string();
    let session: Vec<String> = (0..10_000).map(|i| format!("unknown{i}")).chain([known]).collect();
    let output = prnn().arg("recommend").arg(&run).arg("--session").arg(session.join(",")).args(["-k", "2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    insta::assert_snapshot!("many_unknown_items", plain(&stderr(&output), dir));
}

#[test]
fn a_catalogue_that_does_not_fit_the_runs_spec_is_refused_with_what_to_do() {
    let (data, spec) = setup(200);
    let dir = data.dir.path();
    let ids_only = dir.join("ids.prnn");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/id_only.prnn"), &ids_only).unwrap();
    for (spec, out) in [(&spec, "both"), (&ids_only, "ids")] {
        let output = prnn()
            .arg("train")
            .arg(spec)
            .arg("--config")
            .arg(&data.config)
            .arg("--out")
            .arg(dir.join(out))
            .arg("epochs=2")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    // The ID-only run's catalogue has no category rows, which the two-subnet run reads.
    std::fs::copy(dir.join("ids/catalogue.safetensors"), dir.join("both/catalogue.safetensors")).unwrap();
    let output = prnn().arg("recommend").arg(dir.join("both")).args(["--session", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    insta::assert_snapshot!("catalogue_of_another_model", plain(&stderr(&output), dir));
}
