//! The AuthZEN certification scenario (openid/authzen,
//! `certification/authorization-api-1_0-scenario.md`): its fixture is
//! `examples/authzen/bundle` with the default mapping, and each test is
//! named by the scenario's test IDs, run over HTTP against the real
//! listener.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use iamd_server::authzen::{AuthZen, AuthZenServer, FileMapping, Mapping, ServeOptions};
use iamd_server::reload::{Reloader, Store, Trigger};
use serde_json::{Value, json};

/// A PDP on a loopback port, serving the fixture.
struct Pdp {
    addr: std::net::SocketAddr,
    metrics: Arc<iamd_server::admin::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Pdp {
    async fn start() -> Self {
        Self::start_with(ServeOptions::default(), FileMapping::default()).await
    }

    async fn start_with(options: ServeOptions, mapping: FileMapping) -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/authzen/bundle");
        let (store, publisher) = Store::new();
        Reloader::for_dir(&dir, publisher).reload(Trigger::Start);
        assert!(store.bundle().is_some(), "the fixture loads");
        Self::serve(store, options, mapping).await
    }

    async fn serve(store: Arc<Store>, options: ServeOptions, mapping: FileMapping) -> Self {
        Self::serve_tls(store, options, mapping, None).await
    }

    async fn serve_tls(
        store: Arc<Store>,
        options: ServeOptions,
        mapping: FileMapping,
        tls: Option<Arc<iamd_server::tls::Tls>>,
    ) -> Self {
        let metrics = iamd_server::admin::Metrics::new(store.clone());
        let decider = iamd_server::decide::Decider::new(
            store,
            iamd_server::limits::RequestLimits::default(),
            metrics.clone(),
        );
        let api = AuthZen::new(decider, Arc::new(Mapping::compile(&mapping).unwrap()));
        let server = Arc::new(AuthZenServer::new(api, options, tls.is_some()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(iamd_server::authzen::serve(listener, tls, server, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            metrics,
            stop: Some(tx),
            task,
        }
    }

    /// POSTs `body` (JSON) to `path` over HTTP/1.1.
    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Send::post(path, body.to_string())).await
    }

    async fn send(&self, s: Send) -> Answer {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let io = TokioIo::new(stream);
        let request = s.request();
        let response = if s.http2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            sender.send_request(request).await.unwrap()
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        Answer {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap();
    }
}

/// A request to send.
struct Send {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: String,
    http2: bool,
}

impl Send {
    fn post(path: &str, body: String) -> Self {
        Self {
            method: "POST",
            path: path.to_owned(),
            content_type: Some("application/json"),
            headers: Vec::new(),
            body,
            http2: false,
        }
    }

    fn request(&self) -> hyper::Request<Full<Bytes>> {
        let mut b = hyper::Request::builder()
            .method(self.method)
            .uri(format!("http://pdp.test{}", self.path));
        if !self.http2 {
            b = b.header("host", "pdp.test");
        }
        if let Some(ct) = self.content_type {
            b = b.header("content-type", ct);
        }
        for (k, v) in &self.headers {
            b = b.header(*k, v.as_str());
        }
        b.body(Full::new(Bytes::from(self.body.clone()))).unwrap()
    }
}

/// An answer: status, headers and the body (as JSON when it is).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    json: Value,
    text: String,
}

impl Answer {
    /// A 200 whose body is exactly `{"decision": d}`, as JSON.
    fn decision(&self) -> bool {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(
            self.headers["content-type"], "application/json",
            "transport requirement 2"
        );
        let d = self.json["decision"]
            .as_bool()
            .unwrap_or_else(|| panic!("no boolean decision: {}", self.text));
        assert_eq!(
            self.json,
            json!({"decision": d}),
            "nothing but the decision"
        );
        d
    }

    /// The decisions of a batch answer, each object exactly
    /// `{"decision": d}` unless it carries an error.
    fn decisions(&self) -> Vec<bool> {
        assert_eq!(self.status, 200, "{}", self.text);
        assert!(
            self.json.get("decision").is_none(),
            "C.3.3.4: no top-level decision"
        );
        self.json["evaluations"]
            .as_array()
            .unwrap_or_else(|| panic!("no evaluations: {}", self.text))
            .iter()
            .map(|e| e["decision"].as_bool().unwrap())
            .collect()
    }

