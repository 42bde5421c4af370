//! One JSON line per request on standard output, carrying the trace ID for log–trace
//! correlation.
//!
//! A worker never writes to standard output itself: a reader that falls behind (a full pipe,
//! a stalled log shipper) would block the write, and with it every request on that worker.
//! Workers copy their line into a bounded buffer, under a lock held only for the copy, and a
//! writer thread drains the buffer to standard output. A line that does not fit is dropped
//! and counted in `edge_access_log_dropped_total`, with a warning at most every
//! [`WARNING_INTERVAL`]. At shutdown the buffer is flushed (see [`AccessLogService`]).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;

/// The least time between two warnings about dropped lines.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// How long shutdown waits for the writer to drain the buffer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

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

/// The handle workers log through; clones share one buffer and writer.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when lines arrive in an empty buffer, and at close.
    wake: Condvar,
    /// Bytes the buffer holds at most.
    capacity: usize,
    dropped: prometheus::IntCounter,
    started: Instant,
    /// Seconds after `started` of the last warning, plus one (0: none yet).
    warned_at: AtomicU64,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// No more lines are taken: the writer drains what is left and ends.
    closed: bool,
}

/// Ends the writer, once what is buffered is written.
pub struct Flush {
    shared: Arc<Shared>,
    finished: std::sync::mpsc::Receiver<()>,
}

impl AccessLog {
    /// Starts the writer thread draining into `out`, with room for `capacity` bytes of
    /// lines; lines that find no room are counted in `dropped`.
    pub fn start(
        capacity: usize,
        out: impl Write + Send + 'static,
        dropped: prometheus::IntCounter,
    ) -> std::io::Result<(Self, Flush)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(capacity),
                closed: false,
            }),
            wake: Condvar::new(),
            capacity,
            dropped,
            started: Instant::now(),
            warned_at: AtomicU64::new(0),
        });
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                writer.drain(out);
                let _ = done.send(());
            })?;
        let flush = Flush {
            shared: shared.clone(),
            finished,
        };
        Ok((Self { shared }, flush))
    }

    /// Queues `line` for standard output, or drops and counts it when the buffer is full.
    pub fn write(&self, line: &AccessLogLine<'_>) {
        if let Ok(mut bytes) = serde_json::to_vec(line) {
            bytes.push(b'\n');
            self.push(&bytes);
        }
    }

    /// Queues one serialized line, newline included.
    fn push(&self, line: &[u8]) {
        let shared = &*self.shared;
        let was_empty = {
            let mut pending = shared.lock();
            if pending.closed || pending.lines.len() + line.len() > shared.capacity {
                drop(pending);
                shared.count_drop();
                return;
            }
            let was_empty = pending.lines.is_empty();
            pending.lines.extend_from_slice(line);
            was_empty
        };
        // The writer only waits on an empty buffer, so only the first line needs to wake it.
        if was_empty {
            shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A worker that panicked while copying a line leaves whole lines behind.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_drop(&self) {
        self.dropped.inc();
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        let due = last == 0 || now >= last + WARNING_INTERVAL.as_secs();
        if due
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = self.dropped.get(),
                "access log lines dropped: standard output is not keeping up"
            );
        }
    }

    /// The writer thread: takes the whole buffer at once and writes it with no lock held.
    fn drain(&self, mut out: impl Write) {
        // Two buffers swapped back and forth: neither is reallocated once grown.
        let mut batch = Vec::with_capacity(self.capacity);
        loop {
            {
                let mut pending = self.lock();
                while pending.lines.is_empty() && !pending.closed {
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if pending.lines.is_empty() {
                    return;
                }
                std::mem::swap(&mut pending.lines, &mut batch);
            }
            // A closed standard output must not stop the proxy: the lines are lost.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
    }
}

impl Flush {
    /// Takes no more lines, and waits (at most `timeout`) until the buffered ones are
    /// written. Returns whether they were.
    pub fn close(self, timeout: Duration) -> bool {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.finished.recv_timeout(timeout).is_ok()
    }
}

/// Flushes the access log when Pingora stops its services.
pub struct AccessLogService(Mutex<Option<Flush>>);

impl AccessLogService {
    /// The service that flushes through `flush`.
    pub fn new(flush: Flush) -> Self {
        Self(Mutex::new(Some(flush)))
    }
}

/// Closes the log when dropped: Pingora drops its background tasks once the grace period has
/// ended, after the last request that could still log.
struct FlushOnDrop(Option<Flush>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Some(flush) = self.0.take()
            && !flush.close(FLUSH_TIMEOUT)
        {
            tracing::warn!("access log: standard output did not take the last lines in time");
        }
    }
}

