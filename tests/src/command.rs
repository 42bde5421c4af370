//! Running the host's tools (ip, qemu) with a deadline, and checking that they are there.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How long an `ip` command may take; they normally take milliseconds.
pub(crate) const IP_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) fn require_root() -> Result<(), Error> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

pub(crate) fn require_tool(tool: &'static str, hint: &'static str) -> Result<(), Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool))) {
        Ok(())
    } else {
        Err(Error::MissingTool { tool, hint })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` to completion within `timeout`, capturing its output; killed at the
/// deadline.
pub(crate) fn output_within(mut command: Command, timeout: Duration) -> Result<Output, Error> {
    let line = describe(&command);
    let failed = |detail: String| Error::Command {
        command: line.clone(),
        detail,
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot start: {e}")))?;
    // Both pipes are drained while waiting, so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                // The readers are left to finish on their own: a grandchild may still hold
                // the pipes open.
                return Err(failed(format!("still running after {timeout:?}; killed")));
            }
            Err(e) => return Err(failed(format!("cannot wait: {e}"))),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs `ip ARGS…`; its standard output on success.
pub(crate) fn ip(args: &[&str]) -> Result<String, Error> {
    let mut command = Command::new("ip");
    command.args(args);
    checked(command, IP_TIMEOUT)
}

/// Runs `command` within `timeout`; its standard output if it exits 0.
pub(crate) fn checked(command: Command, timeout: Duration) -> Result<String, Error> {
    let line = describe(&command);
    let output = output_within(command, timeout)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: line,
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}
