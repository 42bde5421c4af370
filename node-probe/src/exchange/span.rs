//! An exchange as a black-box span: named by trace-core's route rules, with trace-core's HTTP
//! attributes and status per kind, the connection's addresses, the interface, the VM and the
//! location tags. Its trace ID and parent are the join's to set.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use node_probe_common::FlowKey;
use trace_core::http::{
    NO_RESPONSE, Request, set_failure, set_protocol_version, set_response_status,
};
use trace_core::route::{RouteGrouper, span_name};
use trace_core::semconv::{self, threadline};
use trace_core::span::{KeyValue, Resource, Span, SpanKind};
use trace_core::{SpanContext, SpanId};

use super::interfaces::Interfaces;
use super::request::SeenParent;
use super::{Exchange, Outcome};
use crate::clock::{ClockSource, KernelClock};

/// `network.interface.name` (Development in the semantic conventions, so the stable set of
/// the conventions crate does not have it): the tap device the exchange crossed.
pub const NETWORK_INTERFACE_NAME: &str = "network.interface.name";

/// `error.type` of an exchange cut by a TCP reset.
pub const CONNECTION_RESET: &str = "connection_reset";
/// `error.type` of a request that waited for its response until the timeout.
pub const RESPONSE_TIMEOUT: &str = "response_timeout";
/// `error.type` of a response shorter than its `Content-Length` when the connection closed.
pub const RESPONSE_INCOMPLETE: &str = "response_incomplete";

/// A black-box span and what its parent resolution needs.
#[derive(Clone, Debug)]
pub struct BlackBoxSpan {
    /// The span; its span ID is set, its trace ID is not yet.
    pub span: Span,
    /// The resource it is exported under.
    pub resource: Arc<Resource>,
    /// The connection.
    pub key: FlowKey,
    /// The `traceparent` the request carried.
    pub header: SeenParent,
    /// For a call the VM made, the server span it was serving meanwhile.
    pub inflight_parent: Option<SpanId>,
}

/// Makes black-box spans.
pub struct SpanMaker {
    routes: RouteGrouper,
    tags: Vec<KeyValue>,
    interfaces: Interfaces,
}

impl SpanMaker {
    /// A maker with route templates, location tags for every span, and the interfaces.
    pub fn new(routes: RouteGrouper, tags: Vec<KeyValue>, interfaces: Interfaces) -> Self {
        Self {
            routes,
            tags,
            interfaces,
        }
    }

    /// The span of `exchange`, its times converted with `clock`.
    pub fn make<S: ClockSource>(
        &mut self,
        exchange: Exchange,
        clock: &KernelClock<S>,
    ) -> BlackBoxSpan {
        let request = &exchange.request;
        let route = self.routes.route(&request.target);
        let mut span = Span {
            name: span_name(&request.method, &route),
            kind: exchange.kind,
            context: SpanContext {
                span_id: exchange.span_id,
                ..SpanContext::default()
            },
            start_unix_nano: clock.to_unix_ns(exchange.start_ns),
            end_unix_nano: clock.to_unix_ns(exchange.end_ns),
            attributes: Vec::with_capacity(24),
            ..Span::default()
        };
        Request {
            method: &request.method,
            target: &request.target,
            scheme: Some("http"),
            authority: request.host.as_deref(),
            user_agent: request.user_agent.as_deref(),
            route: route.template(),
        }
        .set_attributes(&mut span);
        if let Some(version) = request.version {
            set_protocol_version(&mut span, version.as_str());
        }
        let key = exchange.key;
        if let Some(peer) = key.peer() {
            if exchange.kind == SpanKind::Server {
                set_address(
                    &mut span,
                    semconv::CLIENT_ADDRESS,
                    semconv::CLIENT_PORT,
                    peer,
                );
            }
            set_address(
                &mut span,
                semconv::NETWORK_PEER_ADDRESS,
                semconv::NETWORK_PEER_PORT,
                peer,
            );
        }
        if let Some(local) = key.workload() {
            set_address(
                &mut span,
                semconv::NETWORK_LOCAL_ADDRESS,
                semconv::NETWORK_LOCAL_PORT,
                local,
            );
        }
        let interface = self.interfaces.get(exchange.ifindex, exchange.end_ns);
        if let Some(name) = &interface.name {
            span.set_attribute(NETWORK_INTERFACE_NAME, name.to_string());
        }
        if let Some(workload) = &interface.workload {
            span.set_attribute(threadline::WORKLOAD, workload.to_string());
        }
        for tag in &self.tags {
            span.set_attribute(tag.key.clone(), tag.value.clone());
        }
        let failure: Option<Cow<'static, str>> = match exchange.outcome {
            Outcome::Complete => None,
            Outcome::Reset => Some(CONNECTION_RESET.into()),
            Outcome::NoResponse => Some(NO_RESPONSE.into()),
            Outcome::Timeout => Some(RESPONSE_TIMEOUT.into()),
            Outcome::Incomplete => Some(RESPONSE_INCOMPLETE.into()),
        };
        match (exchange.status, failure) {
            (Some(code), None) => set_response_status(&mut span, code),
            (status, Some(failure)) => set_failure(&mut span, status, failure),
            (None, None) => set_failure(&mut span, None, NO_RESPONSE),
        }
        BlackBoxSpan {
            span,
            resource: interface.resource.clone(),
            key,
            header: exchange.request.parent,
            inflight_parent: exchange.inflight_parent,
        }
    }
}

fn set_address(
    span: &mut Span,
    address_key: &'static str,
    port_key: &'static str,
    addr: SocketAddr,
) {
    span.set_attribute(address_key, addr.ip().to_string());
    span.set_attribute(port_key, i64::from(addr.port()));
}
