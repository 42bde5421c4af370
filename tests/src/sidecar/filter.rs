//! The filter's guest and the callbacks Envoy makes into it, failing open: a trap or a host
//! error is counted and the request goes on untouched, as Envoy does with `fail_open` (a
//! trapped VM is not rebuilt: later requests pass through untraced).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use proxy_wasm_host::abi::v0_2_1::types::{Action, LogLevel};
use proxy_wasm_host::abi::v0_2_1::{
    CallScope, CalloutId, ContextId, ContextState, Guest, GuestError, Host, HttpCallResponse,
    PluginConfig, StreamKind, StreamState, VmServices,
};
use proxy_wasm_host::{HeaderMap, Limits};

use super::host::{Dispatcher, Exchange, Logs, Metrics, RootState};
use super::{Counters, Error, SidecarOptions};
use crate::envoy;

/// The guest, its root context and what the proxy needs to keep driving it.
pub(super) struct Filter {
    guest: Guest,
    root: ContextId,
    root_state: RootState,
    counters: Arc<Counters>,
    /// Set once the guest trapped: nothing more is asked of it.
    failed: bool,
}

impl Filter {
    /// Loads the artifact, creates the root context, and runs `on_vm_start` and
    /// `on_configure` as Envoy's main thread does; a `false` from either is Envoy's NACK.
    pub(super) fn start(
        options: &SidecarOptions,
        logs: Arc<Logs>,
        metrics: Arc<Metrics>,
        dispatcher: Arc<Dispatcher>,
        counters: Arc<Counters>,
    ) -> Result<Self, Error> {
        envoy::check_artifact(&options.wasm).map_err(Error::Artifact)?;
        let (engine, module) = envoy::compiled(&options.wasm).map_err(Error::Filter)?;
        let host = Host::new(&engine).map_err(|e| Error::Filter(e.to_string()))?;
        let services = VmServices::new(logs.clone())
            .with_callouts(dispatcher)
            .with_shared(metrics)
            .with_log_level(LogLevel::Debug);
        let mut guest = Guest::new(&host, &module, services, &Limits::default())
            .map_err(|e| Error::Filter(e.to_string()))?;
        let plugin = PluginConfig::new()
            .with_name(options.plugin_name.as_str())
            .with_root_id(options.root_id.as_str())
            .with_configuration(options.configuration.as_str());
        let root_state = RootState {
            attributes: Arc::new(options.xds_attributes()),
        };
        let (started, _) = guest.with(root_state.clone(), |scope| {
            let root = scope.on_context_create(None)?;
            let vm = scope.on_vm_start(root)?;
            let configured = vm && scope.on_configure(root, plugin)?;
            Ok::<_, GuestError>((root, configured))
        });
        let (root, serving) = started.map_err(|e| Error::Filter(e.to_string()))?;
        if !serving {
            let lines = logs.lines.lock().unwrap_or_else(|e| e.into_inner());
            return Err(Error::Refused {
                logs: lines.iter().map(|(_, l)| l.clone()).collect(),
            });
        }
        Ok(Self {
            guest,
            root,
            root_state,
            counters,
            failed: false,
        })
    }

    fn live(&self) -> bool {
        !self.failed && !self.guest.is_poisoned()
    }

