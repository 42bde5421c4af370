//! Spans the collector received, grouped into traces and trees, and printed as a waterfall in
//! the terminal: the span tree with start offsets and durations as bars, span kind, location
//! tags, the parent source, and errors highlighted.

use std::collections::BTreeMap;
use std::fmt::Write;

use trace_core::otlp::proto::trace::v1::Span;
use trace_core::semconv::threadline;

use crate::collector::{Received, int, string};

/// OTLP's span kinds.
pub mod kind {
    /// SERVER.
    pub const SERVER: i32 = 2;
    /// CLIENT.
    pub const CLIENT: i32 = 3;
}

/// OTLP's error status code.
const STATUS_ERROR: i32 = 2;

/// The location tags, in the order the waterfall prints them.
pub const LOCATION_TAGS: [&str; 6] = [
    threadline::REGION,
    threadline::POP,
    threadline::DATACENTER,
    threadline::LOCATION,
    threadline::NODE,
    threadline::WORKLOAD,
];

/// The spans of one trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The trace ID, in hex.
    pub id: String,
    /// Its spans, in start order.
    pub spans: Vec<Received>,
}

/// Hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `spans` grouped by trace, each in start order.
pub fn traces(spans: &[Received]) -> BTreeMap<String, Trace> {
    let mut traces: BTreeMap<String, Trace> = BTreeMap::new();
    for received in spans {
        let id = hex(&received.1.trace_id);
        traces
            .entry(id.clone())
            .or_insert_with(|| Trace {
                id,
                spans: Vec::new(),
            })
            .spans
            .push(received.clone());
    }
    for trace in traces.values_mut() {
        trace.spans.sort_by_key(|(_, s)| s.start_time_unix_nano);
    }
    traces
}

impl Trace {
    /// The spans without a parent.
    pub fn roots(&self) -> Vec<&Received> {
        self.spans
            .iter()
            .filter(|(_, s)| s.parent_span_id.is_empty())
            .collect()
    }

    /// The spans whose parent is `span`.
    pub fn children(&self, span: &Span) -> Vec<&Received> {
        self.spans
            .iter()
            .filter(|(_, s)| s.parent_span_id == span.span_id)
            .collect()
    }

    /// Spans whose parent is not in the trace: a partial trace has some.
    pub fn orphans(&self) -> Vec<&Received> {
        self.spans
            .iter()
            .filter(|(_, s)| {
                !s.parent_span_id.is_empty()
                    && !self
                        .spans
                        .iter()
                        .any(|(_, p)| p.span_id == s.parent_span_id)
            })
            .collect()
    }

    /// The attribute `key` of `span`, or of its resource.
    pub fn tag(received: &Received, key: &str) -> Option<String> {
        string(&received.1.attributes, key).or_else(|| string(&received.0, key))
    }

    /// The trace as a waterfall, `width` columns of bars.
    pub fn waterfall(&self, width: usize) -> String {
        let start = self
            .spans
            .iter()
            .map(|(_, s)| s.start_time_unix_nano)
            .min()
            .unwrap_or_default();
        let end = self
            .spans
            .iter()
            .map(|(_, s)| s.end_time_unix_nano)
            .max()
            .unwrap_or_default();
        let total = end.saturating_sub(start).max(1);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "trace {}  {} spans  {:.2} ms",
            self.id,
            self.spans.len(),
            total as f64 / 1e6
        );
        let mut rows = Vec::new();
        for root in self.roots() {
            self.rows(root, 0, &mut rows);
        }
        for orphan in self.orphans() {
            self.rows(orphan, 0, &mut rows);
        }
        for (depth, received) in rows {
            let span = &received.1;
            let offset = span.start_time_unix_nano.saturating_sub(start);
            let duration = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            let from = (offset as u128 * width as u128 / total as u128) as usize;
            let len = ((duration as u128 * width as u128 / total as u128) as usize).max(1);
            let bar: String = (0..width)
                .map(|i| {
                    if i >= from && i < from + len {
                        '█'
                    } else {
                        '·'
                    }
                })
                .collect();
            let error = span.status.as_ref().is_some_and(|s| s.code == STATUS_ERROR);
            let kind = match span.kind {
                kind::SERVER => "SERVER",
                kind::CLIENT => "CLIENT",
                _ => "INTERNAL",
            };
            let service = string(&received.0, "service.name").unwrap_or_default();
            let tags: Vec<String> = LOCATION_TAGS
                .iter()
                .filter_map(|key| {
                    Self::tag(received, key)
                        .map(|v| format!("{}={v}", key.trim_start_matches("threadline.")))
                })
                .collect();
            let parent = Self::tag(received, threadline::PARENT_SOURCE)
                .map(|p| format!(" parent:{p}"))
                .unwrap_or_default();
            let status = int(&span.attributes, "http.response.status_code")
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            let (on, off) = if error {
                ("\x1b[31m", "\x1b[0m")
            } else {
                ("", "")
            };
            let name = format!("{}{} {}", "  ".repeat(depth), kind, span.name);
            let _ = writeln!(
                out,
                "{on}{name:<44} {bar} {:>8.2} ms +{:>7.2}{status}{}{off}",
                duration as f64 / 1e6,
                offset as f64 / 1e6,
                if error { " ERROR" } else { "" },
            );
            let _ = writeln!(
                out,
                "{}  {service} {}{parent}",
                "  ".repeat(depth),
                tags.join(" ")
            );
        }
        out
    }

    fn rows<'a>(&'a self, span: &'a Received, depth: usize, rows: &mut Vec<(usize, &'a Received)>) {
        // A cycle of parent IDs cannot recurse forever: the depth is bounded by the spans.
        if depth > self.spans.len() {
            return;
        }
        rows.push((depth, span));
        for child in self.children(&span.1) {
            self.rows(child, depth + 1, rows);
        }
    }
}
