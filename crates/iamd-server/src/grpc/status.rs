//! The one place where the decider's refusals, and the admission layer's
//! own answers, become gRPC statuses.

use tonic::Status;

use crate::decide::Refusal;

/// The status of a refusal: `UNAVAILABLE` without a bundle (the daemon
/// fails closed), `INVALID_ARGUMENT` otherwise. A message quotes the
/// caller's values, shortened ([`iamd_policy::message::shorten`]): a
/// megabyte principal makes a short status, never a trailer too large to
/// send.
pub fn refused(r: &Refusal) -> Status {
    match r {
        Refusal::NoBundle => Status::unavailable(
            "no policy bundle is loaded: every request is denied until one loads (GetStatus shows why: the last failure, or a bundle withdrawn as stale)",
        ),
        Refusal::Invalid(m) => {
            Status::invalid_argument(iamd_policy::message::shorten(m).into_owned())
        }
        Refusal::BatchTooLarge { .. } => Status::invalid_argument(r.to_string()),
    }
}

/// The status of the refusal of request `i` of a batch: the same, its
/// message prefixed with `requests[i]: `.
pub fn refused_in_batch(i: usize, r: &Refusal) -> Status {
    match r {
        Refusal::Invalid(m) => refused(&Refusal::Invalid(format!("requests[{i}]: {m}"))),
        other => refused(other),
    }
}

/// A call past its deadline (waiting for its turn included): what tonic's
/// own timeout answers, `CANCELLED` "Timeout expired".
pub(crate) fn timed_out() -> Status {
    Status::cancelled("Timeout expired")
}

/// A queued call whose request had gone (cannot happen: the admission
/// layer takes it once).
pub(crate) fn lost_request() -> Status {
    Status::internal("a queued call lost its request")
}

/// A decision call whose body is over `limits.maxMessageBytes` (tonic's
/// own code for a message over its decoding limit).
pub(crate) fn message_too_large(max: usize) -> Status {
    Status::out_of_range(format!(
        "the request message is larger than {max} bytes (`limits.maxMessageBytes`): split the batch or raise the limit"
    ))
}

/// A unary call whose body holds more than one message (or bytes after
/// it).
pub(crate) fn more_than_one_message() -> Status {
    Status::invalid_argument(
        "the request carries more than one message: a unary call sends exactly one",
    )
}

/// A request body the transport could not deliver.
pub(crate) fn unreadable_body(e: &dyn std::fmt::Display) -> Status {
    Status::cancelled(format!("the request body could not be read: {e}"))
}
