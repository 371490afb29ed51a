//! A local STS, speaking AWS's own protocol: the Query protocol
//! (`Action=…&Version=2011-06-15`, form-encoded, in the body or the query),
//! XML answers and AWS's error codes, every call SigV4-signed. The AWS
//! SDKs and CLI reach it with a custom endpoint URL
//! (`aws sts get-session-token --endpoint-url http://127.0.0.1:8444`).
//!
//! - `GetCallerIdentity`: who signed (the user's ARN, also for a session
//!   of the user).
//! - `GetSessionToken`: temporary credentials for the caller's long-term
//!   key, with MFA when `SerialNumber` and `TokenCode` are given (the
//!   session's `aws:MultiFactorAuthPresent` is then true, and
//!   `aws:MultiFactorAuthAge` counts from the code). A code is accepted
//!   once: a code of the same step or an earlier one is refused afterwards
//!   (on this replica).
//!
//! The token seals the session ([`iamd_credentials::session`]): any replica
//! with the same credentials file verifies it, with no shared state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use iamd_credentials::session::Session;
use iamd_credentials::sigv4::{self, SigError};
use iamd_credentials::{Credentials, Verified};
use jiff::Timestamp;

use crate::credentials::CredentialStore;
use crate::reload::Store;

/// The one API version.
pub const VERSION: &str = "2011-06-15";
/// The XML namespace of the answers.
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The largest request body read.
const MAX_BODY_BYTES: usize = 64 << 10;
/// `GetSessionToken`'s bounds and default, in seconds (AWS's).
const SESSION_SECONDS: (i64, i64, i64) = (900, 43_200, 129_600);

/// An STS error: AWS's code, message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    /// `AccessDenied`, `ValidationError`...
    pub code: &'static str,
    /// For the caller.
    pub message: String,
    /// 400 or 403 (503 without credentials or a bundle).
    pub status: u16,
}

impl StsError {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    fn of_signature(e: &SigError) -> Self {
        Self::new(e.code.as_str(), e.code.http_status(), e.code.message())
    }
}

/// The STS endpoint's state.
#[derive(Debug)]
pub struct Sts {
    credentials: Arc<CredentialStore>,
    store: Arc<Store>,
    /// The last TOTP step accepted for each MFA device.
    used: Mutex<HashMap<String, i64>>,
}

