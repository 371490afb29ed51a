//! The daemon end to end: a real server on an ephemeral port (and a Unix
//! socket), called with the generated client.

use std::sync::Arc;
use std::time::Duration;

use iamd_proto::{Encoded, pb};
use iamd_server::grpc as server;
use iamd_server::limits::RequestLimits;
use iamd_server::reload::{Reloader, Store, Trigger};
use pb::authorizer_client::AuthorizerClient;
use tonic::Code;

use crate::harness::{Daemon, copy_dir, example, example_store, req};
use tonic::transport::Channel;

/// Alice reading the guide, her team's document (the example bundle allows
/// it).
fn alice_reads_guide_request() -> pb::AuthorizeRequest {
    req(
        "user/alice",
        "docs:GetDocument",
        DOC,
        &[("docs:Team", "docs")],
    )
}

/// Whether alice may read the guide.
async fn alice_reads_guide(c: &mut AuthorizerClient<Channel>) -> pb::AuthorizeResponse {
    c.authorize(alice_reads_guide_request())
        .await
        .unwrap()
        .into_inner()
}

const DOC: &str = "arn:acme:docs:eu-1:123456789012:doc/guide";

#[tokio::test(flavor = "multi_thread")]
async fn allow_and_both_denies() {
    let d = Daemon::with_example().await;
    let mut c = d.client().await;
    let a = alice_reads_guide(&mut c).await;
    assert_eq!(a.decision(), pb::Decision::Allow);
    assert!(
        a.revision.starts_with("docs-team-2026-11-28 (sha256:"),
        "{}",
        a.revision
    );
    assert_eq!(a.determining[0].policy, "DocsRead");
    assert_eq!(a.determining[0].sid, "ReadTeamDocuments");
    assert_eq!(a.determining[0].effect(), pb::Effect::Allow);
    let a = c
        .authorize(req(
            "user/bob",
            "docs:DeleteDocument",
            DOC,
            &[("aws:MultiFactorAuthPresent", "false")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.decision(), pb::Decision::ExplicitDeny);
    assert_eq!(
        (
            a.determining[0].policy.as_str(),
            a.determining[0].layer.as_str()
        ),
        ("RequireMfaForDelete", "identity")
    );
    let a = c
        .authorize(req("user/alice", "files:GetFile", "*", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a.decision(), a.denied_by.as_str()),
        (pb::Decision::ImplicitDeny, "identity")
    );
    assert!(a.determining.is_empty());
    let a = c
        .authorize(req("user/mallory", "docs:GetDocument", DOC, &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a.decision(), a.denied_by.as_str()),
        (pb::Decision::ImplicitDeny, "principal")
    );
    assert_eq!(a.reason, "principal `user/mallory` is not in the bundle");
    d.stop().await;
}

/// The fail-open of a session whose role has a path, over gRPC: a Deny
/// naming the role's ARN denies its sessions too, and a caller cannot
/// lift it by claiming another `aws:PrincipalArn`.
#[tokio::test(flavor = "multi_thread")]
async fn a_deny_naming_a_pathed_role_denies_its_sessions_over_grpc() {
    let dir = crate::sessions::pathed_bundle();
    let (store, publisher) = Store::new();
    Reloader::for_dir(dir.path(), publisher).reload(Trigger::Start);
    let d = Daemon::start(store, RequestLimits::default()).await;
    let mut c = d.client().await;
    for (principal, claim) in [
        ("role/indexer", None),
        ("arn:aws:sts::123456789012:assumed-role/indexer/s1", None),
        (
            "arn:aws:sts::123456789012:assumed-role/indexer/s1",
            Some("arn:aws:iam::123456789012:role/indexer"),
        ),
    ] {
        let mut context = vec![("docs:Team", "search")];
        context.extend(claim.map(|c| ("aws:PrincipalArn", c)));
        let r = c
            .authorize(req(
                principal,
                "docs:GetDocument",
                crate::sessions::SECRET,
                &context,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.decision(),
            pb::Decision::ExplicitDeny,
            "{principal} {claim:?}: {r:?}"
        );
        assert_eq!(r.determining[0].sid, "DenyIndexer");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_cannot_claim_principal_facts() {
    let d = Daemon::with_example().await;
    let mut c = d.client().await;
    // alice's team is `docs`: a caller claiming `search` does not get it.
    let claimed = [("docs:Team", "search"), ("AWS:PRINCIPALTAG/Team", "search")];
    let a = c
        .authorize(req("user/alice", "docs:GetDocument", DOC, &claimed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.decision(), pb::Decision::ImplicitDeny);
    // A tag alice does not have at all is dropped too.
    let a = c
        .authorize(req(
            "user/alice",
            "docs:PutDocument",
            "arn:acme:docs:eu-1:123456789012:doc/audit/1",
            &[("aws:PrincipalTag/team", "security")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        a.decision(),
        pb::Decision::ExplicitDeny,
        "the SCP still sees alice's real team"
    );
    // aws:username is alice's, whatever the caller says.
    let a = c
        .authorize(req(
            "user/alice",
            "docs:PutDocument",
            "arn:acme:docs:eu-1:123456789012:doc/drafts/bob/1",
            &[("aws:username", "bob")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.decision(), pb::Decision::ImplicitDeny);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_answer_in_order_within_the_cap() {
    let store = example_store();
    let d = Daemon::start(
        store,
        RequestLimits {
            max_batch: 3,
            ..RequestLimits::default()
        },
    )
    .await;
    let mut c = d.client().await;
    let batch = pb::AuthorizeBatchRequest {
        requests: vec![
            req(
                "user/alice",
                "docs:GetDocument",
                DOC,
                &[("docs:Team", "docs")],
            ),
            req("user/alice", "files:GetFile", "*", &[]),
            req("user/bob", "docs:PurgeDocuments", DOC, &[]),
        ],
        ..Default::default()
    };
    let r = c.authorize_batch(batch.clone()).await.unwrap().into_inner();
    let got: Vec<_> = r.responses.iter().map(|a| a.decision()).collect();
    assert_eq!(
        got,
        [
            pb::Decision::Allow,
            pb::Decision::ImplicitDeny,
            pb::Decision::ExplicitDeny
        ]
    );
    // The revision: in each answer, and once for the batch; with
    // `revision_once`, only once, and the answers are the same otherwise.
    assert!(!r.revision.is_empty());
    assert!(
        r.responses.iter().all(|a| a.revision == r.revision),
        "{r:?}"
    );
    let once = pb::AuthorizeBatchRequest {
        revision_once: true,
        ..batch.clone()
    };
    let o = c.authorize_batch(once).await.unwrap().into_inner();
    assert_eq!(o.revision, r.revision);
    let mut without = r.clone();
    for a in &mut without.responses {
        a.revision.clear();
    }
    assert_eq!(o.responses, without.responses);
    // What it saves on the wire: the revision and its field's two bytes of
    // header, an answer (and a byte of an answer's length, here and there).
    use prost::Message as _;
    let saved = r.encoded_len() - o.encoded_len();
    let each = r.revision.len() + 2;
    assert!((3 * each..=3 * (each + 1)).contains(&saved), "{saved}");
    // With `statement_table`, each statement once a batch and the answers'
    // indices into it: the same statements, answer by answer.
    let mut twice = batch.clone();
    twice.requests.truncate(2);
    twice.requests.push(batch.requests[0].clone());
    let full = c.authorize_batch(twice.clone()).await.unwrap().into_inner();
    let table = pb::AuthorizeBatchRequest {
        statement_table: true,
        ..twice
    };
    let t = c.authorize_batch(table).await.unwrap().into_inner();
    assert!(
        full.statements.is_empty(),
        "no table unless asked: {full:?}"
    );
    for (a, b) in full.responses.iter().zip(&t.responses) {
        assert!(b.determining.is_empty() && a.determining_refs.is_empty());
        let named: Vec<_> = b
            .determining_refs
            .iter()
            .map(|i| t.statements[*i as usize].clone())
            .collect();
        assert_eq!(named, a.determining);
        assert_eq!((a.decision, &a.revision), (b.decision, &b.revision));
    }
    assert!(!full.responses[0].determining.is_empty());
    assert_eq!(
        t.responses[0].determining_refs, t.responses[2].determining_refs,
        "the same statements, one entry each"
    );
    let distinct: std::collections::BTreeSet<_> =
        t.statements.iter().map(|s| format!("{s:?}")).collect();
    assert_eq!(distinct.len(), t.statements.len(), "{t:?}");
    let mut too_many = batch.clone();
    too_many.requests.push(req("user/alice", "a:b", "*", &[]));
    let e = c.authorize_batch(too_many).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .contains("the batch has 4 requests; the server accepts at most 3"),
        "{}",
        e.message()
    );
    let mut bad = batch;
    bad.requests[1].action = "GetFile".into();
    let e = c.authorize_batch(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("requests[1]: `action` `GetFile` is not `service:Action`"),
        "{}",
        e.message()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_arguments() {
    let d = Daemon::with_example().await;
    let mut c = d.client().await;
    let cases = [
        (req("", "docs:Get", "*", &[]), "`principal` is empty"),
        (
            req("user/alice", "docs", "*", &[]),
            "`action` `docs` is not `service:Action`",
        ),
        (
            req("user/alice", "docs:Get", "", &[]),
            "`resource` is empty",
        ),
        (
            req(
                "user/alice",
                "docs:Get",
                "*",
                &[("aws:SourceIp", "1.2.3.4"), ("AWS:SOURCEIP", "5.6.7.8")],
            ),
            "is the same key as",
        ),
    ];
    for (r, want) in cases {
        let e = c.authorize(r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{want}");
        assert!(e.message().contains(want), "{} / {want}", e.message());
    }
    let mut no_value = req("user/alice", "docs:Get", "*", &[]);
    no_value
        .context
        .insert("docs:x".into(), pb::ContextValue { kind: None });
    let e = c.authorize(no_value).await.unwrap_err();
    assert!(
        e.message().contains("context key `docs:x` has no value"),
        "{}",
        e.message()
    );
    // A megabyte string is refused before anything reads it
    // (`limits.maxFieldBytes`).
    let huge = "a".repeat(1 << 20);
    let e = c
        .authorize(req("user/alice", "docs:Get", &huge, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "`resource` has 1048576 bytes; the server accepts at most 4096 in one string (`limits.maxFieldBytes`)"
    );
    // A long value quoted in the error makes a short status, and a long
    // unknown principal a short reason.
    let long = "a".repeat(4_000);
    let e = c
        .authorize(req("user/alice", &long, "*", &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().len() < 300, "{} bytes", e.message().len());
    assert!(
        e.message()
            .contains("…` (4000 bytes) is not `service:Action`"),
        "{}",
        e.message()
    );
    let r = c
        .authorize(req(&format!("user/{long}"), "docs:Get", "*", &[]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.reason.len() < 300, "{} bytes", r.reason.len());
    // Contexts are bounded in keys and in values.
    let mut many = req("user/alice", "docs:Get", "*", &[]);
    for i in 0..1_025 {
        many.context.insert(
            format!("docs:k{i}"),
            pb::ContextValue {
                kind: Some(pb::context_value::Kind::Single(String::new())),
            },
        );
    }
    let e = c.authorize(many).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "the context has 1025 keys; the server accepts at most 1024 (`limits.maxContextKeys`)"
    );
    let mut wide = req("user/alice", "docs:Get", "*", &[]);
    wide.context.insert(
        "docs:tags".into(),
        pb::ContextValue {
            kind: Some(pb::context_value::Kind::Multi(pb::StringList {
                values: vec![String::new(); 4_097],
            })),
        },
    );
    let e = c.authorize(wide).await.unwrap_err();
    assert!(
        e.message()
            .contains("the context has 4097 values; the server accepts at most 4096"),
        "{}",
        e.message()
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_messages_are_refused() {
    let store = example_store();
    let d = Daemon::start(
        store,
        RequestLimits {
            max_message_bytes: 1024,
            ..RequestLimits::default()
        },
    )
    .await;
    let mut c = d.client().await;
    let big = req(
        "user/alice",
        "docs:GetDocument",
        &format!("arn:acme:docs:eu-1:123456789012:doc/{}", "x".repeat(4096)),
        &[],
    );
    let e = c.authorize(big).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_bundle_means_unavailable_and_not_serving_then_a_reload_is_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let (store, publisher) = Store::new();
    let mut reloader = Reloader::for_dir(&dir, publisher);
    reloader.reload(Trigger::Start);
    let d = Daemon::start(store, RequestLimits::default()).await;
    let mut c = d.client().await;
    let e = c
        .authorize(req("user/alice", "docs:GetDocument", DOC, &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message().contains("no policy bundle is loaded"),
        "{}",
        e.message()
    );
    let mut health = HealthClient::new(
        Channel::from_shared(d.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    assert_eq!(
        health.check(check("")).await.unwrap().into_inner().status(),
        ServingStatus::NotServing
    );
    let status = c
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.serving);
    assert!(status.last_failure.unwrap().errors[0].contains("cannot read the bundle directory"));
    // The bundle appears: the next calls are served from it.
    copy_dir(&example(), &dir);
    assert!(matches!(
        reloader.reload(Trigger::Event),
        iamd_server::reload::ReloadOutcome::Loaded(_)
    ));
    let a = alice_reads_guide(&mut c).await;
    assert_eq!(a.decision(), pb::Decision::Allow);
    let mut serving = ServingStatus::NotServing;
    for _ in 0..200 {
        serving = health
            .check(check("iamd.v1.Authorizer"))
            .await
            .unwrap()
            .into_inner()
            .status();
        if serving == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(serving, ServingStatus::Serving);
    let status = c
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(status.serving);
    let live = status.live.unwrap();
    assert_eq!((live.users, live.roles, live.groups), (2, 1, 2));
    assert_eq!(live.digest.len(), 64);
    assert!(status.last_failure.is_none());
    assert_eq!(status.reloads.unwrap().loaded, 1);
    // A change is seen by the next call.
    std::fs::write(
        dir.join("groups.yaml"),
        "- name: developers\n- name: admins\n",
    )
    .unwrap();
    assert!(matches!(
        reloader.reload(Trigger::Event),
        iamd_server::reload::ReloadOutcome::Loaded(_)
    ));
    let a = alice_reads_guide(&mut c).await;
    assert_eq!(a.decision(), pb::Decision::ImplicitDeny);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_sockets_serve_too() {
    unix_socket(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_sockets_serve_on_two_serving_threads() {
    unix_socket(2).await;
}

/// Two connections to a Unix socket served by `workers` threads.
async fn unix_socket(workers: usize) {
    use hyper_util::rt::TokioIo;
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("iamd.sock");
    let store = example_store();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let listen = iamd_server::limits::Listen::Unix(sock.clone());
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let task = tokio::spawn(async move {
        let services = server::Services::new(store, RequestLimits::default(), metrics);
        server::serve_with_workers(&listen, None, services, workers, async {
            let _ = rx.await;
        })
        .await
    });
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..2 {
        let path = sock.clone();
        let channel = tonic::transport::Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .unwrap();
        let mut c = AuthorizerClient::new(channel);
        let a = alice_reads_guide(&mut c).await;
        assert_eq!(a.decision(), pb::Decision::Allow);
    }
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serving_threads_answer_every_connection_and_stop_with_the_server() {
    let store = example_store();
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let d = Daemon::start_workers(store, RequestLimits::default(), metrics, 3).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(AuthorizerClient::new(d.connection().await));
    }
    for c in &mut clients {
        assert_eq!(alice_reads_guide(c).await.decision(), pb::Decision::Allow);
        let denied = c
            .authorize(req("user/alice", "docs:DeleteDocument", DOC, &[]))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(denied.decision(), pb::Decision::Allow);
    }
    // The third thread (other tests run two at most) serves: threads are
    // named per worker. (The cap test shows that consecutive connections go
    // to different threads.)
    let names = thread_names();
    assert!(names.iter().any(|n| n == "iamd-worker-2"), "{names:?}");
    drop(clients);
    // `stop` returns once the server has joined every serving thread.
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let d = Daemon::with_example().await;
    let mut c = ServerReflectionClient::new(
        Channel::from_shared(d.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "iamd.v1.Authorizer",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_v1alpha_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let d = Daemon::with_example().await;
    let mut c = ServerReflectionClient::new(d.connection().await);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let mut stream = c
        .server_reflection_info(tokio_stream::iter([
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "iamd.v1.Authorizer".into(),
            )),
        ]))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("{first:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "iamd.v1.Authorizer",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
    let second = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("{second:?}")
    };
    // The file that defines the service (serialized FileDescriptorProto:
    // its name, package and service names appear as written).
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .find(|f| f.contains("iamd/v1/authorizer.proto"))
        .expect("the file of iamd.v1");
    for name in ["iamd.v1", "Authorizer", "AuthorizeRequest"] {
        assert!(file.contains(name), "{name}");
    }
    d.stop().await;
}

/// GET over plain HTTP/1.1: status code and body.
pub(crate) async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: iamd\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let code = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_endpoints_report_metrics_health_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let (store, publisher) = Store::new();
    let mut reloader = Reloader::for_dir(&dir, publisher);
    reloader.reload(Trigger::Start);
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let admin = iamd_server::admin::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(iamd_server::admin::serve(
        admin,
        store.clone(),
        metrics.clone(),
        None,
        async {
            let _ = rx.await;
        },
    ));
    let grpc = Daemon::start_with(store.clone(), RequestLimits::default(), metrics).await;

    assert_eq!(get(admin_addr, "/healthz").await.0, 200);
    assert_eq!(
        get(admin_addr, "/readyz").await,
        (503, "no bundle loaded\n".to_owned())
    );
    let (_, m) = get(admin_addr, "/metrics").await;
    assert!(
        m.contains("iamd_serving 0")
            && m.contains("iamd_reloads_total{result=\"failed\"} 1")
            && m.contains("iamd_reload_failing 1"),
        "{m}"
    );

    copy_dir(&example(), &dir);
    reloader.reload(Trigger::Event);
    assert_eq!(get(admin_addr, "/readyz").await.0, 200);
    let mut c = grpc.client().await;
    alice_reads_guide(&mut c).await;
    c.authorize(req("user/alice", "files:GetFile", "*", &[]))
        .await
        .unwrap();
    c.authorize(req("user/nobody", "files:GetFile", "*", &[]))
        .await
        .unwrap();
    let batch = pb::AuthorizeBatchRequest {
        requests: vec![req("user/bob", "docs:PurgeDocuments", DOC, &[]); 3],
        ..Default::default()
    };
    c.authorize_batch(batch).await.unwrap();
    let (_, m) = get(admin_addr, "/metrics").await;
    for want in [
        "iamd_decisions_total{outcome=\"allow\"} 1",
        "iamd_decisions_total{outcome=\"implicit_deny\"} 1",
        "iamd_decisions_total{outcome=\"unknown_principal\"} 1",
        "iamd_decisions_total{outcome=\"explicit_deny\"} 3",
        "iamd_decision_duration_seconds_count 6",
        "iamd_batch_size_count 1",
        "iamd_serving 1",
        "iamd_reloads_total{result=\"loaded\"} 1",
        "iamd_reload_failing 0",
        "iamd_bundle_info{digest=\"",
        "label=\"docs-team-2026-11-28\"} 1",
        "# EOF",
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
    let (code, status) = get(admin_addr, "/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["serving"], true);
    assert_eq!(status["live"]["users"], 2);
    assert_eq!(status["reloads"]["failed"], 1);
    assert_eq!(get(admin_addr, "/nope").await.0, 404);
    let _ = tx.send(());
    admin_task.await.unwrap();
    grpc.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_are_logged_with_trace_ids_and_masked_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("decisions.jsonl");
    let options = iamd_server::decision_log::Options {
        mask_keys: vec!["X-Token".into()],
        ..Default::default()
    };
    let log = Arc::new(
        iamd_server::decision_log::DecisionLog::open(path.to_str().unwrap(), options).unwrap(),
    );
    let store = example_store();
    let metrics = iamd_server::admin::Metrics::with_decision_log(store.clone(), Some(log));
    let d = Daemon::start_with(store, RequestLimits::default(), metrics.clone()).await;
    let mut c = d.client().await;
    let mut call = tonic::Request::new(req(
        "user/alice",
        "docs:GetDocument",
        DOC,
        &[("docs:Team", "docs"), ("x-token", "s3cr3t")],
    ));
    call.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    c.authorize(call).await.unwrap();
    c.authorize(req("user/bob", "docs:PurgeDocuments", DOC, &[]))
        .await
        .unwrap();
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for _ in 0..500 {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["decision"], "ALLOW");
    assert_eq!(lines[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[0]["context"]["x-token"], "***");
    assert_eq!(lines[0]["context"]["docs:Team"], "docs");
    assert_eq!(lines[0]["determining"][0]["policy"], "DocsRead");
    assert!(
        lines[0]["revision"]
            .as_str()
            .unwrap()
            .starts_with("docs-team-2026-11-28")
    );
    assert_eq!(lines[1]["decision"], "EXPLICIT_DENY");
    assert!(lines[1].get("traceId").is_none());
    assert!(
        metrics
            .render()
            .contains("iamd_decision_log_dropped_total 0")
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_says_which_layer_which_allow_and_what_is_missing() {
    let d = Daemon::with_example().await;
    let mut c = d.client().await;
    let explain = |mut r: pb::AuthorizeRequest| {
        r.explain = true;
        r
    };
    // alice reads a document: DocsRead needs docs:Team to equal her team.
    let a = c
        .authorize(explain(req("user/alice", "docs:GetDocument", DOC, &[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.decision(), pb::Decision::ImplicitDeny);
    let e = a.explanation.unwrap();
    assert_eq!(e.layer, "identity");
    let n = e.nearest_allow.unwrap();
    assert_eq!(
        (n.policy.as_str(), n.sid.as_str()),
        ("DocsRead", "ReadTeamDocuments")
    );
    assert_eq!(
        e.failed,
        ["condition `StringEquals` on `docs:Team`: the key is absent"]
    );
    assert_eq!(e.missing_context_keys, ["docs:Team"]);
    let a = c
        .authorize(explain(req(
            "user/alice",
            "docs:GetDocument",
            DOC,
            &[("docs:Team", "other")],
        )))
        .await
        .unwrap()
        .into_inner();
    let e = a.explanation.unwrap();
    assert_eq!(
        e.failed,
        ["condition `StringEquals` on `docs:Team` does not hold"]
    );
    assert!(e.missing_context_keys.is_empty());
    // An explicit deny names its layer; an allow has no explanation.
    let a = c
        .authorize(explain(req("user/bob", "docs:PurgeDocuments", DOC, &[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.explanation.unwrap().layer, "boundary");
    let a = c
        .authorize(explain(alice_reads_guide_request()))
        .await
        .unwrap()
        .into_inner();
    assert!(a.explanation.is_none());
    // Without `explain`, no explanation.
    let a = c
        .authorize(req("user/alice", "docs:GetDocument", DOC, &[]))
        .await
        .unwrap()
        .into_inner();
    assert!(a.explanation.is_none());
    let a = c
        .authorize(explain(req("user/nobody", "docs:GetDocument", DOC, &[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.explanation.unwrap().layer, "principal");
    d.stop().await;
}

/// A call whose body never comes: its request stream never sends a
/// message, so the server waits for it until its timeout cuts it.
async fn stall(channel: Channel) -> Result<pb::AuthorizeResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::AuthorizeRequest, pb::AuthorizeResponse>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/iamd.v1.Authorizer/Authorize");
    let never = tokio_stream::pending::<pb::AuthorizeRequest>();
    grpc.client_streaming(tonic::Request::new(never), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_whose_body_never_comes_do_not_hold_the_concurrency_cap() {
    stalled_calls_hold_no_slot(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_whose_body_never_comes_do_not_hold_the_cap_of_any_serving_thread() {
    stalled_calls_hold_no_slot(2).await;
}

/// A unary call whose body carries two messages is refused, not answered
/// for the first (before: `OK`, the second message ignored).
#[tokio::test]
async fn a_unary_call_of_two_messages_is_invalid() {
    let store = example_store();
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let d = Daemon::start_workers(store, RequestLimits::default(), metrics, 1).await;
    let mut grpc = tonic::client::Grpc::new(d.connection().await);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::AuthorizeRequest, pb::AuthorizeResponse>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/iamd.v1.Authorizer/Authorize");
    let one = req("user/alice", "docs:GetDocument", "*", &[]);
    let two = tokio_stream::iter(vec![one.clone(), one]);
    let e = grpc
        .client_streaming(tonic::Request::new(two), path, codec)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("more than one message"), "{e:?}");
    d.stop().await;
}

/// With a cap of one call in flight, stalled calls (headers, no body) on
/// their own connections, and then a well-formed call: the well-formed call
/// is answered at once, and each stalled one is cut at the timeout. Before,
/// the first stalled call took the only slot at its headers, and the
/// well-formed call waited for the timeout to free it. With two workers the
/// connections are dealt in turn, so the stalled calls sit on both threads.
async fn stalled_calls_hold_no_slot(workers: usize) {
    let store = example_store();
    let limits = RequestLimits {
        max_concurrent: 1,
        request_timeout: Duration::from_millis(500),
        ..RequestLimits::default()
    };
    let metrics = iamd_server::admin::Metrics::new(store.clone());
    let d = Daemon::start_workers(store, limits, metrics, workers).await;
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let (channel, done_tx) = (d.connection().await, done_tx.clone());
        stalled.push(tokio::spawn(async move {
            let r = stall(channel).await;
            done_tx.send("stalled").unwrap();
            r
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fine = {
        let (channel, done_tx) = (d.connection().await, done_tx.clone());
        tokio::spawn(async move {
            let request = req(
                "user/alice",
                "docs:GetDocument",
                "arn:acme:docs:eu-1:123456789012:doc/x",
                &[("docs:Team", "docs")],
            );
            let r = AuthorizerClient::new(channel).authorize(request).await;
            done_tx.send("fine").unwrap();
            r
        })
    };
    let mut order = Vec::new();
    for _ in 0..3 {
        let next = tokio::time::timeout(Duration::from_secs(10), done.recv()).await;
        order.push(next.unwrap().unwrap());
    }
    assert_eq!(order[0], "fine", "{order:?}");
    let answer = fine.await.unwrap().unwrap();
    assert_eq!(answer.into_inner().decision(), pb::Decision::Allow);
    for s in stalled {
        let cut = s.await.unwrap().unwrap_err();
        assert_eq!(cut.code(), Code::Cancelled, "{cut:?}");
    }
    d.stop().await;
}

/// An `AuthorizeRequest` whose `principal` carries raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct RawPrincipal {
    #[prost(bytes = "vec", tag = "1")]
    principal: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_does_not_decode_is_an_invalid_argument() {
    let d = Daemon::with_example().await;
    let mut grpc = tonic::client::Grpc::new(d.connection().await);
    grpc.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/iamd.v1.Authorizer/Authorize");
    // Invalid UTF-8 in a string field.
    let bad = RawPrincipal {
        principal: vec![0xff, 0xfe, b'a'],
    };
    let codec = tonic_prost::ProstCodec::<RawPrincipal, pb::AuthorizeResponse>::default();
    let e = grpc
        .unary(tonic::Request::new(bad), path, codec)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(
        e.message()
            .starts_with("the message does not decode as its protobuf type: "),
        "{}",
        e.message()
    );
    d.stop().await;
}

/// gRPC requests as raw bytes, random or a valid message mutated, to both
/// decision methods of a running server: each is answered, `OK` or
/// `INVALID_ARGUMENT` (never `INTERNAL`, `UNKNOWN` or a dropped
/// connection), and the server answers a well-formed call afterwards.
/// Bounded: `IAMD_FUZZ_CASES` cases (200 by default), each one call.
#[test]
fn raw_bytes_on_the_decision_methods_are_answered_or_refused() {
    use proptest::prelude::*;
    use prost::Message as _;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (d, channel) = rt.block_on(async {
        let d = Daemon::with_example().await;
        let channel = d.connection().await;
        (d, channel)
    });
    let valid = req(
        "user/alice",
        "docs:GetDocument",
        "arn:acme:docs:eu-1:123456789012:doc/x",
        &[("docs:Team", "docs"), ("aws:SourceIp", "10.0.0.1")],
    );
    let single = valid.encode_to_vec();
    let batch = pb::AuthorizeBatchRequest {
        requests: vec![valid.clone(), valid.clone()],
        revision_once: true,
        statement_table: true,
    }
    .encode_to_vec();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            prop::sample::select(vec![single, batch]),
            prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
        )
            .prop_map(|(mut b, cuts)| {
                for (at, byte, how) in cuts {
                    let i = at % (b.len() + 1);
                    match how {
                        0 if i < b.len() => b[i] = byte,
                        1 => b.insert(i, byte),
                        _ if i < b.len() => {
                            b.remove(i);
                        }
                        _ => b.push(byte),
                    }
                }
                b
            }),
    ];
    let config = proptest::test_runner::Config {
        cases: crate::properties::cases(200),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&(bytes, any::<bool>()), |(body, batch)| {
        let outcome = rt.block_on(async {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.map_err(|e| e.to_string())?;
            let request = tonic::Request::new(Encoded(body.clone().into()));
            let code = if batch {
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/iamd.v1.Authorizer/AuthorizeBatch",
                );
                let codec =
                    tonic_prost::ProstCodec::<Encoded, pb::AuthorizeBatchResponse>::default();
                grpc.unary(request, path, codec).await.err()
            } else {
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/iamd.v1.Authorizer/Authorize",
                );
                let codec = tonic_prost::ProstCodec::<Encoded, pb::AuthorizeResponse>::default();
                grpc.unary(request, path, codec).await.err()
            };
            Ok::<_, String>(code.map(|s| (s.code(), s.message().to_owned())))
        });
        match outcome {
            Ok(None) => {}
            Ok(Some((Code::InvalidArgument, message))) => {
                prop_assert!(!message.is_empty());
            }
            Ok(Some((code, message))) => {
                prop_assert!(false, "{code:?}: {message} for {body:?} (batch: {batch})");
            }
            Err(e) => prop_assert!(false, "the connection failed: {e} for {body:?}"),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    rt.block_on(async {
        let answer = AuthorizerClient::new(channel)
            .authorize(valid)
            .await
            .unwrap();
        assert_eq!(answer.into_inner().decision(), pb::Decision::Allow);
        d.stop().await;
    });
}
