//! The `envoy:` section of the configuration: from a `CheckRequest` to an
//! iamd request.
//!
//! ```yaml
//! envoy:
//!   principal:                       # tried in order; the first that gives one wins
//!     - jwt: {claim: sub, template: "user/{value}"}   # jwt_authn's payload_in_metadata
//!     - peer: {spiffe: "spiffe://acme.example/ns/{ns}/sa/{sa}", role: "arn:aws:iam::123456789012:role/{sa}"}
//!     - header: {name: x-service-identity, template: "role/{value}"}
//!   routes:                          # the first that matches; none: deny
//!     - {method: GET, path: "/docs/{id}", action: "docs:GetDocument",
//!        resource: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
//!   context:
//!     headers: {x-tenant: acme:Tenant}
//!     query: {version: acme:Version}
//!     claims: {groups: acme:Groups}
//!   responseHeaders: {principal: x-iamd-principal, revision: x-iamd-revision}
//! ```

use std::collections::BTreeMap;

use envoy_types::ext_authz::v3::pb::{Address, CheckRequest};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use serde::Deserialize;

use crate::decide::OwnedQuestion;
use iamd_credentials::Credentials;
use iamd_credentials::sigv4::{self, SigError};
use iamd_policy::context::ContextValue;

/// The section as written.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileMapping {
    /// Principal sources, in order.
    #[serde(default)]
    pub principal: Vec<FileSource>,
    /// Route templates, in order.
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    /// Context keys from the request.
    #[serde(default)]
    pub context: FileContext,
    /// Names of the headers added on allow.
    #[serde(default)]
    pub response_headers: FileResponseHeaders,
    /// The `jwt_authn` filter's name in the metadata (default
    /// `envoy.filters.http.jwt_authn`).
    #[serde(default)]
    pub jwt_filter: Option<String>,
    /// Its `payload_in_metadata` key (default `jwt_payload`).
    #[serde(default)]
    pub jwt_payload_key: Option<String>,
    /// Whether `;` may appear in a path segment (matrix or path
    /// parameters, which some upstreams strip before they route). Off by
    /// default: a path with `;` is refused.
    #[serde(default)]
    pub path_parameters: bool,
}

/// One principal source.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum FileSource {
    /// A claim of the verified JWT.
    Jwt {
        /// The claim (`sub`, `email`...).
        claim: String,
        /// `user/{value}` by default.
        #[serde(default)]
        template: Option<String>,
    },
    /// The mTLS peer's SPIFFE ID (Envoy's `source.principal`), acting as a
    /// role when the role's trust policy allows the SPIFFE ID
    /// `sts:AssumeRoleWithWebIdentity`.
    Peer {
        /// `spiffe://acme.example/ns/{ns}/sa/{sa}`.
        spiffe: String,
        /// The role's ARN, path included; may use the SPIFFE template's
        /// names: `arn:aws:iam::123456789012:role/{sa}`.
        role: String,
    },
    /// An AWS Signature Version 4 (the `Authorization` header or a
    /// presigned URL), verified against the credentials source: the key's
    /// user (`user/NAME`). A signed request whose signature fails is
    /// refused with AWS's error, never passed to the next source.
    Sigv4 {
        /// The regions a signature's scope may name (any, when empty).
        #[serde(default)]
        regions: Vec<String>,
        /// The services a signature's scope may name (any, when empty).
        #[serde(default)]
        services: Vec<String>,
    },
    /// A header that a trusted proxy sets (Envoy must strip client copies).
    Header {
        /// The header, lowercase.
        name: String,
        /// `{value}` by default (the header holds an ARN or `user/NAME`).
        #[serde(default)]
        template: Option<String>,
    },
}

/// One route template.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileRoute {
    /// `GET`, `POST`... or `*` (the default).
    #[serde(default)]
    pub method: Option<String>,
    /// `/docs/{id}`; `{name}` is one path segment, `{name*}` the rest of the
    /// path.
    pub path: String,
    /// `service:Action`, may use `{name}`.
    pub action: String,
    /// The resource ARN, may use `{name}`.
    pub resource: String,
}

/// `context:`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileContext {
    /// Header name to context key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameter to context key.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JWT claim to context key.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

/// `responseHeaders:`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileResponseHeaders {
    /// The decided principal (default `x-iamd-principal`).
    #[serde(default)]
    pub principal: Option<String>,
    /// The bundle revision (default `x-iamd-revision`).
    #[serde(default)]
    pub revision: Option<String>,
}

