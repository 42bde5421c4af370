//! Attribute names: the stable OpenTelemetry HTTP semantic conventions, and Threadline's own
//! attributes, all under the one `threadline.` namespace.

/// HTTP request method, e.g. `GET`; `_OTHER` for methods outside the known set.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// The original method when `http.request.method` is `_OTHER`.
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
/// HTTP response status code.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// The matched route template. Set only when a configured template matched.
pub const HTTP_ROUTE: &str = "http.route";
/// Retry count of a client request (absent on the first attempt).
pub const HTTP_REQUEST_RESEND_COUNT: &str = "http.request.resend_count";
/// URL path.
pub const URL_PATH: &str = "url.path";
/// URL query, without the leading `?`.
pub const URL_QUERY: &str = "url.query";
/// URL scheme.
pub const URL_SCHEME: &str = "url.scheme";
/// Full URL of a client request.
pub const URL_FULL: &str = "url.full";
/// Server host name or address.
pub const SERVER_ADDRESS: &str = "server.address";
/// Server port.
pub const SERVER_PORT: &str = "server.port";
/// Client address as the server sees it (may come from a forwarding header).
pub const CLIENT_ADDRESS: &str = "client.address";
/// Client port.
pub const CLIENT_PORT: &str = "client.port";
/// Peer address of the connection.
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
/// Peer port of the connection.
pub const NETWORK_PEER_PORT: &str = "network.peer.port";
/// Local address of the connection.
pub const NETWORK_LOCAL_ADDRESS: &str = "network.local.address";
/// Local port of the connection.
pub const NETWORK_LOCAL_PORT: &str = "network.local.port";
/// HTTP version, e.g. `1.1` or `2`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// User-Agent header value.
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// Class of error: the status code as text, or an error name.
pub const ERROR_TYPE: &str = "error.type";
/// Resource: the service name.
pub const SERVICE_NAME: &str = "service.name";
/// Resource: the service version.
pub const SERVICE_VERSION: &str = "service.version";
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
    /// How a black-box span found its parent: `header`, `four_tuple` or `vm_inflight`.
    pub const PARENT_SOURCE: &str = "threadline.parent_source";
    /// Why an incoming trace header was ignored.
    pub const CONTEXT_PROBLEM: &str = "threadline.context_problem";
    /// The caller's context was not trusted; it is kept as a link instead.
    pub const UNTRUSTED_PARENT: &str = "threadline.untrusted_parent";
    /// The caller asked for debug sampling.
    pub const DEBUG: &str = "threadline.debug";
}
