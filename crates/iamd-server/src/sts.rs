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
//! - `AssumeRole`: a session of a role whose trust policy (and the caller's
//!   own policies, as the engine decides `sts:AssumeRole` on the role)
//!   allows the caller, with `sts:ExternalId`, `sts:RoleSessionName` and
//!   the caller's MFA (its session's, or a code given with the call) in
//!   the context; `DurationSeconds` up to the role's `maxSessionDuration`
//!   (an hour for a role chained from a role session). An inline session
//!   policy (`Policy`) travels in the token and limits every request of
//!   the session; managed session policies and session tags are refused,
//!   not ignored: iamd does not apply them yet, and ignoring them would
//!   grant more than the caller asked for.
//!
//! - `AssumeRoleWithWebIdentity`: the same for a workload's token (a
//!   SPIFFE JWT-SVID, checked against a configured issuer's JWKS), unsigned
//!   as in AWS, the token's SPIFFE ID the principal the trust policy
//!   decides on.
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
use crate::decide::{Decider, Question, Refusal, Value};

/// The one API version.
pub const VERSION: &str = "2011-06-15";
/// The XML namespace of the answers.
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The largest request body read.
const MAX_BODY_BYTES: usize = 64 << 10;
/// The longest inline session policy, in characters (AWS's).
const SESSION_POLICY_CHARS: usize = 2048;
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

