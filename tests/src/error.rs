//! What can stop a namespace or a microVM from being had, and what a test does about it.

use std::io::Write;
use std::path::PathBuf;

/// The variable CI sets so that an unavailable namespace or microVM fails a test instead of
/// skipping it.
pub const REQUIRE_ENV: &str = "THREADLINE_REQUIRE_MICROVM";

/// Why a namespace, veth pair or microVM could not be set up or used.
#[derive(Debug)]
pub enum Error {
    /// Not running as root (namespaces, tap devices and veth pairs need CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN).
    NotRoot,
    /// A program the harness runs is not on PATH.
    MissingTool {
        /// The program.
        tool: &'static str,
        /// What installs it.
        hint: &'static str,
    },
    /// The guest's kernel or initramfs has not been built.
    MissingImage {
        /// The file that is missing.
        path: PathBuf,
    },
    /// An option the guest cannot be given.
    Options(String),
    /// A binary of this workspace has not been built.
    MissingBinary {
        /// Its name.
        name: String,
        /// Where it was looked for.
        looked_in: Vec<PathBuf>,
    },
    /// A command failed or timed out.
    Command {
        /// The command line.
        command: String,
        /// Its exit status and standard error, or why it could not run.
        detail: String,
    },
    /// The guest did not come up.
    Boot {
        /// What went wrong.
        reason: String,
        /// The serial console and QEMU's own messages so far.
        console: String,
    },
}

impl Error {
    /// Whether this machine lacks what the test needs (root, a tool, the guest image), as
    /// opposed to the test's subject failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::NotRoot | Self::MissingTool { .. } | Self::MissingImage { .. }
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRoot => {
                f.write_str("not root: network namespaces, tap devices and veth pairs need root")
            }
            Self::MissingTool { tool, hint } => write!(f, "{tool} is not on PATH ({hint})"),
            Self::MissingImage { path } => write!(
                f,
                "{} is missing: run scripts/microvm.sh to build the guest",
                path.display()
            ),
            Self::Options(what) => write!(f, "bad microVM option: {what}"),
            Self::MissingBinary { name, looked_in } => write!(
                f,
                "{name} is not built (looked in {looked_in:?}): run `cargo build -p {name}` \
                 or the whole suite with scripts/test.sh"
            ),
            Self::Command { command, detail } => write!(f, "`{command}` failed: {detail}"),
            Self::Boot { reason, console } => {
                write!(
                    f,
                    "the microVM did not boot: {reason}\n--- console ---\n{console}"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// The value of a setup, or `None` after printing why the test is skipped.
///
/// # Panics
///
/// When the setup failed for a reason other than a missing prerequisite, or when
/// `THREADLINE_REQUIRE_MICROVM=1` and a prerequisite is missing: the test fails with the
/// error's message.
pub fn or_skip<T>(result: Result<T, Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) if error.is_unavailable() && !required() => {
            // Straight to stderr, past the test harness's capture, so the skip shows in a
            // normal run and not only under --nocapture.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {error} (set {REQUIRE_ENV}=1 to make this a failure)"
            );
            None
        }
        Err(error) => panic!("{error}"),
    }
}

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}
