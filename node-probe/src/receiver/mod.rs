//! The local OTLP receiver the sidecars export to (the filter by default), over HTTP/protobuf
//! and gRPC. Everything it receives is forwarded to the relay, and the spans that record an
//! upstream 4-tuple feed the join.

pub mod grpc;
pub mod http;
pub mod intake;

pub use self::grpc::GrpcReceiver;
pub use self::http::HttpReceiver;
pub use self::intake::{Intake, ReceiverCount};

#[cfg(test)]
mod tests;
