//! The HTTP span rules every component applies, after the stable OpenTelemetry HTTP
//! semantic conventions: the request's attributes (method, URL parts, server address and
//! port, user agent) and the span's status per kind.
//!
//! Callers pass what they borrowed from the request; known values (methods, schemes,
//! protocol versions, the text of error codes) are written as `&'static str`, so a request
//! costs only the copies its span has to own.

mod authority;
mod method;
mod request;
mod status;
mod url;

pub use authority::Authority;
pub use method::{OTHER, known_method, set_method};
pub use request::{Request, set_protocol_version, set_upstream};
pub use status::{NO_RESPONSE, is_error, set_failure, set_response_status};
pub use url::{REDACTED, SENSITIVE_QUERY_KEYS, Target, redact_query, url_full};
