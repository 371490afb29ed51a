//! What every listener does with its connections, whatever is spoken over
//! them: accept within a cap on open connections, back off (and say so,
//! once in a while) when accepting fails, close a connection that says
//! nothing in time, and count what a drain had to cut.
//!
//! The gRPC, AuthZEN and admin listeners all accept through [`accepting`]
//! (by an [`Accepter`]'s rules);
//! each connection carries a [`Slot`] (its place under the cap, given back
//! when it closes), and [`Quiet`] wraps its stream so that a peer that has
//! not sent its first bytes (the HTTP/2 preface, an HTTP/1.1 request line)
//! within the handshake timeout is disconnected.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first pause after a failed accept; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between two accepts that failed.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one warning about failed accepts in this time, per listener.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// What a peer must send before the handshake timeout: the length of the
/// HTTP/2 preface (an HTTP/1.1 request line is longer).
const FIRST_BYTES: usize = 24;

/// One listener's connections: the cap, the back-off, the reports.
#[derive(Debug)]
pub struct Accepter {
    listener: &'static str,
    slots: Arc<Semaphore>,
    max: usize,
    pause: Duration,
    failed: u64,
    reported: Option<Instant>,
}

impl Accepter {
    /// The connections of the listener named `listener` (`grpc`, `authzen`,
    /// `admin`: for the log): at most `max` open at once.
    pub fn new(listener: &'static str, max: usize) -> Self {
        let max = max.max(1);
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            max,
            pause: FIRST_PAUSE,
            failed: 0,
            reported: None,
        }
    }

    /// A place for the next connection: waits while `max` are open (the
    /// kernel's backlog holds the next ones meanwhile).
    async fn slot(&self) -> Slot {
        let permit = self.slots.clone().acquire_owned().await;
        Slot { _held: permit.ok() }
    }

    /// After an accept that worked: the next failure pauses briefly again.
    fn accepted(&mut self) {
        self.pause = FIRST_PAUSE;
    }

    /// After an accept that failed (out of file descriptors, most often):
    /// a warning at most every ten seconds, counting the failures since the
    /// last one, then a pause that doubles with each failure in a row (up
    /// to a second), so that a listener that cannot accept does not spin.
    async fn failed(&mut self, e: &io::Error) {
        self.failed += 1;
        let now = Instant::now();
        if self
            .reported
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY)
        {
            let hint = if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) {
                ": the process is out of file descriptors; raise its limit (`ulimit -n`, the container's `nofile`) or lower the listener's `maxConnections`"
            } else {
                ""
            };
            tracing::warn!(target: "iamd::server",
                listener = self.listener,
                failures = self.failed,
                "cannot accept connections on the {} listener: {e} ({} failed since the last report){hint}",
                self.listener, self.failed
            );
            self.failed = 0;
            self.reported = Some(now);
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
    }

    /// A handle on the open-connection count, for a drain that reports
    /// after the accepter itself is gone.
    pub fn counter(&self) -> OpenCount {
        OpenCount {
            listener: self.listener,
            slots: self.slots.clone(),
            max: self.max,
        }
    }
}

/// How many connections a listener has open, and its drain report.
#[derive(Debug, Clone)]
pub struct OpenCount {
    listener: &'static str,
    slots: Arc<Semaphore>,
    max: usize,
}

impl OpenCount {
    /// How many are open.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Warns that the drain deadline passed, and how many connections it
    /// cuts.
    pub fn report_cut(&self, drain: Duration) {
        let open = self.open();
        tracing::warn!(target: "iamd::server",
            listener = self.listener,
            connections = open,
            drain_ms = drain.as_millis() as u64,
            "the drain deadline passed with calls or connections still open: closing {open} {} connection(s)",
            self.listener
        );
    }
}

/// A listener: what [`accepting`] takes connections from.
pub trait Accept: Send + Sync + 'static {
    /// A connection.
    type Stream: Send + 'static;
    /// The next connection.
    fn accept(&self) -> impl std::future::Future<Output = io::Result<Self::Stream>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    /// The next connection, without Nagle's delay (answers are small and
    /// latency is the point).
    async fn accept(&self) -> io::Result<tokio::net::TcpStream> {
        let (s, _) = tokio::net::TcpListener::accept(self).await?;
        // A connection already reset fails here too: it fails soon anyway.
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(&self) -> io::Result<tokio::net::UnixStream> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Accepts the connections of `listener` by `accepter`'s rules (the cap,
/// the back-off), in a task of the calling runtime, each with its slot.
/// The task, and the listener with it, end when the receiver is dropped.
pub fn accepting<L: Accept>(
    listener: L,
    mut accepter: Accepter,
) -> tokio::sync::mpsc::Receiver<(L::Stream, Slot)> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                () = tx.closed() => return,
                slot = accepter.slot() => slot,
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                a = listener.accept() => a,
            };
            match accepted {
                Ok(s) => {
                    accepter.accepted();
                    if tx.send((s, slot)).await.is_err() {
                        return;
                    }
                }
                Err(e) => accepter.failed(&e).await,
            }
        }
    });
    rx
}