/// The mapping could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct MappingError(pub Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One(String),
    Rest(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    method: Option<String>,
    segments: Vec<Segment>,
    action: String,
    resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Jwt {
        claim: String,
        template: String,
    },
    Peer {
        spiffe: Vec<Segment>,
        role: String,
    },
    Header {
        name: String,
        template: String,
    },
    Sigv4 {
        regions: Vec<String>,
        services: Vec<String>,
    },
}

/// A compiled mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    sources: Vec<Source>,
    routes: Vec<Route>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    claims: Vec<(String, String)>,
    jwt_filter: String,
    jwt_payload_key: String,
    /// The header that carries the decided principal upstream.
    pub principal_header: String,
    /// The header that carries the bundle revision upstream.
    pub revision_header: String,
    path_parameters: bool,
}

/// Why a request path was refused before any route was tried: iamd decides
/// on exactly the path the upstream receives, so a path that an upstream
/// could read as another one (a dot segment, an encoded `/`) is never
/// decided, whatever Envoy's own normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// A `.` or `..` segment, raw or percent-encoded.
    DotSegment,
    /// An encoded `/` or `\` (`%2F`, `%5C`), or a raw `\`.
    EncodedSeparator,
    /// A NUL or another control character, raw or encoded.
    ControlCharacter,
    /// A `;` (path parameters), unless `pathParameters: true`.
    PathParameter,
    /// An empty segment inside the path (`//`).
    EmptySegment,
    /// A percent-encoding that is not UTF-8, or a stray `%`.
    BadEncoding,
}

impl BadPath {
    /// What the answer says.
    pub fn reason(self) -> &'static str {
        match self {
            Self::DotSegment => "the path has a `.` or `..` segment",
            Self::EncodedSeparator => "the path has an encoded `/` or `\\`, or a `\\`",
            Self::ControlCharacter => "the path has a control character",
            Self::PathParameter => "the path has a `;` (path parameters are off)",
            Self::EmptySegment => "the path has an empty segment (`//`)",
            Self::BadEncoding => "the path's percent-encoding is not UTF-8",
        }
    }
}

/// Splits a request path (without its leading `/` and query) into its
/// decoded segments, refusing any path that could name something else
/// upstream. A trailing `/` leaves an empty last segment.
fn split_path(text: &str, path_parameters: bool) -> Result<Vec<String>, BadPath> {
    let raw: Vec<&str> = text.split('/').collect();
    let last = raw.len().saturating_sub(1);
    let mut out = Vec::with_capacity(raw.len());
    for (i, seg) in raw.iter().enumerate() {
        if seg.is_empty() && i != last && raw.len() > 1 {
            return Err(BadPath::EmptySegment);
        }
        if seg.contains('\\') {
            return Err(BadPath::EncodedSeparator);
        }
        if !path_parameters && seg.contains(';') {
            return Err(BadPath::PathParameter);
        }
        let bytes = seg.as_bytes();
        for (j, &b) in bytes.iter().enumerate() {
            if b == b'%' {
                let hex = |k: usize| bytes.get(j + k).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(1) && hex(2)) {
                    return Err(BadPath::BadEncoding);
                }
            }
        }
        let decoded = percent_encoding::percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| BadPath::BadEncoding)?;
        if decoded.contains(['/', '\\']) {
            return Err(BadPath::EncodedSeparator);
        }
        if decoded.chars().any(char::is_control) {
            return Err(BadPath::ControlCharacter);
        }
        if !path_parameters && decoded.contains(';') {
            return Err(BadPath::PathParameter);
        }
        // With path parameters on, `..;v=1` is `..` to a server that
        // strips them.
        let name = decoded.split(';').next().unwrap_or_default();
        if name == "." || name == ".." {
            return Err(BadPath::DotSegment);
        }
        out.push(decoded.into_owned());
    }
    Ok(out)
}

