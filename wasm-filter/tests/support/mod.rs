//! A real proxy-wasm host (the `proxy-wasm-host` crate, on wasmtime) running the published
//! filter artifact, with Envoy's rules for when attributes exist, captured callouts, metrics
//! and logs, and a count of the host calls each request makes.
#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel, MapType, MetricType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, CalloutId, Callouts, Clock, ContextId, ContextState, Guest, GuestError, Host, HttpCall,
    HttpCallRefusal, HttpCallResponse, Invocation, LogContext, LogSink, MetricId, PluginConfig,
    SharedServices, StreamKind, StreamState, VmServices,
};
use proxy_wasm_host::{HeaderMap, HeaderMapExt, Limits, VecHeaderMap};
// Envoy's rules (attribute encodings and lifetimes) and the artifact's checks, shared with the
// end-to-end tests' sidecar.
use threadline_tests::envoy::{self, Attributes, Reader};

/// The filter as `scripts/setup.sh` publishes it.
pub const FILTER: &str = envoy::FILTER;
/// The empty filter, the benchmark's baseline.
pub const EMPTY_FILTER: &str = envoy::EMPTY_FILTER;

/// The cluster the test host knows; calls to any other are refused as Envoy refuses them.
pub const COLLECTOR_CLUSTER: &str = "threadline_agent";

/// Every host call the guest makes through the services counts here.
#[derive(Default)]
pub struct HostCalls(AtomicUsize);

impl HostCalls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Log lines of the guest.
#[derive(Default)]
pub struct Logs {
    lines: Mutex<Vec<(LogLevel, String)>>,
    calls: Arc<HostCalls>,
}

impl LogSink for Logs {
    fn log(&self, _: LogContext<'_>, level: LogLevel, message: &[u8]) {
        self.calls.hit();
        let line = String::from_utf8_lossy(message).into_owned();
        self.lines.lock().unwrap().push((level, line));
    }
}

/// A clock the test moves.
pub struct TestClock {
    nanos: AtomicU64,
    calls: Arc<HostCalls>,
}

impl Clock for TestClock {
    fn realtime_nanos(&self) -> u64 {
        self.calls.hit();
        self.nanos.load(Ordering::Relaxed)
    }

    fn monotonic_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

/// An export request the filter made.
#[derive(Clone, Debug)]
pub struct Callout {
    /// The host's identifier, for the response.
    pub id: CalloutId,
    /// The cluster.
    pub upstream: String,
    /// Headers, as text.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The timeout in milliseconds.
    pub timeout_ms: u128,
}

impl Callout {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Captures callouts.
#[derive(Default)]
pub struct CapturedCallouts {
    calls: Mutex<Vec<Callout>>,
    host_calls: Arc<HostCalls>,
}

impl Callouts for CapturedCallouts {
    fn http_call(
        &self,
        _: Invocation,
        id: CalloutId,
        request: HttpCall<'_>,
    ) -> Result<(), HttpCallRefusal> {
        self.host_calls.hit();
        let upstream = String::from_utf8_lossy(&request.upstream).into_owned();
        if upstream != COLLECTOR_CLUSTER {
            return Err(HttpCallRefusal::UnknownUpstream);
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.calls.lock().unwrap().push(Callout {
            id,
            upstream,
            headers: request
                .headers
                .iter()
                .map(|(k, v)| (text(k), text(v)))
                .collect(),
            body: request.body.to_vec(),
            timeout_ms: request.timeout.as_millis(),
        });
        Ok(())
    }
}

/// Counters and their values, by name.
#[derive(Default)]
pub struct TestMetrics {
    state: Mutex<(Vec<String>, HashMap<u32, u64>)>,
    calls: Arc<HostCalls>,
}

impl SharedServices for TestMetrics {
    fn define_metric(
        &self,
        _: Invocation,
        _: &[u8],
        kind: MetricType,
        name: &[u8],
    ) -> Result<MetricId, Status> {
        self.calls.hit();
        assert_eq!(
            kind,
            MetricType::Counter,
            "the filter defines counters only"
        );
        let mut state = self.state.lock().unwrap();
        let name = String::from_utf8_lossy(name).into_owned();
        let id = match state.0.iter().position(|n| *n == name) {
            Some(i) => i + 1,
            None => {
                state.0.push(name);
                state.0.len()
            }
        };
        MetricId::try_from(id as u32).map_err(|_| Status::InternalFailure)
    }

    fn increment_metric(&self, _: Invocation, metric: MetricId, delta: i64) -> Result<(), Status> {
        self.calls.hit();
        // Envoy refuses a counter increment that is not positive.
        let delta = u64::try_from(delta)
            .ok()
            .filter(|d| *d > 0)
            .ok_or(Status::BadArgument)?;
        *self
            .state
            .lock()
            .unwrap()
            .1
            .entry(metric.get())
            .or_default() += delta;
        Ok(())
    }

