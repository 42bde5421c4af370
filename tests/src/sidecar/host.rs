//! The proxy-wasm host services the filter runs against, as Envoy provides them: its log,
//! its counters (`wasmcustom.<name>` inside Envoy), `dispatch_http_call` to named clusters, and
//! the per-request state with Envoy's header-map, body and attribute rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use proxy_wasm_host::abi::v0_2_1::types::{BufferType, LogLevel, MapType, MetricType, Status};
use proxy_wasm_host::abi::v0_2_1::{
    Access, Callback, CalloutId, Callouts, ContextId, HttpCall, HttpCallRefusal, Invocation,
    LogContext, LogSink, MetricId, SharedServices, StreamState,
};
use proxy_wasm_host::{Buffer, HeaderMap, NotAllowed, VecHeaderMap};
use tokio::sync::mpsc::UnboundedSender;

use super::Counters;
use crate::envoy::{Attributes, Reader};

/// The most log lines kept; a chatty filter must not grow a long test's memory without end.
const MAX_LOG_LINES: usize = 10_000;

/// The filter's log lines, kept for the test and echoed to stderr at warn and above.
#[derive(Default)]
pub(super) struct Logs {
    pub(super) lines: Mutex<Vec<(LogLevel, String)>>,
}

impl LogSink for Logs {
    fn log(&self, _: LogContext<'_>, level: LogLevel, message: &[u8]) {
        let line = String::from_utf8_lossy(message).into_owned();
        if level >= LogLevel::Warn {
            eprintln!("sidecar filter [{level:?}]: {line}");
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() < MAX_LOG_LINES {
            lines.push((level, line));
        }
    }
}

/// The filter's metrics by name, as Envoy keeps its `wasmcustom.*` stats.
#[derive(Default)]
pub(super) struct Metrics {
    state: Mutex<MetricState>,
}

/// Metric definitions (an ID is its index plus one) and values by ID.
type MetricState = (Vec<(String, MetricType)>, HashMap<u32, u64>);

impl Metrics {
    /// A metric's value; `None` when the filter never defined it.
    pub(super) fn get(&self, name: &str) -> Option<u64> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let index = state.0.iter().position(|(n, _)| n == name)?;
        let id = u32::try_from(index).ok()?.checked_add(1)?;
        Some(state.1.get(&id).copied().unwrap_or(0))
    }
}

impl SharedServices for Metrics {
    fn define_metric(
        &self,
        _: Invocation,
        _: &[u8],
        kind: MetricType,
        name: &[u8],
    ) -> Result<MetricId, Status> {
        let mut state = self.state.lock().map_err(|_| Status::InternalFailure)?;
        let name = String::from_utf8_lossy(name).into_owned();
        // Envoy answers a second definition of a name with the same stat.
        let index = match state.0.iter().position(|(n, _)| *n == name) {
            Some(index) => index,
            None => {
                state.0.push((name, kind));
                state.0.len() - 1
            }
        };
        u32::try_from(index + 1)
            .ok()
            .and_then(|id| MetricId::try_from(id).ok())
            .ok_or(Status::InternalFailure)
    }

    fn increment_metric(&self, _: Invocation, metric: MetricId, delta: i64) -> Result<(), Status> {
        let mut state = self.state.lock().map_err(|_| Status::InternalFailure)?;
        let kind = usize::try_from(metric.get() - 1)
            .ok()
            .and_then(|i| state.0.get(i))
            .map(|(_, kind)| *kind)
            .ok_or(Status::NotFound)?;
        let value = state.1.entry(metric.get()).or_default();
        match kind {
            // Envoy refuses a counter increment that is not positive.
            MetricType::Counter => {
                let delta = u64::try_from(delta)
                    .ok()
                    .filter(|d| *d > 0)
                    .ok_or(Status::BadArgument)?;
                *value = value.saturating_add(delta);
            }
            MetricType::Gauge => {
                *value = value.saturating_add_signed(delta);
            }
            _ => return Err(Status::BadArgument),
        }
        Ok(())
    }

    fn record_metric(&self, _: Invocation, metric: MetricId, value: u64) -> Result<(), Status> {
        let mut state = self.state.lock().map_err(|_| Status::InternalFailure)?;
        if usize::try_from(metric.get() - 1)
            .ok()
            .and_then(|i| state.0.get(i))
            .is_none()
        {
            return Err(Status::NotFound);
        }
        // A gauge is set, a histogram keeps its last sample: enough for a test to read.
        state.1.insert(metric.get(), value);
        Ok(())
    }

    fn get_metric(&self, _: Invocation, metric: MetricId) -> Result<u64, Status> {
        let state = self.state.lock().map_err(|_| Status::InternalFailure)?;
        Ok(state.1.get(&metric.get()).copied().unwrap_or(0))
    }
}

/// A callout the filter made, waiting for the proxy to send it.
pub(super) struct Pending {
    /// The context that made it, to which the answer goes.
    pub(super) context: ContextId,
    /// The host's identifier of the callout.
    pub(super) id: CalloutId,
    /// Where the cluster is.
    pub(super) addr: SocketAddr,
    /// What to send.
    pub(super) call: HttpCall<'static>,
}

