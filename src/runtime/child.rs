//! Child processes that end with their parent: `prnn run` trains each cell in a child, and a child left running
//! after its parent was killed would keep writing a folder that the re-run then finds in use.

use std::process::Command;

/// Makes the process `command` starts receive SIGTERM when the calling thread's process ends, however it
/// ends (a kill included). On Linux this is the parent-death signal; elsewhere the command is left as it is.
pub fn ends_with_parent(command: &mut Command) -> &mut Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec the closure only calls async-signal-safe functions (prctl, getppid).
        let parent = unsafe { libc::getpid() };
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the signal was asked for: then no signal would ever come.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    command
}
