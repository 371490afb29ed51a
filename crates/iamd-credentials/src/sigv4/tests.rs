use super::*;
use crate::Credentials;
use crate::file::CredentialsFile;

/// AWS's published example ("Create a signed AWS API request", IAM
/// `ListUsers`), with its documented key, canonical request hash and
/// signature.
const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

#[test]
fn aws_published_example() {
    let headers: &[(&str, &str)] = &[
        ("host", "iam.amazonaws.com"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("x-amz-date", "20150830T123600Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        ),
    ];
    let request = HttpRequest {
        method: "GET",
        path: "/?Action=ListUsers&Version=2010-05-08",
        headers,
        body: None,
    };
    let p = presented(&request).unwrap().unwrap();
    assert_eq!(
        (p.key_id(), p.date(), p.region(), p.service()),
        ("AKIDEXAMPLE", "20150830", "us-east-1", "iam")
    );
    assert_eq!(p.signed_at.to_string(), "2015-08-30T12:36:00Z");
    let payload = payload_hash(&request, &p).unwrap();
    let hash = canonical_request_hash(&request, &p, &payload);
    assert_eq!(
        hash,
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    let key = signing_key(EXAMPLE_SECRET, "20150830", "us-east-1", "iam");
    let to_sign = string_to_sign(&p, &hash);
    assert!(signature_matches(&key, &to_sign, &p));
    assert!(!signature_matches(
        &signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz",
            "20150830",
            "us-east-1",
            "iam"
        ),
        &to_sign,
        &p
    ));
}

#[test]
fn paths_are_normalized_except_for_s3() {
    for (path, normalized) in [
        ("", "/"),
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("//a//b/", "/a/b/"),
        ("/a/..", "/"),
        ("/../..", "/"),
        ("/a/%2e%2e/b", "/a/%2e%2e/b"),
    ] {
        assert_eq!(normalize(path), normalized, "{path}");
    }
    assert_eq!(PathRule::for_service("s3"), PathRule::AsSent);
    assert_eq!(PathRule::for_service("docs"), PathRule::Normalized);
}

const ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn credentials(status: &str) -> Credentials {
    let text = format!(
        r#"{{"accessKeys": [{{"accessKeyId": "{ID}", "secretAccessKey": "{SECRET}", "userName": "alice", "status": "{status}"}}]}}"#
    );
    Credentials::new(&CredentialsFile::parse(&text).unwrap(), String::new())
}

/// The `Authorization` header for `headers` (which must hold `host` and
/// `x-amz-date`), signed with `secret` for `service`.
fn authorization(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    service: &str,
    secret: &str,
) -> String {
    authorization_of(ID, method, path, headers, service, secret)
}

/// [`authorization`] for the key `id`.
fn authorization_of(
    id: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    service: &str,
    secret: &str,
) -> String {
    let date = headers.header("x-amz-date").unwrap();
    let mut names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    names.sort_unstable();
    let signed = names.join(";");
    let credential = format!("{id}/{}/eu-1/{service}/aws4_request", &date[..8]);
    let unsigned = format!(
        "{ALGORITHM} Credential={credential}, SignedHeaders={signed}, Signature={}",
        "0".repeat(64)
    );
    let mut all = headers.to_vec();
    all.push(("authorization", &unsigned));
    let request = HttpRequest {
        method,
        path,
        headers: &all[..],
        body: None,
    };
    let p = presented(&request).unwrap().unwrap();
    let payload = payload_hash(&request, &p).unwrap();
    let to_sign = string_to_sign(&p, &canonical_request_hash(&request, &p, &payload));
    let key = signing_key(secret, &date[..8], "eu-1", service);
    format!(
        "{ALGORITHM} Credential={credential}, SignedHeaders={signed}, Signature={}",
        sign(&key, &to_sign)
    )
}

fn now() -> Timestamp {
    "2026-12-04T21:00:00Z".parse().unwrap()
}

fn verify_at(
    creds: &Credentials,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    at: Timestamp,
) -> Result<Option<String>, Code> {
    let request = HttpRequest {
        method,
        path,
        headers,
        body: None,
    };
    creds
        .verify(&request, at)
        .map(|v| v.map(|v| format!("{} {} {}", v.principal, v.region, v.service)))
        .map_err(|e| e.code)
}

#[test]
fn a_valid_signature_names_its_user_and_every_change_breaks_it() {
    let creds = credentials("Active");
    let base: Vec<(&str, &str)> = vec![
        ("host", "docs.internal"),
        ("x-amz-date", "20261204T205900Z"),
    ];
    let path = "/docs/a%20b?prefix=x%2Fy&list-type=2";
    let auth = authorization("GET", path, &base, "docs", SECRET);
    let mut headers = base.clone();
    headers.push(("authorization", &auth));
    assert_eq!(
        verify_at(&creds, "GET", path, &headers, now()),
        Ok(Some("user/alice eu-1 docs".into()))
    );
    // Its last use is recorded (service, region), and kept by the
    // credentials of the next file.
    let used = creds.last_used();
    assert_eq!(used.len(), 1);
    assert_eq!((used[0].0.as_str(), used[0].1.as_str()), (ID, "alice"));
    assert_eq!(
        (used[0].2.service.as_str(), used[0].2.region.as_str()),
        ("docs", "eu-1")
    );
    let next = credentials("Active");
    assert!(next.last_used().is_empty());
    next.carry_last_used(&creds);
    assert_eq!(next.last_used(), used);
    // Unsigned requests are not this verifier's: no answer either way.
    assert_eq!(verify_at(&creds, "GET", path, &base, now()), Ok(None));
    let mut bearer = base.clone();
    bearer.push(("authorization", "Bearer abc"));
    assert_eq!(verify_at(&creds, "GET", path, &bearer, now()), Ok(None));
    // Another method, path, query or host: the signature does not match.
    for (method, p, host) in [
        ("PUT", path, "docs.internal"),
        (
            "GET",
            "/docs/a%20c?prefix=x%2Fy&list-type=2",
            "docs.internal",
        ),
        (
            "GET",
            "/docs/a%20b?prefix=x%2Fz&list-type=2",
            "docs.internal",
        ),
        ("GET", path, "evil.internal"),
    ] {
        let mut changed = headers.clone();
        changed[0] = ("host", host);
        assert_eq!(
            verify_at(&creds, method, p, &changed, now()),
            Err(Code::SignatureDoesNotMatch),
            "{method} {p} {host}"
        );
    }
    // The query's order and encoding of unreserved characters do not
    // matter; extra spaces in a signed header's value do not either.
    let reordered = "/docs/a%20b?list-type=2&prefix=x%2Fy";
    assert_eq!(
        verify_at(&creds, "GET", reordered, &headers, now()),
        Ok(Some("user/alice eu-1 docs".into()))
    );
    // The clock: 15 minutes either way.
    let minutes = |m: i64| {
        now()
            .checked_add(jiff::SignedDuration::from_mins(m))
            .unwrap()
    };
    assert!(verify_at(&creds, "GET", path, &headers, minutes(14)).is_ok());
    assert_eq!(
        verify_at(&creds, "GET", path, &headers, minutes(17)),
        Err(Code::RequestTimeTooSkewed)
    );
    assert_eq!(
        verify_at(&creds, "GET", path, &headers, minutes(-17)),
        Err(Code::RequestTimeTooSkewed)
    );
    // Another secret; an inactive key; an unknown key: refused, and the
    // last two alike.
    let wrong = authorization(
        "GET",
        path,
        &base,
        "docs",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz",
    );
    let mut forged = base.clone();
    forged.push(("authorization", &wrong));
    assert_eq!(
        verify_at(&creds, "GET", path, &forged, now()),
        Err(Code::SignatureDoesNotMatch)
    );
    assert_eq!(
        verify_at(&credentials("Inactive"), "GET", path, &headers, now()),
        Err(Code::InvalidAccessKeyId)
    );
    let other = auth.replace(ID, "AKIAIOSFODNN7EXAMPLF");
    let mut unknown = base.clone();
    unknown.push(("authorization", &other));
    assert_eq!(
        verify_at(&creds, "GET", path, &unknown, now()),
        Err(Code::InvalidAccessKeyId)
    );
    // A session token with a long-term key, a temporary key.
    let mut token = headers.clone();
    token.push(("x-amz-security-token", "abc"));
    assert_eq!(
        verify_at(&creds, "GET", path, &token, now()),
        Err(Code::InvalidClientTokenId)
    );
    let temporary = auth.replace(ID, "ASIAIOSFODNN7EXAMPLE");
    let mut session = base.clone();
    session.push(("authorization", &temporary));
    assert_eq!(
        verify_at(&creds, "GET", path, &session, now()),
        Err(Code::InvalidClientTokenId)
    );
}

#[test]
fn malformed_signatures_get_their_codes() {
    let creds = credentials("Active");
    let date = ("x-amz-date", "20261204T205900Z");
    let sig = "0".repeat(64);
    for (auth, code) in [
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=host"
            ),
            Code::IncompleteSignature,
        ),
        (
            format!("{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, Signature={sig}"),
            Code::IncompleteSignature,
        ),
        (
            format!("{ALGORITHM} SignedHeaders=host, Signature={sig}"),
            Code::IncompleteSignature,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=host, Signature={sig}, Extra=1"
            ),
            Code::IncompleteSignature,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs, SignedHeaders=host, Signature={sig}"
            ),
            Code::AuthorizationHeaderMalformed,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261203/eu-1/docs/aws4_request, SignedHeaders=host, Signature={sig}"
            ),
            Code::AuthorizationHeaderMalformed,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=x-amz-date;host, Signature={sig}"
            ),
            Code::AuthorizationHeaderMalformed,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=x-amz-date, Signature={sig}"
            ),
            Code::AuthorizationHeaderMalformed,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=Host, Signature={sig}"
            ),
            Code::AuthorizationHeaderMalformed,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=host, Signature=xyz"
            ),
            Code::SignatureDoesNotMatch,
        ),
        (
            format!(
                "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=host, Signature={sig}"
            ),
            Code::SignatureDoesNotMatch,
        ),
    ] {
        let headers = [("host", "docs"), date, ("authorization", auth.as_str())];
        assert_eq!(
            verify_at(&creds, "GET", "/", &headers, now()),
            Err(code),
            "{auth}"
        );
    }
    let auth = format!(
        "{ALGORITHM} Credential={ID}/20261204/eu-1/docs/aws4_request, SignedHeaders=host, Signature={sig}"
    );
    let headers = [("host", "docs"), ("authorization", auth.as_str())];
    assert_eq!(
        verify_at(&creds, "GET", "/", &headers, now()),
        Err(Code::IncompleteSignature)
    );
    let headers = [
        ("host", "docs"),
        ("x-amz-date", "2026-12-04T20:59:00Z"),
        ("authorization", auth.as_str()),
    ];
    assert_eq!(
        verify_at(&creds, "GET", "/", &headers, now()),
        Err(Code::AuthorizationHeaderMalformed)
    );
}