/// `dispatch_http_call`: the guest waits inside the call, so it only checks what Envoy checks
/// at once and hands the request to the proxy's event loop.
pub(super) struct Dispatcher {
    pub(super) clusters: HashMap<String, SocketAddr>,
    pub(super) outbox: UnboundedSender<Pending>,
    pub(super) counters: Arc<Counters>,
}

impl Callouts for Dispatcher {
    fn http_call(
        &self,
        call: Invocation,
        id: CalloutId,
        request: HttpCall<'_>,
    ) -> Result<(), HttpCallRefusal> {
        let cluster = String::from_utf8_lossy(&request.upstream).into_owned();
        // Envoy refuses a call to an unknown cluster, or without these headers, with
        // BadArgument before anything is sent.
        let Some(addr) = self.clusters.get(&cluster).copied() else {
            self.counters
                .callouts_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(HttpCallRefusal::UnknownUpstream);
        };
        let has = |name: &[u8]| request.headers.iter().any(|(k, _)| k.as_ref() == name);
        if !(has(b":method") && has(b":path") && has(b":authority")) {
            self.counters
                .callouts_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(HttpCallRefusal::UnknownUpstream);
        }
        let pending = Pending {
            context: call.context,
            id,
            addr,
            call: request.into_owned(),
        };
        self.outbox
            .send(pending)
            .map_err(|_| HttpCallRefusal::Failed)
    }
}

/// A root context's state: it has `xds.*` attributes only.
#[derive(Clone, Default)]
pub(super) struct RootState {
    pub(super) attributes: Arc<Attributes>,
}

impl StreamState for RootState {
    fn property(
        &mut self,
        call: Invocation,
        path: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), Status> {
        self.attributes.read(path, call.callback, Reader::Root, out)
    }
}

/// A body the filter may read and not change: the proxy forwards the bytes it received.
#[derive(Default)]
pub(super) struct ReadOnlyBody(pub(super) Vec<u8>);

impl Buffer for ReadOnlyBody {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn copy_range_into(&self, start: usize, max_size: usize, out: &mut Vec<u8>) {
        let start = start.min(self.0.len());
        let end = start.saturating_add(max_size).min(self.0.len());
        out.extend_from_slice(self.0.get(start..end).unwrap_or_default());
    }

    fn replace(&mut self, _: usize, _: usize, _: &[u8]) -> Result<(), NotAllowed> {
        Err(NotAllowed)
    }
}

/// One request through the proxy, as the filter sees it.
#[derive(Default)]
pub(super) struct Exchange {
    /// Request headers, pseudo-headers first; the filter's changes land here and are what
    /// is forwarded.
    pub(super) request_headers: VecHeaderMap,
    /// Response headers, `:status` first.
    pub(super) response_headers: VecHeaderMap,
    /// The decoded request body.
    pub(super) request_body: ReadOnlyBody,
    /// The decoded response body.
    pub(super) response_body: ReadOnlyBody,
    /// Envoy's attributes for this request so far.
    pub(super) attributes: Attributes,
}

impl StreamState for Exchange {
    fn header_map(
        &mut self,
        call: Invocation,
        access: Access,
        map: MapType,
    ) -> Result<&mut dyn HeaderMap, Status> {
        let during = call.callback;
        let writes = access == Access::Write;
        match map {
            // Request headers change only in on_http_request_headers; later callbacks (the
            // access log's copy in on_log) read them.
            MapType::HttpRequestHeaders if !writes || during == Some(Callback::RequestHeaders) => {
                Ok(&mut self.request_headers)
            }
            // Response headers exist from on_http_response_headers on and change only there.
            MapType::HttpResponseHeaders
                if !request_side(during)
                    && (!writes || during == Some(Callback::ResponseHeaders)) =>
            {
                Ok(&mut self.response_headers)
            }
            // Envoy answers BadArgument for a map that is not available.
            _ => Err(Status::BadArgument),
        }
    }

    fn buffer(
        &mut self,
        call: Invocation,
        _: Access,
        buffer: BufferType,
    ) -> Result<&mut dyn Buffer, Status> {
        match (buffer, call.callback) {
            (BufferType::HttpRequestBody, Some(Callback::RequestBody)) => {
                Ok(&mut self.request_body)
            }
            (BufferType::HttpResponseBody, Some(Callback::ResponseBody)) => {
                Ok(&mut self.response_body)
            }
            _ => Err(Status::NotFound),
        }
    }

    fn property(
        &mut self,
        call: Invocation,
        path: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Result<(), Status> {
        self.attributes
            .read(path, call.callback, Reader::Stream, out)
    }
}

fn request_side(callback: Option<Callback>) -> bool {
    matches!(
        callback,
        Some(Callback::RequestHeaders | Callback::RequestBody | Callback::RequestTrailers)
    )
}
