//! # workload
//!
//! The service that runs inside the microVM guest in Threadline's tests: an HTTP/1.1 server
//! that a host-side tracer cannot instrument, so that everything the node probe reports about
//! it comes from the tap device alone. It echoes, per request, the SHA-256 of the exact bytes
//! it received (so a test can prove that nothing on the path changed them), verifies AWS SigV4
//! signatures as an AWS endpoint would, fails on demand, and makes calls of its own, signed
//! when asked. See [`routes`] for what each path does.
//!
//! Blocking sockets and one thread per connection, std only: the binary is linked statically
//! into the guest's initramfs, where size and build time count more than throughput.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)
)]

pub mod call;
mod conn;
pub mod http;
pub mod routes;
pub mod sigv4;
mod wire;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The server's limits and credentials.
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest request line plus header block accepted; longer ones are answered 431.
    pub max_header_bytes: usize,
    /// The largest request body accepted; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// How long a connection may stay silent (or a write stall) before it is closed.
    pub idle_timeout: Duration,
    /// The SigV4 key pairs accepted; the first also signs the workload's own calls.
    pub credentials: Vec<sigv4::Credential>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
            credentials: Vec::new(),
        }
    }
}

/// Accepts connections on `listener` forever, each served on its own thread.
pub fn serve(listener: TcpListener, config: Config) {
    let config = Arc::new(config);
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors or memory: back off rather than spin; the next accept
                // may succeed once connections close.
                eprintln!("workload: accept failed: {error}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= config.max_connections {
            active.fetch_sub(1, Ordering::AcqRel);
            refuse_busy(stream);
            continue;
        }
        let (config, guard) = (Arc::clone(&config), Active(Arc::clone(&active)));
        let spawned = std::thread::Builder::new()
            .name("workload-conn".into())
            .spawn(move || {
                let _guard = guard;
                conn::serve_connection(stream, &config);
            });
        if let Err(error) = spawned {
            eprintln!("workload: cannot start a connection thread: {error}");
        }
    }
}

/// Counts one served connection for as long as it lives, however its thread ends.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn refuse_busy(mut stream: TcpStream) {
    let body = br#"{"error":"too many connections"}"#;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}
