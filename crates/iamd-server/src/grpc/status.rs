//! The one place where errors become gRPC statuses.

use tonic::Status;

use super::convert::InvalidRequest;

/// No bundle is live: the daemon fails closed.
pub fn no_bundle() -> Status {
    Status::unavailable(
        "no policy bundle is loaded: every request is denied until one loads (GetStatus shows the last failure)",
    )
}

/// A malformed request. The message quotes the caller's values, shortened
/// ([`iamd_policy::message::shorten`]): a megabyte principal makes a short
/// status, never a trailer too large to send.
pub fn invalid(e: InvalidRequest) -> Status {
    Status::invalid_argument(iamd_policy::message::shorten(&e.0).into_owned())
}
