//! Admission: the global cap on decisions in flight and the server's
//! request timeout, in one layer that costs next to nothing when neither
//! bites.
//!
//! A decision call (`iamd.v1.Authorizer`, Envoy's `Check`) first has its
//! request body read, up to `maxMessageBytes` (a unary call's body is one
//! message, there in the first frame nearly always), and only then takes a
//! permit: the cap counts calls being decided, not peers that are slow to
//! send, so streams that never send their body cannot starve well-formed
//! calls. A body that holds more than one message is refused with
//! `INVALID_ARGUMENT`, one over the size limit with `OUT_OF_RANGE`. A
//! permit is taken without waiting when one is free (one atomic operation);
//! otherwise the call queues for one. Health and reflection calls take no
//! permit (health must answer while decisions are saturated).
//!
//! The timeout counts from the call's first poll (hyper polls a call as
//! soon as it is made), the body and the queue included, and its timer is
//! armed only when the call does not finish on that poll: a decision whose
//! request body is already there never touches the timer wheel, nor reads
//! the clock. Past the timeout the call ends with `CANCELLED`, as tonic's
//! own timeout does; a shorter `grpc-timeout` from the client is enforced
//! by tonic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::body::Body;
use tonic::codegen::http;

use crate::body::{Unread, Whole};

/// The layer: at most `max_concurrent` decisions in flight across every
/// connection, each call ended after `timeout`.
#[derive(Debug, Clone)]
pub(crate) struct AdmissionLayer {
    permits: Arc<Semaphore>,
    timeout: Duration,
    max_message_bytes: usize,
}

impl AdmissionLayer {
    /// A layer admitting `max_concurrent` decisions (at least one) at a
    /// time, each call for at most `timeout`, reading bodies of up to
    /// `max_message_bytes` (one message and its 5-byte gRPC header).
    pub(crate) fn new(max_concurrent: usize, timeout: Duration, max_message_bytes: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            timeout,
            max_message_bytes,
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            permits: self.permits.clone(),
            timeout: self.timeout,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// The service of [`AdmissionLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
    timeout: Duration,
    max_message_bytes: usize,
}

/// Envoy's `Check`.
const ENVOY_CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Whether a call at `path` decides (and so is read first and counted).
fn decides(path: &str) -> bool {
    path.starts_with("/iamd.v1.Authorizer/") || path == ENVOY_CHECK
}

/// Whether `r` is tonic's answer to a request that did not decode as its
/// protobuf type (`INTERNAL`, by gRPC's convention for its own library's
/// errors; iamd.v1's codec says `INVALID_ARGUMENT` itself, Envoy's
/// generated server cannot be given that codec).
fn undecodable<B>(r: &http::Response<B>) -> Option<tonic::Status> {
    let status = tonic::Status::from_header_map(r.headers())?;
    (status.code() == tonic::Code::Internal
        && status
            .message()
            .starts_with("failed to decode Protobuf message"))
    .then(|| {
        tonic::Status::invalid_argument(format!(
            "the message does not decode as its protobuf type: {}",
            status.message()
        ))
    })
}

type Req = http::Request<Body>;

impl<S, ResBody> tower::Service<Req> for Admission<S>
where
    S: tower::Service<Req, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = AdmissionFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let envoy = req.uri().path() == ENVOY_CHECK;
        let state = if decides(req.uri().path()) {
            // `self.inner` is the service `poll_ready` made ready: it goes
            // with the call, a fresh clone stays (as tower's limits do).
            let clone = self.inner.clone();
            let service = std::mem::replace(&mut self.inner, clone);
            let (parts, body) = req.into_parts();
            State::Reading {
                body,
                parts: Some(parts),
                whole: Whole::default(),
                service: Some(service),
            }
        } else {
            State::Running {
                call: self.inner.call(req),
                permit: None,
            }
        };
        AdmissionFuture {
            state,
            envoy,
            permits: self.permits.clone(),
            timeout: self.timeout,
            max_message_bytes: self.max_message_bytes,
            timer: None,
        }
    }
}

type Acquire = Pin<
    Box<
        dyn Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>>
            + Send
            + 'static,
    >,
>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<S: tower::Service<Req>> {
        Reading {
            body: Body,
            parts: Option<http::request::Parts>,
            whole: Whole,
            service: Option<S>,
        },
        Queued {
            permit: Acquire,
            service: S,
            req: Option<Req>,
        },
        Running {
            #[pin]
            call: S::Future,
            permit: Option<OwnedSemaphorePermit>,
        },
    }
}

