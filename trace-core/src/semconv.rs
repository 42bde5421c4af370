//! Attribute names: the stable OpenTelemetry semantic conventions, taken from the
//! `opentelemetry-semantic-conventions` crate (its stable set only; it builds for wasm32),
//! and Threadline's own attributes, all under the one `threadline.` namespace.

pub use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, CLIENT_PORT, ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_REQUEST_RESEND_COUNT, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, NETWORK_LOCAL_ADDRESS,
    NETWORK_LOCAL_PORT, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS, SERVER_PORT, SERVICE_NAME, SERVICE_VERSION, URL_FULL, URL_PATH, URL_QUERY,
    URL_SCHEME, USER_AGENT_ORIGINAL,
};

// `host.name` and `cloud.region` are still Development in the semantic conventions, so the
// crate offers them only behind its experimental feature; they are spelled out here instead.
/// Resource: the host name.
pub const HOST_NAME: &str = "host.name";
/// Resource: the cloud region.
pub const CLOUD_REGION: &str = "cloud.region";

/// Threadline's own attributes.
pub mod threadline {
    /// Datacenter the span ran in.
    pub const DATACENTER: &str = "threadline.datacenter";
    /// Core location (or edge PoP) the span ran in.
    pub const LOCATION: &str = "threadline.location";
    /// Region of the edge or core location.
    pub const REGION: &str = "threadline.region";
    /// Point of presence of an edge location.
    pub const POP: &str = "threadline.pop";
    /// Node (server) the span ran on.
    pub const NODE: &str = "threadline.node";
    /// Workload (microVM or service instance) the span belongs to.
    pub const WORKLOAD: &str = "threadline.workload";
    /// How context reached this span: `header` or `black_box`.
    pub const PROPAGATION: &str = "threadline.propagation";
    /// How a black-box span found its parent: `header`, `four_tuple`, `vm_inflight` or `none`.
    pub const PARENT_SOURCE: &str = "threadline.parent_source";
    /// Why an incoming trace header was ignored.
    pub const CONTEXT_PROBLEM: &str = "threadline.context_problem";
    /// The caller's context was not trusted; it is kept as a link instead.
    pub const UNTRUSTED_PARENT: &str = "threadline.untrusted_parent";
    /// The caller asked for debug sampling.
    pub const DEBUG: &str = "threadline.debug";
}