/// How long an HTTP connection asked to close for its age may take to
/// finish what it has in flight before it is cut (its calls are bounded by
/// the request timeout, its reads and writes by the keepalive pings).
pub const AGE_GRACE: Duration = Duration::from_secs(10);

/// Serves one HTTP connection, `conn`, until it ends, or until it has been
/// open for `age` or `stop` comes; then it is asked to close (`graceful`:
/// HTTP/2 GOAWAY, HTTP/1.1 `Connection: close` after the answer in flight).
/// Asked for its age, it is dropped (closed) if it has not ended `grace`
/// later; asked by `stop`, it has what the caller's drain gives it.
pub async fn serve_for<C: Future>(
    conn: C,
    graceful: impl FnOnce(Pin<&mut C>),
    (age, grace): (Duration, Duration),
    stop: impl Future<Output = ()>,
) {
    let mut conn = std::pin::pin!(conn);
    let old = tokio::select! {
        _ = conn.as_mut() => return,
        () = tokio::time::sleep(age) => true,
        () = stop => false,
    };
    graceful(conn.as_mut());
    if old {
        let _ = tokio::time::timeout(grace, conn).await;
    } else {
        conn.await;
    }
}

/// What tells a listener's connections that the daemon stops, and lets it
/// wait until they have all ended: each connection holds a [`Stop`] while
/// it is served.
#[derive(Debug)]
pub struct Stopping {
    tx: tokio::sync::watch::Sender<bool>,
}

/// A connection's side of [`Stopping`].
#[derive(Debug)]
pub struct Stop {
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Stopping {
    /// No stop yet.
    pub fn new() -> Self {
        Self {
            tx: tokio::sync::watch::channel(false).0,
        }
    }

    /// For one more connection.
    pub fn watcher(&self) -> Stop {
        Stop {
            rx: self.tx.subscribe(),
        }
    }

    /// Tells every connection to stop; done when they all have ended.
    pub async fn shutdown(self) {
        let _ = self.tx.send(true);
        self.tx.closed().await;
    }
}

impl Default for Stopping {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// Done once the daemon stops.
    pub async fn stopped(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// A connection's place under its listener's cap, given back when it is
/// dropped (with the connection).
#[derive(Debug)]
pub struct Slot {
    _held: Option<OwnedSemaphorePermit>,
}

pin_project_lite::pin_project! {
    /// A connection's stream, closed (its reads fail with `TimedOut`) if the
    /// peer has not sent its first bytes within the handshake timeout; after
    /// them, the stream as it is. It holds the connection's [`Slot`].
    #[derive(Debug)]
    pub struct Quiet<T> {
        #[pin]
        io: T,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        seen: usize,
        slot: Slot,
    }
}

impl<T> Quiet<T> {
    /// `io`, which must send its first bytes within `handshake`. Makes a
    /// timer: call it on the runtime that will serve the connection.
    pub fn new(io: T, handshake: Duration, slot: Slot) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(handshake))),
            seen: 0,
            slot,
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead> AsyncRead for Quiet<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer sent nothing within the handshake timeout (`limits.handshakeTimeoutMs`)",
            )));
        }
        let before = buf.filled().len();
        let read = this.io.poll_read(cx, buf);
        if this.deadline.is_some()
            && let Poll::Ready(Ok(())) = &read
        {
            let n = buf.filled().len() - before;
            *this.seen += n;
            // Enough to start speaking, or the end of the stream.
            if n == 0 || *this.seen >= FIRST_BYTES {
                *this.deadline = None;
            }
        }
        read
    }
}