pin_project_lite::pin_project! {
    /// A call being read, queued or run, with its deadline.
    pub(crate) struct AdmissionFuture<S: tower::Service<Req>> {
        #[pin]
        state: State<S>,
        // Envoy's `Check`, whose decode failures are made INVALID_ARGUMENT.
        envoy: bool,
        permits: Arc<Semaphore>,
        timeout: Duration,
        max_message_bytes: usize,
        // Armed, `timeout` from then, on the first poll that does not
        // finish the call.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

/// What reading a decision's body came to.
enum Read {
    /// The body, whole.
    Whole(Bytes),
    /// Not yet.
    Pending,
    /// Refused: the answer.
    Refused(tonic::Status),
}

/// Reads `body` to its end: one message and its 5-byte header at most.
fn read_body(body: &mut Body, whole: &mut Whole, max: usize, cx: &mut Context<'_>) -> Read {
    let whole = match whole.poll(Pin::new(body), max.saturating_add(5), cx) {
        Poll::Pending => return Read::Pending,
        Poll::Ready(Err(Unread::TooLarge)) => {
            return Read::Refused(super::status::message_too_large(max));
        }
        Poll::Ready(Err(Unread::Failed(e))) => {
            return Read::Refused(super::status::unreadable_body(&e));
        }
        Poll::Ready(Ok(whole)) => whole,
    };
    // A unary call's body is one message: a 5-byte header (compressed
    // flag, length) and that many bytes.
    if whole.len() >= 5 {
        let len = u32::from_be_bytes([whole[1], whole[2], whole[3], whole[4]]) as usize;
        if whole.len() > 5 + len {
            return Read::Refused(super::status::more_than_one_message());
        }
    }
    Read::Whole(whole)
}

impl<S, ResBody> Future for AdmissionFuture<S>
where
    S: tower::Service<Req, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<http::Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Reading {
                    body,
                    parts,
                    whole,
                    service,
                } => match read_body(body, whole, *this.max_message_bytes, cx) {
                    Read::Pending => break,
                    Read::Refused(status) => return Poll::Ready(Ok(status.into_http())),
                    Read::Whole(bytes) => {
                        let (Some(parts), Some(mut service)) = (parts.take(), service.take())
                        else {
                            return Poll::Ready(Ok(super::status::lost_request().into_http()));
                        };
                        let req = http::Request::from_parts(
                            parts,
                            Body::new(http_body_util::Full::new(bytes)),
                        );
                        let next = match this.permits.clone().try_acquire_owned() {
                            Ok(permit) => State::Running {
                                call: service.call(req),
                                permit: Some(permit),
                            },
                            Err(_) => State::Queued {
                                permit: Box::pin(this.permits.clone().acquire_owned()),
                                service,
                                req: Some(req),
                            },
                        };
                        this.state.set(next);
                    }
                },
                StateProj::Queued {
                    permit,
                    service,
                    req,
                } => match permit.as_mut().poll(cx) {
                    Poll::Ready(Ok(p)) => match req.take() {
                        Some(req) => {
                            let call = service.call(req);
                            this.state.set(State::Running {
                                call,
                                permit: Some(p),
                            });
                        }
                        None => {
                            return Poll::Ready(Ok(super::status::lost_request().into_http()));
                        }
                    },
                    // The semaphore is never closed.
                    Poll::Ready(Err(_)) => return Poll::Ready(Ok(cancelled())),
                    Poll::Pending => break,
                },
                StateProj::Running { call, .. } => match call.poll(cx) {
                    Poll::Ready(Ok(r)) if *this.envoy => {
                        return Poll::Ready(Ok(match undecodable(&r) {
                            Some(status) => status.into_http(),
                            None => r,
                        }));
                    }
                    Poll::Ready(r) => return Poll::Ready(r),
                    Poll::Pending => break,
                },
            }
        }
        let timeout = *this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(cancelled())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The answer of a call past its deadline.