    /// The answer of a callback, or `None` (counted and logged) when the guest failed it.
    fn settle<T>(&mut self, what: &str, result: Result<T, GuestError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.counters.filter_errors.fetch_add(1, Ordering::Relaxed);
                if self.guest.is_poisoned() {
                    self.failed = true;
                    eprintln!("sidecar: the filter trapped in {what}, failing open: {error}");
                } else {
                    eprintln!("sidecar: {what} failed, failing open: {error}");
                }
                None
            }
        }
    }

    /// Runs `callbacks` with `exchange` lent to the guest; `None` (and the exchange back
    /// unchanged) when the guest is not serving.
    fn with_stream<R>(
        &mut self,
        what: &str,
        exchange: Exchange,
        callbacks: impl FnOnce(&mut CallScope<'_, Exchange>) -> Result<R, GuestError>,
    ) -> (Option<R>, Exchange) {
        if !self.live() {
            return (None, exchange);
        }
        let (result, exchange) = self.guest.with(exchange, callbacks);
        (self.settle(what, result), exchange)
    }

    /// A new HTTP context of the root; `None` when the filter cannot serve.
    pub(super) fn new_stream(&mut self) -> Option<ContextId> {
        if !self.live() {
            return None;
        }
        let root = self.root;
        let (result, _) = self.guest.with(RootState::default(), |scope| {
            let stream = scope.on_context_create(Some(root))?;
            scope.expect_stream_kind(stream, StreamKind::Http)?;
            Ok::<_, GuestError>(stream)
        });
        self.settle("on_context_create", result)
    }

    /// `on_http_request_headers`; the action, or `None` when the filter failed (go on).
    pub(super) fn request_headers(
        &mut self,
        stream: ContextId,
        exchange: Exchange,
        end_of_stream: bool,
    ) -> (Option<Action>, Exchange) {
        let count = u32::try_from(exchange.request_headers.len()).unwrap_or(u32::MAX);
        self.with_stream("on_http_request_headers", exchange, |scope| {
            scope.on_request_headers(stream, count, end_of_stream)
        })
    }

    /// `on_http_request_body` with the whole body at once, end of stream set.
    pub(super) fn request_body(&mut self, stream: ContextId, exchange: Exchange) -> Exchange {
        let size = u32::try_from(exchange.request_body.0.len()).unwrap_or(u32::MAX);
        self.with_stream("on_http_request_body", exchange, |scope| {
            scope.on_request_body(stream, size, true)
        })
        .1
    }

    /// `on_http_response_headers`.
    pub(super) fn response_headers(
        &mut self,
        stream: ContextId,
        exchange: Exchange,
        end_of_stream: bool,
    ) -> Exchange {
        let count = u32::try_from(exchange.response_headers.len()).unwrap_or(u32::MAX);
        self.with_stream("on_http_response_headers", exchange, |scope| {
            scope.on_response_headers(stream, count, end_of_stream)
        })
        .1
    }

    /// `on_http_response_body` with the whole body at once, end of stream set.
    pub(super) fn response_body(&mut self, stream: ContextId, exchange: Exchange) -> Exchange {
        let size = u32::try_from(exchange.response_body.0.len()).unwrap_or(u32::MAX);
        self.with_stream("on_http_response_body", exchange, |scope| {
            scope.on_response_body(stream, size, true)
        })
        .1
    }

    /// The end of a stream: `on_done`, `on_log`, `on_delete`. The host crate follows the
    /// proxy-wasm specification's order (`on_log` only on a done context); Envoy 1.19+ logs
    /// before `on_done`, which a filter whose `on_done` does nothing cannot tell apart.
    pub(super) fn end_stream(&mut self, stream: ContextId, exchange: Exchange) -> Exchange {
        self.with_stream("the end of the stream", exchange, |scope| {
            end(scope, stream, true)
        })
        .1
    }

    /// The end of a stream whose request state is gone (the task serving it was cancelled):
    /// `on_done` and `on_delete` without a log, as for a stream Envoy resets.
    pub(super) fn abandon_stream(&mut self, stream: ContextId) {
        if !self.live() {
            return;
        }
        let (result, _) = self
            .guest
            .with(Exchange::default(), |scope| end(scope, stream, false));
        self.settle("the end of an abandoned stream", result);
    }

    /// The period the root asked for with `set_tick_period`.
    pub(super) fn tick_period(&self) -> Option<std::time::Duration> {
        self.guest.tick_period(self.root).filter(|p| !p.is_zero())
    }

    /// The root's `on_tick`.
    pub(super) fn tick(&mut self) {
        let root = self.root;
        self.with_root("on_tick", |scope| scope.on_tick(root));
    }

    /// Delivers a callout's answer to the context that made it.
    pub(super) fn callout_response(
        &mut self,
        context: ContextId,
        id: CalloutId,
        response: HttpCallResponse<'static>,
    ) {
        if self.guest.open_callout(id).is_none() {
            // Its context ended: Envoy cancels the call and no callback comes.
            return;
        }
        self.with_root("on_http_call_response", |scope| {
            scope.on_http_call_response(context, id, response)
        });
    }

    /// The root's `on_done`, as Envoy ends a root: whether it is done at once.
    pub(super) fn end_root(&mut self) -> bool {
        let root = self.root;
        self.with_root("the root's on_done", |scope| scope.on_done(root))
            .unwrap_or(true)
    }

    /// Whether the root said `proxy_done` (or its guest failed: nothing more will come).
    pub(super) fn root_is_done(&self) -> bool {
        !self.live() || self.guest.context_state(self.root) == Some(ContextState::Done)
    }

    /// The root's `on_delete`; its open callouts end with it.
    pub(super) fn delete_root(&mut self) {
        let root = self.root;
        if self.guest.has_stream_contexts(root) {
            eprintln!("sidecar: streams still open at the root's on_delete; not deleting it");
            return;
        }
        if self.guest.context_state(root) != Some(ContextState::Done) {
            // The host crate refuses on_delete on a root that never said proxy_done (its
            // drain gave up); the guest goes with the sidecar's thread instead.
            return;
        }
        self.with_root("the root's on_delete", |scope| {
            scope.on_delete(root).map(|_| ())
        });
    }

    fn with_root<R>(
        &mut self,
        what: &str,
        callbacks: impl FnOnce(&mut CallScope<'_, RootState>) -> Result<R, GuestError>,
    ) -> Option<R> {
        if !self.live() {
            return None;
        }
        let (result, _) = self.guest.with(self.root_state.clone(), callbacks);
        self.settle(what, result)
    }
}

fn end<H: StreamState>(
    scope: &mut CallScope<'_, H>,
    stream: ContextId,
    log: bool,
) -> Result<(), GuestError> {
    // A stream's on_done answers whether it is done; one that is not (it waits for a callout
    // of its own) cannot be logged or deleted by this host, so it is left to the root's end.
    if scope.on_done(stream)? {
        if log {
            scope.on_log(stream)?;
        }
        scope.on_delete(stream)?;
    }
    Ok(())
}
