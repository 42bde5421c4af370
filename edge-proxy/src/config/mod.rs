//! The edge proxy's configuration, one job per file:
//! - [`schema`]: the TOML file as serde types, with the documented example;
//! - `address`: socket addresses typed as the file is read;
//! - `env`: the standard `OTEL_*` variables applied over the file;
//! - `validate`: the checks at start, and the state derived once for every request.
//!
//! Every error names the field (`export.batch_size`, `listen.http[0]`) or the environment
//! variable that was set; the binary exits with code 2 on one.

mod address;
mod env;
pub mod schema;
mod validate;

pub use schema::*;
pub use trace_core::config::FieldError as ConfigError;
pub use validate::{Settings, for_the_process};