fn cancelled<B: Default>() -> http::Response<B> {
    super::status::timed_out().into_http()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;
    use tokio::time::Instant;
    use tower::{Layer, Service, ServiceExt};

    const AUTHORIZE: &str = "/iamd.v1.Authorizer/Authorize";

    fn code(r: &http::Response<()>) -> tonic::Code {
        tonic::Status::from_header_map(r.headers()).map_or(tonic::Code::Ok, |s| s.code())
    }

    /// A call to `path` whose body is `bytes`.
    fn call_with(path: &str, bytes: &'static [u8]) -> Req {
        http::Request::builder()
            .uri(path)
            .body(Body::new(http_body_util::Full::new(Bytes::from_static(
                bytes,
            ))))
            .unwrap()
    }

    /// A decision call with one empty message.
    fn call() -> Req {
        call_with(AUTHORIZE, &[0, 0, 0, 0, 0])
    }

    /// A decision call whose body never comes.
    fn stalled() -> Req {
        let never =
            tokio_stream::pending::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>();
        http::Request::builder()
            .uri(AUTHORIZE)
            .body(Body::new(http_body_util::StreamBody::new(never)))
            .unwrap()
    }

    fn answering() -> impl tower::Service<
        Req,
        Response = http::Response<()>,
        Error = std::convert::Infallible,
        Future = impl Future<Output = Result<http::Response<()>, std::convert::Infallible>> + Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(|_: Req| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        })
    }

    #[tokio::test]
    async fn a_call_that_finishes_at_once_never_arms_the_timer() {
        let mut svc = AdmissionLayer::new(1, Duration::from_secs(5), 1024).layer(answering());
        svc.ready().await.unwrap();
        let mut pending = Box::pin(svc.call(call()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match pending.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(code(&r), tonic::Code::Ok),
            _ => panic!("the call did not finish on its first poll"),
        }
        assert!(pending.timer.is_none(), "the timer was armed");
        // Its permit is back: the next call is admitted at once.
        drop(pending);
        svc.ready().await.unwrap();
        let next = svc.call(call()).await.unwrap();
        assert_eq!(code(&next), tonic::Code::Ok);
    }

    #[tokio::test]
    async fn the_timeout_counts_the_time_spent_queueing() {
        // A service that never answers: the first call holds the only
        // permit until the timeout; the second waits for it meanwhile.
        let inner = tower::service_fn(|_: Req| async {
            std::future::pending::<()>().await;
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let timeout = Duration::from_millis(100);
        let mut svc = AdmissionLayer::new(1, timeout, 1024).layer(inner);
        let mut holder = Box::pin(svc.ready().await.unwrap().call(call()));
        let mut queued = Box::pin(svc.ready().await.unwrap().call(call()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(holder.as_mut().poll(&mut cx).is_pending());
        let first_poll = Instant::now();
        assert!(queued.as_mut().poll(&mut cx).is_pending());
        assert!(matches!(queued.state, State::Queued { .. }));
        // The queued call's timer runs from its first poll, while it waits
        // for a permit, not from when the holder's permit frees (a timeout
        // later).
        let deadline = queued
            .timer
            .as_ref()
            .expect("armed while queued")
            .deadline();
        assert!(deadline >= first_poll + timeout);
        assert!(deadline <= Instant::now() + timeout);
        let (holder, queued) = tokio::join!(holder, queued);
        assert_eq!(code(&holder.unwrap()), tonic::Code::Cancelled);
        assert_eq!(code(&queued.unwrap()), tonic::Code::Cancelled);
    }

    #[tokio::test]
    async fn a_call_whose_body_never_comes_holds_no_permit() {
        let mut svc = AdmissionLayer::new(1, Duration::from_millis(200), 1024).layer(answering());
        // Before: the stalled calls took the only permit at their headers,
        // and the well-formed call queued behind them until the timeout.
        let stalled: Vec<_> = (0..3).map(|_| Box::pin(svc.call(stalled()))).collect();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut stalled = stalled;
        for s in &mut stalled {
            assert!(s.as_mut().poll(&mut cx).is_pending());
            assert!(matches!(s.state, State::Reading { .. }));
        }
        let mut fine = Box::pin(svc.call(call()));
        match fine.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(code(&r), tonic::Code::Ok),
            _ => panic!("the well-formed call waited behind stalled bodies"),
        }
        // The stalled ones end at the timeout.
        for s in stalled {
            assert_eq!(code(&s.await.unwrap()), tonic::Code::Cancelled);
        }
    }

    #[tokio::test]
    async fn bodies_of_two_messages_or_over_the_limit_are_refused() {
        let mut svc = AdmissionLayer::new(4, Duration::from_secs(5), 8).layer(answering());
        let two = svc
            .call(call_with(AUTHORIZE, &[0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 1, 7]))
            .await
            .unwrap();
        assert_eq!(code(&two), tonic::Code::InvalidArgument);
        let trailing = svc
            .call(call_with(AUTHORIZE, &[0, 0, 0, 0, 1, 7, 9]))
            .await
            .unwrap();
        assert_eq!(code(&trailing), tonic::Code::InvalidArgument);
        let big = svc
            .call(call_with(
                AUTHORIZE,
                &[0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            ))
            .await
            .unwrap();
        assert_eq!(code(&big), tonic::Code::OutOfRange);
        let just = svc
            .call(call_with(
                AUTHORIZE,
                &[0, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8],
            ))
            .await
            .unwrap();
        assert_eq!(code(&just), tonic::Code::Ok);
    }

    #[tokio::test]
    async fn health_takes_no_permit() {
        let inner = tower::service_fn(|r: Req| async move {
            if r.uri().path() == AUTHORIZE {
                std::future::pending::<()>().await;
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let mut svc = AdmissionLayer::new(1, Duration::from_secs(5), 1024).layer(inner);
        let mut busy = Box::pin(svc.call(call()));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(busy.as_mut().poll(&mut cx).is_pending());
        let health = call_with("/grpc.health.v1.Health/Check", &[0, 0, 0, 0, 0]);
        let mut health = Box::pin(svc.call(health));
        match health.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(code(&r), tonic::Code::Ok),
            _ => panic!("health waited for a decision's permit"),
        }
    }
}
