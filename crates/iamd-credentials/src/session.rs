//! Temporary credentials that any replica can verify without shared state:
//! the session token is sealed (AES-256-GCM) under a session key of the
//! credentials file, and carries everything a verifier needs: the
//! temporary secret, the principal, the times (issue, expiry, MFA) and the
//! session's tags. The temporary access key ID (`ASIA…`) is the seal's
//! associated data, so a token opens only with its own key ID.
//!
//! The first session key of the file seals; every key of the file opens,
//! so that a rotation (`iamd keys rotate-session-key`) keeps the tokens of
//! the previous key valid until they expire.

use std::fmt;

use base64::Engine as _;
use jiff::Timestamp;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::{Map, Value};

use crate::key::{self, KeyKind, NoRandom, Secret};
use crate::sigv4::{Code, SigError};

/// The version byte of the tokens this code seals.
const VERSION: u8 = 1;
/// Bytes of a session key.
pub const SESSION_KEY_BYTES: usize = 32;
/// The longest token opened (a session's tags and policy are bounded).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// A key that seals and opens session tokens.
#[derive(Clone)]
pub struct SessionKey {
    /// Its ID, in each token it sealed.
    pub id: String,
    key: [u8; SESSION_KEY_BYTES],
    /// When it was made.
    pub created: Option<Timestamp>,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.key == other.key && self.created == other.created
    }
}

impl Eq for SessionKey {}

impl SessionKey {
    /// A key from its parts (a credentials file's).
    pub fn new(id: String, key: [u8; SESSION_KEY_BYTES], created: Option<Timestamp>) -> Self {
        Self { id, key, created }
    }

    /// A new key, its ID from its creation time and a random part.
    pub fn generate(now: Timestamp) -> Result<Self, NoRandom> {
        let mut key = [0u8; SESSION_KEY_BYTES];
        SystemRandom::new().fill(&mut key).map_err(|_| NoRandom)?;
        let (suffix, _) = key::generate(KeyKind::LongTerm)?;
        let id = format!(
            "sk-{}-{}",
            now.strftime("%Y%m%d"),
            suffix[4..12].to_ascii_lowercase()
        );
        Ok(Self {
            id,
            key,
            created: Some(now),
        })
    }

    /// The key's bytes in base64, for the credentials file.
    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    /// The bytes of a base64 key, if they are one.
    pub fn decode(text: &str) -> Option<[u8; SESSION_KEY_BYTES]> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        bytes.try_into().ok()
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always an AES-256 key.
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.key).unwrap_or_else(|_| unreachable_key()),
        )
    }
}

#[expect(
    clippy::panic,
    reason = "a 32-byte array is an AES-256 key: ring cannot refuse it"
)]
fn unreachable_key() -> UnboundKey {
    panic!("AES-256 refused a 32-byte key")
}

/// What a session token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The temporary access key ID (`ASIA…`).
    pub access_key_id: String,
    /// The temporary secret.
    pub secret: Secret,
    /// The principal the session acts as: `user/NAME` (GetSessionToken) or
    /// a role session's ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/NAME`).
    pub principal: String,
    /// When it was issued (`aws:TokenIssueTime`).
    pub issued: Timestamp,
    /// When it expires.
    pub expires: Timestamp,
    /// When its MFA code was checked, if one was (`aws:MultiFactorAuthAge`).
    pub mfa_at: Option<Timestamp>,
    /// Its session tags.
    pub tags: Vec<(String, String)>,
    /// Its session policy (JSON), which limits what it may do.
    pub policy: Option<String>,
    /// Its source identity (`aws:SourceIdentity`), kept by the sessions
    /// chained from it.
    pub source_identity: Option<String>,
}

impl Session {
    /// A new session for `principal`, valid from `now` for `seconds`, with
    /// a new temporary key.
    pub fn new(
        principal: String,
        now: Timestamp,
        seconds: i64,
        mfa_at: Option<Timestamp>,
    ) -> Result<Self, NoRandom> {
        let (access_key_id, secret) = key::generate(KeyKind::Temporary)?;
        // Whole seconds, as the token keeps them and AWS writes them.
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        let expires = now
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .unwrap_or(now);
        Ok(Self {
            access_key_id,
            secret,
            principal,
            issued: now,
            expires,
            mfa_at,
            tags: Vec::new(),
            policy: None,
            source_identity: None,
        })
    }

