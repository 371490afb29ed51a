//! The compiled credentials a daemon serves with, and the verification of
//! a signed request against them.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use ring::hmac;

use crate::file::{CredentialsFile, MfaStatus, Status};
use crate::key::{self, KeyKind, Secret};
use crate::session::{Session, SessionKey};
use crate::sigv4::{self, Code, Headers, HttpRequest, MAX_SKEW_SECONDS, SigError};

/// How many derived signing keys are kept (one a key, day, region and
/// service that signed recently).
pub(crate) const SIGNING_KEYS_KEPT: u64 = 100_000;

struct Entry {
    user: String,
    secret: Secret,
    active: bool,
    /// When it last signed a request that was accepted, and for which
    /// service and region (on this replica).
    last_used: std::sync::Mutex<Option<LastUsed>>,
    /// The second of `last_used`, read without the lock.
    last_second: std::sync::atomic::AtomicI64,
}

/// When a key last signed an accepted request (`aws iam
/// get-access-key-last-used`), as this replica saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUsed {
    /// When.
    pub at: Timestamp,
    /// The signature's service.
    pub service: String,
    /// The signature's region.
    pub region: String,
}

/// The access keys of one credentials file, by ID, with a bounded cache of
/// the signing keys derived from them. A new file makes new credentials
/// (and a new cache): a deleted or deactivated key signs nothing from the
/// moment they are live.
pub struct Credentials {
    keys: HashMap<String, Entry>,
    devices: HashMap<String, Device>,
    session_keys: Vec<SessionKey>,
    digest: String,
    signing: moka::sync::Cache<String, hmac::Key>,
}

/// A virtual MFA device, as a verifier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Its user; `None`: the root.
    pub user: Option<String>,
    /// Its seed's bytes.
    seed: Vec<u8>,
    /// Whether it was activated.
    pub active: bool,
}

impl Device {
    /// The step within one of `now` whose code is `code`, if any.
    pub fn check(&self, code: &str, now: Timestamp) -> Option<i64> {
        crate::totp::matching_step(&self.seed, code, now)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.keys.len())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// A request whose signature was verified: who signed it, and what its
/// signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who: `user/NAME` for a user's key or a session of it, a role
    /// session's ARN for an assumed role.
    pub principal: String,
    /// The key's ID.
    pub key_id: String,
    /// The region of the signature's scope (`aws:RequestedRegion`).
    pub region: String,
    /// The service of the signature's scope.
    pub service: String,
    /// When it was signed.
    pub signed_at: Timestamp,
    /// Whether it was a presigned URL.
    pub presigned: bool,
    /// For temporary credentials, their session.
    pub session: Option<SessionFacts>,
}

/// What a session token says about the session, for the facts AWS sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// When it was issued (`aws:TokenIssueTime`).
    pub issued: Timestamp,
    /// When its MFA code was checked (`aws:MultiFactorAuthAge`); `None`:
    /// no MFA (`aws:MultiFactorAuthPresent` false).
    pub mfa_at: Option<Timestamp>,
    /// Its session tags.
    pub tags: Vec<(String, String)>,
    /// Its session policy (JSON), if it has one.
    pub policy: Option<String>,
    /// Its source identity (`aws:SourceIdentity`).
    pub source_identity: Option<String>,
}

impl Credentials {
    /// The credentials of `file`, whose bytes hash to `digest`.
    pub fn new(file: &CredentialsFile, digest: String) -> Self {
        let keys = file
            .access_keys
            .iter()
            .map(|k| {
                (
                    k.id.clone(),
                    Entry {
                        user: k.user.clone(),
                        secret: k.secret.clone(),
                        active: k.status == Status::Active,
                        last_used: std::sync::Mutex::new(None),
                        last_second: std::sync::atomic::AtomicI64::new(i64::MIN),
                    },
                )
            })
            .collect();
        let devices = file
            .mfa_devices
            .iter()
            .filter_map(|d| {
                Some((
                    d.serial.clone(),
                    Device {
                        user: d.user.clone(),
                        seed: crate::totp::from_base32(d.seed.expose())?,
                        active: d.status == MfaStatus::Active,
                    },
                ))
            })
            .collect();
        Self {
            keys,
            devices,
            session_keys: file.session_keys.clone(),
            digest,
            signing: moka::sync::Cache::builder()
                .max_capacity(SIGNING_KEYS_KEPT)
                .time_to_idle(Duration::from_secs(24 * 3600))
                .build(),
        }
    }

