//! Virtual MFA devices' codes: TOTP (RFC 6238) as Google Authenticator and
//! Authy compute them (HMAC-SHA-1, 6 digits, 30-second steps), the seed in
//! base32 (RFC 4648), and the `otpauth://` URI a QR code carries.

use jiff::Timestamp;
use ring::hmac;

/// Seconds a code is valid for.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a new seed (AWS's and RFC 4226's recommended 160 bits).
pub const SEED_BYTES: usize = 20;
/// Steps a code may be off either way (a clock one step fast or slow).
pub const DRIFT_STEPS: i64 = 1;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new device's seed, from the system's random generator.
pub fn new_seed() -> Result<[u8; SEED_BYTES], crate::key::NoRandom> {
    use ring::rand::SecureRandom as _;
    let mut seed = [0u8; SEED_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| crate::key::NoRandom)?;
    Ok(seed)
}

/// The TOTP step of `t`.
pub fn step_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(STEP_SECONDS)
}

/// The code of `seed` for `step` (RFC 4226's HOTP with the step as its
/// counter).
pub fn code(seed: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let counter = u64::try_from(step).unwrap_or(0).to_be_bytes();
    let mac = hmac::sign(&key, &counter);
    let mac = mac.as_ref();
    let at = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([mac[at] & 0x7f, mac[at + 1], mac[at + 2], mac[at + 3]]);
    format!("{:06}", word % 1_000_000)
}

/// The step within [`DRIFT_STEPS`] of `now` whose code is `given`, if any.
/// Compared in constant time.
pub fn matching_step(seed: &[u8], given: &str, now: Timestamp) -> Option<i64> {
    if given.len() != DIGITS || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(now);
    // Every candidate is computed, so that the time taken does not say
    // which one matched.
    let mut found = None;
    for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
        let expected = code(seed, step);
        let same = expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Whether `first` and `second` are the codes of two consecutive steps
/// from the last `window` steps up to one step ahead of `now` (how a
/// device is activated: two codes in a row, as AWS's console asks): the
/// second one's step.
pub fn consecutive(
    seed: &[u8],
    first: &str,
    second: &str,
    now: Timestamp,
    window: i64,
) -> Option<i64> {
    let now = step_of(now);
    (now - window..=now + DRIFT_STEPS)
        .find(|&s| code(seed, s) == first && code(seed, s + 1) == second)
        .map(|s| s + 1)
}

/// `bytes` in base32, without padding (as authenticator apps take a seed).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The bytes of base32 `text` (upper or lower case, padding and spaces
/// ignored), or `None` if it is not base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b'=' | b' ')) {
        let value = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://totp/` URI of a device: what its QR code holds, for an
/// authenticator app to add it as `issuer` / `account`.
pub fn otpauth_uri(issuer: &str, account: &str, seed: &[u8]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32(seed),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's appendix B, SHA-1, with the last six of its eight digits.
    #[test]
    fn rfc_6238_test_vectors() {
        let seed = b"12345678901234567890";
        for (t, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            let at = Timestamp::from_second(t).unwrap();
            assert_eq!(code(seed, step_of(at)), expected, "T = {t}");
        }
    }

    #[test]
    fn codes_one_step_off_are_accepted_and_no_more() {
        let seed = b"12345678901234567890";
        let now = Timestamp::from_second(1_111_111_111).unwrap();
        let step = step_of(now);
        for (off, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let given = code(seed, step + off);
            assert_eq!(
                matching_step(seed, &given, now),
                accepted.then_some(step + off),
                "{off}"
            );
        }
        assert_eq!(matching_step(seed, "12345", now), None);
        assert_eq!(matching_step(seed, "abcdef", now), None);
        // Two in a row, from the last ten steps.
        let (a, b) = (code(seed, step - 3), code(seed, step - 2));
        assert_eq!(consecutive(seed, &a, &b, now, 10), Some(step - 2));
        assert_eq!(consecutive(seed, &b, &a, now, 10), None);
        assert_eq!(consecutive(seed, &a, &b, now, 2), None);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(bytes), text);
            assert_eq!(from_base32(text).unwrap(), bytes);
        }
        assert_eq!(from_base32("mzxw 6ytb oi==").unwrap(), b"foobar");
        assert_eq!(from_base32("MZXW1"), None);
        let uri = otpauth_uri("iamd", "alice@123456789012", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/iamd:alice%40123456789012?secret=MZXW6YTBOI&issuer=iamd&algorithm=SHA1&digits=6&period=30"
        );
    }
}