    fn get_metric(&self, _: Invocation, metric: MetricId) -> Result<u64, Status> {
        self.calls.hit();
        Ok(self
            .state
            .lock()
            .unwrap()
            .1
            .get(&metric.get())
            .copied()
            .unwrap_or(0))
    }
}

impl TestMetrics {
    /// A counter's value; 0 when never incremented, `None` when never defined.
    pub fn get(&self, name: &str) -> Option<u64> {
        let state = self.state.lock().unwrap();
        let id = state.0.iter().position(|n| n == name)? as u32 + 1;
        Some(state.1.get(&id).copied().unwrap_or(0))
    }
}

/// One request as Envoy presents it to the filter.
#[derive(Default)]
pub struct Request {
    /// Request headers, as received; the filter's changes land here.
    pub headers: VecHeaderMap,
    /// Response headers.
    pub response_headers: VecHeaderMap,
    /// Attributes by dotted path, e.g. `upstream.address`, encoded as Envoy encodes them.
    pub properties: Attributes,
    /// Whether a root context reads these (it has `xds.*` only).
    root: bool,
    calls: Option<Arc<HostCalls>>,
}

impl Request {
    /// A request with these headers (pseudo-headers included) and no attributes.
    pub fn new(headers: &[(&str, &[u8])]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
                .collect(),
            ..Self::default()
        }
    }

    /// A GET with typical headers.
    pub fn get(path: &str, extra: &[(&str, &str)]) -> Self {
        let mut headers: Vec<(&str, &[u8])> = vec![
            (":method", b"GET"),
            (":path", path.as_bytes()),
            (":authority", b"api.internal:8080"),
            (":scheme", b"http"),
            ("user-agent", b"curl/8.5.0"),
            ("x-request-id", b"4f2c"),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_bytes())));
        Self::new(&headers).with_envoy_attributes()
    }

    /// Sets an attribute.
    pub fn property(mut self, path: &str, value: impl Into<Vec<u8>>) -> Self {
        self.properties.set(path, value);
        self
    }

    /// The attributes Envoy has for a completed inbound request answered 200.
    pub fn with_envoy_attributes(self) -> Self {
        self.property("request.time", 1_700_000_000_000_000_000i64.to_le_bytes())
            .property("request.duration", 3_000_000i64.to_le_bytes())
            .property("request.protocol", "HTTP/1.1")
            .property("response.code", 200i64.to_le_bytes())
            .property("source.address", "10.1.0.9:51234")
            .property("upstream.address", "10.2.0.5:8080")
            .property("upstream.local_address", "10.2.0.1:40112")
            .property("xds.listener_direction", 1i64.to_le_bytes())
    }

    /// A request header after the filter ran.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Every request header pair, in order.
    pub fn pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.headers.pairs()
    }
}

impl StreamState for Request {
    fn header_map(
        &mut self,
        _: Invocation,
        _: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        if let Some(calls) = &self.calls {
            calls.hit();
        }
        match map {
            MapType::HttpRequestHeaders => Ok(&mut self.headers),
            MapType::HttpResponseHeaders => Ok(&mut self.response_headers),
            _ => Err(Status::NotFound),
        }
    }

    fn property(
        &mut self,
        call: Invocation,
        path: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), Status> {
        if let Some(calls) = &self.calls {
            calls.hit();
        }
        let reader = if self.root {
            Reader::Root
        } else {
            Reader::Stream
        };
        self.properties.read(path, call.callback, reader, out)
    }
}

/// A started filter in a real host.
pub struct Harness {
    guest: Guest,
    root: ContextId,
    /// Log lines.
    pub logs: Arc<Logs>,
    /// Export requests.
    pub callouts: Arc<CapturedCallouts>,
    /// Counters.
    pub metrics: Arc<TestMetrics>,
    /// Host calls made through the services and the stream.
    pub host_calls: Arc<HostCalls>,
    clock: Arc<TestClock>,
}

/// Why a filter did not start.
#[derive(Debug)]
pub struct Refused {
    /// What the guest logged.
    pub logs: Vec<String>,
}

impl Harness {
    /// Starts the published filter with `configuration`.
    pub fn start(configuration: &str) -> Result<Self, Refused> {
        Self::start_file(FILTER, configuration, Request::default())
    }

