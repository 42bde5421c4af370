//! The project's built binaries (edge-proxy, node-probe) started from a configuration file,
//! optionally inside a namespace, their JSON log lines kept, and stopped by their PID:
//! SIGTERM first, so that they flush, then SIGKILL if they do not exit in time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Error;

/// How long a binary may take to stop after SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// The built binary `name` of this workspace, beside the running test's own target
/// directory (`target/<profile>/`), or an error that says how to build it.
pub fn built_binary(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Options(e.to_string()))?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>.
    let candidates = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect::<Vec<_>>();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| Error::MissingBinary {
            name: name.to_owned(),
            looked_in: candidates,
        })
}

/// A started binary, stopped when dropped.
pub struct Process {
    name: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Process {
    /// Starts `binary --config <file with text>`, through `wrapper` (e.g. `ip netns exec NS`)
    /// when given, with no `OTEL_*` variable of the caller's, and waits up to `wait` for a
    /// log line containing `ready`, which it returns.
    pub fn start(
        name: &str,
        binary: &Path,
        wrapper: &[&str],
        text: &str,
        ready: &str,
        wait: Duration,
    ) -> Result<(Self, String), Error> {
        let dir = std::env::temp_dir().join(format!("threadline-{name}-{}", std::process::id()));
        let failed = |detail: String| Error::Command {
            command: format!("{} --config", binary.display()),
            detail,
        };
        std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).map_err(|e| failed(e.to_string()))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        for (variable, _) in std::env::vars() {
            if variable.starts_with("OTEL_") {
                command.env_remove(variable);
            }
        }
        let mut child = command
            .arg("--config")
            .arg(&file)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, lines) = std::sync::mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            let (ready, prefix) = (ready.to_owned(), name.to_owned());
            std::thread::spawn(move || {
                let mut found = Some(found);
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if std::env::var_os("THREADLINE_TEST_LOG").is_some() {
                        eprintln!("{prefix}: {line}");
                    }
                    if let Ok(mut log) = log.lock() {
                        log.push(line.clone());
                    }
                    if line.contains(&ready)
                        && let Some(found) = found.take()
                    {
                        let _ = found.send(line);
                    }
                }
            });
        }
        let process = Self {
            name: name.to_owned(),
            child,
            log,
            dir,
        };
        match lines.recv_timeout(wait) {
            Ok(line) => Ok((process, line)),
            Err(_) => Err(failed(format!(
                "no \"{ready}\" line within {wait:?}; its log: {:#?}",
                process.log()
            ))),
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGTERM, then SIGKILL after a while) and returns its log.
    pub fn stop(mut self) -> Vec<String> {
        self.terminate();
        self.log()
    }

    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{}: did not stop on SIGTERM; killed", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
