//! Who is calling, established by iamd itself: the access keys of the
//! credentials source (the secret side, apart from the policy bundle) and
//! the verification of AWS Signature Version 4, so that requests signed by
//! the AWS SDKs and CLI get a principal the way AWS gives them one.
//!
//! - [`file`](mod@file): the credentials file, checked and written (`iamd keys`).
//! - [`key`]: access key IDs and secrets, and new ones.
//! - [`sigv4`]: what a signed request presents and its canonical request.
//! - [`totp`]: virtual MFA devices' codes.
//! - [`session`]: temporary credentials, sealed in their session token.
//! - [`webid`]: web identity tokens (JWT-SVIDs) for `AssumeRoleWithWebIdentity`.
//! - [`Credentials`]: the compiled keys a daemon serves with, and
//!   [`Credentials::verify`], which gives a signed request its user.
//!
//! Nothing here logs, and no error, `Debug` or `Display` holds a secret.
//! Synchronous and ignorant of the daemon, like the engine.

pub mod file;
pub mod key;
pub mod session;
pub mod sigv4;
pub mod totp;
mod verify;
pub mod webid;

pub use verify::{Credentials, Device, LastUsed, SessionFacts, Verified};