/// What a `CheckRequest` maps to.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// No source gave a principal: 401.
    Unauthenticated,
    /// No route matched: deny.
    NoRoute,
    /// The path could be read as another one upstream: refused (400).
    BadPath(BadPath),
    /// The iamd request.
    Request(OwnedQuestion),
    /// The iamd request of the user whose key signed it (SigV4): denies
    /// are answered as AWS answers them.
    Signed {
        /// The request.
        request: OwnedQuestion,
        /// The service of the signature's scope (`s3`, ...): AWS's error
        /// format depends on it.
        service: String,
        /// The session policy its session token carries, to compile.
        policy: Option<String>,
    },
    /// A SigV4 signature that cannot be accepted: AWS's error.
    SignatureRefused {
        /// Why.
        error: SigError,
        /// The service of the signature's scope, if it could be read.
        service: String,
    },
    /// A SigV4-signed request while no credentials are live: 503.
    NoCredentials,
    /// The iamd request of a role, which the mTLS peer (a SPIFFE ID) may
    /// act as only if the role's trust policy allows it
    /// `sts:AssumeRoleWithWebIdentity`.
    AssumeRole {
        /// The peer's SPIFFE ID.
        peer: String,
        /// The request, made by the role (its ARN).
        request: OwnedQuestion,
    },
}

fn template_names(t: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        names.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    names
}

