//! Admission: the global cap on calls in flight and the server's request
//! timeout, in one layer that costs next to nothing when neither bites.
//!
//! A call takes a permit without waiting when one is free (one atomic
//! operation); otherwise it queues for one. The timeout counts from the
//! call's first poll (hyper polls a call as soon as it is made), queueing
//! included, and its timer is armed only when the call does not finish on
//! that poll: a decision whose request body is already there (nearly all of
//! them) never touches the timer wheel, nor reads the clock. Past
//! the timeout the call ends with `CANCELLED`, as tonic's own timeout does;
//! a shorter `grpc-timeout` from the client is enforced by tonic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::codegen::http;

/// The layer: at most `max_concurrent` calls in flight across every
/// connection, each ended after `timeout`.
#[derive(Debug, Clone)]
pub(crate) struct AdmissionLayer {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl AdmissionLayer {
    /// A layer admitting `max_concurrent` calls (at least one) at a time,
    /// each for at most `timeout`.
    pub(crate) fn new(max_concurrent: usize, timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            timeout,
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
        }
    }
}

/// The service of [`AdmissionLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl<S, Req, ResBody> tower::Service<Req> for Admission<S>
where
    S: tower::Service<Req, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    Req: Send + 'static,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = AdmissionFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let state = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => State::Running {
                call: self.inner.call(req),
                permit,
            },
            // Queue for a permit; the service is called once one is ours.
            Err(_) => {
                // `self.inner` is the service `poll_ready` made ready: it
                // goes with the call, a fresh clone stays (as tower's
                // limits do).
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                State::Queued {
                    permit: Box::pin(self.permits.clone().acquire_owned()),
                    service,
                    req: Some(req),
                }
            }
        };
        AdmissionFuture {
            state,
            timeout: self.timeout,
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
    enum State<S: tower::Service<Req>, Req> {
        Queued {
            permit: Acquire,
            service: S,
            req: Option<Req>,
        },
        Running {
            #[pin]
            call: S::Future,
            permit: OwnedSemaphorePermit,
        },
    }
}

pin_project_lite::pin_project! {
    /// A call admitted or queued, with its deadline.
    pub(crate) struct AdmissionFuture<S: tower::Service<Req>, Req> {
        #[pin]
        state: State<S, Req>,
        timeout: Duration,
        // Armed, `timeout` from then, on the first poll that does not
        // finish the call.
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<S, Req, ResBody> Future for AdmissionFuture<S, Req>
where
    S: tower::Service<Req, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<http::Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Queued {
                    permit,
                    service,
                    req,
                } => match permit.as_mut().poll(cx) {
                    Poll::Ready(Ok(p)) => match req.take() {
                        Some(req) => {
                            let call = service.call(req);
                            this.state.set(State::Running { call, permit: p });
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
    use super::*;
    use tokio::time::Instant;
    use tower::{Layer, Service, ServiceExt};

    type Req = http::Request<()>;

    fn code(r: &http::Response<()>) -> tonic::Code {
        tonic::Status::from_header_map(r.headers()).map_or(tonic::Code::Ok, |s| s.code())
    }

    #[tokio::test]
    async fn a_call_that_finishes_at_once_never_arms_the_timer() {
        let inner = tower::service_fn(|_: Req| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let mut svc = AdmissionLayer::new(1, Duration::from_secs(5)).layer(inner);
        svc.ready().await.unwrap();
        let mut call = Box::pin(svc.call(http::Request::new(())));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match call.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(r)) => assert_eq!(code(&r), tonic::Code::Ok),
            _ => panic!("the call did not finish on its first poll"),
        }
        assert!(call.timer.is_none(), "the timer was armed");
        // Its permit is back: the next call is admitted at once.
        drop(call);
        svc.ready().await.unwrap();
        let next = svc.call(http::Request::new(())).await.unwrap();
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
        let mut svc = AdmissionLayer::new(1, timeout).layer(inner);
        let holder = svc.ready().await.unwrap().call(http::Request::new(()));
        let mut queued = Box::pin(svc.ready().await.unwrap().call(http::Request::new(())));
        let first_poll = Instant::now();
        let mut cx = Context::from_waker(std::task::Waker::noop());
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
}
