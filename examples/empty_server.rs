//! The baseline of the load benchmarks (`benches/compare.sh`): a tonic
//! server for `iamd.v1.Authorizer` whose handler answers `ALLOW` without
//! deciding anything: the cost of a gRPC round trip on this machine.
//!
//! ```sh
//! cargo run --release --example empty_server -- 127.0.0.1:50052 [WORKERS]
//! ```
//!
//! On the daemon's runtime (`iamd_server::grpc::runtime_builder()`): one thread
//! by default, as `iamd serve --workers 1`, or `WORKERS` threads each with
//! an event loop of its own, as `iamd serve --workers N`.

use iamd_proto::pb;
use tonic::{Request, Response, Status};

/// The same allocator as iamd's binary, for a fair baseline.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Empty;

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for Empty {
    async fn authorize(
        &self,
        _request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        Ok(Response::new(pb::AuthorizeResponse {
            decision: pb::Decision::Allow.into(),
            revision: "empty".into(),
            ..Default::default()
        }))
    }

    async fn authorize_batch(
        &self,
        request: Request<pb::AuthorizeBatchRequest>,
    ) -> Result<Response<pb::AuthorizeBatchResponse>, Status> {
        let n = request.get_ref().requests.len();
        Ok(Response::new(pb::AuthorizeBatchResponse {
            responses: vec![
                pb::AuthorizeResponse {
                    decision: pb::Decision::Allow.into(),
                    ..Default::default()
                };
                n
            ],
            revision: "empty".into(),
            statements: Vec::new(),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(pb::GetStatusResponse::default()))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50052".into());
    let workers: usize = match std::env::args().nth(2) {
        Some(w) => w.parse()?,
        None => 1,
    };
    let listener = std::net::TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    eprintln!("empty iamd.v1.Authorizer on {}", listener.local_addr()?);
    // As `iamd serve --workers N`: N threads, each an event loop of its own
    // (here each accepting from the shared listener, where iamd deals the
    // connections out in turn).
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let listener = listener.try_clone()?;
            Ok(std::thread::spawn(move || serve(listener)))
        })
        .collect::<Result<_, std::io::Error>>()?;
    for t in threads {
        t.join().map_err(|_| "a serving thread panicked")??;
    }
    Ok(())
}

/// One event loop serving the connections it accepts.
fn serve(listener: std::net::TcpListener) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    iamd_server::grpc::runtime_builder()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            // As iamd does: no Nagle delay on accepted connections.
            let incoming = iamd_server::grpc::without_nagle(listener);
            tonic::transport::Server::builder()
                .add_service(pb::authorizer_server::AuthorizerServer::new(Empty))
                .serve_with_incoming(incoming)
                .await?;
            Ok(())
        })
}