    /// A 400 whose message contains `needle`.
    fn bad(&self, needle: &str) {
        assert_eq!(self.status, 400, "{}", self.text);
        let m = self.json["error"]["message"].as_str().unwrap_or_default();
        assert!(m.contains(needle), "{m:?} lacks {needle:?}");
        assert_eq!(self.json["error"]["status"], 400);
    }
}

const EVAL: &str = "/access/v1/evaluation";
const EVALS: &str = "/access/v1/evaluations";

fn ask(subject: Value, action: Value, resource: Value) -> Value {
    json!({"subject": subject, "action": action, "resource": resource})
}

fn user(id: &str) -> Value {
    json!({"type": "user", "id": id})
}

fn record(id: &str) -> Value {
    json!({"type": "record", "id": id})
}

fn act(name: &str) -> Value {
    json!({"name": name})
}

#[tokio::test]
async fn c_2_2_1_and_c_2_2_2_fixture_permit_and_deny() {
    let pdp = Pdp::start().await;
    let a = pdp
        .post(EVAL, &ask(user("alice"), act("read"), record("record-1")))
        .await;
    assert!(a.decision(), "rule 1");
    assert!(
        pdp.post(EVAL, &ask(user("alice"), act("write"), record("record-1")))
            .await
            .decision(),
        "rule 2"
    );
    assert!(
        pdp.post(EVAL, &ask(user("bob"), act("read"), record("record-1")))
            .await
            .decision(),
        "rule 3"
    );
    assert!(
        !pdp.post(EVAL, &ask(user("bob"), act("write"), record("record-1")))
            .await
            .decision(),
        "rule 4"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_2_3_context_changes_nothing() {
    let pdp = Pdp::start().await;
    let mut body = ask(user("alice"), act("read"), record("record-1"));
    body["context"] = json!({"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"});
    assert!(pdp.post(EVAL, &body).await.decision());
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_2_4_to_c_2_2_7_properties_decide() {
    let pdp = Pdp::start().await;
    let archived =
        json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
    assert!(
        !pdp.post(EVAL, &ask(user("alice"), act("write"), archived.clone()))
            .await
            .decision(),
        "C.2.2.4, rule 5"
    );
    let admin = json!({"type": "user", "id": "bob", "properties": {"role": "admin"}});
    assert!(
        pdp.post(EVAL, &ask(admin, act("write"), archived))
            .await
            .decision(),
        "C.2.2.5, rule 6"
    );
    let soft = |s: bool| json!({"name": "delete", "properties": {"soft": s}});
    assert!(
        pdp.post(EVAL, &ask(user("alice"), soft(true), record("record-1")))
            .await
            .decision(),
        "C.2.2.6, rule 7"
    );
    assert!(
        !pdp.post(EVAL, &ask(user("alice"), soft(false), record("record-1")))
            .await
            .decision(),
        "C.2.2.7, rule 8"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_2_8_and_c_2_2_9_extra_properties_and_unknown_fields_are_accepted() {
    let pdp = Pdp::start().await;
    let body = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
        "action": {"name": "read", "properties": {"method": "GET"}},
        "resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}}
    });
    assert!(pdp.post(EVAL, &body).await.decision(), "C.2.2.8");
    let mut body = ask(user("alice"), act("read"), record("record-1"));
    body["foo"] = json!("bar");
    body["futureField"] = json!({"nested": true});
    assert!(pdp.post(EVAL, &body).await.decision(), "C.2.2.9");
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_3_the_answer_is_a_boolean_decision_with_an_optional_object_context() {
    let pdp = Pdp::start().await;
    let a = pdp
        .post(EVAL, &ask(user("bob"), act("write"), record("record-1")))
        .await;
    assert!(!a.decision(), "C.2.3.1");
    // With reasons asked for, `context` is an object (C.2.3.2).
    let mut body = ask(user("bob"), act("write"), record("record-1"));
    body["options"] = json!({"iamd_reasons": true});
    let a = pdp.post(EVAL, &body).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["decision"], false);
    let c = &a.json["context"];
    assert_eq!(c["outcome"], "IMPLICIT_DENY", "{c}");
    assert!(
        c["revision"]
            .as_str()
            .unwrap()
            .starts_with("authzen-fixture-1 (sha256:"),
        "{c}"
    );
    assert_eq!(c["denied_by"], "identity", "{c}");
    assert_eq!(c["nearest_allow"]["sid"], "AdminWritesArchived", "{c}");
    let missing = c["missing_context_keys"].as_array().unwrap();
    assert!(missing.contains(&json!("subject:role")), "{c}");
    let mut body = ask(user("alice"), act("read"), record("record-1"));
    body["options"] = json!({"iamd_reasons": true});
    let a = pdp.post(EVAL, &body).await;
    assert_eq!(a.json["decision"], true);
    assert_eq!(
        a.json["context"]["determining"][0]["policy"], "ReadRecords",
        "{}",
        a.text
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_4_bad_requests_are_400_with_the_field_named() {
    let pdp = Pdp::start().await;
    let cases = [
        (
            json!({"action": act("read"), "resource": record("record-1")}),
            "`subject` is missing",
        ),
        (
            json!({"subject": user("alice"), "resource": record("record-1")}),
            "`action` is missing",
        ),
        (
            json!({"subject": user("alice"), "action": act("read")}),
            "`resource` is missing",
        ),
        (
            ask(json!({"id": "alice"}), act("read"), record("record-1")),
            "`subject.type` is missing",
        ),
        (
            ask(json!({"type": "user"}), act("read"), record("record-1")),
            "`subject.id` is missing",
        ),
        (
            ask(user("alice"), json!({}), record("record-1")),
            "`action.name` is missing",
        ),
        (
            ask(user("alice"), act("read"), json!({"id": "record-1"})),
            "`resource.type` is missing",
        ),
        (
            ask(user("alice"), act("read"), json!({"type": "record"})),
            "`resource.id` is missing",
        ),
        (
            ask(json!("alice"), act("read"), record("record-1")),
            "`subject` must be an object, not a string",
        ),
        (
            ask(user("alice"), json!({"name": 123}), record("record-1")),
            "`action.name` must be a string, not a number",
        ),
    ];
    for (body, needle) in cases {
        pdp.post(EVAL, &body).await.bad(needle);
    }
    // Two context fields that are one condition key (keys ignore case).
    let twice = r#"{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "context": {"ip": "1", "IP": "2"}}"#;
    pdp.send(Send::post(EVAL, twice.into()))
        .await
        .bad("context:IP");
    // C.2.4.3: not JSON by its content type.
    let body = ask(user("alice"), act("read"), record("record-1")).to_string();
    let mut s = Send::post(EVAL, body.clone());
    s.content_type = Some("text/plain");
    pdp.send(s)
        .await
        .bad("`Content-Type` is `text/plain`: send `application/json`");
    let mut s = Send::post(EVAL, body.clone());
    s.content_type = None;
    pdp.send(s).await.bad("`Content-Type` is missing");
    let mut s = Send::post(EVAL, body);
    s.content_type = Some("application/json; charset=utf-8");
    assert!(
        pdp.send(s).await.decision(),
        "parameters of the type are fine"
    );
    // C.2.4.4, C.2.4.5.
    pdp.send(Send::post(EVAL, "{\"subject\": ".into()))
        .await
        .bad("the body is not JSON");
    pdp.send(Send::post(EVAL, String::new()))
        .await
        .bad("the body is empty");
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_5_x_request_id_is_echoed_and_c_2_6_answers_are_the_same_each_time() {
    let pdp = Pdp::start().await;
    let body = ask(user("alice"), act("read"), record("record-1")).to_string();
    let mut s = Send::post(EVAL, body.clone());
    s.headers.push((
        "x-request-id",
        "bfe9eb29-ab87-4ca3-be83-a1d5d8305716".into(),
    ));
    let a = pdp.send(s).await;
    assert_eq!(
        a.headers["x-request-id"], "bfe9eb29-ab87-4ca3-be83-a1d5d8305716",
        "C.2.5.1"
    );
    assert!(a.decision());
    let a = pdp.send(Send::post(EVAL, body)).await;
    assert!(
        a.headers.get("x-request-id").is_none(),
        "C.2.5.2: not made up"
    );
    assert!(a.decision());
    // An error keeps the request id too.
    let mut s = Send::post(EVAL, "[]".into());
    s.headers.push(("x-request-id", "r2".into()));
    let a = pdp.send(s).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.headers["x-request-id"], "r2");
    for _ in 0..20 {
        assert!(
            !pdp.post(EVAL, &ask(user("bob"), act("write"), record("record-1")))
                .await
                .decision(),
            "C.2.6"
        );
    }
    pdp.stop().await;
}

#[tokio::test]
async fn c_3_2_1_c_3_2_2_and_c_3_2_5_batches_in_order() {
    let pdp = Pdp::start().await;
    let a = pdp
        .post(
            EVALS,
            &json!({"subject": user("alice"), "action": act("read"),
            "evaluations": [{"resource": record("record-1")}, {"resource": record("record-2")}]}),
        )
        .await;
    assert_eq!(a.decisions().len(), 2, "C.3.2.1");
    let a = pdp
        .post(
            EVALS,
            &json!({"subject": user("bob"), "resource": record("record-1"),
            "evaluations": [{"action": act("read")}, {"action": act("write")}]}),
        )
        .await;
    assert_eq!(a.decisions(), [true, false], "C.3.2.2");
    assert_eq!(
        a.json,
        json!({"evaluations": [{"decision": true}, {"decision": false}]})
    );
    let a = pdp
        .post(
            EVALS,
            &json!({"evaluations": [
            ask(user("alice"), act("read"), record("record-1")),
            ask(user("bob"), act("write"), record("record-1"))]}),
        )
        .await;
    assert_eq!(a.decisions(), [true, false], "C.3.2.5");
    pdp.stop().await;
}

#[tokio::test]
async fn c_3_2_3_c_3_2_4_and_c_3_2_7_batch_properties_and_default_merging() {
    let pdp = Pdp::start().await;
    let with = |id: &str, status: &str| json!({"type": "record", "id": id, "properties": {"status": status}});
    let a = pdp
        .post(EVALS, &json!({"subject": user("alice"), "action": act("write"),
            "evaluations": [{"resource": with("record-1", "active")}, {"resource": with("record-2", "archived")}]}))
        .await;
    assert_eq!(a.decisions(), [true, false], "C.3.2.3");
    let a = pdp
        .post(EVALS, &json!({"action": act("write"), "resource": with("record-2", "archived"),
            "evaluations": [{"subject": user("alice")},
                            {"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}}]}))
        .await;
    assert_eq!(a.decisions(), [false, true], "C.3.2.4");
    let a = pdp
        .post(EVALS, &json!({"subject": user("alice"), "action": act("write"), "resource": {"type": "record"},
            "evaluations": [{"resource": {"id": "record-1", "properties": {"status": "active"}}},
                            {"resource": with("record-2", "archived")}]}))
        .await;
    assert_eq!(a.decisions(), [true, false], "C.3.2.7");
    pdp.stop().await;
}

#[tokio::test]
async fn c_3_2_6_top_level_context_is_inherited_or_overridden() {
    let pdp = Pdp::start().await;
    let a = pdp
        .post(EVALS, &json!({"subject": user("alice"), "action": act("read"),
            "context": {"time": "2025-06-27T18:03-07:00"},
            "evaluations": [{"resource": record("record-1")},
                {"resource": record("record-2"), "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"}}]}))
        .await;
    assert_eq!(a.decisions().len(), 2);
    pdp.stop().await;
}

#[tokio::test]
async fn c_3_4_a_bad_item_is_a_deny_with_its_error_and_no_batch_is_a_single_answer() {
    let pdp = Pdp::start().await;
    let a = pdp
        .post(
            EVALS,
            &json!({"subject": user("alice"), "action": act("read"),
            "evaluations": [{"resource": record("record-1")}, {}, 7]}),
        )
        .await;
    assert_eq!(a.decisions(), [true, false, false], "C.3.4.1");
    assert_eq!(a.json["evaluations"][1]["context"]["error"]["status"], 400);
    assert_eq!(
        a.json["evaluations"][1]["context"]["error"]["message"],
        "evaluations[1]: `resource` is missing"
    );
    assert_eq!(
        a.json["evaluations"][2]["context"]["error"]["message"],
        "`evaluations[2]` must be an object, not a number"
    );
    // Malformed JSON is still a 400 for the whole call.
    pdp.send(Send::post(EVALS, "{\"evaluations\": [".into()))
        .await
        .bad("not JSON");
    // C.3.4.2 and C.3.4.3: no or an empty batch is one evaluation.
    let one = ask(user("alice"), act("read"), record("record-1"));
    assert!(pdp.post(EVALS, &one).await.decision(), "C.3.4.2");
    let mut empty = one.clone();
    empty["evaluations"] = json!([]);
    assert!(pdp.post(EVALS, &empty).await.decision(), "C.3.4.3");
    pdp.stop().await;
}

#[tokio::test]
async fn batches_stop_where_their_semantic_says() {
    let pdp = Pdp::start().await;
    let batch = |semantic: &str| {
        json!({"subject": user("bob"), "resource": record("record-1"),
            "options": {"evaluations_semantic": semantic},
            "evaluations": [{"action": act("read")}, {"action": act("write")}, {"action": act("read")}]})
    };
    assert_eq!(
        pdp.post(EVALS, &batch("execute_all")).await.decisions(),
        [true, false, true]
    );
    assert_eq!(
        pdp.post(EVALS, &batch("deny_on_first_deny"))
            .await
            .decisions(),
        [true, false]
    );
    assert_eq!(
        pdp.post(EVALS, &batch("permit_on_first_permit"))
            .await
            .decisions(),
        [true]
    );
    pdp.post(EVALS, &batch("some"))
        .await
        .bad("`options.evaluations_semantic` `some` is not one of");
    pdp.stop().await;
}

#[tokio::test]
async fn an_unmapped_subject_type_is_a_deny_counted_as_an_unknown_principal() {
    let pdp = Pdp::start().await;
    let a = pdp
        .post(
            EVAL,
            &ask(
                json!({"type": "spaceship", "id": "alice"}),
                act("read"),
                record("record-1"),
            ),
        )
        .await;
    assert!(!a.decision());
    let a = pdp
        .post(EVAL, &ask(user("nobody"), act("read"), record("record-1")))
        .await;
    assert!(!a.decision());
    let text = pdp.metrics.render();
    assert!(
        text.contains("iamd_decisions_total{outcome=\"unknown_principal\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("iamd_authzen_requests_total{endpoint=\"evaluation\",code=\"200\"} 2"),
        "{text}"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_6_the_metadata_names_every_endpoint_under_the_base_url() {
    let pdp = Pdp::start().await;
    let mut s = Send::post("/.well-known/authzen-configuration", String::new());
    s.method = "GET";
    s.content_type = None;
    let a = pdp.send(s).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(
        a.json,
        json!({
            "policy_decision_point": "http://pdp.test",
            "access_evaluation_endpoint": "http://pdp.test/access/v1/evaluation",
            "access_evaluations_endpoint": "http://pdp.test/access/v1/evaluations",
            "search_subject_endpoint": "http://pdp.test/access/v1/search/subject",
            "search_resource_endpoint": "http://pdp.test/access/v1/search/resource",
            "search_action_endpoint": "http://pdp.test/access/v1/search/action",
        })
    );
    pdp.stop().await;
    let pdp = Pdp::start_with(
        ServeOptions {
            base_url: Some("https://pdp.example.com/".into()),
            ..ServeOptions::default()
        },
        FileMapping::default(),
    )
    .await;
    let mut s = Send::post("/.well-known/authzen-configuration", String::new());
    s.method = "GET";
    let a = pdp.send(s).await;
    assert_eq!(a.json["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(
        a.json["access_evaluation_endpoint"],
        "https://pdp.example.com/access/v1/evaluation"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn http2_wrong_methods_paths_big_bodies_and_tokens() {
    let pdp = Pdp::start_with(
        ServeOptions {
            tokens: vec!["s3cret-token".into()],
            api_key_header: Some(hyper::header::HeaderName::from_static("x-api-key")),
            max_body_bytes: 2048,
            ..ServeOptions::default()
        },
        FileMapping::default(),
    )
    .await;
    let body = ask(user("alice"), act("read"), record("record-1")).to_string();
    // No token, a wrong one: 401, with the challenge; the token never echoed.
    let a = pdp.send(Send::post(EVAL, body.clone())).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let mut s = Send::post(EVAL, body.clone());
    s.headers.push(("authorization", "Bearer wrong".into()));
    let a = pdp.send(s).await;
    assert_eq!(a.status, 401);
    assert!(!a.text.contains("s3cret"));
    // The bearer token, over HTTP/2 (prior knowledge), and the API key.
    let mut s = Send::post(EVAL, body.clone());
    s.headers
        .push(("authorization", "Bearer s3cret-token".into()));
    s.http2 = true;
    assert!(pdp.send(s).await.decision());
    let mut s = Send::post(EVAL, body.clone());
    s.headers.push(("x-api-key", "s3cret-token".into()));
    assert!(pdp.send(s).await.decision());
    // Too big.
    let mut big = ask(user("alice"), act("read"), record("record-1"));
    big["context"] = json!({"pad": "x".repeat(4096)});
    let mut s = Send::post(EVAL, big.to_string());
    s.headers
        .push(("authorization", "Bearer s3cret-token".into()));
    let a = pdp.send(s).await;
    assert_eq!(a.status, 413, "{}", a.text);
    assert!(
        a.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2048 bytes")
    );
    // A wrong method, an unknown path.
    let mut s = Send::post(EVAL, body.clone());
    s.method = "GET";
    let a = pdp.send(s).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST");
    let a = pdp.send(Send::post("/access/v1/nothing", body)).await;
    assert_eq!(a.status, 404);
    pdp.stop().await;
}

#[tokio::test]
async fn no_bundle_is_503_never_an_allow() {
    let (store, _publisher) = Store::new();
    let pdp = Pdp::serve(store, ServeOptions::default(), FileMapping::default()).await;
    let a = pdp
        .post(EVAL, &ask(user("alice"), act("read"), record("record-1")))
        .await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(a.json.get("decision").is_none());
    pdp.stop().await;
}

const SUBJECTS: &str = "/access/v1/search/subject";
const RESOURCES: &str = "/access/v1/search/resource";
const ACTIONS: &str = "/access/v1/search/action";

impl Answer {
    /// A search answer's results, each checked to be of `kind` (subjects
    /// and resources) or to have a name (actions); its `page.next_token`.
    fn results(&self, kind: Option<&str>) -> (Vec<String>, String) {
        assert_eq!(self.status, 200, "{}", self.text);
        assert_eq!(self.headers["content-type"], "application/json");
        let results = self.json["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results: {}", self.text));
        let names = results
            .iter()
            .map(|r| match kind {
                Some(k) => {
                    assert_eq!(r["type"], k, "{r}");
                    r["id"].as_str().unwrap().to_owned()
                }
                None => r["name"].as_str().unwrap().to_owned(),
            })
            .collect();
        let token = self.json["page"]["next_token"].as_str().unwrap().to_owned();
        (names, token)
    }
}

#[tokio::test]
async fn c_4_2_subject_search_is_who_can() {
    let pdp = Pdp::start().await;
    let q =
        json!({"subject": {"type": "user"}, "action": act("read"), "resource": record("record-1")});
    let (who, next) = pdp.post(SUBJECTS, &q).await.results(Some("user"));
    assert_eq!(who, ["alice", "bob"], "C.4.2.1");
    assert_eq!(next, "");
    let mut with_context = q.clone();
    with_context["context"] = json!({"time": "2025-06-27T18:03-07:00"});
    assert_eq!(
        pdp.post(SUBJECTS, &with_context)
            .await
            .results(Some("user"))
            .0,
        ["alice", "bob"],
        "C.4.2.2"
    );
    let mut with_id = q.clone();
    with_id["subject"]["id"] = json!("alice");
    assert_eq!(
        pdp.post(SUBJECTS, &with_id).await.results(Some("user")).0,
        ["alice", "bob"],
        "C.4.2.3: the id is ignored"
    );
    let archived = json!({"subject": {"type": "user"}, "action": act("write"),
        "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}});
    assert_eq!(
        pdp.post(SUBJECTS, &archived).await.results(Some("user")).0,
        ["bob"],
        "C.4.2.4"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_3_resource_search_is_on_what() {
    let pdp = Pdp::start().await;
    let q =
        json!({"subject": user("alice"), "action": act("read"), "resource": {"type": "record"}});
    assert_eq!(
        pdp.post(RESOURCES, &q).await.results(Some("record")).0,
        ["record-1", "record-2"],
        "C.4.3.1"
    );
    let mut with_id = q.clone();
    with_id["resource"]["id"] = json!("record-9");
    assert_eq!(
        pdp.post(RESOURCES, &with_id)
            .await
            .results(Some("record"))
            .0,
        ["record-1", "record-2"],
        "C.4.3.2"
    );
    let admin = json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
        "action": act("write"), "resource": {"type": "record"}});
    assert_eq!(
        pdp.post(RESOURCES, &admin).await.results(Some("record")).0,
        ["record-2"],
        "C.4.3.3"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_4_action_search_is_what_can() {
    let pdp = Pdp::start().await;
    let q = json!({"subject": user("alice"), "resource": record("record-1")});
    assert_eq!(
        pdp.post(ACTIONS, &q).await.results(None).0,
        ["read", "write"],
        "C.4.4.1: delete needs action.properties"
    );
    let mut with_context = q.clone();
    with_context["context"] = json!({"time": "now"});
    assert_eq!(
        pdp.post(ACTIONS, &with_context).await.results(None).0,
        ["read", "write"],
        "C.4.4.2"
    );
    let admin = json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
        "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}});
    assert_eq!(
        pdp.post(ACTIONS, &admin).await.results(None).0,
        ["read", "write"],
        "C.4.4.3"
    );
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_5_pages_follow_their_tokens() {
    let pdp = Pdp::start().await;
    let q = json!({"subject": {"type": "user"}, "action": act("read"), "resource": record("record-1"), "page": {"limit": 1}});
    let (first, token) = pdp.post(SUBJECTS, &q).await.results(Some("user"));
    assert_eq!(first, ["alice"], "C.4.5.1");
    assert!(!token.is_empty(), "more to come");
    let mut next = q.clone();
    next["page"] = json!({"token": token});
    let (second, end) = pdp.post(SUBJECTS, &next).await.results(Some("user"));
    assert_eq!(second, ["bob"], "C.4.5.2");
    assert_eq!(end, "", "C.4.5.3: the end");
    let mut forged = q.clone();
    forged["page"] = json!({"token": "0@0123456789ab"});
    pdp.post(SUBJECTS, &forged)
        .await
        .bad("from another bundle revision");
    forged["page"] = json!({"token": "nonsense"});
    pdp.post(SUBJECTS, &forged)
        .await
        .bad("is not one this PDP made");
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_6_nothing_found_is_an_empty_list_and_c_4_7_missing_fields_are_400() {
    let pdp = Pdp::start().await;
    let unknown = json!({"subject": user("nonexistent-user"), "resource": record("record-1")});
    assert_eq!(
        pdp.post(ACTIONS, &unknown).await.results(None).0,
        Vec::<String>::new(),
        "C.4.6.1"
    );
    let spaceship = json!({"subject": {"type": "spaceship"}, "action": act("read"), "resource": record("record-1")});
    assert_eq!(
        pdp.post(SUBJECTS, &spaceship)
            .await
            .results(Some("spaceship"))
            .0,
        Vec::<String>::new(),
        "C.4.6.2"
    );
    let strange =
        json!({"subject": user("alice"), "action": act("read"), "resource": {"type": "planet"}});
    assert_eq!(
        pdp.post(RESOURCES, &strange)
            .await
            .results(Some("planet"))
            .0,
        Vec::<String>::new()
    );
    for (path, body, needle) in [
        (
            SUBJECTS,
            json!({"subject": {"type": "user"}, "resource": record("record-1")}),
            "`action` is missing",
        ),
        (
            RESOURCES,
            json!({"action": act("read"), "resource": {"type": "record"}}),
            "`subject` is missing",
        ),
        (
            ACTIONS,
            json!({"subject": user("alice")}),
            "`resource` is missing",
        ),
        (
            SUBJECTS,
            json!({"subject": {"type": "user"}, "action": act("read"), "resource": {"type": "record"}}),
            "`resource.id` is missing",
        ),
        (
            RESOURCES,
            json!({"subject": {"type": "user"}, "action": act("read"), "resource": {"type": "record"}}),
            "`subject.id` is missing",
        ),
    ] {
        pdp.post(path, &body).await.bad(needle);
    }
    pdp.stop().await;
}

// === the JSON front door under random input ===

mod fuzz {
    use super::*;
    use iamd_server::authzen::Endpoint;
    use proptest::prelude::*;

    /// The fixture's API, without the transport (the same `answer` the
    /// listener calls).
    fn api() -> &'static AuthZen {
        static API: std::sync::OnceLock<AuthZen> = std::sync::OnceLock::new();
        API.get_or_init(|| {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/authzen/bundle");
            let (store, publisher) = Store::new();
            Reloader::for_dir(&dir, publisher).reload(Trigger::Start);
            let metrics = iamd_server::admin::Metrics::new(store.clone());
            let decider = iamd_server::decide::Decider::new(
                store,
                iamd_server::limits::RequestLimits::default(),
                metrics,
            );
            let mapping = Mapping::compile(&FileMapping::default()).unwrap();
            AuthZen::new(decider, Arc::new(mapping))
        })
    }

    /// Any JSON value, nested a few levels; strings from an alphabet that
    /// cannot spell a subject the fixture allows.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[xyz:/*?\\\\\"\u{e9}\u{0}-\u{1f}]{0,6}".prop_map(Value::from),
            prop_oneof![
                Just("user"),
                Just("record"),
                Just("read"),
                Just("write"),
                Just("record-1")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("subject".to_owned()),
                        Just("action".to_owned()),
                        Just("resource".to_owned()),
                        Just("context".to_owned()),
                        Just("evaluations".to_owned()),
                        Just("options".to_owned()),
                        Just("page".to_owned()),
                        Just("type".to_owned()),
                        Just("id".to_owned()),
                        Just("name".to_owned()),
                        Just("properties".to_owned()),
                        Just("evaluations_semantic".to_owned()),
                        Just("token".to_owned()),
                        Just("limit".to_owned()),
                        "[a-z]{1,3}",
                    ],
                    inner,
                    0..5,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Checks one answer: a 200 or a 4xx/503, a JSON body, and no allow.
    fn check(endpoint: Endpoint, body: &str) -> Result<(), TestCaseError> {
        let reply = api().answer(endpoint, body, jiff::Timestamp::now(), None);
        prop_assert!(matches!(reply.status, 200 | 400), "status {}", reply.status);
        let json: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
        if reply.status == 400 {
            prop_assert!(
                json["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
        // No generated subject is alice or bob: nothing is allowed, and no
        // search finds anyone (a generated id is ignored there).
        let text = String::from_utf8_lossy(&reply.body);
        prop_assert!(
            !text.contains("\"decision\":true"),
            "an allow: {body} -> {text}"
        );
        Ok(())
    }

    const ENDPOINTS: [Endpoint; 5] = [
        Endpoint::Evaluation,
        Endpoint::Evaluations,
        Endpoint::SearchSubject,
        Endpoint::SearchResource,
        Endpoint::SearchAction,
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: crate::properties::cases(400), ..ProptestConfig::default() })]

        #[test]
        fn random_json_is_a_4xx_or_a_deny_never_a_panic_or_an_allow(
            v in json_value(),
            e in 0..5usize,
        ) {
            check(ENDPOINTS[e], &v.to_string())?;
        }

        #[test]
        fn broken_bytes_are_a_400_with_a_message(
            cut in 0..120usize,
            insert in "[{}\\[\\]\",:\\\\ a0]{0,3}",
            e in 0..5usize,
        ) {
            let good = r#"{"subject":{"type":"user","id":"xy"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"},"evaluations":[{}]}"#;
            let at = cut.min(good.len());
            let body = format!("{}{insert}{}", &good[..at], &good[at..]);
            check(ENDPOINTS[e], &body)?;
        }
    }

    #[test]
    fn deep_nesting_and_wrong_top_levels_are_refused_with_a_message() {
        // Ten thousand levels: read without recursion where skipped, and
        // past serde's limit of 128 where read.
        let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep = format!("{{\"context\":{arrays}}}");
        let r = api().answer(Endpoint::Evaluation, &deep, jiff::Timestamp::now(), None);
        assert_eq!(r.status, 400);
        let m = String::from_utf8(r.body).unwrap();
        assert!(
            m.contains("`context` must be an object, not an array"),
            "{m}"
        );
        let deep = format!(
            r#"{{"subject":{{"type":"user","id":"alice"}},"action":{{"name":"read"}},"resource":{{"type":"record","id":"record-1"}},"context":{{"a":{arrays}}}}}"#
        );
        let r = api().answer(Endpoint::Evaluation, &deep, jiff::Timestamp::now(), None);
        let m = String::from_utf8(r.body).unwrap();
        assert_eq!(r.status, 400, "{m}");
        assert!(
            m.contains("\"`context.a`: recursion limit exceeded\""),
            "{m}"
        );
        let deep_properties = format!(
            r#"{{"subject":{{"type":"user","id":"alice","properties":{}1{}}},"action":{{"name":"read"}},"resource":{{"type":"record","id":"record-1"}}}}"#,
            "{\"a\":".repeat(20),
            "}".repeat(20)
        );
        let r = api().answer(
            Endpoint::Evaluation,
            &deep_properties,
            jiff::Timestamp::now(),
            None,
        );
        let m = String::from_utf8(r.body).unwrap();
        assert_eq!(r.status, 400, "{m}");
        assert!(m.contains("nests objects more than 8 deep"), "{m}");
        for body in ["null", "1", "true", "\"x\"", "[]"] {
            let r = api().answer(Endpoint::Evaluation, body, jiff::Timestamp::now(), None);
            assert_eq!(r.status, 400, "{body}");
        }
    }
}

// === TLS and mutual TLS, with the gRPC listener's files ===

mod tls {
    use super::*;
    use crate::tls::{Ca, Leaf, write_server_files};
    use tokio_rustls::rustls;

    /// A client's TLS configuration: trusting `ca`, presenting `identity`,
    /// offering `alpn`.
    fn client(ca: &Ca, identity: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(leaf) => {
                let chain = rustls_pki_types::CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
                    .map(Result::unwrap)
                    .collect();
                let key =
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// POSTs `body` over TLS; the negotiated protocol and the answer, or
    /// the error.
    async fn post(
        addr: std::net::SocketAddr,
        config: Arc<rustls::ClientConfig>,
        path: &str,
        body: &Value,
    ) -> Result<(Option<Vec<u8>>, Answer), String> {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(stream);
        let request = hyper::Request::builder()
            .method("POST")
            .uri(format!("https://localhost{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = if alpn.as_deref() == Some(b"h2") {
            let (mut s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            s.send_request(request).await.map_err(|e| e.to_string())?
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let mut request = request;
            request
                .headers_mut()
                .insert("host", hyper::header::HeaderValue::from_static("localhost"));
            s.send_request(request).await.map_err(|e| e.to_string())?
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((
            alpn,
            Answer {
                status,
                headers,
                json,
                text,
            },
        ))
    }

    #[tokio::test]
    async fn mutual_tls_serves_http2_and_http1_to_clients_with_a_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
        let files = write_server_files(
            dir.path(),
            &server_ca.issue(&["localhost"]),
            Some(&client_ca),
        );
        let tls = Arc::new(iamd_server::tls::Tls::load(files).unwrap());
        let bundle =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/authzen/bundle");
        let (store, publisher) = Store::new();
        Reloader::for_dir(&bundle, publisher).reload(Trigger::Start);
        let pdp = Pdp::serve_tls(
            store,
            ServeOptions::default(),
            FileMapping::default(),
            Some(tls),
        )
        .await;
        let addr = pdp.addr;
        let me = client_ca.issue(&["gateway.acme.example"]);
        let body = ask(user("alice"), act("read"), record("record-1"));
        for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
            let (got, a) = post(addr, client(&server_ca, Some(&me), &[alpn]), EVAL, &body)
                .await
                .unwrap();
            assert_eq!(got.as_deref(), Some(alpn));
            assert!(a.decision(), "{a:?}");
        }
        // No certificate, or one another CA signed: no answer.
        let stranger = Ca::new("stranger").issue(&["gateway.acme.example"]);
        for identity in [None, Some(&stranger)] {
            let r = post(addr, client(&server_ca, identity, &[b"h2"]), EVAL, &body).await;
            assert!(r.is_err(), "answered without a trusted certificate: {r:?}");
        }
        // Counted as the gRPC listener counts them (the last one may still
        // be failing on the server's side when the client gives up).
        for _ in 0..100 {
            if pdp
                .metrics
                .render()
                .contains("iamd_tls_handshake_failures_total 2")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let text = pdp.metrics.render();
        assert!(
            text.contains("iamd_tls_handshake_failures_total 2"),
            "{text}"
        );
        pdp.stop().await;
    }
}

#[test]
fn serve_with_authzen_listen_then_authorize_over_authzen() {
    use crate::cli::{free_port, iamd, stop, wait_serving};
    let (grpc, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args([
            "serve",
            "--bundle",
            "examples/authzen/bundle",
            "--listen",
            &grpc,
        ])
        .args(["--admin-listen", "127.0.0.1:0", "--authzen-listen", &http])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_serving(&mut server, &grpc);
    let url = format!("http://{http}");
    let ask = |extra: &[&str]| {
        let mut args = vec!["authorize", "--authzen", "--addr", &url];
        args.extend_from_slice(extra);
        let out = iamd(&args, "");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = ask(&[
        "--principal",
        "user/alice",
        "--action",
        "read",
        "--resource",
        "record/record-1",
    ]);
    assert_eq!((code, out.as_str()), (Some(0), "ALLOW\n"), "{err}");
    let (code, out, err) = ask(&[
        "--principal",
        "user/bob",
        "--action",
        "write",
        "--resource",
        "record/record-1",
        "--explain",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("IMPLICIT_DENY  (bundle authzen-fixture-1 (sha256:"),
        "{out}"
    );
    assert!(
        out.contains("nearest allow: AdminWrites statement 0 `AdminWritesArchived` (identity)"),
        "{out}"
    );
    assert!(
        out.contains("missing context keys: subject:role, resource:status"),
        "{out}"
    );
    let (code, out, _) = ask(&[
        "--principal",
        "user/alice",
        "--action",
        "write",
        "--resource",
        "record/record-1",
        "--context",
        "ip=10.0.0.1",
        "--json",
    ]);
    assert_eq!((code, out.as_str()), (Some(0), "{\"decision\":true}\n"));
    let (code, _, err) = ask(&[
        "--principal",
        "alice",
        "--action",
        "read",
        "--resource",
        "record/record-1",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("over AuthZEN write `TYPE/ID`"), "{err}");
    stop(&mut server);
}

#[test]
fn who_can_and_what_can_answer_offline_from_the_bundle() {
    use crate::cli::iamd;
    let run = |args: &[&str]| {
        let out = iamd(args, "");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let b = "examples/authzen/bundle";
    assert_eq!(
        run(&[
            "who-can",
            b,
            "--action",
            "record:read",
            "--resource",
            "arn:authzen:record:::record-1"
        ]),
        "user/alice\nuser/bob\n"
    );
    // Properties are condition keys offline too: the archived record.
    let archived = ["--context", "resource:status=archived"];
    let mut args = vec![
        "who-can",
        b,
        "--action",
        "record:write",
        "--resource",
        "arn:authzen:record:::record-2",
    ];
    args.extend(archived);
    assert_eq!(run(&args), "user/bob\n");
    args.push("--json");
    assert_eq!(run(&args), "[\"user/bob\"]\n");
    assert_eq!(
        run(&[
            "what-can",
            b,
            "--principal",
            "user/alice",
            "--resource",
            "arn:authzen:record:::record-1"
        ]),
        "record:read\nrecord:write\n"
    );
    assert_eq!(
        run(&[
            "what-can",
            b,
            "--principal",
            "user/alice",
            "--resource",
            "arn:authzen:record:::record-1",
            "--context",
            "action:soft=true"
        ]),
        "record:delete\nrecord:read\nrecord:write\n"
    );
    assert_eq!(run(&["what-can", b, "--principal", "user/nobody"]), "");
    let out = iamd(&["who-can", "no/such/bundle", "--action", "a:b"], "");
    assert_eq!(out.status.code(), Some(2));
}

/// The request cap counts requests being decided, not peers slow to send
/// their body: with one permit, a request whose body never comes does not
/// keep the next one waiting (before: the next one waited for the permit
/// and got 408). A connection that says nothing is cut at the handshake
/// timeout.
#[tokio::test]
async fn the_permit_is_taken_after_the_body_and_silent_connections_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pdp = Pdp::start_with(
        ServeOptions {
            max_concurrent: 1,
            timeout: std::time::Duration::from_secs(3),
            connections: iamd_server::limits::ConnectionLimits {
                handshake_timeout: std::time::Duration::from_millis(300),
                ..Default::default()
            },
            ..ServeOptions::default()
        },
        FileMapping::default(),
    )
    .await;
    // Headers, and a body announced but never sent.
    let mut stalled = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
    stalled
        .write_all(
            b"POST /access/v1/evaluation HTTP/1.1\r\nhost: pdp\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let body = ask(user("alice"), act("read"), record("record-1")).to_string();
    let a = pdp.send(Send::post("/access/v1/evaluation", body)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The stalled request ends at its timeout with 408.
    let mut answer = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stalled.read_to_string(&mut answer),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Silent: half a preface, then nothing; cut at the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(pdp.addr).await.unwrap();
    silent.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        silent.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_ok(), "the silent connection is still open");
    pdp.stop().await;
}
