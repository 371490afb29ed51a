//! AWS Signature Version 4, as a verifier computes it: what a request
//! presents (the `Authorization` header, or a presigned URL's query), its
//! canonical request, the string to sign and the signing key.
//!
//! The canonical request follows AWS's rules and the SDKs' signers: the
//! path's dot segments and repeated slashes removed and the path encoded
//! again (every service but S3), or used as sent (S3: one encoding, no
//! normalization); the query's names and values decoded (`+` as a
//! space, as a form), encoded with AWS's strict set and sorted; each signed header lower-cased with its
//! value trimmed and its inner runs of spaces made one; the payload's
//! SHA-256, `x-amz-content-sha256`'s value, or `UNSIGNED-PAYLOAD` for an
//! S3 presigned URL. It is hashed as it is made, never held whole.

use std::borrow::Cow;

use jiff::Timestamp;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str};
use ring::{digest, hmac};

use crate::file::hex;

/// The one algorithm SigV4 names.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a signed request's time may be from the verifier's clock (AWS's
/// 15 minutes).
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
/// The longest a presigned URL may be valid (AWS's seven days).
pub const MAX_EXPIRES_SECONDS: i64 = 604_800;

/// Encoded in a query name or value: all but AWS's unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Encoded in a path: the same, but `/`.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// A request's headers, as the verifier reads them.
pub trait Headers {
    /// The value of header `name` (lower-case), its copies joined by
    /// commas, as Envoy hands them over.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<S: std::hash::BuildHasher> Headers for std::collections::HashMap<String, String, S> {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Headers for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// An HTTP request to verify.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a, H: ?Sized> {
    /// `GET`, `PUT`...
    pub method: &'a str,
    /// The path as sent, with its query.
    pub path: &'a str,
    /// Its headers.
    pub headers: &'a H,
    /// Its body, when the proxy forwards it (Envoy's `with_request_body`).
    pub body: Option<&'a [u8]>,
}

impl<'a, H: Headers + ?Sized> HttpRequest<'a, H> {
    /// The path, and the query without its `?`.
    fn split(&self) -> (&'a str, &'a str) {
        self.path.split_once('?').unwrap_or((self.path, ""))
    }

    /// A header, with `host` read from HTTP/2's `:authority` when the
    /// proxy names it so.
    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .header(name)
            .or_else(|| (name == "host").then(|| self.headers.header(":authority"))?)
    }
}

/// AWS's error codes for a request whose signature cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The `Authorization` header or the presigned query lacks a part.
    IncompleteSignature,
    /// A part is there but malformed (a scope, a date).
    AuthorizationHeaderMalformed,
    /// A presigned URL's parameters are malformed.
    AuthorizationQueryParametersError,
    /// No active key has this ID.
    InvalidAccessKeyId,
    /// A session token that iamd did not issue or cannot read.
    InvalidClientTokenId,
    /// The signature is not the one the key makes.
    SignatureDoesNotMatch,
    /// The request's time is more than 15 minutes from the clock.
    RequestTimeTooSkewed,
    /// A presigned URL past its expiry (AWS answers `AccessDenied`).
    AccessDenied,
    /// `x-amz-content-sha256` is not the body's hash.
    XAmzContentSHA256Mismatch,
    /// A session token past its expiry.
    ExpiredToken,
}

impl Code {
    /// The code as AWS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IncompleteSignature => "IncompleteSignature",
            Self::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            Self::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            Self::InvalidAccessKeyId => "InvalidAccessKeyId",
            Self::InvalidClientTokenId => "InvalidClientTokenId",
            Self::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Self::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Self::AccessDenied => "AccessDenied",
            Self::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            Self::ExpiredToken => "ExpiredToken",
        }
    }

    /// AWS's message for the caller.
    pub fn message(self) -> &'static str {
        match self {
            Self::IncompleteSignature => "The request signature does not conform to AWS standards.",
            Self::AuthorizationHeaderMalformed => "The authorization header is malformed.",
            Self::AuthorizationQueryParametersError => {
                "The query parameters of the presigned request are malformed."
            }
            Self::InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our records."
            }
            Self::InvalidClientTokenId => "The security token included in the request is invalid.",
            Self::SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided. Check your key and signing method."
            }
            Self::RequestTimeTooSkewed => {
                "The difference between the request time and the current time is too large."
            }
            Self::AccessDenied => "Request has expired",
            Self::XAmzContentSHA256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            }
            Self::ExpiredToken => "The security token included in the request is expired",
        }
    }

    /// The HTTP status AWS answers with: 400 for a malformed request, 403
    /// for one that is well formed but not accepted.
    pub fn http_status(self) -> u16 {
        match self {
            Self::IncompleteSignature
            | Self::AuthorizationHeaderMalformed
            | Self::AuthorizationQueryParametersError
            | Self::XAmzContentSHA256Mismatch
            | Self::ExpiredToken => 400,
            Self::InvalidAccessKeyId
            | Self::InvalidClientTokenId
            | Self::SignatureDoesNotMatch
            | Self::RequestTimeTooSkewed
            | Self::AccessDenied => 403,
        }
    }
}