#[test]
fn bodies_and_their_hashes() {
    let creds = credentials("Active");
    let body = b"{\"name\": \"report\"}";
    let body_hash = crate::file::hex(digest::digest(&digest::SHA256, body).as_ref());
    let base = [
        ("host", "docs"),
        ("x-amz-date", "20261204T205900Z"),
        ("content-length", "18"),
    ];
    let verify = |headers: &[(&str, &str)], body: Option<&[u8]>| {
        let request = HttpRequest {
            method: "POST",
            path: "/docs",
            headers,
            body,
        };
        creds
            .verify(&request, now())
            .map(|v| v.is_some())
            .map_err(|e| e.code)
    };
    // The body's hash in x-amz-content-sha256, signed: the body may be
    // forwarded or not; a forwarded body that is not the one signed is
    // refused.
    let with_hash: Vec<(&str, &str)> =
        [&base[..], &[("x-amz-content-sha256", body_hash.as_str())]].concat();
    let auth = authorization("POST", "/docs", &with_hash, "docs", SECRET);
    let mut headers = with_hash.clone();
    headers.push(("authorization", &auth));
    assert_eq!(verify(&headers, None), Ok(true));
    assert_eq!(verify(&headers, Some(body)), Ok(true));
    assert_eq!(
        verify(&headers, Some(b"{\"name\": \"secret\"}")),
        Err(Code::XAmzContentSHA256Mismatch)
    );
    // No header: the forwarded body is hashed; without it iamd cannot
    // verify and refuses.
    // (Signed by hand: the body's hash in the canonical request, no header.)
    let names = "content-length;host;x-amz-date";
    let mut unsigned_headers = base.to_vec();
    let credential = format!("{ID}/20261204/eu-1/docs/aws4_request");
    let placeholder = format!(
        "{ALGORITHM} Credential={credential}, SignedHeaders={names}, Signature={}",
        "0".repeat(64)
    );
    unsigned_headers.push(("authorization", &placeholder));
    let request = HttpRequest {
        method: "POST",
        path: "/docs",
        headers: &unsigned_headers[..],
        body: Some(body),
    };
    let p = presented(&request).unwrap().unwrap();
    let to_sign = string_to_sign(&p, &canonical_request_hash(&request, &p, &body_hash));
    let good = format!(
        "{ALGORITHM} Credential={credential}, SignedHeaders={names}, Signature={}",
        sign(&signing_key(SECRET, "20261204", "eu-1", "docs"), &to_sign)
    );
    let mut headers = base.to_vec();
    headers.push(("authorization", &good));
    assert_eq!(verify(&headers, Some(body)), Ok(true));
    assert_eq!(
        verify(&headers, Some(b"{\"name\": \"secret\"}")),
        Err(Code::SignatureDoesNotMatch)
    );
    assert_eq!(verify(&headers, None), Err(Code::SignatureDoesNotMatch));
}