/// Reports the `{name}`s of `template` that `known` does not capture.
fn unknown_names(
    at: &str,
    what: &str,
    template: &str,
    known: &[&str],
    from: &str,
    problems: &mut Vec<String>,
) {
    for name in template_names(template) {
        if !known.contains(&name) {
            let has = if known.is_empty() {
                "none".to_owned()
            } else {
                known
                    .iter()
                    .map(|k| format!("`{{{k}}}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            problems.push(format!(
                "{at}: {what} uses `{{{name}}}`, which {from} does not capture (it has {has})"
            ));
        }
    }
}

/// Substitutes each `{name}` of `template` with its value, in one pass: a
/// value is never read again as a template (a capture `{id}` stays text).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let Some(len) = from.find('}') else {
            out.push_str(from);
            return out;
        };
        let name = from.get(1..len).unwrap_or_default();
        match values.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(from.get(..=len).unwrap_or_default()),
        }
        rest = from.get(len + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

impl Mapping {
    /// Compiles the section; every problem at once.
    pub fn compile(file: &FileMapping) -> Result<Self, MappingError> {
        let mut problems = Vec::new();
        if file.principal.is_empty() {
            problems.push("envoy.principal: give at least one source (`jwt: {claim: sub}` or `header: {name: ...}`)".to_owned());
        }
        let sources = file
            .principal
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                FileSource::Peer { spiffe, role } => {
                    let at = format!("envoy.principal[{i}].peer");
                    if !role.starts_with("arn:") || !role.contains(":role/") {
                        problems.push(format!("{at}: role `{role}` is not a role ARN: write `arn:aws:iam::ACCOUNT:role/NAME` (its path included)"));
                    }
                    let Some(rest) = spiffe.strip_prefix("spiffe://") else {
                        problems.push(format!("{at}: `{spiffe}` is not a SPIFFE ID template: write `spiffe://TRUST_DOMAIN/...`, as in `spiffe://acme.example/ns/{{ns}}/sa/{{sa}}`"));
                        return Source::Peer { spiffe: Vec::new(), role: role.clone() };
                    };
                    let segments = compile_segments(&at, rest, &mut problems);
                    unknown_names(&at, "role", role, &captures(&segments), "the SPIFFE ID", &mut problems);
                    Source::Peer { spiffe: segments, role: role.clone() }
                }
                FileSource::Jwt { claim, template } => Source::Jwt {
                    claim: claim.clone(),
                    template: template.clone().unwrap_or_else(|| "user/{value}".into()),
                },
                FileSource::Header { name, template } => Source::Header {
                    name: name.to_lowercase(),
                    template: template.clone().unwrap_or_else(|| "{value}".into()),
                },
                FileSource::Sigv4 { regions, services } => Source::Sigv4 {
                    regions: regions.clone(),
                    services: services.clone(),
                },
            })
            .collect();
        let mut routes = Vec::new();
        for (i, r) in file.routes.iter().enumerate() {
            let at = format!("envoy.routes[{i}]");
            if !r.path.starts_with('/') {
                problems.push(format!("{at}: path `{}` must start with `/`", r.path));
            }
            let segments = compile_segments(&at, r.path.trim_start_matches('/'), &mut problems);
            let known = captures(&segments);
            for (what, t) in [("action", &r.action), ("resource", &r.resource)] {
                unknown_names(&at, what, t, &known, "the path", &mut problems);
            }
            if !r.action.contains(':') {
                problems.push(format!(
                    "{at}: action `{}` is not `service:Action`",
                    r.action
                ));
            }
            routes.push(Route {
                method: r
                    .method
                    .as_ref()
                    .filter(|m| m.as_str() != "*")
                    .map(|m| m.to_uppercase()),
                segments,
                action: r.action.clone(),
                resource: r.resource.clone(),
            });
        }
        if routes.is_empty() {
            problems.push("envoy.routes: give at least one route (`{method: GET, path: /docs/{id}, action: ..., resource: ...}`); unmatched requests are denied".to_owned());
        }
        if !problems.is_empty() {
            return Err(MappingError(problems));
        }
        let pairs = |m: &BTreeMap<String, String>, fold: bool| {
            m.iter()
                .map(|(k, v)| (if fold { k.to_lowercase() } else { k.clone() }, v.clone()))
                .collect()
        };
        Ok(Self {
            sources,
            routes,
            headers: pairs(&file.context.headers, true),
            query: pairs(&file.context.query, false),
            claims: pairs(&file.context.claims, false),
            jwt_filter: file
                .jwt_filter
                .clone()
                .unwrap_or_else(|| "envoy.filters.http.jwt_authn".into()),
            jwt_payload_key: file
                .jwt_payload_key
                .clone()
                .unwrap_or_else(|| "jwt_payload".into()),
            principal_header: file
                .response_headers
                .principal
                .clone()
                .unwrap_or_else(|| "x-iamd-principal".into()),
            revision_header: file
                .response_headers
                .revision
                .clone()
                .unwrap_or_else(|| "x-iamd-revision".into()),
            path_parameters: file.path_parameters,
        })
    }

    fn payload<'c>(&self, check: &'c CheckRequest) -> Option<&'c Struct> {
        let meta = check.attributes.as_ref()?.metadata_context.as_ref()?;
        let filter = meta.filter_metadata.get(&self.jwt_filter)?;
        match &filter.fields.get(&self.jwt_payload_key)?.kind {
            Some(Kind::StructValue(s)) => Some(s),
            _ => None,
        }
    }

    /// Maps a `CheckRequest`, at `now` (for `aws:MultiFactorAuthAge` and
    /// signatures' times), with the live `credentials` for SigV4.
    pub fn map(
        &self,
        check: &CheckRequest,
        now: jiff::Timestamp,
        credentials: Option<&Credentials>,
    ) -> Mapped {
        let attrs = check.attributes.as_ref();
        let http = attrs
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let header = |name: &str| http.and_then(|h| h.headers.get(name)).map(String::as_str);
        let payload = self.payload(check);
        let claim = |name: &str| payload.and_then(|p| p.fields.get(name));
        let peer = attrs
            .and_then(|a| a.source.as_ref())
            .map(|p| p.principal.as_str())
            .filter(|p| !p.is_empty());
        // The principal; for a peer, the SPIFFE ID that must be allowed to
        // act as it; for a signature, its region and service.
        let mut principal = None;
        let mut signed: Option<iamd_credentials::Verified> = None;
        for source in &self.sources {
            let found = match source {
                Source::Jwt { claim: c, template } => claim(c)
                    .and_then(scalar)
                    .filter(|v| !v.is_empty())
                    .map(|v| (fill(template, &[("value", &v)]), None)),
                Source::Peer { spiffe, role } => peer.and_then(|id| {
                    let parts = split_path(id.strip_prefix("spiffe://")?, false).ok()?;
                    let captured = match_segments(spiffe, &parts)?;
                    let values: Vec<(&str, &str)> =
                        captured.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    Some((fill(role, &values), Some(id.to_owned())))
                }),
                Source::Header { name, template } => header(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| (fill(template, &[("value", v)]), None)),
                Source::Sigv4 { regions, services } => {
                    let Some(http) = http else { continue };
                    match verify_signature(http, now, credentials, regions, services) {
                        Ok(None) => None,
                        Ok(Some(v)) => {
                            let principal = v.principal.clone();
                            signed = Some(v);
                            Some((principal, None))
                        }
                        Err(refused) => return *refused,
                    }
                }
            };
            if found.is_some() {
                principal = found;
                break;
            }
        }
        let Some((principal, peer)) = principal else {
            return Mapped::Unauthenticated;
        };
        let method = http.map_or("", |h| h.method.as_str());
        let full = http.map_or("/", |h| h.path.as_str());
        let (path, query) = full.split_once('?').unwrap_or((full, ""));
        let parts = match split_path(path.trim_start_matches('/'), self.path_parameters) {
            Ok(parts) => parts,
            Err(bad) => return Mapped::BadPath(bad),
        };
        let Some((action, resource)) = self.route(method, &parts) else {
            return Mapped::NoRoute;
        };
        let mut context: BTreeMap<String, ContextValue> = BTreeMap::new();
        let single = ContextValue::Single;
        if let Some(Address::SocketAddress(a)) = attrs
            .and_then(|a| a.source.as_ref())
            .and_then(|p| p.address.as_ref())
            .and_then(|a| a.address.as_ref())
        {
            context.insert("aws:SourceIp".into(), single(a.address.clone()));
        }
        let secure = http.is_some_and(|h| h.scheme == "https")
            || attrs.is_some_and(|a| a.tls_session.is_some());
        context.insert("aws:SecureTransport".into(), single(secure.to_string()));
        if let Some(ua) = header("user-agent") {
            context.insert("aws:UserAgent".into(), single(ua.to_owned()));
        }
        if let Some(amr) = claim("amr") {
            let methods = list(amr);
            let mfa = methods
                .iter()
                .any(|m| matches!(m.as_str(), "mfa" | "otp" | "hwk" | "swk" | "sms"));
            context.insert("aws:MultiFactorAuthPresent".into(), single(mfa.to_string()));
            if let (true, Some(at)) = (mfa, claim("auth_time").and_then(number)) {
                let age = (now.as_second() as f64 - at).max(0.0) as i64;
                context.insert("aws:MultiFactorAuthAge".into(), single(age.to_string()));
            }
        }
        for (name, key) in &self.headers {
            if let Some(v) = header(name) {
                context.insert(key.clone(), single(v.to_owned()));
            }
        }
        let params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(&s.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (decode(k), decode(v))
            })
            .collect();
        for (name, key) in &self.query {
            let values: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect();
            match values.len() {
                0 => {}
                1 => {
                    context.insert(key.clone(), single(values[0].clone()));
                }
                _ => {
                    context.insert(key.clone(), ContextValue::Multi(values));
                }
            }
        }
        for (name, key) in &self.claims {
            if let Some(v) = claim(name) {
                let values = list(v);
                let value = match &v.kind {
                    Some(Kind::ListValue(_)) => ContextValue::Multi(values),
                    _ => single(values.into_iter().next().unwrap_or_default()),
                };
                context.insert(key.clone(), value);
            }
        }
        // What AWS sets for a signed request: the scope's region; for
        // temporary credentials, their MFA and issue time (a long-term
        // key has no aws:MultiFactorAuthPresent at all, as in AWS, which is
        // what `BoolIfExists` is for).
        if let Some(v) = &signed {
            for (key, value) in crate::credentials::signed_facts(v, now) {
                context.insert(key.into(), single(value));
            }
        }
        let session_tags = signed
            .as_ref()
            .and_then(|v| v.session.as_ref())
            .map(|s| s.tags.clone())
            .unwrap_or_default();
        let request = OwnedQuestion {
            principal,
            action,
            resource,
            context,
            session: None,
            session_tags,
        };
        match (peer, signed) {
            (Some(peer), _) => Mapped::AssumeRole { peer, request },
            (None, Some(v)) => Mapped::Signed {
                request,
                service: v.service,
                policy: v.session.and_then(|s| s.policy),
            },
            (None, None) => Mapped::Request(request),
        }
    }

    /// Whether a source verifies SigV4 (and so needs credentials).
    pub fn verifies_signatures(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, Source::Sigv4 { .. }))
    }

    fn route(&self, method: &str, parts: &[String]) -> Option<(String, String)> {
        self.routes.iter().find_map(|r| {
            if r.method
                .as_ref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(method))
            {
                return None;
            }
            let captured = match_segments(&r.segments, parts)?;
            let values: Vec<(&str, &str)> =
                captured.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Some((fill(&r.action, &values), fill(&r.resource, &values)))
        })
    }
}

