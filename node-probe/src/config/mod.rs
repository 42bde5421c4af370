//! The agent's configuration, one job per file:
//! - [`schema`]: the TOML file as serde types, with the documented example;
//! - `address`: socket addresses typed as the file is read;
//! - [`env`]: the standard `OTEL_*` variables applied over the file;
//! - [`validate`]: the checks at start, and the state derived once.
//!
//! Every error names the field (`join.window_ms`, `receiver.http`) or the environment variable
//! that was set; the binary exits with code 2 on one.

mod address;
pub mod env;
pub mod schema;
pub mod validate;

pub use schema::*;
pub use trace_core::config::FieldError as ConfigError;
pub use validate::Settings;
