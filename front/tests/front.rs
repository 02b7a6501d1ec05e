//! The front binary: the compiler half runs without libtorch, and the training commands reach `prnn-torch`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn prnn() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prnn"));
    command.arg("--color").arg("never");
    command
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_front_binary_does_not_load_libtorch() {
    // The dynamic loader lists what an executable loads and exits (what `ldd` does).
    let listed: Output = Command::new(env!("CARGO_BIN_EXE_prnn")).env("LD_TRACE_LOADED_OBJECTS", "1").output().unwrap();
    let libraries = text(&listed.stdout);
    assert!(libraries.contains("libc.so"), "the loader listed nothing: {libraries}");
    assert!(!libraries.contains("libtorch") && !libraries.contains("libc10"), "prnn loads libtorch:\n{libraries}");
}

#[test]
fn check_and_compile_run_in_the_front_binary() {
    let spec = repo("specs/parallel_res.prnn");
    let checked = prnn().arg("check").arg(&spec).output().unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert!(text(&checked.stdout).contains("model parallel_res"));
    let compiled = prnn().arg("compile").arg(&spec).output().unwrap();
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    assert!(text(&compiled.stdout).contains("parallel_res"));
}

#[test]
fn help_lists_the_training_commands_without_libtorch() {
    let help = prnn().arg("--help").output().unwrap();
    let listed = text(&help.stdout);
    for command in ["check", "compile", "data", "train", "eval", "run", "recommend", "serve", "baseline", "doctor"] {
        assert!(listed.lines().any(|line| line.trim_start().starts_with(command)), "`{command}` missing from:\n{listed}");
    }
    let train_help = prnn().args(["train", "--help"]).output().unwrap();
    assert!(train_help.status.success());
    assert!(text(&train_help.stdout).contains("--resume"));
    let serve_help = prnn().args(["serve", "--help"]).output().unwrap();
    assert!(serve_help.status.success());
    assert!(text(&serve_help.stdout).contains("--state"));
}

#[test]
fn a_training_command_is_handed_to_prnn_torch_with_its_arguments() {
    // prnn-torch's own answer to a bad argument of `train`: proof that the arguments arrived unchanged.
    let runtime = Path::new(env!("CARGO_BIN_EXE_prnn")).with_file_name("prnn-torch");
    assert!(runtime.exists(), "build the root package too (`cargo build` from the repository root): {} is missing", runtime.display());
    let doctor = prnn().arg("doctor").output().unwrap();
    assert!(doctor.status.success(), "{}", text(&doctor.stderr));
    assert!(text(&doctor.stdout).contains("libtorch"), "{}", text(&doctor.stdout));
    let resumed = prnn().args(["train", "--resume", "/nonexistent/run"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(5), "{}", text(&resumed.stderr));
    assert!(text(&resumed.stderr).contains("/nonexistent/run"), "{}", text(&resumed.stderr));
}

#[test]
fn without_prnn_torch_beside_it_a_training_command_says_how_to_install_it() {
    let alone = std::env::temp_dir().join(format!("prnn-front-alone-{}", std::process::id()));
    std::fs::create_dir_all(&alone).unwrap();
    let copy = alone.join("prnn");
    std::fs::copy(env!("CARGO_BIN_EXE_prnn"), &copy).unwrap();
    let output = Command::new(&copy).args(["--color", "never", "train", "--resume", "somewhere"]).output().unwrap();
    std::fs::remove_dir_all(&alone).unwrap();
    assert_eq!(output.status.code(), Some(5));
    let message = text(&output.stderr);
    assert!(message.contains("prnn-torch") && message.contains("make build"), "{message}");
}
