//! OpenTelemetry traces end to end: `iamd serve` with the standard OTLP
//! variables exports a span per call to a collector (here a small OTLP/gRPC
//! receiver made with the generated types of `opentelemetry-proto`), as a
//! child of the caller's `traceparent`.

use std::time::Duration;

use iamd_proto::pb;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::{Request, Response, Status};

struct Collector(tokio::sync::mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let _ = self.0.send(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone()?.value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_call_is_a_span_under_the_callers_trace() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let (mut daemon, addr) = crate::cli::spawn_daemon_with_env(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "iamd-under-test"),
        ],
    );
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let mut client = None;
    for _ in 0..200 {
        if let Ok(c) = endpoint.connect().await {
            client = Some(pb::authorizer_client::AuthorizerClient::new(c));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut client = client.expect("the daemon listens within 5 s");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = Request::new(crate::harness::req(
        "user/alice",
        "docs:GetDocument",
        "arn:acme:docs:eu-1:123456789012:doc/x",
        &[("docs:Team", "docs")],
    ));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let answer = client.authorize(request).await.unwrap().into_inner();
    assert_eq!(answer.decision(), pb::Decision::Allow);
    // A malformed request: a span with its status, and a trace of its own.
    let bad = client
        .authorize(pb::AuthorizeRequest {
            principal: "user/alice".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let mut spans: Vec<(String, Span)> = Vec::new();
    let received = async {
        while spans.len() < 2 {
            let batch = rx.recv().await.unwrap();
            for resource_spans in batch.resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.clone()?.value);
                let Some(Value::StringValue(service)) = service else {
                    panic!("no service.name in {resource_spans:?}");
                };
                for scope in resource_spans.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), received)
        .await
        .expect("two spans within 10 s");
    crate::cli::stop(&mut daemon);

    let (service, allowed) = &spans[0];
    assert_eq!(service, "iamd-under-test");
    assert_eq!(allowed.name, "iamd.v1.Authorizer/Authorize");
    assert_eq!(hex(&allowed.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&allowed.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(allowed.kind, 2, "SPAN_KIND_SERVER");
    let text = |s: &Span, k: &str| match attribute(s, k) {
        Some(Value::StringValue(v)) => v,
        other => panic!("{k}: {other:?} in {s:?}"),
    };
    assert_eq!(text(allowed, "rpc.system"), "grpc");
    assert_eq!(text(allowed, "rpc.method"), "Authorize");
    assert_eq!(text(allowed, "iamd.principal"), "user/alice");
    assert_eq!(text(allowed, "iamd.decision"), "ALLOW");
    assert_eq!(text(allowed, "iamd.revision"), answer.revision);
    assert_eq!(
        attribute(allowed, "rpc.grpc.status_code"),
        Some(Value::IntValue(0))
    );
    let (_, failed) = &spans[1];
    assert_ne!(hex(&failed.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(failed.parent_span_id.is_empty());
    assert_eq!(
        attribute(failed, "rpc.grpc.status_code"),
        Some(Value::IntValue(3))
    );
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(2),
        "STATUS_CODE_ERROR"
    );
}