impl<T: AsyncWrite> AsyncWrite for Quiet<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Quiet<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_peer_is_cut_at_the_handshake_timeout_and_a_talking_one_is_not() {
        let accepter = Accepter::new("test", 2);
        let open = accepter.counter();
        let handshake = Duration::from_millis(300);
        // Silent: half a preface, then nothing.
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut quiet = Quiet::new(server, handshake, accepter.slot().await);
        assert_eq!(open.open(), 1);
        let mut buf = [0u8; 64];
        let n = quiet.read(&mut buf).await.unwrap();
        assert_eq!(n, 16);
        let e = quiet.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(quiet);
        assert_eq!(open.open(), 0, "the slot is given back with the connection");

        // Talking: the preface in time, then silence is the protocol's business.
        let (mut client, server) = tokio::io::duplex(64);
        let mut quiet = Quiet::new(server, handshake, accepter.slot().await);
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let n = quiet.read(&mut buf).await.unwrap();
        assert_eq!(n, 24);
        let later = tokio::time::timeout(Duration::from_millis(600), quiet.read(&mut buf)).await;
        assert!(
            later.is_err(),
            "no timeout after the first bytes: {later:?}"
        );
    }

    /// A connection that ends `after` being asked to close (never, if
    /// `None`), and records when it was asked.
    struct Conn {
        asked: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
        after: Option<Duration>,
        end: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl Future for Conn {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            match self.end.as_mut() {
                Some(end) => end.as_mut().poll(cx),
                None => Poll::Pending,
            }
        }
    }

    fn conn(
        after: Option<Duration>,
    ) -> (Conn, Arc<std::sync::Mutex<Option<tokio::time::Instant>>>) {
        let asked = Arc::new(std::sync::Mutex::new(None));
        let c = Conn {
            asked: asked.clone(),
            after,
            end: None,
        };
        (c, asked)
    }

    fn ask(mut c: Pin<&mut Conn>) {
        *c.asked.lock().unwrap() = Some(tokio::time::Instant::now());
        if let Some(after) = c.after {
            c.end = Some(Box::pin(tokio::time::sleep(after)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_asked_to_close_at_its_age_and_cut_after_the_grace() {
        let age = (Duration::from_secs(60), Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        // Closes when asked, a second later.
        let (c, asked) = conn(Some(Duration::from_secs(1)));
        serve_for(c, ask, age, std::future::pending()).await;
        assert_eq!(
            asked.lock().unwrap().unwrap() - start,
            Duration::from_secs(60)
        );
        assert_eq!(start.elapsed(), Duration::from_secs(61));
        // Never closes: cut at the grace.
        let start = tokio::time::Instant::now();
        let (c, _) = conn(None);
        serve_for(c, ask, age, std::future::pending()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(65));
        // Stopped: asked at the stop, and waited for however long it takes.
        let start = tokio::time::Instant::now();
        let (c, asked) = conn(Some(Duration::from_secs(30)));
        let stop = tokio::time::sleep(Duration::from_secs(2));
        serve_for(c, ask, age, stop).await;
        assert_eq!(
            asked.lock().unwrap().unwrap() - start,
            Duration::from_secs(2)
        );
        assert_eq!(start.elapsed(), Duration::from_secs(32));
    }

    #[tokio::test]
    async fn stopping_waits_for_every_connection_it_told() {
        let stopping = Stopping::new();
        let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for wait in [10, 200] {
            let mut stop = stopping.watcher();
            let ended = ended.clone();
            tokio::spawn(async move {
                stop.stopped().await;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stop);
            });
        }
        stopping.shutdown().await;
        assert_eq!(ended.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_cap_holds_the_next_connection_until_one_closes() {
        let accepter = Accepter::new("test", 1);
        let first = accepter.slot().await;
        let waiting = tokio::time::timeout(Duration::from_millis(100), accepter.slot()).await;
        assert!(waiting.is_err(), "a second slot while one is held");
        drop(first);
        let second = tokio::time::timeout(Duration::from_millis(100), accepter.slot()).await;
        assert!(second.is_ok());
    }

    #[tokio::test]
    async fn failed_accepts_pause_longer_each_time_and_reset_after_one_works() {
        let mut accepter = Accepter::new("test", 1);
        let e = io::Error::from_raw_os_error(24);
        let started = tokio::time::Instant::now();
        for _ in 0..6 {
            accepter.failed(&e).await;
        }
        // 5 + 10 + 20 + 40 + 80 + 160 ms: each pause twice the last, not a spin.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(315), "{waited:?}");
        assert_eq!(accepter.pause, Duration::from_millis(320));
        // One warning (the first failure's); the five since wait for the next.
        assert_eq!(accepter.failed, 5);
        accepter.accepted();
        assert_eq!(accepter.pause, FIRST_PAUSE);
    }
}
