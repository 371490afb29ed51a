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
        }
    }
}
