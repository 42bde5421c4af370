//! The access log with a reader that has stopped reading: requests go on, the lines that do
//! not fit are dropped and counted, and the ones buffered are written at shutdown.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{Edge, Upstream, config, free_port, get, locations, runtime};

/// Enough lines to fill a pipe (64 KiB on Linux) and the 4 KiB buffer many times over.
const REQUESTS: usize = 1000;

#[test]
fn a_log_reader_that_stops_reading_costs_lines_not_requests() {
    let rt = runtime();
    let upstream = Upstream::start(&rt);
    let (port, admin) = (free_port(), free_port());
    // Tracing off: the access log is then the only writer to standard output.
    let sections = format!(
        "[export]\nenabled = false\n[access_log]\nbuffer_bytes = 4096\n{}",
        locations(&[("core-a", upstream.server.address)], "")
    );
    let mut edge = Edge::start_with_unread_stdout(&config(port, admin, &sections));
    for i in 0..REQUESTS {
        // A worker stuck writing to the pipe would leave this without a response (the
        // client gives up after 10 s and the test fails).
        let (status, _, _) = get(port, &format!("/r/{i}"), &[]);
        assert_eq!(status, 200, "request {i}");
    }
    assert_eq!(upstream.count(), REQUESTS);
    // The last request's line is queued after its response.
    std::thread::sleep(Duration::from_millis(300));
    let dropped = edge.metric("edge_access_log_dropped_total", "") as usize;
    assert!(
        dropped > REQUESTS / 2,
        "most lines found neither the pipe nor the buffer free: {dropped} dropped"
    );

    // Shutdown begins while the pipe is still full; the reader resumes only then, and the
    // lines buffered behind the pipe still arrive before the process exits.
    let mut stdout = edge.take_stdout().expect("piped stdout");
    edge.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    let mut text = String::new();
    stdout.read_to_string(&mut text).unwrap();
    edge.wait_exit();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("whole JSON lines"))
        .collect();
    assert_eq!(
        lines.len() + dropped,
        REQUESTS,
        "every line is either written or counted as dropped"
    );
    assert_eq!(
        lines[0]["path"], "/r/0",
        "the first lines are kept, in order"
    );
    assert_eq!(lines[1]["path"], "/r/1");
}