    /// The session token: this session sealed with `key`.
    pub fn seal(&self, key: &SessionKey) -> Result<String, NoRandom> {
        let mut body = Map::new();
        body.insert("s".into(), self.secret.expose().into());
        body.insert("p".into(), self.principal.clone().into());
        body.insert("i".into(), self.issued.as_second().into());
        body.insert("e".into(), self.expires.as_second().into());
        if let Some(at) = self.mfa_at {
            body.insert("m".into(), at.as_second().into());
        }
        if let Some(p) = &self.policy {
            body.insert("P".into(), p.clone().into());
        }
        if let Some(si) = &self.source_identity {
            body.insert("si".into(), si.clone().into());
        }
        if !self.tags.is_empty() {
            let tags: Map<String, Value> = self
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            body.insert("t".into(), Value::Object(tags));
        }
        let mut sealed = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| NoRandom)?;
        key.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.access_key_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| NoRandom)?;
        let id = key.id.as_bytes();
        let mut token = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
        token.push(VERSION);
        token.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        token.extend_from_slice(id);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(token))
    }

    /// The session of `token` for `access_key_id`, opened with one of
    /// `keys`, if it is one iamd sealed and it has not expired at `now`.
    /// A token that does not open is `InvalidClientTokenId`; one that
    /// expired, `ExpiredToken`.
    pub fn open(
        token: &str,
        access_key_id: &str,
        keys: &[SessionKey],
        now: Timestamp,
    ) -> Result<Self, SigError> {
        let invalid = |why: &'static str| SigError::new(Code::InvalidClientTokenId, why);
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("the session token is longer than any iamd issues"));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| invalid("the session token is not base64"))?;
        let (&version, rest) = raw
            .split_first()
            .ok_or_else(|| invalid("the session token is empty"))?;
        if version != VERSION {
            return Err(invalid("the session token is not one iamd issues"));
        }
        let (&id_len, rest) = rest
            .split_first()
            .ok_or_else(|| invalid("the session token is cut"))?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN {
            return Err(invalid("the session token is cut"));
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let key = keys.iter().find(|k| k.id.as_bytes() == id).ok_or_else(|| {
            invalid("the session token's key is not in the credentials (retired?)")
        })?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| invalid("the session token is cut"))?;
        let mut sealed = sealed.to_vec();
        let plain = key
            .aead()
            .open_in_place(nonce, Aad::from(access_key_id.as_bytes()), &mut sealed)
            .map_err(|_| invalid("the session token does not open for this access key ID"))?;
        let body: Map<String, Value> = serde_json::from_slice(plain)
            .map_err(|_| invalid("the session token's contents are not iamd's"))?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let time = |k: &str| {
            body.get(k)
                .and_then(Value::as_i64)
                .and_then(|s| Timestamp::from_second(s).ok())
        };
        let (Some(secret), Some(principal), Some(issued), Some(expires)) =
            (text("s"), text("p"), time("i"), time("e"))
        else {
            return Err(invalid("the session token's contents are not iamd's"));
        };
        if now >= expires {
            return Err(SigError::new(
                Code::ExpiredToken,
                "the session token has expired",
            ));
        }
        let tags = body
            .get("t")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            access_key_id: access_key_id.to_owned(),
            secret: Secret::new(secret),
            principal,
            issued,
            expires,
            mfa_at: time("m"),
            tags,
            policy: text("P"),
            source_identity: text("si"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_token_opens_with_its_key_id_until_it_expires() {
        let now = at("2026-12-04T22:00:00Z");
        let old = SessionKey::generate(now).unwrap();
        let key = SessionKey::generate(now).unwrap();
        assert_ne!(old.id, key.id);
        let mut session = Session::new("user/alice".into(), now, 3600, Some(now)).unwrap();
        session.tags = vec![("project".into(), "reports".into())];
        session.policy = Some(r#"{"Version": "2012-10-17", "Statement": []}"#.into());
        session.source_identity = Some("alice@acme".into());
        let token = session.seal(&key).unwrap();
        assert!(!token.contains("user/alice") && !token.contains(session.secret.expose()));
        let keys = [key.clone(), old.clone()];
        let opened = Session::open(&token, &session.access_key_id, &keys, now).unwrap();
        assert_eq!(opened, session);
        // Another key ID, a changed byte, a retired key, an expiry.
        let code = |r: Result<Session, SigError>| r.map(|_| ()).map_err(|e| e.code);
        let (other, _) = key::generate(KeyKind::Temporary).unwrap();
        assert_eq!(
            code(Session::open(&token, &other, &keys, now)),
            Err(Code::InvalidClientTokenId)
        );
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&token)
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(
            code(Session::open(&tampered, &session.access_key_id, &keys, now)),
            Err(Code::InvalidClientTokenId)
        );
        assert_eq!(
            code(Session::open(&token, &session.access_key_id, &[old], now)),
            Err(Code::InvalidClientTokenId)
        );
        assert_eq!(
            code(Session::open(
                &token,
                &session.access_key_id,
                &keys,
                at("2026-12-04T23:00:00Z")
            )),
            Err(Code::ExpiredToken)
        );
        for junk in ["", "!!!", "AQ==", &"A".repeat(MAX_TOKEN_BYTES + 4)] {
            assert_eq!(
                code(Session::open(junk, &session.access_key_id, &keys, now)),
                Err(Code::InvalidClientTokenId),
                "{junk:.10}"
            );
        }
        assert!(!format!("{key:?}").contains(&key.encoded()));
        assert_eq!(SessionKey::decode(&key.encoded()), Some(key.key));
    }
}
