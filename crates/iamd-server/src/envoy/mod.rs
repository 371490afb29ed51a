//! Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`)
//! on the same server as `iamd.v1`.
//!
//! A declarative [`Mapping`] (the `envoy:` section of the configuration)
//! turns a `CheckRequest` into an iamd request: the principal from the first
//! source that has one (a claim of a JWT that Envoy's `jwt_authn` filter
//! verified, the mTLS peer's SPIFFE ID acting as a role that trusts it, an
//! AWS Signature Version 4 verified against the credentials, or a trusted
//! header), the action and resource from the first
//! route template that matches the method and path, and the context from
//! the request (source IP, transport, MFA from the JWT's `amr` and
//! `auth_time`, user agent, selected headers, query parameters and claims).
//! The decision is the daemon's own ([`crate::decide::Decider`]): same
//! facts, limits, metrics and decision log as `iamd.v1`.
//!
//! Answers: allow adds the decided principal and the bundle revision as
//! request headers (overwriting any copy the client sent); deny is a 403
//! (401 when no identity could be established, 503 without a bundle) with a
//! small JSON body and no internal detail. An unmatched route denies. A
//! SigV4-signed caller is answered as AWS answers: its refusals and denies
//! in AWS's error documents, with AWS's codes.

mod mapping;

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, HeaderAppendAction, HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt as _, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
pub use mapping::{BadPath, FileMapping, Mapped, Mapping, MappingError};
use tonic::{Request, Response, Status};

use crate::credentials::CredentialStore;
use crate::decide::{Answer, Decider, Question, Refusal};
use iamd_policy::eval::Outcome;

/// `envoy.service.auth.v3.Authorization`: a thin adapter over the
/// [`Decider`].
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    decider: Decider,
    mapping: Arc<Mapping>,
    credentials: Option<Arc<CredentialStore>>,
}

impl ExtAuthz {
    /// Envoy's authorization service, deciding with `decider`.
    pub fn new(decider: Decider, mapping: Arc<Mapping>) -> Self {
        Self {
            decider,
            mapping,
            credentials: None,
        }
    }

    /// Verifies SigV4 signatures with the credentials of `store`.
    pub fn with_credentials(mut self, store: Arc<CredentialStore>) -> Self {
        self.credentials = Some(store);
        self
    }

    /// Decides a `CheckRequest` at `now`.
    pub fn decide(&self, check: &CheckRequest, now: jiff::Timestamp) -> CheckResponse {
        let credentials = self.credentials.as_ref().and_then(|c| c.credentials());
        let request_id = || {
            check
                .attributes
                .as_ref()
                .and_then(|a| a.request.as_ref())
                .and_then(|r| r.http.as_ref())
                .map(|h| h.id.as_str())
                .unwrap_or_default()
        };
        let (request, peer, aws) = match self.mapping.map(check, now, credentials.as_deref()) {
            Mapped::SignatureRefused { error, service } => {
                tracing::debug!(target: "iamd::envoy", "ext_authz: signature refused: {error}");
                let code = error.code;
                self.decider.metrics().signature(code.as_str());
                return aws_error(
                    &service,
                    code.as_str(),
                    code.message(),
                    code.http_status(),
                    request_id(),
                );
            }
            Mapped::NoCredentials => {
                tracing::warn!(target: "iamd::envoy", "ext_authz: a signed request, and no credentials are live: 503");
                return refused(&Refusal::NoBundle);
            }
            Mapped::Signed {
                mut request,
                service,
                policy,
            } => {
                self.decider.metrics().signature("valid");
                // A role session's policy narrows what it may do; one that
                // no longer compiles (iamd's rules changed) denies.
                if let Some(text) = policy {
                    let compiled = self
                        .credentials
                        .as_ref()
                        .ok_or_else(String::new)
                        .and_then(|c| c.session_policy(&text));
                    match compiled {
                        Ok(p) => request.session = Some(p),
                        Err(e) => {
                            tracing::warn!(target: "iamd::envoy", "ext_authz: a session policy does not compile: {e}");
                            return aws_error(
                                &service,
                                "AccessDenied",
                                "Access Denied",
                                403,
                                request_id(),
                            );
                        }
                    }
                }
                (request, None, Some(service))
            }
            Mapped::Unauthenticated => return unauthenticated(),
            Mapped::NoRoute => {
                return denied(
                    HttpStatusCode::Forbidden,
                    "NO_ROUTE",
                    tonic::Code::PermissionDenied,
                );
            }
            Mapped::BadPath(bad) => {
                tracing::debug!(target: "iamd::envoy", "ext_authz: refused: {}", bad.reason());
                return denied(
                    HttpStatusCode::BadRequest,
                    "BAD_PATH",
                    tonic::Code::PermissionDenied,
                );
            }
            Mapped::Request(r) => (r, None, None),
            Mapped::AssumeRole { peer, request } => (request, Some(peer), None),
        };
        let trace = check
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .and_then(|h| h.headers.get("traceparent"))
            .and_then(|t| crate::decision_log::trace_id(t));
        // The peer acts as the role only if the role's trust policy lets it:
        // the engine decides, as for any AssumeRoleWithWebIdentity.
        if let Some(peer) = peer {
            let assume = Question {
                principal: &peer,
                action: "sts:AssumeRoleWithWebIdentity",
                resource: &request.principal,
                resource_account: None,
                context: Vec::new(),
                explain: false,
                session: None,
                session_tags: &[],
            };
            match self.decider.decide(&assume, now, trace, |d| d.outcome) {
                Ok(Outcome::Allow) => {}
                Err(Refusal::NoBundle) => return refused(&Refusal::NoBundle),
                _ => return unauthenticated(),
            }
        }
        let answer = self
            .decider
            .decide(&request.question(), now, trace, |d| match d.outcome {
                Outcome::Allow => self.allowed(&request.principal, d),
                // A caller that signed as AWS does is denied as AWS denies.
                _ if aws.is_some() => aws_error(
                    aws.as_deref().unwrap_or_default(),
                    "AccessDenied",
                    "Access Denied",
                    403,
                    request_id(),
                ),
                _ => denied(
                    HttpStatusCode::Forbidden,
                    d.outcome_name(),
                    tonic::Code::PermissionDenied,
                ),
            });
        answer.unwrap_or_else(|e| refused(&e))
    }

