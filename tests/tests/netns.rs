//! Namespaces and veth pairs: usable, isolated, and removed on drop, on panic, and after a
//! test process that died before it could remove them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use threadline_tests::netns::netns_exists;
use threadline_tests::{Netns, Veth, or_skip};

#[test]
fn a_namespace_isolates_and_is_deleted_on_drop() {
    let Some(netns) = or_skip(Netns::create("test")) else {
        return;
    };
    let name = netns.name().to_owned();
    assert!(netns_exists(&name).unwrap());
    let devices = netns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
        .unwrap();
    let interfaces: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "only loopback inside");
    let ip = netns
        .exec("ip", &["-o", "link", "show", "lo"], Duration::from_secs(10))
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ip.stdout).contains("UP"),
        "loopback is up"
    );
    drop(netns);
    assert!(!netns_exists(&name).unwrap());
}

#[test]
fn a_namespace_is_deleted_when_the_test_panics() {
    let Some(probe) = or_skip(Netns::create("test")) else {
        return;
    };
    drop(probe);
    let mut name = String::new();
    let mut left_running = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let netns = Netns::create("test").unwrap();
        name = netns.name().to_owned();
        // A process left running inside is killed with it.
        left_running = Some(netns.command("sleep").arg("600").spawn().unwrap());
        panic!("the test fails here");
    }));
    assert!(outcome.is_err());
    assert!(!name.is_empty());
    assert!(!netns_exists(&name).unwrap(), "{name} survived a panic");
    let mut left_running = left_running.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = left_running.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            left_running.kill().unwrap();
            left_running.wait().unwrap();
            panic!("the process inside the namespace was left running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the process inside was killed"
    );
}

#[test]
fn a_stale_namespace_of_a_dead_process_is_swept() {
    let Some(probe) = or_skip(Netns::create("test")) else {
        return;
    };
    drop(probe);
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("tl-test-{dead}-0");
    let added = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(added.success());
    let fresh = Netns::create("test").unwrap();
    assert!(!netns_exists(&stale).unwrap(), "{stale} was not swept");
    assert!(netns_exists(fresh.name()).unwrap());
}

#[test]
fn a_veth_pair_reaches_a_server_inside_and_goes_away() {
    let Some(netns) = or_skip(Netns::create("test")) else {
        return;
    };
    let veth = Veth::create(&netns).unwrap();
    assert!(veth.host_index().unwrap() > 0);
    let listener = netns
        .run(|| TcpListener::bind((veth.peer_addr(), 0)))
        .unwrap()
        .unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || workload::serve(listener, workload::Config::default()));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("ok\n"));
    // The peer address is not reachable from a second, unrelated namespace.
    let other = Netns::create("test").unwrap();
    let unreachable = other
        .run(|| TcpStream::connect_timeout(&address, Duration::from_millis(500)))
        .unwrap();
    assert!(unreachable.is_err());

    let host = veth.host_name().to_owned();
    drop(veth);
    assert!(!std::path::Path::new(&format!("/sys/class/net/{host}")).exists());
    // Deleting the namespace first also takes the pair with it, once nothing holds the
    // namespace (the server's socket above still holds `netns`): the kernel frees it in the
    // background.
    let veth = Veth::create(&other).unwrap();
    let host = veth.host_name().to_owned();
    drop(other);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/sys/class/net/{host}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{host} outlived its namespace"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(veth);
    drop(netns);
}