/// A signature that cannot be accepted: AWS's code for the caller, and a
/// reason for the operator's debug log (never a secret, never the
/// signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", code.as_str())]
pub struct SigError {
    /// What the caller is told.
    pub code: Code,
    /// What the operator is told.
    pub reason: Cow<'static, str>,
}

impl SigError {
    pub(crate) fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// What a signed request presents, checked for form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    /// `AKID/DATE/REGION/SERVICE/aws4_request`.
    credential: Cow<'a, str>,
    /// `content-type;host;x-amz-date`.
    signed_headers: Cow<'a, str>,
    /// The signature's bytes.
    signature: [u8; 32],
    /// `20150830T123600Z`.
    amz_date: Cow<'a, str>,
    /// The time it was signed.
    pub signed_at: Timestamp,
    /// A presigned URL's validity, in seconds.
    pub expires: Option<i64>,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub token: Option<Cow<'a, str>>,
}

impl Presented<'_> {
    fn part(&self, i: usize) -> &str {
        self.credential.split('/').nth(i).unwrap_or("")
    }

    /// The access key ID.
    pub fn key_id(&self) -> &str {
        self.part(0)
    }

    /// The scope's date, `YYYYMMDD`.
    pub fn date(&self) -> &str {
        self.part(1)
    }

    /// The scope's region.
    pub fn region(&self) -> &str {
        self.part(2)
    }

    /// The scope's service.
    pub fn service(&self) -> &str {
        self.part(3)
    }

    /// Whether it came in a presigned URL's query.
    pub fn presigned(&self) -> bool {
        self.expires.is_some()
    }

    /// `AKID/DATE/REGION/SERVICE`: what a signing key is derived for.
    pub fn key_scope(&self) -> &str {
        self.credential
            .strip_suffix("/aws4_request")
            .unwrap_or(&self.credential)
    }

    /// `DATE/REGION/SERVICE/aws4_request`.
    fn scope(&self) -> &str {
        self.credential
            .split_once('/')
            .map_or("", |(_, scope)| scope)
    }
}

/// What `request` presents as a SigV4 signature: `None` when it presents
/// none (no `Authorization: AWS4-HMAC-SHA256 …` header and no
/// `X-Amz-Signature` in its query), an error when what it presents is
/// malformed.
pub fn presented<'a, H: Headers + ?Sized>(
    request: &HttpRequest<'a, H>,
) -> Result<Option<Presented<'a>>, SigError> {
    if let Some(auth) = request.header("authorization") {
        let Some(rest) = auth.strip_prefix(ALGORITHM) else {
            return Ok(None);
        };
        if !rest.starts_with(' ') {
            return Ok(None);
        }
        return from_header(rest, request).map(Some);
    }
    let (_, query) = request.split();
    if query_param(query, "X-Amz-Signature").is_none()
        && query_param(query, "X-Amz-Algorithm").is_none()
    {
        return Ok(None);
    }
    from_query(query).map(Some)
}

fn from_header<'a, H: Headers + ?Sized>(
    rest: &'a str,
    request: &HttpRequest<'a, H>,
) -> Result<Presented<'a>, SigError> {
    let incomplete = |what: &'static str| SigError::new(Code::IncompleteSignature, what);
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(incomplete(
                    "the Authorization header has a part other than Credential, SignedHeaders and Signature",
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(incomplete("the Authorization header repeats a part"));
        }
    }
    let credential =
        credential.ok_or_else(|| incomplete("the Authorization header has no Credential"))?;
    let signed =
        signed.ok_or_else(|| incomplete("the Authorization header has no SignedHeaders"))?;
    let signature =
        signature.ok_or_else(|| incomplete("the Authorization header has no Signature"))?;
    let amz_date = request.header("x-amz-date").ok_or_else(|| {
        incomplete("the request has no X-Amz-Date header (iamd reads the request time from it)")
    })?;
    let token = request.header("x-amz-security-token").map(Cow::Borrowed);
    build(
        Cow::Borrowed(credential),
        Cow::Borrowed(signed),
        signature,
        Cow::Borrowed(amz_date),
        None,
        token,
        Code::AuthorizationHeaderMalformed,
    )
}