#[test]
fn presigned_urls_work_until_they_expire() {
    let creds = credentials("Active");
    let credential = format!("{ID}%2F20261204%2Feu-1%2Fs3%2Faws4_request");
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date=20261204T205900Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    );
    let path = format!(
        "/reports/2026%2Fq4.pdf?{query}&X-Amz-Signature={}",
        "0".repeat(64)
    );
    let headers: &[(&str, &str)] = &[("host", "s3.internal")];
    let request = HttpRequest {
        method: "GET",
        path: &path,
        headers,
        body: None,
    };
    let p = presented(&request).unwrap().unwrap();
    assert!(p.presigned());
    assert_eq!(payload_hash(&request, &p).unwrap(), UNSIGNED_PAYLOAD);
    let to_sign = string_to_sign(&p, &canonical_request_hash(&request, &p, UNSIGNED_PAYLOAD));
    let signature = sign(&signing_key(SECRET, "20261204", "eu-1", "s3"), &to_sign);
    let url = format!("/reports/2026%2Fq4.pdf?{query}&X-Amz-Signature={signature}");
    let seconds = |s: i64| {
        now()
            .checked_add(jiff::SignedDuration::from_secs(s))
            .unwrap()
    };
    assert_eq!(
        verify_at(&creds, "GET", &url, headers, now()),
        Ok(Some("user/alice eu-1 s3".into()))
    );
    // Valid for its 300 seconds from 20:59:00, then expired.
    assert!(verify_at(&creds, "GET", &url, headers, seconds(240)).is_ok());
    assert_eq!(
        verify_at(&creds, "GET", &url, headers, seconds(241)),
        Err(Code::AccessDenied)
    );
    // Its expiry is signed: a longer one does not match.
    let longer = url.replace("X-Amz-Expires=300", "X-Amz-Expires=3000");
    assert_eq!(
        verify_at(&creds, "GET", &longer, headers, now()),
        Err(Code::SignatureDoesNotMatch)
    );
    for (from, to, code) in [
        (
            "X-Amz-Expires=300",
            "X-Amz-Expires=604801",
            Code::AuthorizationQueryParametersError,
        ),
        (
            "X-Amz-Expires=300",
            "X-Amz-Expires=soon",
            Code::AuthorizationQueryParametersError,
        ),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Algorithm=AWS4-HMAC-SHA1",
            Code::AuthorizationQueryParametersError,
        ),
        (
            "&X-Amz-SignedHeaders=host",
            "",
            Code::AuthorizationQueryParametersError,
        ),
    ] {
        let changed = url.replace(from, to);
        assert_eq!(
            verify_at(&creds, "GET", &changed, headers, now()),
            Err(code),
            "{changed}"
        );
    }
}

