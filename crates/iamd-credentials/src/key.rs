//! Access key IDs and secret access keys: their formats, and new ones.

use std::fmt;

use ring::rand::{SecureRandom as _, SystemRandom};

/// The characters of an access key ID after its prefix (AWS's: upper-case
/// letters and the digits 2 to 7).
const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The characters of a secret access key (AWS's: base64's alphabet).
const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// An access key ID's length, prefix included.
pub const ID_LEN: usize = 20;
/// A new secret's length (AWS's).
pub const SECRET_LEN: usize = 40;
/// The shortest secret a credentials file may hold: a secret that short is
/// a typo or a test value, and anything shorter can be guessed.
pub const MIN_SECRET_LEN: usize = 16;

/// What an access key ID's prefix says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `AKIA…`: a long-term key of a user.
    LongTerm,
    /// `ASIA…`: a temporary key, issued with a session token.
    Temporary,
}

impl KeyKind {
    /// The prefix of its IDs.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::LongTerm => "AKIA",
            Self::Temporary => "ASIA",
        }
    }
}

/// Whether `id` has an access key ID's form (`AKIA` or `ASIA`, then 16
/// upper-case letters and digits: iamd makes them of `A-Z2-7`, as AWS
/// does, and accepts AWS's documentation examples, which have other
/// digits), and which kind it is.
pub fn kind_of(id: &str) -> Option<KeyKind> {
    let kind = if id.starts_with("AKIA") {
        KeyKind::LongTerm
    } else if id.starts_with("ASIA") {
        KeyKind::Temporary
    } else {
        return None;
    };
    (id.len() == ID_LEN
        && id
            .bytes()
            .skip(4)
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    .then_some(kind)
}

/// A secret access key: shown once, when made, and never again. Its
/// `Debug` and `Display` print a placeholder, so that no log line, status
/// or error message can hold one by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from its text (a credentials file's).
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The text, for signing and for the one place that shows it to its
    /// owner (`iamd keys create`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("…")
    }
}

/// The system's random generator failed: no key can be made.
#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed: no key was made")]
pub struct NoRandom;

/// `n` characters drawn uniformly from `alphabet` (whose length divides
/// 256, so that a byte maps to a character without bias).
fn random_text(alphabet: &[u8], n: usize) -> Result<String, NoRandom> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| NoRandom)?;
    Ok(bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect())
}

/// A new access key: its ID (of `kind`) and its secret.
pub fn generate(kind: KeyKind) -> Result<(String, Secret), NoRandom> {
    let id = format!("{}{}", kind.prefix(), random_text(ID_ALPHABET, ID_LEN - 4)?);
    let secret = Secret(random_text(SECRET_ALPHABET, SECRET_LEN)?);
    Ok((id, secret))
}

/// An AWS-style unique ID for `name` (an ARN): `prefix` (`AIDA` for a
/// user, `AROA` for a role) and 17 base32 characters of its SHA-256, so
/// that a principal always has the same ID.
pub fn unique_id(prefix: &str, name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let text = crate::totp::base32(digest.as_ref());
    format!("{prefix}{}", &text[..17])
}

/// A random request ID, formatted as AWS's (8-4-4-4-12 hexadecimal).
pub fn request_id() -> String {
    let mut b = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut b);
    let h = crate::file::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_have_aws_formats_and_differ() {
        let (id, secret) = generate(KeyKind::LongTerm).unwrap();
        assert_eq!(kind_of(&id), Some(KeyKind::LongTerm), "{id}");
        assert_eq!(secret.expose().len(), SECRET_LEN);
        assert!(
            secret
                .expose()
                .bytes()
                .all(|b| SECRET_ALPHABET.contains(&b))
        );
        let (temporary, other) = generate(KeyKind::Temporary).unwrap();
        assert_eq!(kind_of(&temporary), Some(KeyKind::Temporary));
        assert_ne!(id[4..], temporary[4..]);
        assert_ne!(secret, other);
    }

    #[test]
    fn ids_of_other_forms_are_not_keys() {
        for id in ["AKIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE"] {
            assert!(kind_of(id).is_some(), "{id}");
        }
        for id in [
            "",
            "AKIA",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLEE",
            "AKIAIOSFODNN7EXAMP-1",
            "akiaIOSFODNN7EXAMPLE",
            "AIDAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMPl0",
        ] {
            assert_eq!(kind_of(id), None, "{id}");
        }
    }

    #[test]
    fn unique_ids_are_stable_and_request_ids_are_not() {
        let a = unique_id("AIDA", "arn:aws:iam::123456789012:user/alice");
        assert_eq!(a, unique_id("AIDA", "arn:aws:iam::123456789012:user/alice"));
        assert_ne!(a, unique_id("AIDA", "arn:aws:iam::123456789012:user/bob"));
        assert_eq!((a.len(), &a[..4]), (21, "AIDA"));
        assert_ne!(request_id(), request_id());
        assert_eq!(request_id().len(), 36);
    }

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into());
        assert_eq!(format!("{secret:?} {secret}"), "Secret(…) …");
    }
}