#[async_trait]
impl BackgroundService for AccessLogService {
    /// Waits to be dropped. It ignores the shutdown signal on purpose: requests that finish
    /// during the grace period still log.
    async fn start(&self, _shutdown: ShutdownWatch) {
        let flush = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        let _flush_on_drop = FlushOnDrop(flush);
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// Collects what the writer wrote.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A reader that does not read: every write blocks until the test lets it through.
    struct Stalled {
        sink: Sink,
        entered: mpsc::Sender<()>,
        release: mpsc::Receiver<()>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv();
            self.sink.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn counter() -> prometheus::IntCounter {
        prometheus::IntCounter::new("dropped", "test").unwrap()
    }

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"line\":{i:05}}}\n").into_bytes()
    }

    fn lines(sink: &Sink) -> Vec<String> {
        String::from_utf8(sink.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_stalled_reader_costs_lines_not_time_and_the_rest_is_flushed() {
        let sink = Sink::default();
        let (entered, writing) = mpsc::channel();
        let (release, released) = mpsc::channel();
        let out = Stalled {
            sink: sink.clone(),
            entered,
            release: released,
        };
        let dropped = counter();
        let one = line(0).len();
        let (log, flush) = AccessLog::start(10 * one, out, dropped.clone()).unwrap();
        log.push(&line(0));
        // The writer holds line 0 in a write that does not return.
        writing.recv_timeout(Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        for i in 1..=1000 {
            log.push(&line(i));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "pushing never waits for the reader: {:?}",
            started.elapsed()
        );
        assert_eq!(dropped.get(), 990, "ten lines fit in the buffer");
        for _ in 0..2 {
            release.send(()).unwrap();
        }
        assert!(flush.close(Duration::from_secs(5)), "flushed at close");
        let written = lines(&sink);
        assert_eq!(written.len(), 11);
        assert_eq!(written[0], "{\"line\":00000}");
        assert_eq!(
            written[10], "{\"line\":00010}",
            "the first lines are kept, in order"
        );
    }

    #[test]
    fn close_writes_everything_buffered_and_later_lines_are_dropped() {
        let sink = Sink::default();
        let dropped = counter();
        let (log, flush) = AccessLog::start(1 << 20, sink.clone(), dropped.clone()).unwrap();
        for i in 0..500 {
            log.push(&line(i));
        }
        assert!(flush.close(Duration::from_secs(5)));
        assert_eq!(lines(&sink).len(), 500);
        assert_eq!(dropped.get(), 0);
        log.push(&line(500));
        assert_eq!(dropped.get(), 1, "after close, a line is counted, not kept");
        assert_eq!(lines(&sink).len(), 500);
    }

    #[test]
    fn a_line_is_one_json_object_per_line() {
        let sink = Sink::default();
        let (log, flush) = AccessLog::start(1 << 16, sink.clone(), counter()).unwrap();
        log.write(&AccessLogLine {
            timestamp_ms: 1,
            client: None,
            method: "GET",
            path: "/a\nb",
            status: 200,
            duration_us: 5,
            upstream: Some("core-a"),
            attempts: 1,
            request_id: None,
            trace_id: "t".into(),
            span_id: "s".into(),
            sampled: true,
        });
        assert!(flush.close(Duration::from_secs(5)));
        let written = lines(&sink);
        assert_eq!(written.len(), 1);
        let json: serde_json::Value = serde_json::from_str(&written[0]).unwrap();
        assert_eq!(json["path"], "/a\nb");
        assert_eq!(json["upstream"], "core-a");
    }
}