    /// An allow: the decided principal and the revision as headers for the
    /// upstream, over any copy the client sent.
    fn allowed(&self, principal: &str, d: &Answer<'_>) -> CheckResponse {
        let mut ok = OkHttpResponseBuilder::new();
        let overwrite = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
        ok.add_header(&self.mapping.principal_header, principal, overwrite, false);
        ok.add_header(&self.mapping.revision_header, d.revision, overwrite, false);
        let mut response = CheckResponse::with_status(Status::ok(""));
        response.set_http_response(ok.build());
        response
    }
}

/// The one place where the decider's refusals become Envoy's answers: 503
/// without a bundle, 403 for a request iamd cannot decide (with no detail
/// for the client; the reason goes to the debug log).
fn refused(r: &Refusal) -> CheckResponse {
    match r {
        Refusal::NoBundle => denied(
            HttpStatusCode::ServiceUnavailable,
            "UNAVAILABLE",
            tonic::Code::Unavailable,
        ),
        Refusal::Invalid(_) | Refusal::BatchTooLarge { .. } => {
            tracing::debug!(target: "iamd::envoy",
                "ext_authz: {}",
                iamd_policy::message::shorten(&r.to_string())
            );
            denied(
                HttpStatusCode::Forbidden,
                "INVALID",
                tonic::Code::PermissionDenied,
            )
        }
    }
}

/// No identity could be established, or the peer may not act as the role:
/// 401.
fn unauthenticated() -> CheckResponse {
    denied(
        HttpStatusCode::Unauthorized,
        "UNAUTHENTICATED",
        tonic::Code::Unauthenticated,
    )
}

/// A deny: the HTTP status, a JSON body naming the outcome, and the gRPC
/// status Envoy reads.
fn denied(http: HttpStatusCode, outcome: &str, code: tonic::Code) -> CheckResponse {
    let mut d = DeniedHttpResponseBuilder::new();
    d.set_http_status(http);
    d.add_header("content-type", "application/json", None, false);
    d.set_body(serde_json::json!({"decision": outcome}).to_string());
    let mut response = CheckResponse::with_status(Status::new(code, outcome));
    response.set_http_response(d.build());
    response
}

/// AWS's error answer: S3's `<Error>` document for `s3`, the Query
/// protocol's `<ErrorResponse>` for every other service.
fn aws_error(
    service: &str,
    code: &str,
    message: &str,
    status: u16,
    request_id: &str,
) -> CheckResponse {
    let id = crate::sts::escape(request_id);
    let body = if service == "s3" {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{id}</RequestId></Error>"
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
        )
    };
    let mut d = DeniedHttpResponseBuilder::new();
    d.set_http_status(if status == 400 {
        HttpStatusCode::BadRequest
    } else {
        HttpStatusCode::Forbidden
    });
    d.add_header("content-type", "application/xml", None, false);
    d.set_body(body);
    let grpc = if code == "AccessDenied" {
        tonic::Code::PermissionDenied
    } else {
        tonic::Code::Unauthenticated
    };
    let mut response = CheckResponse::with_status(Status::new(grpc, code));
    response.set_http_response(d.build());
    response
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let span = crate::telemetry::rpc_span(
            "envoy.service.auth.v3.Authorization/Check",
            request.metadata(),
        );
        let _entered = span.enter();
        Ok(Response::new(
            self.decide(request.get_ref(), jiff::Timestamp::now()),
        ))
    }
}

#[cfg(test)]
mod tests;
