//! The edge proxy's other wire protocols, with real peers on loopback: TLS with HTTP/1.1 and
//! HTTP/2 by ALPN and cleartext HTTP/2 (curl as the client), and OTLP/gRPC export to the
//! official `TraceService` served by tonic.

mod support;

use support::{
    CLIENT, Collector, Edge, GrpcCollector, SERVER, Upstream, attr, config, curl, export_to, find,
    free_port, locations, runtime, self_signed_certificate,
};
use trace_core::otlp::proto::trace::v1::Span;
use trace_core::w3c::TraceParent;

/// The SERVER span whose `url.path` is `path`.
fn server_span<'a>(spans: &'a [Span], path: &str) -> &'a Span {
    find(spans, SERVER)
        .into_iter()
        .find(|s| attr(s, "url.path").as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no SERVER span for {path} in {spans:#?}"))
}

#[test]
fn tls_and_h2c_listeners_speak_http1_and_http2_and_spans_record_both() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), Collector::start(&rt));
    let dir = tempdir();
    let (cert, key) = self_signed_certificate(&dir);
    let (port, admin, tls_port) = (free_port(), free_port(), free_port());
    let sections = format!(
        "[[listen.tls]]\naddress = \"127.0.0.1:{tls_port}\"\ncertificate = \"{}\"\nkey = \"{}\"\n{}{}",
        cert.display(),
        key.display(),
        export_to(&collector.endpoint(), 50),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let plain = format!("http = [\"127.0.0.1:{port}\"]\n");
    let text = config(port, admin, &sections).replace(&plain, &format!("{plain}h2c = true\n"));
    let _edge = Edge::start(&text);
    wait_for_port(tls_port);

    let version = |args: &[&str], url: String| {
        let mut all = vec![
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_version} %{http_code}",
        ];
        all.extend_from_slice(args);
        all.push(&url);
        curl(&all)
    };
    let https = |path: &str| format!("https://localhost:{tls_port}{path}");
    let cacert = cert.to_str().unwrap();
    assert_eq!(
        version(&["--cacert", cacert, "--http2"], https("/tls-h2")),
        "2 200"
    );
    assert_eq!(
        version(&["--cacert", cacert, "--http1.1"], https("/tls-h1")),
        "1.1 200"
    );
    assert_eq!(
        version(
            &["--http2-prior-knowledge"],
            format!("http://127.0.0.1:{port}/h2c")
        ),
        "2 200"
    );
    assert_eq!(
        version(&["--http1.1"], format!("http://127.0.0.1:{port}/h1")),
        "1.1 200",
        "h2c does not turn HTTP/1.1 away"
    );
    assert_eq!(upstream.count(), 4);
    for request in upstream.requests.lock().unwrap().iter() {
        let traceparent = request.get("traceparent").expect("traceparent upstream");
        assert!(TraceParent::parse(traceparent.as_bytes()).is_ok());
    }

    let spans = collector.wait_for(8);
    assert_eq!(find(&spans, CLIENT).len(), 4);
    for (path, scheme, protocol) in [
        ("/tls-h2", "https", "2"),
        ("/tls-h1", "https", "1.1"),
        ("/h2c", "http", "2"),
        ("/h1", "http", "1.1"),
    ] {
        let span = server_span(&spans, path);
        assert_eq!(attr(span, "url.scheme").as_deref(), Some(scheme), "{path}");
        assert_eq!(
            attr(span, "network.protocol.version").as_deref(),
            Some(protocol),
            "{path}"
        );
        assert_eq!(
            attr(span, "http.response.status_code").as_deref(),
            Some("200")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tls_key_that_does_not_load_is_refused_at_start() {
    let dir = tempdir();
    let (cert, _) = self_signed_certificate(&dir);
    let bad_key = dir.join("bad-key.pem");
    std::fs::write(&bad_key, "not a key").unwrap();
    let (port, admin, tls_port) = (free_port(), free_port(), free_port());
    let sections = format!(
        "[[listen.tls]]\naddress = \"127.0.0.1:{tls_port}\"\ncertificate = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        bad_key.display()
    );
    let path = dir.join("edge.toml");
    std::fs::write(&path, config(port, admin, &sections)).unwrap();
    let stderr_path = dir.join("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edge-proxy"))
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // A proxy that accepted the key would keep running: give it 10 s, then fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "refused at start: {stderr}"
    );
    assert!(
        stderr.contains("listen.tls[0]") && stderr.contains("bad-key.pem"),
        "the error names the listener and the file: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn otlp_grpc_export_reaches_the_official_trace_service_with_its_headers() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), GrpcCollector::start(&rt));
    let (port, admin) = (free_port(), free_port());
    let endpoint = format!("http://{}", collector.address);
    let sections = format!(
        "{}{}",
        export_to(&endpoint, 50),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let edge = Edge::start_with(
        Some(&config(port, admin, &sections)),
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken"),
        ],
    );
    for path in ["/a", "/b", "/c"] {
        assert_eq!(support::get(port, path, &[]).0, 200);
    }
    let spans = collector.wait_for(6);
    assert_eq!(
        (find(&spans, SERVER).len(), find(&spans, CLIENT).len()),
        (3, 3),
        "{}",
        edge.stderr()
    );
    let sent = TraceParent::parse(upstream.last_header("traceparent").unwrap().as_bytes())
        .expect("traceparent upstream");
    let last = server_span(&spans, "/c");
    assert_eq!(support::hex(&last.trace_id), sent.trace_id.to_string());
    assert!(
        collector
            .authorizations
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() == Some("Bearer t0ken")),
        "OTEL_EXPORTER_OTLP_HEADERS reach the collector as metadata"
    );
    support::eventually("the six spans are counted as exported", || {
        edge.metric("edge_spans_exported_total", "") == 6.0
    });
    assert_eq!(edge.metric("edge_export_errors_total", ""), 0.0);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-protocols-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing on {port}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
