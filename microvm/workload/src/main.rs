//! `workload [--listen ADDR:PORT] [--sigv4-credential ID:SECRET]... [--max-header-bytes N]`
//!
//! Serves the workload on ADDR:PORT (default `0.0.0.0:8080`) and prints
//! `workload: listening on ADDR:PORT` once it accepts connections.

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;

use workload::Config;

const USAGE: &str =
    "usage: workload [--listen ADDR:PORT] [--sigv4-credential ID:SECRET]... [--max-header-bytes N]";

fn main() -> ExitCode {
    let mut listen = "0.0.0.0:8080".to_owned();
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        let parsed = match (flag.as_str(), value) {
            ("--listen", Some(v)) => {
                listen = v;
                Ok(())
            }
            ("--sigv4-credential", Some(v)) => v.parse().map(|c| config.credentials.push(c)),
            ("--max-header-bytes", Some(v)) => v
                .parse()
                .map(|n| config.max_header_bytes = n)
                .map_err(|_| "--max-header-bytes takes a number of bytes"),
            _ => Err(USAGE),
        };
        if let Err(message) = parsed {
            eprintln!("workload: {message}");
            return ExitCode::from(2);
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("workload: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map_or(listen, |address| address.to_string());
    println!("workload: listening on {address}");
    let _ = std::io::stdout().flush();
    workload::serve(listener, config);
    ExitCode::SUCCESS
}