/// The SigV4 signature of `http`, verified: `None` when it has none, who
/// signed and what the signature says when it is good, the answer when
/// not.
fn verify_signature(
    http: &HttpRequest,
    now: jiff::Timestamp,
    credentials: Option<&Credentials>,
    regions: &[String],
    services: &[String],
) -> Result<Option<iamd_credentials::Verified>, Box<Mapped>> {
    // Envoy marks a body it cut at `max_request_bytes`: not the one signed.
    let partial = http
        .headers
        .get("x-envoy-auth-partial-body")
        .is_some_and(|v| v == "true");
    let body = match (&http.raw_body[..], http.body.as_str()) {
        _ if partial => None,
        ([], "") => None,
        ([], text) => Some(text.as_bytes()),
        (raw, _) => Some(raw),
    };
    let request = sigv4::HttpRequest {
        method: &http.method,
        path: &http.path,
        headers: &http.headers,
        body,
    };
    let service_of = || {
        sigv4::presented(&request)
            .ok()
            .flatten()
            .map(|p| p.service().to_owned())
            .unwrap_or_default()
    };
    let Some(credentials) = credentials else {
        return match sigv4::presented(&request) {
            Ok(None) => Ok(None),
            _ => Err(Box::new(Mapped::NoCredentials)),
        };
    };
    let refused = |error: SigError| {
        Box::new(Mapped::SignatureRefused {
            error,
            service: service_of(),
        })
    };
    let Some(v) = credentials.verify(&request, now).map_err(refused)? else {
        return Ok(None);
    };
    let out_of_scope =
        |list: &[String], value: &str| !list.is_empty() && !list.iter().any(|x| x == value);
    if out_of_scope(regions, &v.region) || out_of_scope(services, &v.service) {
        return Err(refused(SigError {
            code: sigv4::Code::AuthorizationHeaderMalformed,
            reason: "the signature's region or service is not one the mapping serves".into(),
        }));
    }
    Ok(Some(v))
}

