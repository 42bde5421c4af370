//! A real guest boots under QEMU on a tap device inside its own namespace; the bytes a client
//! sends reach the workload unchanged, the workload's own call leaves through the tap, and
//! nothing is left behind afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};
use threadline_tests::netns::netns_exists;
use threadline_tests::{MicroVm, MicroVmOptions, or_skip};

const CREDENTIAL: &str = "AKIDTHREADLINE:microvm-test-secret";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads one response framed by Content-Length (all the workload sends): status and body.
fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).expect("response head");
        assert!(read > 0, "connection closed before the response head");
        received.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let status = head[9..12].parse().expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("length");
    while received.len() < head_end + length {
        let read = stream.read(&mut chunk).expect("response body");
        assert!(read > 0, "connection closed inside the body");
        received.extend_from_slice(&chunk[..read]);
    }
    (status, received[head_end..head_end + length].to_vec())
}

fn exchange(vm: &MicroVm, request: &[u8]) -> (u16, Value) {
    let mut stream = vm.connect(IO_TIMEOUT).expect("connect to the guest");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(request).unwrap();
    let (status, body) = read_response(&mut stream);
    let echo = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, echo)
}

#[test]
fn a_guest_boots_receives_exact_bytes_and_calls_out_through_its_tap() {
    let Some(vm) = or_skip(MicroVm::boot(MicroVmOptions {
        sigv4_credential: Some(CREDENTIAL.into()),
        ..MicroVmOptions::default()
    })) else {
        return;
    };
    eprintln!(
        "microVM booted in {:.2?} (QEMU pid {}, namespace {}, {} at {}, guest {})",
        vm.boot_time(),
        vm.qemu_pid(),
        vm.netns().name(),
        vm.tap(),
        vm.host_ip(),
        vm.guest_addr()
    );
    let namespace = vm.netns().name().to_owned();
    assert!(netns_exists(&namespace).unwrap());

    // The exact bytes, from a socket made inside the namespace.
    let guest = vm.guest_addr();
    let request = format!(
        "POST /orders/42?x=1 HTTP/1.1\r\nHost: {guest}\r\ntraceparent: {TRACEPARENT}\r\n\
         Content-Length: 11\r\n\r\nhello guest"
    );
    let started = Instant::now();
    let (status, echo) = exchange(&vm, request.as_bytes());
    eprintln!("one request to the guest: {:.2?}", started.elapsed());
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["sha256"], sha256_hex(request.as_bytes()), "{echo}");
    assert_eq!(echo["bytes"], request.len());
    assert_eq!(echo["traceparent"], TRACEPARENT);
    assert_eq!(echo["local"], guest.to_string());
    assert!(
        echo["peer"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", vm.host_ip())),
        "the client is the tap's side: {echo}"
    );

    // curl, run inside the namespace.
    let url = format!("http://{guest}/healthz");
    let curl = vm
        .exec_in_ns("curl", &["-sS", "-m", "10", &url], IO_TIMEOUT)
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // A server in the namespace, on the tap's address: the guest's own call reaches it, signed.
    let callee = vm
        .netns()
        .run(|| TcpListener::bind((vm.host_ip(), 0)))
        .unwrap()
        .unwrap();
    let callee_addr = callee.local_addr().unwrap();
    std::thread::spawn(move || {
        workload::serve(
            callee,
            workload::Config {
                credentials: vec![CREDENTIAL.parse().unwrap()],
                ..workload::Config::default()
            },
        )
    });
    let request = format!(
        "GET /call?to={callee_addr}&path=%2Fdownstream%3Fk%3Dv&sign=1 HTTP/1.1\r\nHost: {guest}\r\n\r\n"
    );
    let (status, echo) = exchange(&vm, request.as_bytes());
    assert_eq!(status, 200, "{echo}");
    let call = &echo["call"];
    assert_eq!(call["status"], 200, "{echo}");
    assert_eq!(call["peer"], callee_addr.to_string());
    assert_eq!(call["body"]["target"], "/downstream?k=v");
    assert_eq!(
        call["body"]["sigv4"]["verified"], true,
        "the guest's signature verified at the callee: {call}"
    );
    let guest_end: SocketAddr = call["local"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        guest_end.ip(),
        vm.guest_ip(),
        "the call left from the guest"
    );
    assert_eq!(
        call["body"]["peer"], call["local"],
        "the callee saw the guest's end of the 4-tuple"
    );

    // A request signed by the client verifies inside the guest; one byte changed does not.
    let time = SystemTime::now();
    let signed = workload::sigv4::sign_headers(
        "GET",
        &guest.to_string(),
        "/bucket/key",
        &CREDENTIAL.parse().unwrap(),
        "eu-west-1",
        "s3",
        time,
    )
    .unwrap();
    let mut request = format!("GET /bucket/key HTTP/1.1\r\nHost: {guest}\r\n");
    for (name, value) in &signed {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let (status, echo) = exchange(&vm, request.as_bytes());
    assert_eq!(
        (status, &echo["sigv4"]["verified"]),
        (200, &Value::Bool(true)),
        "{echo}"
    );
    assert_eq!(echo["sha256"], sha256_hex(request.as_bytes()));
    let tampered = request.replace("/bucket/key", "/bucket/kez");
    let (status, echo) = exchange(&vm, tampered.as_bytes());
    assert_eq!(status, 403, "{echo}");

    drop(vm);
    assert!(
        !netns_exists(&namespace).unwrap(),
        "{namespace} is gone after the microVM is dropped"
    );
}