    /// The SHA-256 (hex) of the file they came from.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The keys that signed an accepted request since these credentials (or
    /// the ones they replaced) were loaded: ID, user, and when, for what.
    pub fn last_used(&self) -> Vec<(String, String, LastUsed)> {
        let mut out: Vec<(String, String, LastUsed)> = self
            .keys
            .iter()
            .filter_map(|(id, e)| {
                let used = e.last_used.lock().ok()?.clone()?;
                Some((id.clone(), e.user.clone(), used))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Keeps the last-used times of `older` (the credentials these replace)
    /// for the keys both have.
    pub fn carry_last_used(&self, older: &Credentials) {
        for (id, entry) in &self.keys {
            let kept = older
                .keys
                .get(id)
                .and_then(|e| e.last_used.lock().ok().and_then(|g| g.clone()));
            if let (Some(kept), Ok(mut slot)) = (kept, entry.last_used.lock()) {
                entry
                    .last_second
                    .store(kept.at.as_second(), std::sync::atomic::Ordering::Relaxed);
                *slot = Some(kept);
            }
        }
    }

    /// The MFA device with serial number `serial`, if any.
    pub fn device(&self, serial: &str) -> Option<&Device> {
        self.devices.get(serial)
    }

    /// The key that seals new session tokens; `None`: no session keys, no
    /// temporary credentials.
    pub fn sealing_key(&self) -> Option<&SessionKey> {
        self.session_keys.first()
    }

    /// How many keys, and how many of them active.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.keys.len(),
            self.keys.values().filter(|e| e.active).count(),
        )
    }

    /// Verifies `request`'s SigV4 signature at `now`: `None` when it
    /// carries none, the signer when it is valid, AWS's error when not.
    ///
    /// In AWS's order: the form of what is presented, the request time
    /// (15 minutes either way; a presigned URL until it expires), the key
    /// (unknown and inactive keys get the same answer), the payload hash,
    /// then the signature.
    pub fn verify<'a, H: Headers + ?Sized>(
        &self,
        request: &HttpRequest<'a, H>,
        now: Timestamp,
    ) -> Result<Option<Verified>, SigError> {
        let Some(presented) = sigv4::presented(request)? else {
            return Ok(None);
        };
        let age = now.as_second() - presented.signed_at.as_second();
        match presented.expires {
            Some(expires) if age > expires => {
                return Err(SigError::new(
                    Code::AccessDenied,
                    "the presigned URL has expired",
                ));
            }
            Some(_) if age < -MAX_SKEW_SECONDS => {
                return Err(SigError::new(
                    Code::RequestTimeTooSkewed,
                    "the presigned URL was signed more than 15 minutes in the future",
                ));
            }
            None if age.abs() > MAX_SKEW_SECONDS => {
                return Err(SigError::new(
                    Code::RequestTimeTooSkewed,
                    "X-Amz-Date is more than 15 minutes from iamd's clock",
                ));
            }
            _ => {}
        }
        let id = presented.key_id();
        // The secret that signed: a long-term key's, from the file; a
        // temporary key's, from its session token.
        let (secret, principal, session) = match (key::kind_of(id), &presented.token) {
            (Some(KeyKind::LongTerm), Some(_)) => {
                return Err(SigError::new(
                    Code::InvalidClientTokenId,
                    "a long-term key (AKIA…) with a session token",
                ));
            }
            (Some(KeyKind::Temporary), None) => {
                return Err(SigError::new(
                    Code::InvalidClientTokenId,
                    "a temporary key (ASIA…) without its session token",
                ));
            }
            (Some(KeyKind::Temporary), Some(token)) => {
                let s = Session::open(token, id, &self.session_keys, now)?;
                let facts = SessionFacts {
                    issued: s.issued,
                    mfa_at: s.mfa_at,
                    tags: s.tags,
                    policy: s.policy,
                    source_identity: s.source_identity,
                };
                (s.secret, s.principal, Some(facts))
            }
            _ => match self.keys.get(id).filter(|e| e.active) {
                Some(entry) => (entry.secret.clone(), format!("user/{}", entry.user), None),
                None => {
                    return Err(SigError::new(
                        Code::InvalidAccessKeyId,
                        "no active key has this ID",
                    ));
                }
            },
        };
        let payload = sigv4::payload_hash(request, &presented)?;
        let canonical = sigv4::canonical_request_hash(request, &presented, &payload);
        let to_sign = sigv4::string_to_sign(&presented, &canonical);
        let scope = presented.key_scope();
        let key = match self.signing.get(scope) {
            Some(key) => key,
            None => {
                let key = sigv4::signing_key(
                    secret.expose(),
                    presented.date(),
                    presented.region(),
                    presented.service(),
                );
                self.signing.insert(scope.to_owned(), key.clone());
                key
            }
        };
        if !sigv4::signature_matches(&key, &to_sign, &presented) {
            return Err(SigError::new(
                Code::SignatureDoesNotMatch,
                "the signature is not the key's over the canonical request",
            ));
        }
        // Recorded at most once a second a key: the lock is taken only
        // when the second changed.
        if session.is_none()
            && let Some(entry) = self.keys.get(id)
            && entry
                .last_second
                .swap(now.as_second(), std::sync::atomic::Ordering::Relaxed)
                != now.as_second()
            && let Ok(mut slot) = entry.last_used.lock()
        {
            *slot = Some(LastUsed {
                at: Timestamp::from_second(now.as_second()).unwrap_or(now),
                service: presented.service().to_owned(),
                region: presented.region().to_owned(),
            });
        }
        Ok(Some(Verified {
            principal,
            key_id: id.to_owned(),
            region: presented.region().to_owned(),
            service: presented.service().to_owned(),
            signed_at: presented.signed_at,
            presigned: presented.presigned(),
            session,
        }))
    }
}