/// The captures of a path's decoded segments (`split_path`) if they match
/// `segments`. A literal matches its decoded segment exactly (case
/// included).
fn match_segments<'s>(segments: &'s [Segment], parts: &[String]) -> Option<Vec<(&'s str, String)>> {
    let mut captured = Vec::new();
    let mut i = 0;
    for seg in segments {
        match seg {
            Segment::Rest(name) => {
                let rest = parts.get(i..).map(|p| p.join("/")).unwrap_or_default();
                captured.push((name.as_str(), rest));
                return Some(captured);
            }
            Segment::One(name) => {
                let p = parts.get(i).filter(|p| !p.is_empty())?;
                captured.push((name.as_str(), p.clone()));
            }
            Segment::Literal(l) => {
                if parts.get(i).map(String::as_str) != Some(l.as_str()) {
                    return None;
                }
            }
        }
        i += 1;
    }
    (i == parts.len()).then_some(captured)
}

/// Compiles `/`-separated `template` (`{name}` one segment, `{name*}` the
/// rest); problems are reported under `at`.
fn compile_segments(at: &str, template: &str, problems: &mut Vec<String>) -> Vec<Segment> {
    let mut segments = Vec::new();
    let parts: Vec<&str> = template.split('/').collect();
    for (j, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if let Some(rest) = name.strip_suffix('*') {
                if j + 1 != parts.len() {
                    problems.push(format!(
                        "{at}: `{{{name}}}` takes the rest of the path, so it must come last"
                    ));
                }
                segments.push(Segment::Rest(rest.to_owned()));
            } else {
                segments.push(Segment::One(name.to_owned()));
            }
        } else if part.contains(['{', '}']) {
            problems.push(format!(
                "{at}: `{part}`: a variable is a whole segment, as in `/docs/{{id}}`"
            ));
        } else {
            segments.push(Segment::Literal((*part).to_owned()));
        }
    }
    segments
}

/// The names a template's segments capture.
fn captures(segments: &[Segment]) -> Vec<&str> {
    segments
        .iter()
        .filter_map(|s| match s {
            Segment::One(n) | Segment::Rest(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
        .collect()
}

fn scalar(v: &Value) -> Option<String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        Some(Kind::NumberValue(n)) => Some(if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", *n as i64)
        } else {
            n.to_string()
        }),
        Some(Kind::BoolValue(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match &v.kind {
        Some(Kind::NumberValue(n)) => Some(*n),
        Some(Kind::StringValue(s)) => s.parse().ok(),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<String> {
    match &v.kind {
        Some(Kind::ListValue(l)) => l.values.iter().filter_map(scalar).collect(),
        _ => scalar(v).into_iter().collect(),
    }
}
