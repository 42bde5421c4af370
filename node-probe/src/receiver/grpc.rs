//! OTLP/gRPC with `opentelemetry-proto`'s generated `TraceService`. Messages over the bound are
//! refused by tonic with `OUT_OF_RANGE`, and undecodable ones with `INTERNAL`, before they
//! reach [`GrpcReceiver::export`].

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;

use super::intake::Intake;

/// The gRPC receiver.
pub struct GrpcReceiver {
    intake: Intake,
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.intake.accept(request.get_ref());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl GrpcReceiver {
    /// A receiver handing requests to `intake`.
    pub fn new(intake: Intake) -> Self {
        Self { intake }
    }

    /// Serves `listener` until `shutdown` says so.
    pub async fn serve(
        self,
        listener: TcpListener,
        max_message_bytes: usize,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), tonic::transport::Error> {
        let service = TraceServiceServer::new(self).max_decoding_message_size(max_message_bytes);
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = shutdown.changed().await;
                },
            )
            .await
    }
}
