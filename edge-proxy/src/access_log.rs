//! One JSON line per request on standard output, carrying the trace ID for log–trace
//! correlation.

use std::io::Write;

use serde::Serialize;

/// One access log line.
#[derive(Serialize)]
pub struct AccessLogLine<'a> {
    /// Unix milliseconds when the request ended.
    pub timestamp_ms: u64,
    /// Client address.
    pub client: Option<String>,
    /// Method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Status sent.
    pub status: u16,
    /// Time from request to end, in microseconds.
    pub duration_us: u64,
    /// Core location that answered.
    pub upstream: Option<&'a str>,
    /// Upstream attempts.
    pub attempts: u32,
    /// `x-request-id`.
    pub request_id: Option<&'a str>,
    /// Trace ID, lowercase hex.
    pub trace_id: String,
    /// The SERVER span's ID.
    pub span_id: String,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

impl AccessLogLine<'_> {
    /// Writes the line; a failed write (closed stdout) is ignored rather than failing a request.
    pub fn write(&self) {
        if let Ok(mut line) = serde_json::to_vec(self) {
            line.push(b'\n');
            let _ = std::io::stdout().lock().write_all(&line);
        }
    }
}
