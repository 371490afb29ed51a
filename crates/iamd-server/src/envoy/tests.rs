//! The mapping and the answers, on `CheckRequest`s built by hand.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3::{Metadata, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};

use super::*;
use iamd_policy::context::ContextValue;

const MAPPING: &str = r#"
principal:
  - jwt: {claim: sub}
  - header: {name: X-Service-Identity, template: "role/{value}"}
routes:
  - {method: GET, path: "/docs/{id}", action: "docs:GetDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
  - {method: DELETE, path: "/docs/{id}", action: "docs:DeleteDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
  - {method: PUT, path: "/drafts/{path*}", action: "docs:PutDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/drafts/{path}"}
context:
  headers: {x-team: docs:Team}
  query: {tag: acme:Tags}
  claims: {groups: acme:Groups}
"#;

fn mapping() -> Mapping {
    let file: FileMapping = serde_saphyr::from_str(MAPPING).unwrap();
    Mapping::compile(&file).unwrap()
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// A check for `method path` with headers and JWT claims.
fn check(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    claims: &[(&str, Value)],
) -> CheckRequest {
    let mut metadata = None;
    if !claims.is_empty() {
        let payload = Struct {
            fields: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        };
        let filter = Struct {
            fields: [(
                "jwt_payload".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(payload)),
                },
            )]
            .into(),
        };
        metadata = Some(Metadata {
            filter_metadata: [("envoy.filters.http.jwt_authn".to_owned(), filter)].into(),
            ..Default::default()
        });
    }
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(attribute_context::Peer {
                address: Some(envoy_types::pb::envoy::config::core::v3::Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "10.1.2.3".into(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    scheme: "https".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<HashMap<_, _>>(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            metadata_context: metadata,
            ..Default::default()
        }),
    }
}

fn single(r: &crate::decide::OwnedQuestion, key: &str) -> Option<String> {
    match r.context.get(key)? {
        ContextValue::Single(s) => Some(s.clone()),
        ContextValue::Multi(m) => Some(format!("{m:?}")),
    }
}

fn now() -> jiff::Timestamp {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

#[test]
fn routes_principals_and_context() {
    let m = mapping();
    let mfa = [
        ("sub", string("alice")),
        (
            "amr",
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![string("pwd"), string("mfa")],
                })),
            },
        ),
        (
            "auth_time",
            Value {
                kind: Some(Kind::NumberValue((now().as_second() - 90) as f64)),
            },
        ),
        (
            "groups",
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![string("dev"), string("ops")],
                })),
            },
        ),
    ];
    let Mapped::Request(r) = m.map(
        &check(
            "GET",
            "/docs/a%20b?tag=x&tag=y&other=1",
            &[
                ("x-team", "docs"),
                ("user-agent", "curl/8"),
                ("x-service-identity", "indexer"),
            ],
            &mfa,
        ),
        now(),
        None,
    ) else {
        panic!("not mapped");
    };
    // The JWT comes first in the list, so it wins over the header.
    assert_eq!(r.principal, "user/alice");
    assert_eq!(r.action, "docs:GetDocument");
    assert_eq!(r.resource, "arn:acme:docs:eu-1:123456789012:doc/a b");
    assert_eq!(single(&r, "aws:SourceIp").as_deref(), Some("10.1.2.3"));
    assert_eq!(single(&r, "aws:SecureTransport").as_deref(), Some("true"));
    assert_eq!(single(&r, "aws:UserAgent").as_deref(), Some("curl/8"));
    assert_eq!(
        single(&r, "aws:MultiFactorAuthPresent").as_deref(),
        Some("true")
    );
    assert_eq!(single(&r, "aws:MultiFactorAuthAge").as_deref(), Some("90"));
    assert_eq!(single(&r, "docs:Team").as_deref(), Some("docs"));
    assert_eq!(single(&r, "acme:Tags").as_deref(), Some(r#"["x", "y"]"#));
    assert_eq!(
        single(&r, "acme:Groups").as_deref(),
        Some(r#"["dev", "ops"]"#)
    );

    // No JWT: the header; a password-only JWT says MFA is absent.
    let Mapped::Request(r) = m.map(
        &check(
            "DELETE",
            "/docs/1",
            &[("x-service-identity", "indexer")],
            &[],
        ),
        now(),
        None,
    ) else {
        panic!()
    };
    assert_eq!(
        (r.principal.as_str(), r.action.as_str()),
        ("role/indexer", "docs:DeleteDocument")
    );
    assert_eq!(single(&r, "aws:MultiFactorAuthPresent"), None);
    let pwd = [("sub", string("bob")), ("amr", string("pwd"))];
    let Mapped::Request(r) = m.map(&check("GET", "/docs/1", &[], &pwd), now(), None) else {
        panic!()
    };
    assert_eq!(
        single(&r, "aws:MultiFactorAuthPresent").as_deref(),
        Some("false")
    );
    assert_eq!(single(&r, "aws:MultiFactorAuthAge"), None);

    // The rest of the path; unmatched methods and paths; no identity.
    let Mapped::Request(r) = m.map(
        &check("PUT", "/drafts/alice/notes/1", &[], &pwd),
        now(),
        None,
    ) else {
        panic!()
    };
    assert_eq!(
        r.resource,
        "arn:acme:docs:eu-1:123456789012:doc/drafts/alice/notes/1"
    );
    assert_eq!(
        m.map(&check("POST", "/docs/1", &[], &pwd), now(), None),
        Mapped::NoRoute
    );
    assert_eq!(
        m.map(&check("GET", "/docs/1/extra", &[], &pwd), now(), None),
        Mapped::NoRoute
    );
    assert_eq!(
        m.map(&check("GET", "/docs/", &[], &pwd), now(), None),
        Mapped::NoRoute
    );
    assert_eq!(
        m.map(&check("GET", "/docs/1", &[], &[]), now(), None),
        Mapped::Unauthenticated
    );
}

#[test]
fn a_bad_mapping_says_every_problem() {
    let file: FileMapping = serde_saphyr::from_str(
        r#"
principal: []
routes:
  - {path: "docs/{id}", action: "GetDocument", resource: "arn:x:{name}"}
  - {path: "/a/{rest*}/b", action: "a:b", resource: "*"}
  - {path: "/a/x{id}", action: "a:b", resource: "*"}
"#,
    )
    .unwrap();
    let e = Mapping::compile(&file).unwrap_err();
    let text = e.to_string();
    for expected in [
        "envoy.principal: give at least one source",
        "envoy.routes[0]: path `docs/{id}` must start with `/`",
        "envoy.routes[0]: resource uses `{name}`, which the path does not capture (it has `{id}`)",
        "envoy.routes[0]: action `GetDocument` is not `service:Action`",
        "envoy.routes[1]: `{rest*}` takes the rest of the path, so it must come last",
        "envoy.routes[2]: `x{id}`: a variable is a whole segment",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert_eq!(e.0.len(), 6, "{text}");
}

fn service(loaded: bool) -> ExtAuthz {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle");
    over(loaded.then_some(dir.as_path()), mapping()).0
}

/// Envoy's service with `mapping` over the bundle in `dir` (none: no
/// bundle), and its metrics.
fn over(dir: Option<&std::path::Path>, mapping: Mapping) -> (ExtAuthz, Arc<crate::admin::Metrics>) {
    let (store, publisher) = crate::reload::Store::new();
    if let Some(dir) = dir {
        crate::reload::Reloader::for_dir(dir, publisher).reload(crate::reload::Trigger::Start);
        assert!(store.bundle().is_some(), "{} does not load", dir.display());
    }
    let metrics = crate::admin::Metrics::new(store.clone());
    let decider = crate::decide::Decider::new(
        store,
        crate::limits::RequestLimits::default(),
        metrics.clone(),
    );
    (ExtAuthz::new(decider, Arc::new(mapping)), metrics)
}

fn http_status(r: &CheckResponse) -> (i32, Option<i32>, String, Vec<(String, String)>) {
    use envoy_types::ext_authz::v3::pb::HttpResponse;
    let code = r.status.as_ref().map_or(-1, |s| s.code);
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (
            code,
            d.status.as_ref().map(|s| s.code),
            d.body.clone(),
            Vec::new(),
        ),
        Some(HttpResponse::OkResponse(ok)) => (
            code,
            None,
            String::new(),
            ok.headers
                .iter()
                .filter_map(|h| h.header.as_ref().map(|h| (h.key.clone(), h.value.clone())))
                .collect(),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn answers_for_envoy() {
    let s = service(true);
    let alice = [("sub", string("alice"))];
    // Allow: the principal and the revision go upstream, overwriting.
    let (code, http, _, headers) = http_status(&s.decide(
        &check(
            "GET",
            "/docs/guide",
            &[("x-team", "docs"), ("x-iamd-principal", "user/root")],
            &alice,
        ),
        now(),
    ));
    assert_eq!((code, http), (0, None));
    assert_eq!(
        headers[0],
        ("x-iamd-principal".to_owned(), "user/alice".to_owned())
    );
    assert_eq!(headers[1].0, "x-iamd-revision");
    assert!(
        headers[1].1.starts_with("docs-team-2026-11-28 (sha256:"),
        "{headers:?}"
    );
    // Implicit deny: 403 with the outcome, nothing internal.
    let (code, http, body, _) = http_status(&s.decide(
        &check("GET", "/docs/guide", &[("x-team", "ops")], &alice),
        now(),
    ));
    assert_eq!(
        (code, http, body.as_str()),
        (7, Some(403), r#"{"decision":"IMPLICIT_DENY"}"#)
    );
    // Explicit deny: bob deletes without MFA.
    let bob = [("sub", string("bob")), ("amr", string("pwd"))];
    let (_, http, body, _) =
        http_status(&s.decide(&check("DELETE", "/docs/guide", &[], &bob), now()));
    assert_eq!(
        (http, body.as_str()),
        (Some(403), r#"{"decision":"EXPLICIT_DENY"}"#)
    );
    // No identity: 401. No route: 403.
    let (code, http, body, _) =
        http_status(&s.decide(&check("GET", "/docs/guide", &[], &[]), now()));
    assert_eq!(
        (code, http, body.as_str()),
        (16, Some(401), r#"{"decision":"UNAUTHENTICATED"}"#)
    );
    let (_, http, body, _) = http_status(&s.decide(&check("GET", "/admin", &[], &alice), now()));
    assert_eq!(
        (http, body.as_str()),
        (Some(403), r#"{"decision":"NO_ROUTE"}"#)
    );
    // No bundle: a deny (503), never an allow.
    let (code, http, _, _) = http_status(&service(false).decide(
        &check("GET", "/docs/guide", &[("x-team", "docs")], &alice),
        now(),
    ));
    assert_eq!((code, http), (14, Some(503)));
}

#[test]
fn an_mtls_peer_acts_as_a_role_its_trust_policy_lets_it() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("bundle.yaml", "account: \"123456789012\"\n");
    write(
        "roles.yaml",
        r#"- name: indexer
  path: /service/
  inline:
    read:
      Version: "2012-10-17"
      Statement: [{Effect: Allow, Action: "docs:GetDocument", Resource: "*"}]
  trust:
    Version: "2012-10-17"
    Statement:
      - Effect: Allow
        Principal: {Federated: "spiffe://acme.example"}
        Action: sts:AssumeRoleWithWebIdentity
        Condition: {StringLike: {spiffe:sub: "spiffe://acme.example/ns/search/*"}}
"#,
    );
    let file: FileMapping = serde_saphyr::from_str(
        r#"
principal:
  - peer: {spiffe: "spiffe://acme.example/ns/{ns}/sa/{sa}", role: "arn:aws:iam::123456789012:role/service/{sa}"}
routes:
  - {method: GET, path: "/docs/{id}", action: "docs:GetDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
"#,
    )
    .unwrap();
    let (s, metrics) = over(Some(dir.path()), Mapping::compile(&file).unwrap());
    let from = |peer: &str| {
        let mut c = check("GET", "/docs/guide", &[], &[]);
        if let Some(source) = c.attributes.as_mut().and_then(|a| a.source.as_mut()) {
            source.principal = peer.into();
        }
        http_status(&s.decide(&c, now()))
    };
    let (code, _, _, headers) = from("spiffe://acme.example/ns/search/sa/indexer");
    assert_eq!(code, 0, "{headers:?}");
    assert_eq!(
        headers[0].1,
        "arn:aws:iam::123456789012:role/service/indexer"
    );
    // Two decisions, each counted (and logged): the role assumption, then
    // the request as the role (AWS, too, records an assumption apart from
    // the calls made with the role).
    assert!(
        metrics
            .render()
            .contains("iamd_decisions_total{outcome=\"allow\"} 2"),
        "{}",
        metrics.render()
    );
    // The trust policy does not let another namespace act as the role.
    let (_, http, body, _) = from("spiffe://acme.example/ns/billing/sa/indexer");
    assert_eq!(
        (http, body.as_str()),
        (Some(401), r#"{"decision":"UNAUTHENTICATED"}"#)
    );
    // A peer the template does not match gives no identity.
    assert_eq!(
        from("spiffe://other.example/ns/search/sa/indexer").1,
        Some(401)
    );
    assert_eq!(from("").1, Some(401));
    // A bad template says so.
    let bad: FileMapping = serde_saphyr::from_str(
        "principal:\n  - peer: {spiffe: \"acme/{sa}\", role: \"role/{name}\"}\nroutes:\n  - {path: /x, action: a:b, resource: \"*\"}\n",
    )
    .unwrap();
    let e = Mapping::compile(&bad).unwrap_err().to_string();
    assert!(e.contains("`acme/{sa}` is not a SPIFFE ID template"), "{e}");
    assert!(e.contains("role `role/{name}` is not a role ARN"), "{e}");
}

/// A role session whose role has a path, through Envoy's `Check`: a
/// resource policy's Deny naming the role's ARN (with its path) denies the
/// session (it was allowed: the session ARN has no path).
#[test]
fn a_deny_naming_a_pathed_role_denies_its_sessions_through_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("bundle.yaml", "account: \"123456789012\"\n");
    write(
        "roles.yaml",
        r#"- name: indexer
  path: /service/
  inline:
    read:
      Version: "2012-10-17"
      Statement: [{Effect: Allow, Action: "docs:GetDocument", Resource: "*"}]
  trust:
    Version: "2012-10-17"
    Statement: [{Effect: Allow, Principal: {Service: ec2.amazonaws.com}, Action: "sts:AssumeRole"}]
"#,
    );
    write(
        "resources.yaml",
        r#"- resource: arn:acme:docs:eu-1:123456789012:doc/secret
  policy:
    Version: "2012-10-17"
    Statement:
      - Sid: DenyIndexer
        Effect: Deny
        Principal: {AWS: arn:aws:iam::123456789012:role/service/indexer}
        Action: docs:GetDocument
"#,
    );
    let file: FileMapping = serde_saphyr::from_str(
        r#"
principal:
  - header: {name: X-Session, template: "arn:aws:sts::123456789012:assumed-role/indexer/{value}"}
routes:
  - {method: GET, path: "/docs/{id}", action: "docs:GetDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
"#,
    )
    .unwrap();
    let (s, _) = over(Some(dir.path()), Mapping::compile(&file).unwrap());
    let get = |path: &str| {
        http_status(&s.decide(&check("GET", path, &[("x-session", "s1")], &[]), now()))
    };
    let (code, http, body, _) = get("/docs/secret");
    assert_eq!(
        (code, http, body.as_str()),
        (7, Some(403), r#"{"decision":"EXPLICIT_DENY"}"#)
    );
    assert_eq!(get("/docs/other").0, 0);
}

/// Every traversal form that once reached a decision as another resource
/// than the one the upstream serves: each is refused before any route is
/// tried, so an explicit deny on `doc/audit/*` or `doc/secret` cannot be
/// walked around.
#[test]
fn paths_that_could_name_another_resource_are_refused() {
    let m = mapping();
    let alice = [("sub", string("alice"))];
    let cases: &[(&str, &str, BadPath)] = &[
        ("PUT", "/drafts/alice/../../audit/2026", BadPath::DotSegment),
        (
            "PUT",
            "/drafts/alice/%2e%2e/%2e%2e/audit/2026",
            BadPath::DotSegment,
        ),
        ("PUT", "/drafts/alice/%2E%2E/audit", BadPath::DotSegment),
        ("PUT", "/drafts/alice/./x", BadPath::DotSegment),
        (
            "PUT",
            "/drafts/alice%2F..%2F..%2Faudit%2F2026",
            BadPath::EncodedSeparator,
        ),
        (
            "DELETE",
            "/docs/..%2Faudit%2F2026",
            BadPath::EncodedSeparator,
        ),
        ("GET", "/docs/x%2F..%2Fsecret", BadPath::EncodedSeparator),
        ("GET", "/docs/.%2Fsecret", BadPath::EncodedSeparator),
        ("GET", "/docs/secret%2F", BadPath::EncodedSeparator),
        ("GET", "/docs/secret%5C..", BadPath::EncodedSeparator),
        ("GET", "/docs/..\\secret", BadPath::EncodedSeparator),
        ("GET", "/docs/secret;x=1", BadPath::PathParameter),
        ("GET", "/docs/secret%3Bx=1", BadPath::PathParameter),
        ("GET", "/docs/secret%00", BadPath::ControlCharacter),
        ("GET", "/docs/secret%0a", BadPath::ControlCharacter),
        ("GET", "/docs/secret%7F", BadPath::ControlCharacter),
        ("GET", "/docs//secret", BadPath::EmptySegment),
        ("GET", "/docs/secret%ff", BadPath::BadEncoding),
        ("GET", "/docs/secret%2", BadPath::BadEncoding),
        ("GET", "/docs/secret%zz", BadPath::BadEncoding),
    ];
    for (method, path, why) in cases {
        assert_eq!(
            m.map(&check(method, path, &[], &alice), now(), None),
            Mapped::BadPath(*why),
            "{method} {path}"
        );
    }
    // The ordinary forms still map: an encoded space or letter is the
    // same resource the upstream decodes.
    for (path, resource) in [
        ("/docs/a%20b", "doc/a b"),
        ("/docs/%73ecret", "doc/secret"),
        ("/docs/..x", "doc/..x"),
    ] {
        let Mapped::Request(r) = m.map(&check("GET", path, &[], &alice), now(), None) else {
            panic!("{path}")
        };
        assert_eq!(
            r.resource,
            format!("arn:acme:docs:eu-1:123456789012:{resource}"),
            "{path}"
        );
    }
    // Case is part of the name: `SECRET` is another resource (docs/envoy.md).
    let Mapped::Request(r) = m.map(&check("GET", "/docs/SECRET", &[], &alice), now(), None) else {
        panic!()
    };
    assert_eq!(r.resource, "arn:acme:docs:eu-1:123456789012:doc/SECRET");
    // Through the service: a 400 that names no resource.
    let (code, http, body, _) = http_status(&service(true).decide(
        &check(
            "GET",
            "/docs/x%2F..%2Fsecret",
            &[("x-team", "docs")],
            &alice,
        ),
        now(),
    ));
    assert_eq!(
        (code, http, body.as_str()),
        (7, Some(400), r#"{"decision":"BAD_PATH"}"#)
    );
}

#[test]
fn path_parameters_pass_only_when_configured() {
    let mut file: FileMapping = serde_saphyr::from_str(MAPPING).unwrap();
    file.path_parameters = true;
    let m = Mapping::compile(&file).unwrap();
    let alice = [("sub", string("alice"))];
    let Mapped::Request(r) = m.map(&check("GET", "/docs/a;v=1", &[], &alice), now(), None) else {
        panic!()
    };
    assert_eq!(r.resource, "arn:acme:docs:eu-1:123456789012:doc/a;v=1");
    // Dot segments are refused all the same, with their parameters too
    // (`..;` is `..` to servers that strip them).
    assert_eq!(
        m.map(&check("GET", "/docs/..;/x", &[], &alice), now(), None),
        Mapped::BadPath(BadPath::DotSegment),
    );
}

/// Captures are substituted in one pass: a capture that reads `{id}` is
/// text, never a second template.
#[test]
fn captures_are_substituted_once() {
    let file: FileMapping = serde_saphyr::from_str(
        r#"
principal:
  - jwt: {claim: sub}
routes:
  - {path: "/orgs/{org}/docs/{id}", action: "docs:GetDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/{org}/{id}"}
"#,
    )
    .unwrap();
    let m = Mapping::compile(&file).unwrap();
    let alice = [("sub", string("alice"))];
    let Mapped::Request(r) = m.map(
        &check("GET", "/orgs/%7Bid%7D/docs/secret", &[], &alice),
        now(),
        None,
    ) else {
        panic!()
    };
    assert_eq!(
        r.resource,
        "arn:acme:docs:eu-1:123456789012:doc/{id}/secret"
    );
}

/// Every path made of up to four pieces from a list of the forms that have
/// named another resource (dot segments plain and encoded, encoded and raw
/// separators, NUL and control characters, path parameters, double
/// encoding, empty segments), on each route: the mapping never panics, and
/// whatever it turns into a request has a resource without a dot segment,
/// a backslash, a control character or a `;`, whose `{id}` capture is one
/// segment. (The issue's reproductions are the cases above; this is the
/// rest of their class.)
#[test]
fn no_combination_of_traversal_pieces_reaches_another_resource() {
    let m = mapping();
    let alice = [("sub", string("alice"))];
    const PIECES: &[&str] = &[
        "a",
        "..",
        ".",
        "%2e%2e",
        "%2E.",
        "%2f",
        "%5C",
        "\\",
        "%00",
        "%0a",
        ";x=1",
        "%3B",
        "%252e%252e",
        "",
        "A%20b",
        "%",
    ];
    let mut requests = 0;
    let mut paths = vec![String::new()];
    for _ in 0..4 {
        let mut longer = Vec::new();
        for p in &paths {
            for piece in PIECES {
                longer.push(format!("{p}/{piece}"));
                longer.push(format!("{p}{piece}"));
            }
        }
        longer.sort();
        longer.dedup();
        paths.extend(longer);
        paths.sort();
        paths.dedup();
        if paths.len() > 5_000 {
            break;
        }
    }
    for tail in &paths {
        for (method, prefix) in [
            ("GET", "/docs"),
            ("PUT", "/drafts/alice"),
            ("DELETE", "/docs"),
        ] {
            let path = format!("{prefix}{tail}");
            let Mapped::Request(q) = m.map(
                &check(method, &path, &[], &alice),
                jiff::Timestamp::now(),
                None,
            ) else {
                continue;
            };
            requests += 1;
            let resource = q
                .resource
                .strip_prefix("arn:acme:docs:eu-1:123456789012:doc/")
                .unwrap_or_else(|| panic!("{path}: {}", q.resource));
            for segment in resource.split('/') {
                assert!(
                    segment != ".." && segment != ".",
                    "{method} {path}: {resource}"
                );
            }
            assert!(
                !resource.contains('\\')
                    && !resource.contains(';')
                    && !resource.chars().any(char::is_control),
                "{method} {path}: {resource}"
            );
            if method != "PUT" {
                assert!(!resource.contains('/'), "{method} {path}: {resource}");
            }
        }
    }
    // The invariant was checked on real requests, not only on refusals.
    assert!(requests > 100, "only {requests} requests");
}

/// Any JSON value of a verified JWT's claims, up to three levels deep.
fn claim() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Kind::NullValue(0)),
        any::<bool>().prop_map(Kind::BoolValue),
        any::<f64>().prop_map(Kind::NumberValue),
        "(?s).{0,24}".prop_map(Kind::StringValue),
        "[a-z{}/*.%]{0,12}".prop_map(Kind::StringValue),
    ]
    .prop_map(|k| Value { kind: Some(k) });
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| Value {
                kind: Some(Kind::ListValue(ListValue { values })),
            }),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4).prop_map(|m| Value {
                kind: Some(Kind::StructValue(Struct {
                    fields: m.into_iter().collect(),
                })),
            }),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: std::env::var("IAMD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500),
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever the claims and headers of a check (any JSON value for
    /// `sub`, `amr`, `auth_time` and the mapped claims, any text in the
    /// mapped headers), the mapping answers without a panic; a user
    /// principal comes only from a `sub` that has a text (a string, a
    /// number, a boolean), as that text, and a role only from the identity
    /// header, as its value.
    #[test]
    fn any_claims_and_headers_map_without_a_panic_and_only_as_given(
        sub in proptest::option::of(claim()),
        amr in claim(),
        auth_time in claim(),
        groups in claim(),
        identity in proptest::option::of("(?s).{0,24}"),
        team in "(?s).{0,24}",
        path in proptest::sample::select(vec!["/docs/a", "/docs/%7Bid%7D", "/drafts/x/y", "/nope", "/docs/a%00"]),
    ) {
        let m = mapping();
        let mut claims = vec![("amr", amr), ("auth_time", auth_time), ("groups", groups)];
        if let Some(sub) = &sub {
            claims.push(("sub", sub.clone()));
        }
        let mut headers = vec![("x-team", team.as_str())];
        if let Some(id) = &identity {
            headers.push(("x-service-identity", id.as_str()));
        }
        let mapped = m.map(&check("GET", path, &headers, &claims), now(), None);
        // A claim's text (docs/envoy.md): a string as it is, a number or a
        // boolean as its JSON text; a list, an object or null is none.
        let sub_text = match sub.as_ref().and_then(|v| v.kind.as_ref()) {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            Some(Kind::BoolValue(b)) => Some(b.to_string()),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 1e15 => {
                Some(format!("{}", *n as i64))
            }
            Some(Kind::NumberValue(n)) => Some(n.to_string()),
            _ => None,
        };
        if let Mapped::Request(q) | Mapped::AssumeRole { request: q, .. } = &mapped {
            let from_sub = sub_text.as_ref().is_some_and(|s| q.principal == format!("user/{s}"));
            let from_header = identity.as_ref().is_some_and(|i| q.principal == format!("role/{i}"));
            proptest::prop_assert!(from_sub || from_header, "{} from {sub:?} / {identity:?}", q.principal);
        }
    }
}

mod sigv4 {
    use super::*;
    use iamd_credentials::file::{AccessKey, CredentialsFile, Status};
    use iamd_credentials::key::Secret;
    use iamd_credentials::sigv4 as v4;

    const ALICE: &str = "AKIAIOSFODNN7EXAMPLE";
    const BOB: &str = "AKIAI44QH8DHBEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    const SIGNED: &str = r#"
principal:
  - sigv4: {regions: [eu-1]}
  - jwt: {claim: sub}
routes:
  - {method: GET, path: "/docs/{id}", action: "docs:GetDocument", resource: "arn:acme:docs:eu-1:123456789012:doc/{id}"}
context:
  headers: {x-team: docs:Team}
"#;

    /// The credentials store over a file with alice's key (active) and
    /// bob's (inactive), and the directory holding it.
    fn store() -> (Arc<crate::credentials::CredentialStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let key = |id: &str, user: &str, status| AccessKey {
            id: id.into(),
            user: user.into(),
            secret: Secret::new(SECRET.into()),
            status,
            created: None,
        };
        CredentialsFile {
            access_keys: vec![
                key(ALICE, "alice", Status::Active),
                key(BOB, "bob", Status::Inactive),
            ],
            ..CredentialsFile::default()
        }
        .write(dir.path())
        .unwrap();
        let (mut loader, store) = crate::credentials::CredentialLoader::new(dir.path());
        assert_eq!(loader.load(), Ok(true));
        (store, dir)
    }

    /// `headers` plus a SigV4 `Authorization` of `id` for `region` at
    /// `now()`, over host and x-amz-date.
    fn signed(
        method: &str,
        path: &str,
        id: &str,
        region: &str,
        headers: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let date = now().strftime("%Y%m%dT%H%M%SZ").to_string();
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.push((":authority".into(), "docs.internal".into()));
        all.push(("x-amz-date".into(), date.clone()));
        let credential = format!("{id}/{}/{region}/docs/aws4_request", &date[..8]);
        let header = |sig: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, Signature={sig}"
            )
        };
        let placeholder = header(&"0".repeat(64));
        let view: Vec<(&str, &str)> = all
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("authorization", placeholder.as_str())])
            .collect();
        let request = v4::HttpRequest {
            method,
            path,
            headers: &view[..],
            body: None,
        };
        let p = v4::presented(&request).unwrap().unwrap();
        let payload = v4::payload_hash(&request, &p).unwrap();
        let to_sign = v4::string_to_sign(&p, &v4::canonical_request_hash(&request, &p, &payload));
        let sig = v4::sign(
            &v4::signing_key(SECRET, &date[..8], region, "docs"),
            &to_sign,
        );
        all.push(("authorization".into(), header(&sig)));
        all
    }

    fn check_of(method: &str, path: &str, headers: &[(String, String)], id: &str) -> CheckRequest {
        let view: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut c = check(method, path, &view, &[]);
        if let Some(http) = c
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            http.id = id.into();
        }
        c
    }

    fn service(store: Option<Arc<crate::credentials::CredentialStore>>) -> ExtAuthz {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle");
        let file: FileMapping = serde_saphyr::from_str(SIGNED).unwrap();
        let (s, _) = over(Some(&dir), Mapping::compile(&file).unwrap());
        match store {
            Some(store) => s.with_credentials(store),
            None => s,
        }
    }

    #[test]
    fn a_signed_request_is_its_key_s_user_and_a_bad_one_gets_aws_s_error() {
        let (store, _dir) = store();
        let s = service(Some(store.clone()));
        let get = "/docs/guide";
        let alice = signed("GET", get, ALICE, "eu-1", &[("x-team", "docs")]);
        // Mapped: alice, with the scope's region as aws:RequestedRegion.
        let m = Mapping::compile(&serde_saphyr::from_str(SIGNED).unwrap()).unwrap();
        let creds = store.credentials().unwrap();
        let Mapped::Signed {
            request, service, ..
        } = m.map(&check_of("GET", get, &alice, ""), now(), Some(&creds))
        else {
            panic!("not signed");
        };
        assert_eq!(
            (request.principal.as_str(), service.as_str()),
            ("user/alice", "docs")
        );
        assert_eq!(
            single(&request, "aws:RequestedRegion").as_deref(),
            Some("eu-1")
        );
        // Allowed, as alice.
        let (code, http, _, headers) =
            http_status(&s.decide(&check_of("GET", get, &alice, "r1"), now()));
        assert_eq!((code, http), (0, None));
        assert_eq!(headers[0].1, "user/alice");
        // Denied by the policies: AWS's AccessDenied, in the Query
        // protocol's document (the service is not S3), the request ID
        // escaped.
        let ops = signed("GET", get, ALICE, "eu-1", &[("x-team", "ops")]);
        let (code, http, body, _) =
            http_status(&s.decide(&check_of("GET", get, &ops, "<r&2>"), now()));
        assert_eq!((code, http), (7, Some(403)));
        assert_eq!(
            body,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Access Denied</Message></Error><RequestId>&lt;r&amp;2&gt;</RequestId></ErrorResponse>"
        );
        // A bad signature, an inactive key, a region the mapping does not
        // serve: AWS's codes, never the next source.
        // (alice's signature with its first digit changed, and a JWT
        // that would have been good for her.)
        let mut tampered = alice;
        let auth = &mut tampered.last_mut().unwrap().1;
        let at = auth.find("Signature=").unwrap() + "Signature=".len();
        let flipped = if &auth[at..=at] == "0" { "1" } else { "0" };
        auth.replace_range(at..=at, flipped);
        let mut with_jwt = check_of("GET", get, &tampered, "");
        with_jwt.attributes.as_mut().unwrap().metadata_context =
            check("GET", get, &[], &[("sub", string("alice"))])
                .attributes
                .unwrap()
                .metadata_context;
        let bob = signed("GET", get, BOB, "eu-1", &[]);
        let us = signed("GET", get, ALICE, "us-east-1", &[]);
        for (check, code, status) in [
            (with_jwt, "SignatureDoesNotMatch", 403),
            (check_of("GET", get, &bob, ""), "InvalidAccessKeyId", 403),
            (
                check_of("GET", get, &us, ""),
                "AuthorizationHeaderMalformed",
                400,
            ),
        ] {
            let (grpc, http, body, _) = http_status(&s.decide(&check, now()));
            assert_eq!((grpc, http), (16, Some(status)), "{body}");
            assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
            assert!(!body.contains(SECRET));
        }
        // Counted: the good signatures and each refusal by its code.
        let text = s.decider.metrics().render();
        for line in [
            r#"iamd_signatures_total{result="valid"} 2"#,
            r#"iamd_signatures_total{result="SignatureDoesNotMatch"} 1"#,
            r#"iamd_signatures_total{result="InvalidAccessKeyId"} 1"#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        // Unsigned, with a JWT: the next source.
        let (code, _, _, headers) = http_status(&s.decide(
            &check(
                "GET",
                get,
                &[("x-team", "docs")],
                &[("sub", string("alice"))],
            ),
            now(),
        ));
        assert_eq!((code, headers[0].1.as_str()), (0, "user/alice"));
    }

    #[test]
    fn without_live_credentials_a_signed_request_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut loader, store) =
            crate::credentials::CredentialLoader::new(&dir.path().join("missing"));
        assert!(loader.load().is_err());
        let s = service(Some(store));
        let alice = signed("GET", "/docs/guide", ALICE, "eu-1", &[("x-team", "docs")]);
        let (code, http, _, _) =
            http_status(&s.decide(&check_of("GET", "/docs/guide", &alice, ""), now()));
        assert_eq!((code, http), (14, Some(503)));
        // No credentials configured at all: the same.
        let (code, http, _, _) =
            http_status(&service(None).decide(&check_of("GET", "/docs/guide", &alice, ""), now()));
        assert_eq!((code, http), (14, Some(503)));
    }
}
