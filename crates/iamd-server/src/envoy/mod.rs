//! Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`)
//! on the same server as `iamd.v1`.
//!
//! A declarative [`Mapping`] (the `envoy:` section of the configuration)
//! turns a `CheckRequest` into an iamd request: the principal from the first
//! source that has one (a claim of a JWT that Envoy's `jwt_authn` filter
//! verified, the mTLS peer's SPIFFE ID acting as a role that trusts it, or a
//! trusted header), the action and resource from the first
//! route template that matches the method and path, and the context from
//! the request (source IP, transport, MFA from the JWT's `amr` and
//! `auth_time`, user agent, selected headers, query parameters and claims).
//! The decision is the daemon's own ([`crate::grpc::AuthorizerService`]):
//! same facts, metrics and decision log.
//!
//! Answers: allow adds the decided principal and the bundle revision as
//! request headers (overwriting any copy the client sent); deny is a 403
//! (401 when no identity could be established, 503 without a bundle) with a
//! small JSON body and no internal detail. An unmatched route denies.

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

use crate::grpc::AuthorizerService;
use iamd_proto::pb;

/// `envoy.service.auth.v3.Authorization` over an [`AuthorizerService`].
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    authorizer: AuthorizerService,
    mapping: Arc<Mapping>,
}

impl ExtAuthz {
    /// Envoy's authorization service, deciding with `authorizer`.
    pub fn new(authorizer: AuthorizerService, mapping: Arc<Mapping>) -> Self {
        Self {
            authorizer,
            mapping,
        }
    }

    /// Decides a `CheckRequest` at `now`.
    pub fn decide(&self, check: &CheckRequest, now: jiff::Timestamp) -> CheckResponse {
        let unauthenticated = || {
            denied(
                HttpStatusCode::Unauthorized,
                "UNAUTHENTICATED",
                tonic::Code::Unauthenticated,
            )
        };
        let (request, peer) = match self.mapping.map(check, now) {
            Mapped::Unauthenticated => return unauthenticated(),
            Mapped::NoRoute => {
                return denied(
                    HttpStatusCode::Forbidden,
                    "NO_ROUTE",
                    tonic::Code::PermissionDenied,
                );
            }
            Mapped::BadPath(bad) => {
                tracing::debug!("ext_authz: refused: {}", bad.reason());
                return denied(
                    HttpStatusCode::BadRequest,
                    "BAD_PATH",
                    tonic::Code::PermissionDenied,
                );
            }
            Mapped::Request(r) => (r, None),
            Mapped::AssumeRole { peer, request } => (request, Some(peer)),
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
            let assume = pb::AuthorizeRequest {
                principal: peer,
                action: "sts:AssumeRoleWithWebIdentity".into(),
                resource: request.principal.clone(),
                ..Default::default()
            };
            match self.authorizer.decide_now(&assume, now, trace) {
                Ok(a) if a.decision() == pb::Decision::Allow => {}
                Err(e) if e.code() == tonic::Code::Unavailable => {
                    return denied(
                        HttpStatusCode::ServiceUnavailable,
                        "UNAVAILABLE",
                        tonic::Code::Unavailable,
                    );
                }
                _ => return unauthenticated(),
            }
        }
        match self.authorizer.decide_now(&request, now, trace) {
            Err(e) => {
                tracing::debug!("ext_authz: {e}");
                if e.code() == tonic::Code::Unavailable {
                    denied(
                        HttpStatusCode::ServiceUnavailable,
                        "UNAVAILABLE",
                        tonic::Code::Unavailable,
                    )
                } else {
                    denied(
                        HttpStatusCode::Forbidden,
                        "INVALID",
                        tonic::Code::PermissionDenied,
                    )
                }
            }
            Ok(answer) if answer.decision() == pb::Decision::Allow => {
                let mut ok = OkHttpResponseBuilder::new();
                let overwrite = Some(HeaderAppendAction::OverwriteIfExistsOrAdd);
                ok.add_header(
                    &self.mapping.principal_header,
                    &request.principal,
                    overwrite,
                    false,
                );
                ok.add_header(
                    &self.mapping.revision_header,
                    &answer.revision,
                    overwrite,
                    false,
                );
                let mut response = CheckResponse::with_status(Status::ok(""));
                response.set_http_response(ok.build());
                response
            }
            Ok(answer) => {
                let outcome = answer.decision().as_str_name();
                denied(
                    HttpStatusCode::Forbidden,
                    outcome,
                    tonic::Code::PermissionDenied,
                )
            }
        }
    }
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
