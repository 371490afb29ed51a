//! The baseline of the AuthZEN benchmark (`benches/authzen/run.sh`): an
//! HTTP server on the AuthZEN listener's stack (hyper's HTTP/1.1 and
//! HTTP/2 server, no Nagle delay, the daemon's one-thread runtime) whose
//! handler reads the body and answers `{"decision":true}` without reading
//! it: the cost of an HTTP round trip on this machine.
//!
//! ```sh
//! cargo run --release --example empty_http_server -- 127.0.0.1:8282
//! ```

use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The same allocator as iamd's binary, for a fair baseline.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn answer(req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    // As the AuthZEN listener does: the whole body is read first.
    let _ = req.into_body().collect().await;
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{\"decision\":true}")));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8282".into());
    let rt = iamd_server::grpc::runtime_builder().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("empty HTTP handler on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(answer);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
