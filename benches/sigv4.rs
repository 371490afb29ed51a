//! What a SigV4 signature costs in Envoy's `Check`: the same request on
//! the credentials example's bundle, its principal from a trusted header
//! or from a verified AWS Signature Version 4 (as the AWS CLI signs an S3
//! `GetObject`), and the verification alone, with the derived signing key
//! cached (every request of a key after its first of the day) and derived
//! (the first).
//!
//! Run: `cargo bench --bench sigv4` (results in `docs/benchmarks.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark's setup fails loudly"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use iamd_credentials::Credentials;
use iamd_credentials::file::{AccessKey, CredentialsFile, Status};
use iamd_credentials::key::Secret;
use iamd_credentials::sigv4 as v4;

const ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The headers of an AWS CLI `s3api get-object`, signed at `now`.
fn signed_headers(now: jiff::Timestamp) -> HashMap<String, String> {
    let date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut h: HashMap<String, String> = [
        (":authority", "127.0.0.1:10000"),
        (":method", "GET"),
        (":path", "/reports/2026/q4.txt"),
        ("user-agent", "aws-cli/1.46.3 md/Botocore#1.44.8 ua/2.1 os/linux#6.8 md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython m/Z,b cfg/retry-mode#standard botocore/1.44.8"),
        ("accept-encoding", "identity"),
        ("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("x-amz-date", &date),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0d1b2c3a-1111-2222-3333-444455556666"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let credential = format!("{ID}/{}/eu-west-1/s3/aws4_request", &date[..8]);
    let names = "host;x-amz-content-sha256;x-amz-date";
    let header = |sig: &str| {
        format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={names}, Signature={sig}")
    };
    h.insert("authorization".into(), header(&"0".repeat(64)));
    let request = v4::HttpRequest {
        method: "GET",
        path: "/reports/2026/q4.txt",
        headers: &h,
        body: None,
    };
    let p = v4::presented(&request).unwrap().unwrap();
    let payload = v4::payload_hash(&request, &p).unwrap().into_owned();
    let to_sign = v4::string_to_sign(&p, &v4::canonical_request_hash(&request, &p, &payload));
    let sig = v4::sign(
        &v4::signing_key(SECRET, &date[..8], "eu-west-1", "s3"),
        &to_sign,
    );
    h.insert("authorization".into(), header(&sig));
    h
}

fn check(headers: HashMap<String, String>) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: "GET".into(),
                    path: "/reports/2026/q4.txt".into(),
                    scheme: "http".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn file() -> CredentialsFile {
    CredentialsFile {
        access_keys: vec![AccessKey {
            id: ID.into(),
            user: "alice".into(),
            secret: Secret::new(SECRET.into()),
            status: Status::Active,
            created: None,
        }],
        ..CredentialsFile::default()
    }
}

fn service(principal: &str, dir: &Path) -> iamd_server::envoy::ExtAuthz {
    let text = format!(
        "principal: [{principal}]\nroutes:\n  - {{method: GET, path: \"/{{bucket}}/{{key*}}\", action: s3:GetObject, resource: \"arn:aws:s3:::{{bucket}}/{{key}}\"}}\n"
    );
    let mapping: iamd_server::envoy::FileMapping = serde_saphyr::from_str(&text).unwrap();
    let (store, publisher) = iamd_server::reload::Store::new();
    iamd_server::reload::Reloader::for_dir(Path::new("examples/credentials/bundle"), publisher)
        .reload(iamd_server::reload::Trigger::Start);
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let decider = iamd_server::decide::Decider::new(
        store,
        iamd_server::limits::RequestLimits::default(),
        metrics,
    );
    let authz = iamd_server::envoy::ExtAuthz::new(
        decider,
        Arc::new(iamd_server::envoy::Mapping::compile(&mapping).unwrap()),
    );
    file().write(dir).unwrap();
    let (mut loader, creds) = iamd_server::credentials::CredentialLoader::new(dir);
    loader.load().unwrap();
    authz.with_credentials(creds)
}

fn benches(c: &mut Criterion) {
    let now = jiff::Timestamp::now();
    let headers = signed_headers(now);
    let dir = tempfile::tempdir().unwrap();
    let by_header = service(
        "header: {name: x-user, template: \"user/{value}\"}",
        dir.path(),
    );
    let by_signature = service("sigv4: {}", dir.path());
    let mut plain = headers.clone();
    plain.remove("authorization");
    plain.insert("x-user".into(), "alice".into());
    let (header_check, signed_check) = (check(plain), check(headers.clone()));
    // Both allowed: the same decision, only the principal's source differs.
    let allowed =
        |r: &envoy_types::ext_authz::v3::pb::CheckResponse| r.status.as_ref().unwrap().code == 0;
    assert!(allowed(&by_header.decide(&header_check, now)));
    assert!(allowed(&by_signature.decide(&signed_check, now)));
    let mut g = c.benchmark_group("check");
    g.bench_function("header principal", |b| {
        b.iter(|| black_box(by_header.decide(black_box(&header_check), now)))
    });
    g.bench_function("sigv4 principal", |b| {
        b.iter(|| black_box(by_signature.decide(black_box(&signed_check), now)))
    });
    g.finish();
    let creds = Credentials::new(&file(), String::new());
    let request = v4::HttpRequest {
        method: "GET",
        path: "/reports/2026/q4.txt",
        headers: &headers,
        body: None,
    };
    let mut g = c.benchmark_group("sigv4");
    g.bench_function("verify, signing key cached", |b| {
        b.iter(|| black_box(creds.verify(black_box(&request), now).unwrap()))
    });
    let date = now.strftime("%Y%m%d").to_string();
    g.bench_function("derive a signing key", |b| {
        b.iter(|| black_box(v4::signing_key(SECRET, black_box(&date), "eu-west-1", "s3")))
    });
    g.finish();
}

criterion_group!(sigv4, benches);
criterion_main!(sigv4);