fn from_query(query: &str) -> Result<Presented<'_>, SigError> {
    let bad = |what: &'static str| SigError::new(Code::AuthorizationQueryParametersError, what);
    let get = |name: &'static str| {
        query_param(query, name).ok_or_else(|| {
            SigError::new(
                Code::AuthorizationQueryParametersError,
                format!("the presigned URL has no {name}"),
            )
        })
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(bad("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let expires: i64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| bad("X-Amz-Expires must be a number of seconds"))?;
    if !(1..=MAX_EXPIRES_SECONDS).contains(&expires) {
        return Err(bad(
            "X-Amz-Expires must be between 1 and 604800 seconds (seven days)",
        ));
    }
    let signature = get("X-Amz-Signature")?;
    build(
        get("X-Amz-Credential")?,
        get("X-Amz-SignedHeaders")?,
        &signature,
        get("X-Amz-Date")?,
        Some(expires),
        query_param(query, "X-Amz-Security-Token"),
        Code::AuthorizationQueryParametersError,
    )
}

/// A query name or value decoded as a form does (`+` is a space, as the
/// SDKs send one: botocore puts `+` on the wire and `%20` in the canonical
/// request; a `+` that means itself is sent as `%2B`).
fn query_decode(s: &str) -> Cow<'_, [u8]> {
    if s.contains('+') {
        Cow::Owned(percent_decode_str(&s.replace('+', " ")).collect())
    } else {
        percent_decode_str(s).into()
    }
}

/// The first value of query parameter `name`, decoded.
fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (*query_decode(k) == *name.as_bytes()).then(|| match query_decode(v) {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        })
    })
}

fn build<'a>(
    credential: Cow<'a, str>,
    signed_headers: Cow<'a, str>,
    signature: &str,
    amz_date: Cow<'a, str>,
    expires: Option<i64>,
    token: Option<Cow<'a, str>>,
    malformed: Code,
) -> Result<Presented<'a>, SigError> {
    let bad = |what: &'static str| SigError::new(malformed, what);
    let parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = parts[..] else {
        return Err(bad(
            "the Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    };
    if terminator != "aws4_request" || key_id.is_empty() || region.is_empty() || service.is_empty()
    {
        return Err(bad(
            "the Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    }
    let signed_at = parse_amz_date(&amz_date)
        .ok_or_else(|| bad("X-Amz-Date must be an ISO 8601 basic time in UTC: YYYYMMDDTHHMMSSZ"))?;
    if !amz_date.starts_with(date) || date.len() != 8 {
        return Err(bad("the Credential's date is not the date of X-Amz-Date"));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if names
        .iter()
        .any(|n| n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase()))
        || names.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(bad(
            "SignedHeaders must be lower-case header names, sorted, separated by semicolons",
        ));
    }
    if !names.contains(&"host") {
        return Err(bad("SignedHeaders must include host"));
    }
    let signature = unhex(signature).ok_or_else(|| {
        SigError::new(
            Code::SignatureDoesNotMatch,
            "the Signature is not 64 hexadecimal digits",
        )
    })?;
    Ok(Presented {
        credential,
        signed_headers,
        signature,
        amz_date,
        signed_at,
        expires,
        token,
    })
}

/// `20150830T123600Z` as a time.
fn parse_amz_date(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i16> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let dt = jiff::civil::DateTime::new(
        num(0..4)?,
        i8::try_from(num(4..6)?).ok()?,
        i8::try_from(num(6..8)?).ok()?,
        i8::try_from(num(9..11)?).ok()?,
        i8::try_from(num(11..13)?).ok()?,
        i8::try_from(num(13..15)?).ok()?,
        0,
    )
    .ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// How the path is made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRule {
    /// Dot segments and repeated slashes removed, then encoded again (every
    /// service but S3).
    Normalized,
    /// As sent (S3).
    AsSent,
}

impl PathRule {
    /// S3's rule for `s3`, the normalized one for every other service.
    pub fn for_service(service: &str) -> Self {
        if service == "s3" {
            Self::AsSent
        } else {
            Self::Normalized
        }
    }
}

/// The payload hash that goes into the canonical request: the request's
/// `x-amz-content-sha256` (checked against the body when the body is
/// here), `UNSIGNED-PAYLOAD` for an S3 presigned URL, else the body's
/// SHA-256 (the empty body's when the request has none).
pub fn payload_hash<'a, H: Headers + ?Sized>(
    request: &HttpRequest<'a, H>,
    presented: &Presented<'_>,
) -> Result<Cow<'a, str>, SigError> {
    let body_hash = |b: &[u8]| hex(digest::digest(&digest::SHA256, b).as_ref());
    if let Some(claimed) = request.header("x-amz-content-sha256") {
        if let (Some(body), true) = (request.body, unhex(claimed).is_some())
            && !body_hash(body).eq_ignore_ascii_case(claimed)
        {
            return Err(SigError::new(
                Code::XAmzContentSHA256Mismatch,
                "x-amz-content-sha256 is not the SHA-256 of the body Envoy forwarded",
            ));
        }
        return Ok(Cow::Borrowed(claimed));
    }
    if presented.presigned() && PathRule::for_service(presented.service()) == PathRule::AsSent {
        return Ok(Cow::Borrowed(UNSIGNED_PAYLOAD));
    }
    match request.body {
        Some(body) => Ok(Cow::Owned(body_hash(body))),
        None => {
            let empty = request.header("transfer-encoding").is_none()
                && request
                    .header("content-length")
                    .is_none_or(|n| n.trim() == "0");
            if empty {
                Ok(Cow::Owned(body_hash(b"")))
            } else {
                Err(SigError::new(
                    Code::SignatureDoesNotMatch,
                    "the request has a body, no x-amz-content-sha256 header, and Envoy did not forward the body: set with_request_body in Envoy's ext_authz filter, or have clients send x-amz-content-sha256",
                ))
            }
        }
    }
}

/// Feeds bytes to a digest in pieces of a small buffer.
struct Feed<'c> {
    ctx: &'c mut digest::Context,
}

impl Feed<'_> {
    fn str(&mut self, s: &str) {
        self.ctx.update(s.as_bytes());
    }

    fn encoded(&mut self, bytes: &[u8], set: &'static AsciiSet) {
        for piece in percent_encoding::percent_encode(bytes, set) {
            self.str(piece);
        }
    }
}