impl Sts {
    /// The STS over `credentials`, naming principals from `store`'s bundle.
    pub fn new(credentials: Arc<CredentialStore>, store: Arc<Store>) -> Self {
        Self {
            credentials,
            store,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one request at `now`: its HTTP status and XML body.
    pub fn answer(
        &self,
        method: &str,
        path: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        now: Timestamp,
    ) -> (u16, String) {
        let id = iamd_credentials::key::request_id();
        match self.act(method, path, headers, body, now) {
            Ok(result) => (200, result.replace("{REQUEST_ID}", &id)),
            Err(e) => {
                tracing::debug!(target: "iamd::sts", code = e.code, "refused: {}", e.message);
                (
                    e.status,
                    format!(
                        "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
                        e.code,
                        escape(&e.message)
                    ),
                )
            }
        }
    }

    fn act(
        &self,
        method: &str,
        path: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<String, StsError> {
        let credentials = self.credentials.credentials().ok_or_else(|| {
            StsError::new(
                "ServiceUnavailable",
                503,
                "no credentials are loaded: try again later",
            )
        })?;
        let request = sigv4::HttpRequest {
            method,
            path,
            headers,
            body: Some(body),
        };
        let caller = credentials
            .verify(&request, now)
            .map_err(|e| StsError::of_signature(&e))?
            .ok_or_else(|| {
                StsError::new(
                    "MissingAuthenticationToken",
                    403,
                    "Request is missing Authentication Token",
                )
            })?;
        let params = params(path, headers, body);
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(v) = param("Version")
            && v != VERSION
        {
            return Err(StsError::new(
                "InvalidAction",
                400,
                format!("Could not find operation for version {v}: iamd's STS is {VERSION}"),
            ));
        }
        match param("Action") {
            Some("GetCallerIdentity") => self.caller_identity(&caller),
            Some("GetSessionToken") => self.session_token(&credentials, &caller, &param, now),
            Some(other) => Err(StsError::new(
                "InvalidAction",
                400,
                format!(
                    "Could not find operation {other} for version {VERSION}: iamd's STS answers GetCallerIdentity and GetSessionToken"
                ),
            )),
            None => Err(StsError::new(
                "MissingAction",
                400,
                "Missing Action: give Action=GetCallerIdentity or Action=GetSessionToken",
            )),
        }
    }

    /// The caller's ARN and account, from the bundle.
    fn arn_of(&self, principal: &str) -> Result<(String, String), StsError> {
        let bundle = self
            .store
            .bundle()
            .ok_or_else(|| StsError::new("ServiceUnavailable", 503, "no bundle is loaded"))?;
        let arn = match bundle.resolve(principal) {
            Some(r) => r.principal.arn().to_owned(),
            None => format!(
                "arn:{}:iam::{}:{principal}",
                bundle.partition(),
                bundle.account()
            ),
        };
        Ok((arn, bundle.account().to_owned()))
    }

    fn caller_identity(&self, caller: &Verified) -> Result<String, StsError> {
        let (arn, account) = self.arn_of(&caller.principal)?;
        Ok(format!(
            "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{{REQUEST_ID}}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
            escape(&arn),
            iamd_credentials::key::unique_id("AIDA", &arn)
        ))
    }

    fn session_token<'p>(
        &self,
        credentials: &Credentials,
        caller: &Verified,
        param: &impl Fn(&str) -> Option<&'p str>,
        now: Timestamp,
    ) -> Result<String, StsError> {
        if caller.session.is_some() {
            return Err(StsError::new(
                "AccessDenied",
                403,
                "Cannot call GetSessionToken with session credentials",
            ));
        }
        let (min, default, max) = SESSION_SECONDS;
        let seconds = match param("DurationSeconds") {
            None => default,
            Some(text) => text.parse().ok().filter(|s| (min..=max).contains(s)).ok_or_else(|| {
                StsError::new(
                    "ValidationError",
                    400,
                    format!(
                        "1 validation error detected: Value '{}' at 'durationSeconds' failed to satisfy constraint: Member must have value between {min} and {max}",
                        escape(&text.chars().take(20).collect::<String>())
                    ),
                )
            })?,
        };
        let mfa_at = match (param("SerialNumber"), param("TokenCode")) {
            (None, None) => None,
            (Some(serial), Some(code)) => {
                Some(self.check_mfa(credentials, caller, serial, code, now)?)
            }
            _ => {
                return Err(StsError::new(
                    "ValidationError",
                    400,
                    "SerialNumber and TokenCode go together: give both or neither",
                ));
            }
        };
        let key = credentials.sealing_key().ok_or_else(|| {
            StsError::new(
                "ServiceUnavailable",
                503,
                "iamd issues no temporary credentials: its credentials have no session key (iamd keys rotate-session-key)",
            )
        })?;
        let no_random =
            |_| StsError::new("InternalFailure", 500, "the random number generator failed");
        let session =
            Session::new(caller.principal.clone(), now, seconds, mfa_at).map_err(no_random)?;
        let token = session.seal(key).map_err(no_random)?;
        Ok(format!(
            "<GetSessionTokenResponse xmlns=\"{NAMESPACE}\"><GetSessionTokenResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials></GetSessionTokenResult><ResponseMetadata><RequestId>{{REQUEST_ID}}</RequestId></ResponseMetadata></GetSessionTokenResponse>",
            session.access_key_id,
            escape(session.secret.expose()),
            session.expires
        ))
    }

    /// The time of a valid, unused MFA code of the caller's own active
    /// device.
    fn check_mfa(
        &self,
        credentials: &Credentials,
        caller: &Verified,
        serial: &str,
        code: &str,
        now: Timestamp,
    ) -> Result<Timestamp, StsError> {
        let user = caller.principal.strip_prefix("user/");
        let device = credentials
            .device(serial)
            .filter(|d| d.active && d.user.as_deref() == user)
            .ok_or_else(|| {
                StsError::new(
                    "AccessDenied",
                    403,
                    "MultiFactorAuthentication failed, unable to validate MFA code: the serial number is not an active device of the caller",
                )
            })?;
        let invalid = || {
            StsError::new(
                "AccessDenied",
                403,
                "MultiFactorAuthentication failed with invalid MFA one time pass code.",
            )
        };
        let step = device.check(code, now).ok_or_else(invalid)?;
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if used.get(serial).is_some_and(|&last| step <= last) {
            return Err(invalid());
        }
        used.insert(serial.to_owned(), step);
        Ok(now)
    }
}

/// The request's parameters: the query's, then the form body's.
fn params(path: &str, headers: &HashMap<String, String>, body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let pairs = |text: &str| -> Vec<(String, String)> {
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    };
    let mut out = pairs(path.split_once('?').map_or("", |(_, q)| q));
    let form = headers
        .get("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        out.extend(pairs(&String::from_utf8_lossy(body)));
    }
    out
}

/// `text` with XML's special characters escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

impl crate::http::Handler for Sts {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send {
        self.respond(req)
    }
}

impl Sts {
    /// Answers one HTTP request: its body read whole, then [`Sts::answer`].
    async fn respond(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        {
            let (parts, body) = req.into_parts();
            let mut headers: HashMap<String, String> = HashMap::new();
            for (name, value) in &parts.headers {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                headers
                    .entry(name.as_str().to_owned())
                    .and_modify(|v| {
                        v.push(',');
                        v.push_str(&value);
                    })
                    .or_insert(value);
            }
            if let Some(authority) = parts.uri.authority() {
                headers
                    .entry("host".into())
                    .or_insert_with(|| authority.to_string());
            }
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let (status, xml) = match crate::body::whole(body, MAX_BODY_BYTES).await {
                Ok(body) => self.answer(
                    parts.method.as_str(),
                    &path,
                    &headers,
                    &body,
                    Timestamp::now(),
                ),
                Err(_) => (
                    413,
                    format!(
                        "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>RequestEntityTooLarge</Code><Message>the body is larger than {MAX_BODY_BYTES} bytes, or was cut</Message></Error></ErrorResponse>"
                    ),
                ),
            };
            let mut r = Response::new(Full::new(Bytes::from(xml)));
            *r.status_mut() =
                hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/xml"),
            );
            r
        }
    }
}

/// Serves the STS on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<crate::tls::Tls>>,
    sts: Arc<Sts>,
    limits: crate::limits::RequestLimits,
    drain: std::time::Duration,
    metrics: Arc<crate::admin::Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let how = crate::http::Listening {
        name: "sts",
        connections: limits.connections,
        drain,
        tls,
        metrics,
    };
    crate::http::serve(listener, how, sts, shutdown).await;
}
