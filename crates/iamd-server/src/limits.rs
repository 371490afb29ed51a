//! Where the daemon listens and what one call may ask of it: plain values
//! that the configuration fills in and every front door reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (`127.0.0.1:50051`).
    Tcp(SocketAddr),
    /// A Unix domain socket (`unix:/run/iamd.sock`).
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a socket path, as in `unix:/run/iamd.sock`".into());
            }
            return Ok(Self::Unix(path.into()));
        }
        s.parse::<SocketAddr>().map(Self::Tcp).map_err(|_| {
            format!("`{s}` is not an address: write `127.0.0.1:50051`, `[::1]:50051` or `unix:/run/iamd.sock`")
        })
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => a.fmt(f),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What one call may ask of any front door (the bundle's own quotas are
/// `iamd_bundle::Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests in one `AuthorizeBatch`.
    pub max_batch: usize,
    /// Bytes in one message, either way.
    pub max_message_bytes: usize,
    /// Calls handled at once, over all connections; more wait their turn.
    pub max_concurrent: usize,
    /// The longest a call may take, waiting included (a shorter
    /// `grpc-timeout` from the client wins): past it, `CANCELLED`
    /// ("Timeout expired").
    pub request_timeout: Duration,
    /// Keys in one request's context.
    pub max_context_keys: usize,
    /// Values in one request's context (a multivalued key counts each).
    pub max_context_values: usize,
    /// Bytes in any one string of a request: the principal, the action,
    /// the resource, the resource account, each context key and each
    /// context value. Bounds the matchers' work per statement (a
    /// wildcard's cost grows with the text it is matched against).
    pub max_field_bytes: usize,
    /// What a connection may hold (each listener's own).
    pub connections: ConnectionLimits,
}

/// What connections may hold, on each listener (gRPC, AuthZEN; the admin
/// listener has its own, smaller cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once on one listener; the next wait in the
    /// kernel's backlog until one closes (`limits.maxConnections`).
    pub max_connections: usize,
    /// Streams (calls) at once on one HTTP/2 connection, advertised in
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (`limits.maxStreamsPerConnection`).
    pub max_streams: u32,
    /// How long a new connection has to finish its TLS handshake and to
    /// send its first bytes (the HTTP/2 preface, an HTTP/1.1 request line);
    /// also how long an HTTP/1.1 request's headers may take
    /// (`limits.handshakeTimeoutMs`).
    pub handshake_timeout: Duration,
    /// How often an HTTP/2 connection is pinged (`limits.keepaliveIntervalMs`);
    /// one that does not answer within `keepalive_timeout`
    /// (`limits.keepaliveTimeoutMs`) is closed.
    pub keepalive_interval: Duration,
    /// See `keepalive_interval`.
    pub keepalive_timeout: Duration,
    /// How long a connection may stay open, busy or idle
    /// (`limits.maxConnectionAgeMs`): then it is asked to close (HTTP/2
    /// GOAWAY, HTTP/1.1 `Connection: close` after the answer in flight),
    /// its calls finish (each bounded by the request timeout), and a
    /// client opens a new one. What frees the place of a client that holds
    /// a connection open and never asks anything.
    pub max_age: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_streams: 256,
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(30 * 60),
        }
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_batch: 1_000,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent: 1_024,
            request_timeout: Duration::from_secs(5),
            max_context_keys: 1_024,
            max_context_values: 4_096,
            max_field_bytes: 4_096,
            connections: ConnectionLimits::default(),
        }
    }
}