    /// Starts a filter file; `root_attributes` serves the root's attributes (node metadata).
    pub fn start_file(
        path: &str,
        configuration: &str,
        mut root_attributes: Request,
    ) -> Result<Self, Refused> {
        root_attributes.root = true;
        envoy::check_artifact(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        let host_calls = Arc::new(HostCalls::default());
        let logs = Arc::new(Logs {
            lines: Mutex::default(),
            calls: host_calls.clone(),
        });
        let callouts = Arc::new(CapturedCallouts {
            calls: Mutex::default(),
            host_calls: host_calls.clone(),
        });
        let metrics = Arc::new(TestMetrics {
            state: Mutex::default(),
            calls: host_calls.clone(),
        });
        let clock = Arc::new(TestClock {
            nanos: AtomicU64::new(1_700_000_000_000_000_000),
            calls: host_calls.clone(),
        });
        let (engine, module) = envoy::compiled(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        let host = Host::new(&engine).expect("host");
        let services = VmServices::new(logs.clone())
            .with_clock(clock.clone())
            .with_callouts(callouts.clone())
            .with_shared(metrics.clone())
            .with_log_level(LogLevel::Debug);
        let mut guest = Guest::new(&host, &module, services, &Limits::default()).expect("guest");
        let plugin = PluginConfig::new()
            .with_name("threadline")
            .with_configuration(configuration);
        let (started, _) = guest.with(root_attributes, |scope| {
            let root = scope.on_context_create(None)?;
            let vm = scope.on_vm_start(root)?;
            let configured = scope.on_configure(root, plugin)?;
            Ok::<_, GuestError>((root, vm && configured))
        });
        let (root, serving) = started.expect("start callbacks run");
        let harness = Self {
            guest,
            root,
            logs,
            callouts,
            metrics,
            host_calls,
            clock,
        };
        if serving {
            Ok(harness)
        } else {
            Err(Refused {
                logs: harness.log_lines(),
            })
        }
    }

    /// Runs one request through every callback Envoy makes; returns the action the filter
    /// took on the request headers and the request as the upstream would see it.
    pub fn request(&mut self, mut request: Request) -> (Action, Request) {
        request.calls = Some(self.host_calls.clone());
        let root = self.root;
        let headers = u32::try_from(request.headers.pairs().len()).unwrap_or(u32::MAX);
        let (result, request) = self.guest.with(request, |scope| {
            let stream = scope.on_context_create(Some(root))?;
            scope.expect_stream_kind(stream, StreamKind::Http)?;
            let action = scope.on_request_headers(stream, headers, false)?;
            scope.on_response_headers(stream, 1, true)?;
            scope.on_done(stream)?;
            scope.on_log(stream)?;
            scope.on_delete(stream)?;
            Ok::<_, GuestError>(action)
        });
        assert!(!self.guest.is_poisoned(), "the filter trapped");
        (result.expect("every callback runs"), request)
    }

    /// Moves the clock and runs the root's tick.
    pub fn tick_after_ms(&mut self, ms: u64) {
        self.clock
            .nanos
            .fetch_add(ms * 1_000_000, Ordering::Relaxed);
        let root = self.root;
        let mut scope = self.guest.enter_root();
        scope.on_tick(root).expect("tick runs");
        drop(scope);
        assert!(!self.guest.is_poisoned(), "the filter trapped on tick");
    }

    /// Export requests made so far, and forgets them.
    pub fn take_callouts(&self) -> Vec<Callout> {
        std::mem::take(&mut *self.callouts.calls.lock().unwrap())
    }

    /// Ends the root as Envoy ends one whose configuration changed: `on_done`, whose answer
    /// says whether it is done at once.
    pub fn end_root(&mut self) -> bool {
        let root = self.root;
        let done = self.guest.enter_root().on_done(root).expect("on_done runs");
        assert!(!self.guest.is_poisoned(), "the filter trapped in on_done");
        done
    }

    /// Whether the root has said `proxy_done` (or answered `true` to `on_done`).
    pub fn root_is_done(&self) -> bool {
        self.guest.context_state(self.root) == Some(ContextState::Done)
    }

    /// Answers an export request with an HTTP status, or with a failure (reset) for `None`.
    pub fn respond(&mut self, callout: &Callout, status: Option<u16>) {
        self.respond_with(callout, status, &[]);
    }

    /// Answers a callout with a status and extra response headers.
    pub fn respond_with(
        &mut self,
        callout: &Callout,
        status: Option<u16>,
        headers: &[(&str, &str)],
    ) {
        let root = self.root;
        let response = match status {
            Some(code) => {
                let mut map = vec![(
                    b":status".as_slice().into(),
                    code.to_string().into_bytes().into(),
                )];
                for (name, value) in headers {
                    map.push((name.as_bytes().into(), value.as_bytes().into()));
                }
                HttpCallResponse::received(map)
            }
            None => HttpCallResponse::failed(),
        };
        let mut scope = self.guest.enter_root();
        scope
            .on_http_call_response(root, callout.id, response)
            .expect("response delivered");
        drop(scope);
        assert!(
            !self.guest.is_poisoned(),
            "the filter trapped on a callout response"
        );
    }

    /// The guest's log lines.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// A counter of the filter.
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics
            .get(name)
            .unwrap_or_else(|| panic!("metric {name} was never defined"))
    }
}