#[test]
fn a_plus_in_the_query_is_a_space_and_an_encoded_plus_is_not() {
    let hash = |path: &str| {
        let headers: &[(&str, &str)] = &[
            ("host", "docs"),
            ("x-amz-date", "20261204T205900Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261204/eu-1/docs/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            ),
        ];
        let request = HttpRequest {
            method: "GET",
            path,
            headers,
            body: None,
        };
        let p = presented(&request).unwrap().unwrap();
        canonical_request_hash(&request, &p, UNSIGNED_PAYLOAD)
    };
    assert_eq!(hash("/?q=a+b"), hash("/?q=a%20b"));
    assert_eq!(hash("/?q=a%2Bb"), hash("/?q=a%2bb"));
    assert_ne!(hash("/?q=a+b"), hash("/?q=a%2Bb"));
    // Unreserved characters mean the same encoded or not; the order of
    // the parameters does not matter.
    assert_eq!(hash("/?q=%7E%41&r=1"), hash("/?r=1&q=~A"));
}

/// Whether `creds` accept `request` at `at`, or AWS's code for why not.
fn refusal(
    creds: &Credentials,
    request: &HttpRequest<'_, [(&str, &str)]>,
    at: Timestamp,
) -> Result<(), Code> {
    creds.verify(request, at).map(|_| ()).map_err(|e| e.code)
}

#[test]
fn temporary_credentials_are_their_session_s_until_they_expire() {
    use crate::session::{Session, SessionKey};
    let key = SessionKey::generate(now()).unwrap();
    let text = format!(
        r#"{{"sessionKeys": [{{"id": "{}", "key": "{}"}}]}}"#,
        key.id,
        key.encoded()
    );
    let creds = Credentials::new(&CredentialsFile::parse(&text).unwrap(), String::new());
    let mfa_at = now()
        .checked_sub(jiff::SignedDuration::from_secs(90))
        .unwrap();
    let session = Session::new("user/alice".into(), mfa_at, 120, Some(mfa_at)).unwrap();
    let token = session.seal(&key).unwrap();
    let base = [
        ("host", "docs"),
        ("x-amz-date", "20261204T205900Z"),
        ("x-amz-security-token", token.as_str()),
    ];
    let auth = authorization_of(
        &session.access_key_id,
        "GET",
        "/docs/1",
        &base,
        "docs",
        session.secret.expose(),
    );
    let mut headers = base.to_vec();
    headers.push(("authorization", &auth));
    let request = HttpRequest {
        method: "GET",
        path: "/docs/1",
        headers: &headers[..],
        body: None,
    };
    let v = creds.verify(&request, now()).unwrap().unwrap();
    assert_eq!(v.principal, "user/alice");
    let facts = v.session.unwrap();
    assert_eq!((facts.issued, facts.mfa_at), (mfa_at, Some(mfa_at)));
    // Expired two minutes after it was issued (the signature's time still
    // within the 15 minutes).
    let later = now()
        .checked_add(jiff::SignedDuration::from_secs(60))
        .unwrap();
    assert_eq!(refusal(&creds, &request, later), Err(Code::ExpiredToken));
    // Another session's token with this key ID; no token at all.
    let other = Session::new("user/bob".into(), now(), 3600, None).unwrap();
    let other_token = other.seal(&key).unwrap();
    let mut swapped = headers.clone();
    swapped[2] = ("x-amz-security-token", &other_token);
    let request = HttpRequest {
        headers: &swapped[..],
        ..request
    };
    assert_eq!(
        refusal(&creds, &request, now()),
        Err(Code::InvalidClientTokenId)
    );
    let without: Vec<(&str, &str)> = headers
        .iter()
        .copied()
        .filter(|(k, _)| *k != "x-amz-security-token")
        .collect();
    let request = HttpRequest {
        headers: &without[..],
        ..request
    };
    assert_eq!(
        refusal(&creds, &request, now()),
        Err(Code::InvalidClientTokenId)
    );
}

/// A signed request of AWS's published examples: `headers` (without the
/// `Authorization`), its credential scope and signature; whether iamd
/// computes the same canonical request and accepts the signature.
fn published(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    credential: &str,
    signed: &str,
    signature: &str,
    secret: &str,
) -> String {
    let auth = format!(
        "{ALGORITHM} Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    );
    let mut all = headers.to_vec();
    all.push(("authorization", &auth));
    let request = HttpRequest {
        method,
        path,
        headers: &all[..],
        body: None,
    };
    let p = presented(&request).unwrap().unwrap();
    let payload = payload_hash(&request, &p).unwrap();
    let hash = canonical_request_hash(&request, &p, &payload);
    let key = signing_key(secret, p.date(), p.region(), p.service());
    assert!(
        signature_matches(&key, &string_to_sign(&p, &hash), &p),
        "{method} {path}: not the published signature"
    );
    hash
}

/// AWS's S3 example ("GET Object", the S3 API reference's SigV4 header
/// examples): S3's single encoding, a `Range` header, the empty body's
/// hash in `x-amz-content-sha256`; and the SigV4 test suite's
/// `get-header-key-duplicate` (a header given three times, joined with
/// commas, as Envoy hands it over).
#[test]
fn aws_published_s3_and_test_suite_examples() {
    let hash = published(
        "GET",
        "/test.txt",
        &[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            (
                "x-amz-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            ("x-amz-date", "20130524T000000Z"),
        ],
        "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        // (The S3 reference's example secret has a `/` where the IAM
        // guide's has a `+`.)
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
    assert_eq!(
        hash,
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
    published(
        "GET",
        "/",
        &[
            ("host", "example.amazonaws.com"),
            ("my-header1", "value2,value2,value1"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
        "host;my-header1;x-amz-date",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        EXAMPLE_SECRET,
    );
}