/// Who asks for a role session.
#[derive(Clone, Copy)]
enum Caller<'c> {
    /// A SigV4-signed caller (`AssumeRole`).
    Signed(&'c Verified),
    /// The holder of a web identity token (`AssumeRoleWithWebIdentity`).
    Web(&'c iamd_credentials::webid::WebIdentity),
}

/// The STS endpoint's state.
#[derive(Debug)]
pub struct Sts {
    credentials: Arc<CredentialStore>,
    decider: Decider,
    issuers: Vec<crate::config::FileWebIdentity>,
    /// Requests answered at once (the gRPC listener's cap); more wait.
    permits: tokio::sync::Semaphore,
    /// The last TOTP step accepted for each MFA device.
    used: Mutex<HashMap<String, i64>>,
}

impl Sts {
    /// The STS over `credentials`, naming principals from the decider's
    /// bundle and deciding `AssumeRole` with it.
    pub fn new(credentials: Arc<CredentialStore>, decider: Decider) -> Self {
        let permits = tokio::sync::Semaphore::new(decider.limits().max_concurrent.max(1));
        Self {
            credentials,
            decider,
            issuers: Vec::new(),
            permits,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// Takes web identity tokens of `issuers` (`AssumeRoleWithWebIdentity`).
    pub fn with_web_identity(mut self, issuers: Vec<crate::config::FileWebIdentity>) -> Self {
        self.issuers = issuers;
        self
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
        let mut action = "unknown";
        let result = self.act(method, path, headers, body, now, &mut action);
        let metrics = self.decider.metrics();
        metrics.sts(action, result.as_ref().map_or_else(|e| e.code, |_| "OK"));
        match result {
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
        action: &mut &'static str,
    ) -> Result<String, StsError> {
        let credentials = self.credentials.credentials().ok_or_else(|| {
            StsError::new(
                "ServiceUnavailable",
                503,
                "no credentials are loaded: try again later",
            )
        })?;
        let params = params(path, headers, body);
        // The one unsigned call: the token is the credential.
        if params
            .iter()
            .any(|(k, v)| k == "Action" && v == "AssumeRoleWithWebIdentity")
        {
            *action = "AssumeRoleWithWebIdentity";
            return self.web_identity(&credentials, &params, now);
        }
        let request = sigv4::HttpRequest {
            method,
            path,
            headers,
            body: Some(body),
        };
        let verified = credentials.verify(&request, now);
        let metrics = self.decider.metrics();
        match &verified {
            Ok(Some(_)) => metrics.signature("valid"),
            Ok(None) => {}
            Err(e) => metrics.signature(e.code.as_str()),
        }
        let caller = verified
            .map_err(|e| StsError::of_signature(&e))?
            .ok_or_else(|| {
                StsError::new(
                    "MissingAuthenticationToken",
                    403,
                    "Request is missing Authentication Token",
                )
            })?;
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
        *action = match param("Action") {
            Some("GetCallerIdentity") => "GetCallerIdentity",
            Some("GetSessionToken") => "GetSessionToken",
            Some("AssumeRole") => "AssumeRole",
            _ => "unknown",
        };
        match param("Action") {
            Some("GetCallerIdentity") => self.caller_identity(&caller),
            Some("GetSessionToken") => self.session_token(&credentials, &caller, &param, now),
            Some("AssumeRole") => {
                self.assume_role(&credentials, Caller::Signed(&caller), &params, now)
            }
            Some(other) => Err(StsError::new(
                "InvalidAction",
                400,
                format!(
                    "Could not find operation {other} for version {VERSION}: iamd's STS answers GetCallerIdentity, GetSessionToken and AssumeRole"
                ),
            )),
            None => Err(StsError::new(
                "MissingAction",
                400,
                "Missing Action: give Action=GetCallerIdentity, GetSessionToken or AssumeRole",
            )),
        }
    }

    /// The caller's ARN and account, from the bundle.
    fn arn_of(&self, principal: &str) -> Result<(String, String), StsError> {
        let bundle = self
            .decider
            .store()
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
        let user_id = match session_of(&arn) {
            Some((role, session)) => format!("{}:{session}", role_id(&account, role)),
            None => iamd_credentials::key::unique_id("AIDA", &arn),
        };
        Ok(format!(
            "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{{REQUEST_ID}}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
            escape(&arn),
            escape(&user_id)
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
        let issued = Issued {
            principal: caller.principal.clone(),
            seconds,
            mfa_at,
            policy: None,
            tags: Vec::new(),
            source_identity: None,
        };
        let (session, token) = issue(credentials, issued, now)?;
        Ok(format!(
            "<GetSessionTokenResponse xmlns=\"{NAMESPACE}\"><GetSessionTokenResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials></GetSessionTokenResult><ResponseMetadata><RequestId>{{REQUEST_ID}}</RequestId></ResponseMetadata></GetSessionTokenResponse>",
            session.access_key_id,
            escape(session.secret.expose()),
            session.expires
        ))
    }

    fn assume_role(
        &self,
        credentials: &Credentials,
        who: Caller<'_>,
        params: &[(String, String)],
        now: Timestamp,
    ) -> Result<String, StsError> {
        let (caller, web) = match who {
            Caller::Signed(v) => (Some(v), None),
            Caller::Web(w) => (None, Some(w)),
        };
        let action = if web.is_some() {
            "sts:AssumeRoleWithWebIdentity"
        } else {
            "sts:AssumeRole"
        };
        // A web identity is its SPIFFE ID, or the OIDC provider's ARN and
        // the token's subject (`arn:aws:iam::ACCOUNT:oidc-provider/HOST#SUB`,
        // HOST the issuer's URL without its scheme, as AWS names
        // providers), whose trust policy conditions read `HOST:sub` and
        // `HOST:aud`.
        let bundle_now = self.decider.store().bundle();
        let (web_principal, audience_key) = match web {
            Some(w) if !w.subject.starts_with("spiffe://") => {
                let bundle = bundle_now.as_ref().ok_or_else(|| {
                    StsError::new("ServiceUnavailable", 503, "no bundle is loaded")
                })?;
                let host = w
                    .issuer
                    .split_once("://")
                    .map_or(w.issuer.as_str(), |(_, h)| h)
                    .trim_end_matches('/');
                (
                    Some(format!(
                        "arn:{}:iam::{}:oidc-provider/{host}#{}",
                        bundle.partition(),
                        bundle.account(),
                        w.subject
                    )),
                    Some(format!("{host}:aud")),
                )
            }
            _ => (None, None),
        };
        let principal = match (caller, web) {
            (Some(c), _) => c.principal.as_str(),
            (None, Some(w)) => web_principal.as_deref().unwrap_or(w.subject.as_str()),
            (None, None) => "",
        };
        let caller_session = caller.and_then(|c| c.session.as_ref());
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let invalid = |message: String| StsError::new("ValidationError", 400, message);
        for (name, _) in params {
            let unsupported = name.starts_with("PolicyArns.")
                || (name.starts_with("Tags.") && web.is_some())
                || name.starts_with("TransitiveTagKeys.")
                || (name == "SourceIdentity" && web.is_some())
                || name.starts_with("ProvidedContexts.");
            if unsupported {
                return Err(invalid(format!(
                    "{name}: iamd does not apply managed session policies, transitive tags, or a web identity's tags or source identity yet; leave it out (an inline `Policy`, AssumeRole's `Tags` and `SourceIdentity` are applied)"
                )));
            }
        }
        // An inline session policy: at most 2,048 characters, as in AWS,
        // and one that compiles (the session's requests are decided with
        // it as a limit, like a boundary).
        let policy = param("Policy");
        if let Some(text) = policy {
            if text.chars().count() > SESSION_POLICY_CHARS {
                return Err(StsError::new(
                    "PackedPolicyTooLarge",
                    400,
                    format!("the session policy is longer than {SESSION_POLICY_CHARS} characters"),
                ));
            }
            self.credentials.session_policy(text).map_err(|e| {
                StsError::new(
                    "MalformedPolicyDocument",
                    400,
                    iamd_policy::message::shorten(&e).into_owned(),
                )
            })?;
        }
        let tags = session_tags(params)?;
        // A source identity, once set, stays with the sessions chained
        // from it, as in AWS.
        let inherited = caller_session.and_then(|s| s.source_identity.as_deref());
        let source_identity = match (param("SourceIdentity"), inherited) {
            (Some(given), Some(kept)) if given != kept => {
                return Err(invalid(format!(
                    "the session's source identity is {kept}: a chained session keeps it"
                )));
            }
            (Some(given), _) => {
                let ok = (2..=64).contains(&given.len())
                    && given
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
                if !ok {
                    return Err(invalid(
                        "SourceIdentity must be 2 to 64 letters, digits and +=,.@_-".to_owned(),
                    ));
                }
                Some(given)
            }
            (None, kept) => kept,
        };
        let role_arn = param("RoleArn")
            .ok_or_else(|| StsError::new("MissingParameter", 400, "RoleArn is missing"))?;
        let name = param("RoleSessionName")
            .ok_or_else(|| StsError::new("MissingParameter", 400, "RoleSessionName is missing"))?;
        if !(2..=64).contains(&name.len())
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            return Err(invalid(format!(
                "1 validation error detected: Value '{}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64",
                escape(&name.chars().take(64).collect::<String>())
            )));
        }
        let external = param("ExternalId").filter(|_| web.is_none());
        if external.is_some_and(|e| !(2..=1224).contains(&e.len())) {
            return Err(invalid(
                "ExternalId must be 2 to 1224 characters".to_owned(),
            ));
        }
        // MFA: a code given with the call, else the caller's session's.
        let mfa_at = match (param("SerialNumber"), param("TokenCode"), caller) {
            (Some(serial), Some(code), Some(caller)) => {
                Some(self.check_mfa(credentials, caller, serial, code, now)?)
            }
            (None, None, _) => caller_session.and_then(|s| s.mfa_at),
            _ => {
                return Err(invalid(
                    "SerialNumber and TokenCode go together: give both or neither".to_owned(),
                ));
            }
        };
        let message = match caller {
            Some(c) => format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                self.arn_of(&c.principal)?.0
            ),
            None => "Not authorized to perform sts:AssumeRoleWithWebIdentity".to_owned(),
        };
        let denied = || StsError::new("AccessDenied", 403, message.clone());
        let bundle = self
            .decider
            .store()
            .bundle()
            .ok_or_else(|| StsError::new("ServiceUnavailable", 503, "no bundle is loaded"))?;
        let role = bundle
            .resolve(role_arn)
            .filter(|r| r.principal.arn().contains(":role/"))
            .ok_or_else(denied)?;
        let role_name = role_arn.rsplit('/').next().unwrap_or_default().to_owned();
        let chained = caller_session.is_some();
        let max = if chained {
            3600
        } else {
            i64::from(role.entity.max_session().unwrap_or(3600))
        };
        let seconds = match param("DurationSeconds") {
            None => 3600.min(max),
            Some(text) => text.parse::<i64>().ok().filter(|s| (900..=max).contains(s)).ok_or_else(|| {
                invalid(format!(
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role, or is under 900: give 900 to {max}{}",
                    if chained { " (a role session chained from another session lasts at most an hour)" } else { "" }
                ))
            })?,
        };
        drop(role);
        // The engine decides: the caller's own policies and the role's
        // trust policy, with what AWS puts in the context of AssumeRole.
        let mfa_present = mfa_at
            .map(|_| "true".to_owned())
            .or_else(|| caller_session.map(|_| "false".to_owned()));
        let mfa_age = mfa_at.map(|at| (now.as_second() - at.as_second()).max(0).to_string());
        let mut context: Vec<(&str, Value<'_>)> =
            vec![("sts:RoleSessionName", Value::Single(name))];
        if let Some(e) = external {
            context.push(("sts:ExternalId", Value::Single(e)));
        }
        if let Some(m) = &mfa_present {
            context.push(("aws:MultiFactorAuthPresent", Value::Single(m)));
        }
        if let Some(a) = &mfa_age {
            context.push(("aws:MultiFactorAuthAge", Value::Single(a)));
        }
        // Session tags: `aws:RequestTag/KEY` and `aws:TagKeys` in the
        // request's context, and the trust policy must also allow
        // `sts:TagSession`, as in AWS.
        let tag_names: Vec<String> = tags
            .iter()
            .map(|(k, _)| format!("aws:RequestTag/{k}"))
            .collect();
        let tag_keys: Vec<String> = tags.iter().map(|(k, _)| k.clone()).collect();
        for ((_, v), name) in tags.iter().zip(&tag_names) {
            context.push((name, Value::Single(v)));
        }
        if !tags.is_empty() {
            context.push(("aws:TagKeys", Value::Multi(&tag_keys)));
        }
        if let Some(si) = source_identity {
            context.push(("sts:SourceIdentity", Value::Single(si)));
        }
        if let (Some(key), Some(w)) = (&audience_key, web) {
            context.push((key, Value::Single(&w.audience)));
        }
        let question = Question {
            principal,
            action,
            resource: role_arn,
            resource_account: None,
            context,
            explain: false,
            session: None,
            session_tags: &[],
        };
        let mut asks = vec![question.clone()];
        if !tags.is_empty() {
            asks.push(Question {
                action: "sts:TagSession",
                ..question.clone()
            });
        }
        // Setting a source identity needs sts:SetSourceIdentity (not
        // keeping an inherited one).
        if param("SourceIdentity").is_some() && inherited.is_none() {
            asks.push(Question {
                action: "sts:SetSourceIdentity",
                ..question
            });
        }
        for ask in &asks {
            match self.decider.decide(ask, now, None, |d| d.outcome) {
                Ok(iamd_policy::eval::Outcome::Allow) => {}
                Ok(_) | Err(Refusal::Invalid(_) | Refusal::BatchTooLarge { .. }) => {
                    return Err(denied());
                }
                Err(Refusal::NoBundle) => {
                    return Err(StsError::new(
                        "ServiceUnavailable",
                        503,
                        "no bundle is loaded",
                    ));
                }
            }
        }
        let account = bundle.account().to_owned();
        let session_arn = format!(
            "arn:{}:sts::{account}:assumed-role/{role_name}/{name}",
            bundle.partition()
        );
        let issued = Issued {
            principal: session_arn.clone(),
            seconds,
            mfa_at,
            policy,
            tags,
            source_identity: source_identity.map(str::to_owned),
        };
        let (session, token) = issue(credentials, issued, now)?;
        let (element, web_parts) = match web {
            None => ("AssumeRole", String::new()),
            Some(w) => (
                "AssumeRoleWithWebIdentity",
                format!(
                    "<SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken><Audience>{}</Audience><Provider>{}</Provider>",
                    escape(&w.subject),
                    escape(&w.audience),
                    escape(&w.issuer)
                ),
            ),
        };
        Ok(format!(
            "<{element}Response xmlns=\"{NAMESPACE}\"><{element}Result><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials>{web_parts}<AssumedRoleUser><AssumedRoleId>{}:{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><PackedPolicySize>0</PackedPolicySize></{element}Result><ResponseMetadata><RequestId>{{REQUEST_ID}}</RequestId></ResponseMetadata></{element}Response>",
            session.access_key_id,
            escape(session.secret.expose()),
            session.expires,
            role_id(&account, &role_name),
            escape(name),
            escape(&session_arn)
        ))
    }

    /// A role session for the holder of a web identity token: the token
    /// checked against its issuer's keys, then `AssumeRole`'s way with the
    /// token's subject (a SPIFFE ID) as the principal, unsigned, as in AWS.
    fn web_identity(
        &self,
        credentials: &Credentials,
        params: &[(String, String)],
        now: Timestamp,
    ) -> Result<String, StsError> {
        let token = params
            .iter()
            .find(|(k, _)| k == "WebIdentityToken")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| StsError::new("MissingParameter", 400, "WebIdentityToken is missing"))?;
        let bad = |m: String| StsError::new("InvalidIdentityToken", 400, m);
        // The issuer the token names (read before its signature is checked,
        // only to choose the keys that check it).
        let claimed = iamd_credentials::webid::claimed_issuer(token).unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == claimed)
            .ok_or_else(|| {
                bad("the token's issuer is not one iamd trusts (sts.webIdentity)".to_owned())
            })?;
        let jwks = std::fs::read_to_string(&issuer.jwks_file).map_err(|e| {
            tracing::warn!(target: "iamd::sts", "cannot read {}: {e}", issuer.jwks_file.display());
            StsError::new(
                "IDPCommunicationError",
                400,
                "the issuer's keys cannot be read",
            )
        })?;
        let trusted = iamd_credentials::webid::Issuer {
            issuer: issuer.issuer.clone(),
            audiences: issuer.audiences.clone(),
        };
        let identity =
            iamd_credentials::webid::check(token, &trusted, &jwks, now).map_err(|e| {
                if e.expired {
                    StsError::new("ExpiredTokenException", 400, "Token is expired")
                } else {
                    bad(e.reason)
                }
            })?;
        self.assume_role(credentials, Caller::Web(&identity), params, now)
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

/// A role session's role and session names, from its ARN.
fn session_of(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.split_once(":assumed-role/")?.1;
    rest.split_once('/')
}

/// A role's AWS-style unique ID (`AROA…`), stable for the role.
fn role_id(account: &str, role: &str) -> String {
    iamd_credentials::key::unique_id("AROA", &format!("{account}:role/{role}"))
}

/// What a new session is.
struct Issued<'p> {
    principal: String,
    seconds: i64,
    mfa_at: Option<Timestamp>,
    policy: Option<&'p str>,
    tags: Vec<(String, String)>,
    source_identity: Option<String>,
}

/// A new session, valid from `now`, and its token, sealed with the
/// credentials' current session key.
fn issue(
    credentials: &Credentials,
    what: Issued<'_>,
    now: Timestamp,
) -> Result<(Session, String), StsError> {
    let Issued {
        principal,
        seconds,
        mfa_at,
        policy,
        tags,
        source_identity,
    } = what;
    let key = credentials.sealing_key().ok_or_else(|| {
        StsError::new(
            "ServiceUnavailable",
            503,
            "iamd issues no temporary credentials: its credentials have no session key (iamd keys rotate-session-key)",
        )
    })?;
    let no_random = |_| StsError::new("InternalFailure", 500, "the random number generator failed");
    let mut session = Session::new(principal, now, seconds, mfa_at).map_err(no_random)?;
    session.policy = policy.map(str::to_owned);
    session.tags = tags;
    session.source_identity = source_identity;
    let token = session.seal(key).map_err(no_random)?;
    Ok((session, token))
}

/// `Tags.member.N.Key` / `Tags.member.N.Value`: at most 50, keys of 1 to
/// 128 characters, values of at most 256, no key twice (case aside), as in
/// AWS.
fn session_tags(params: &[(String, String)]) -> Result<Vec<(String, String)>, StsError> {
    use std::collections::BTreeMap;
    let invalid = |m: String| StsError::new("ValidationError", 400, m);
    let form = |name: &str| {
        invalid(format!(
            "{name}: write Tags.member.N.Key and Tags.member.N.Value"
        ))
    };
    let mut tags: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for (name, value) in params {
        let Some(rest) = name.strip_prefix("Tags.member.") else {
            continue;
        };
        let (n, field) = rest.split_once('.').ok_or_else(|| form(name))?;
        let n: u32 = n.parse().map_err(|_| form(name))?;
        let slot = tags.entry(n).or_default();
        match field {
            "Key" => slot.0 = Some(value.clone()),
            "Value" => slot.1 = Some(value.clone()),
            _ => return Err(form(name)),
        }
    }
    if tags.len() > 50 {
        return Err(invalid("at most 50 session tags".to_owned()));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(tags.len());
    for (n, (key, value)) in tags {
        let Some(key) = key else {
            return Err(invalid(format!("Tags.member.{n} has no Key")));
        };
        let value = value.unwrap_or_default();
        if !(1..=128).contains(&key.chars().count()) || value.chars().count() > 256 {
            return Err(invalid(format!(
                "Tags.member.{n}: a key is 1 to 128 characters, a value at most 256"
            )));
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
            return Err(invalid(format!("the session tag {key} is given twice")));
        }
        out.push((key, value));
    }
    Ok(out)
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
        // The request cap and timeout of every front door: the wait for a
        // permit and the body's read count.
        let timeout = self.decider.limits().request_timeout;
        let answered = tokio::time::timeout(timeout, async {
            let _permit = self.permits.acquire().await;
            self.clone().answer_http(req).await
        })
        .await;
        answered.unwrap_or_else(|_| {
            xml_response(
                503,
                format!(
                    "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Receiver</Type><Code>RequestTimeout</Code><Message>the request took longer than {} ms</Message></Error></ErrorResponse>",
                    timeout.as_millis()
                ),
            )
        })
    }

    async fn answer_http(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
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
            xml_response(status, xml)
        }
    }
}

/// An HTTP answer with an XML body.
fn xml_response(status: u16, xml: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(xml)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    r
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(loaded: bool) -> Sts {
        let dir = tempfile::tempdir().unwrap();
        let (mut loader, credentials) = crate::credentials::CredentialLoader::new(dir.path());
        if loaded {
            loader.load().unwrap();
        }
        let (store, _) = crate::reload::Store::new();
        let metrics = crate::admin::Metrics::new(store.clone());
        let decider = Decider::new(store, crate::limits::RequestLimits::default(), metrics);
        Sts::new(credentials, decider)
    }

    #[test]
    fn unsigned_calls_and_missing_credentials_get_aws_s_errors() {
        let headers: HashMap<String, String> = [
            ("host".to_owned(), "127.0.0.1:8444".to_owned()),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ]
        .into();
        let body = b"Action=GetCallerIdentity&Version=2011-06-15";
        let (status, xml) = sts(true).answer("POST", "/", &headers, body, Timestamp::now());
        assert_eq!(status, 403);
        assert!(
            xml.contains("<Code>MissingAuthenticationToken</Code>"),
            "{xml}"
        );
        assert!(xml.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"), "{xml}");
        let unloaded = sts(false);
        let (status, xml) = unloaded.answer("POST", "/", &headers, body, Timestamp::now());
        assert_eq!(status, 503);
        assert!(xml.contains("<Code>ServiceUnavailable</Code>"), "{xml}");
        let text = unloaded.decider.metrics().render();
        assert!(
            text.contains(
                r#"iamd_sts_requests_total{action="unknown",code="ServiceUnavailable"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn parameters_come_from_the_query_and_the_form() {
        let form: HashMap<String, String> = [(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )]
        .into();
        let p = params(
            "/?Action=AssumeRole",
            &form,
            b"RoleSessionName=a+b&ExternalId=x%2By",
        );
        assert_eq!(
            p,
            [
                ("Action".to_owned(), "AssumeRole".to_owned()),
                ("RoleSessionName".to_owned(), "a b".to_owned()),
                ("ExternalId".to_owned(), "x+y".to_owned()),
            ]
        );
        let tags = |list: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = list
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            session_tags(&owned).map_err(|e| e.message)
        };
        assert_eq!(
            tags(&[
                ("Tags.member.2.Key", "b"),
                ("Tags.member.1.Key", "a"),
                ("Tags.member.1.Value", "1")
            ]),
            Ok(vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new())
            ])
        );
        assert!(
            tags(&[("Tags.member.1.Value", "1")])
                .unwrap_err()
                .contains("has no Key")
        );
        assert!(
            tags(&[("Tags.member.1.Key", "a"), ("Tags.member.2.Key", "A")])
                .unwrap_err()
                .contains("given twice")
        );
        assert!(
            tags(&[("Tags.member.x.Key", "a")])
                .unwrap_err()
                .contains("Tags.member.N.Key")
        );
        // A body that is not a form is not read as parameters.
        assert_eq!(params("/", &HashMap::new(), b"Action=GetSessionToken"), []);
        assert_eq!(
            session_of("arn:aws:sts::123456789012:assumed-role/auditor/s1"),
            Some(("auditor", "s1"))
        );
        assert_eq!(session_of("arn:aws:iam::123456789012:user/alice"), None);
    }
}
