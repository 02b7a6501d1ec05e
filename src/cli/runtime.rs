//! The front binary's hand-over: a command that needs libtorch replaces this process with `prnn-torch`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// The executable that runs the commands needing libtorch; installed beside `prnn`.
pub const RUNTIME_EXECUTABLE: &str = "prnn-torch";

/// `prnn-torch` could not be started.
#[derive(Debug, thiserror::Error)]
#[error(
    "this command trains or evaluates with libtorch, which `prnn` hands to `{}`, and that cannot be started: {source}; \
     build and install both executables with `make build` (docs/install.md)",
    path.display()
)]
pub struct RuntimeMissing {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Replaces this process with `prnn-torch` and the same arguments; returns only when that fails.
pub fn exec() -> RuntimeMissing {
    let here = std::env::current_exe();
    let path = match &here {
        Ok(exe) => exe.with_file_name(RUNTIME_EXECUTABLE),
        Err(_) => PathBuf::from(RUNTIME_EXECUTABLE),
    };
    let mut args = std::env::args_os();
    // The runtime names itself `prnn` in messages and records the command line the user typed.
    let program: OsString = args.next().unwrap_or_else(|| "prnn".into());
    // Same process ID: a supervisor that signals or waits on `prnn` reaches the training process.
    let source = std::process::Command::new(&path).arg0(program).args(args).exec();
    RuntimeMissing { path, source }
}