/// RFC 3986's dot-segment removal with repeated slashes merged, as the SDKs
/// normalize a path before signing it.
fn normalize(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let clean = !path.contains("//") && path.split('/').all(|s| s != "." && s != "..");
    if clean {
        return Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let lead = if path.starts_with('/') { "/" } else { "" };
    let trail = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    Cow::Owned(format!("{lead}{}{trail}", out.join("/")))
}

/// The SHA-256 (hex) of the canonical request of `request` as `presented`
/// signed it, with `payload` as its payload hash.
pub fn canonical_request_hash<H: Headers + ?Sized>(
    request: &HttpRequest<'_, H>,
    presented: &Presented<'_>,
    payload: &str,
) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut feed = Feed { ctx: &mut ctx };
    let (path, query) = request.split();
    feed.str(request.method);
    feed.str("\n");
    match PathRule::for_service(presented.service()) {
        PathRule::AsSent => feed.str(if path.is_empty() { "/" } else { path }),
        PathRule::Normalized => feed.encoded(normalize(path).as_bytes(), PATH),
    }
    feed.str("\n");
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| {
            let enc =
                |s: &str| percent_encoding::percent_encode(&query_decode(s), QUERY).to_string();
            (enc(k), enc(v))
        })
        .filter(|(k, _)| !(presented.presigned() && k == "X-Amz-Signature"))
        .collect();
    pairs.sort_unstable();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            feed.str("&");
        }
        feed.str(k);
        feed.str("=");
        feed.str(v);
    }
    feed.str("\n");
    for name in presented.signed_headers.split(';') {
        feed.str(name);
        feed.str(":");
        let value = request.header(name).unwrap_or("");
        for (i, word) in value.split_ascii_whitespace().enumerate() {
            if i > 0 {
                feed.str(" ");
            }
            feed.str(word);
        }
        feed.str("\n");
    }
    feed.str("\n");
    feed.str(&presented.signed_headers);
    feed.str("\n");
    feed.str(payload);
    hex(ctx.finish().as_ref())
}

/// The string to sign: the algorithm, the request time, the scope and the
/// canonical request's hash.
pub fn string_to_sign(presented: &Presented<'_>, canonical_hash: &str) -> String {
    let mut s = String::with_capacity(
        ALGORITHM.len() + presented.amz_date.len() + presented.scope().len() + 67,
    );
    for part in [
        ALGORITHM,
        "\n",
        &presented.amz_date,
        "\n",
        presented.scope(),
        "\n",
        canonical_hash,
    ] {
        s.push_str(part);
    }
    s
}

/// The signing key of `secret` for a date, region and service: AWS's chain
/// of HMACs from `AWS4` + the secret.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes());
    for part in [date, region, service, "aws4_request"] {
        key = hmac::Key::new(
            hmac::HMAC_SHA256,
            hmac::sign(&key, part.as_bytes()).as_ref(),
        );
    }
    key
}

/// Whether `presented`'s signature is the one `key` makes over
/// `string_to_sign` (compared in constant time).
pub fn signature_matches(key: &hmac::Key, string_to_sign: &str, presented: &Presented<'_>) -> bool {
    hmac::verify(key, string_to_sign.as_bytes(), &presented.signature).is_ok()
}

/// The signature (hex) `key` makes over `string_to_sign`: what a client
/// computes (for tests and for iamd's own signing tools).
pub fn sign(key: &hmac::Key, string_to_sign: &str) -> String {
    hex(hmac::sign(key, string_to_sign.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests;
