//! The floor under edge-proxy's throughput: Pingora's own proxy path with none of Threadline's
//! code, tuned the way edge-proxy is (per-thread runtimes, each worker keeping its upstream
//! connections, plain HTTP read without an L4 buffer). It sets `x-request-id`, as the nginx
//! peer of the benchmark does, and nothing else.
//!
//! `edge-proxy/bench/wrk.sh` runs it beside edge-proxy and nginx, so the gap between edge-proxy
//! and nginx splits into what Threadline adds and what Pingora itself costs.
//!
//! Usage: `pingora_floor LISTEN UPSTREAM THREADS`, for example
//! `pingora_floor 127.0.0.1:19006 127.0.0.1:19001 2`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

static NEXT_WORKER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WORKER: u64 = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
}

struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.group_key = WORKER.with(|worker| *worker);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        upstream_request: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        upstream_request
            .insert_header("x-request-id", &*id.hyphenated().encode_lower(&mut text))?;
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, threads] = args.as_slice() else {
        eprintln!("usage: pingora_floor LISTEN UPSTREAM THREADS");
        std::process::exit(2);
    };
    let (Ok(upstream), Ok(threads)) = (upstream.parse(), threads.parse()) else {
        eprintln!("pingora_floor: UPSTREAM must be an address and THREADS a number");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Floor { upstream });
    service.add_listener(
        ListenerConfig::tcp(listen.clone()).l4_buffer(L4BufferSettings::default().read(0)),
    );
    server.add_service(service);
    server.run_forever();
}
