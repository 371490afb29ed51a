//! `iamd bench` against a running daemon: the count and rate bounds, the
//! answers checked against the mix, the JSON report and the chart.

use crate::cli::{iamd, spawn_daemon, stop, wait_serving};

fn run(addr: &str, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut args = vec!["bench", "--addr", addr, "--quiet", "--json"];
    args.extend_from_slice(extra);
    let out = iamd(&args, "");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

#[test]
fn bench_loads_the_daemon_and_checks_every_answer() {
    let (mut server, addr) = spawn_daemon(&[]);
    let pid = server.id().to_string();
    wait_serving(&mut server, &addr);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bench.svg");
    let svg_arg = svg.display().to_string();
    // Closed loop, bounded by a count.
    let (out, r) = run(
        &addr,
        &[
            "--mix",
            "examples/bench/docs-mix.jsonl",
            "--count",
            "500",
            "--duration",
            "30",
            "--warmup",
            "0.2",
            "--connections",
            "2",
            "--streams",
            "4",
            "--server-pid",
            &pid,
            "--svg",
            &svg_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["requests"], 500, "{r}");
    assert_eq!(r["wrong"], 0, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    let l = &r["latencyUs"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(
        p("p50") > 0.0
            && p("p50") <= p("p90")
            && p("p90") <= p("p99")
            && p("p99") <= p("p999")
            && p("p999") <= p("max"),
        "{r}"
    );
    assert!(r["serverCpuUs"].as_f64().is_some_and(|c| c >= 0.0), "{r}");
    assert!(r["clientCpuUs"].as_f64().is_some(), "{r}");
    let seconds = r["timeline"].as_array().unwrap().len();
    assert_eq!(r["timelineP99Us"].as_array().unwrap().len(), seconds, "{r}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("requests per second"),
        "{chart}"
    );

    // Open loop: every intended send within the window is sent.
    let (out, r) = run(
        &addr,
        &[
            "--mix",
            "examples/bench/docs-mix.jsonl",
            "--rate",
            "2000",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--streams",
            "4",
            // The generator on two threads (one by default).
            "--workers",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(r["mode"], "open");
    let n = r["requests"].as_u64().unwrap();
    assert!(
        (1990..=2010).contains(&n),
        "{n} requests for 2000/s over 1 s: {r}"
    );

    // A wrong expectation is caught, and fails the run.
    let mix = dir.path().join("wrong.jsonl");
    std::fs::write(
        &mix,
        r#"{"principal": "user/alice", "action": "docs:GetDocument", "resource": "arn:acme:docs:eu-1:123456789012:doc/guide", "expect": "ALLOW"}
"#,
    )
    .unwrap();
    let (out, r) = run(
        &addr,
        &[
            "--mix",
            &mix.display().to_string(),
            "--count",
            "50",
            "--warmup",
            "0",
            // Two load threads share the count and add up their answers.
            "--workers",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["requests"], 50, "{r}");
    assert_eq!(r["wrong"], 50, "{r}");

    // Batches: every answer of every batch checked, requests counted one
    // by one; with the revision and the statements once a batch, or in
    // each answer.
    for once in [false, true] {
        let mut args = vec![
            "--mix",
            "examples/bench/docs-mix.jsonl",
            "--batch",
            "50",
            "--count",
            "500",
            "--warmup",
            "0",
        ];
        if once {
            args.extend(["--revision-once", "--statement-table"]);
        }
        let (out, r) = run(&addr, &args);
        assert_eq!(out.status.code(), Some(0), "{r}");
        assert_eq!(
            (r["batch"].as_u64(), r["requests"].as_u64()),
            (Some(50), Some(500)),
            "{r}"
        );
        assert_eq!(r["wrong"], 0, "{r}");
        assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    }
    let batch = ["--batch", "10", "--count", "50", "--warmup", "0"];
    let wrong = mix.display().to_string();
    let (out, r) = run(&addr, &[&["--mix", &wrong][..], &batch].concat());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        (r["requests"].as_u64(), r["wrong"].as_u64()),
        (Some(50), Some(50)),
        "{r}"
    );
    // A batch carries `Authorize` requests only.
    let out = iamd(
        &[
            &[
                "bench",
                "--addr",
                &addr,
                "--quiet",
                "--mix",
                "examples/bench/envoy-mix.jsonl",
            ][..],
            &batch,
        ]
        .concat(),
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("of the mix is an Envoy check: a batch carries `Authorize` requests only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(&mut server);
}

#[test]
fn bench_loads_envoys_check_too() {
    let addr = format!("127.0.0.1:{}", crate::cli::free_port());
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args([
            "serve",
            "--config",
            "deploy/envoy/iamd.yaml",
            "--listen",
            &addr,
        ])
        .args(["--admin-listen", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_serving(&mut server, &addr);
    let (out, r) = run(
        &addr,
        &[
            "--mix",
            "examples/bench/envoy-mix.jsonl",
            "--count",
            "400",
            "--warmup",
            "0",
            "--duration",
            "30",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(
        (r["requests"].as_u64(), r["wrong"].as_u64()),
        (Some(400), Some(0)),
        "{r}"
    );
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    stop(&mut server);
}

#[test]
fn a_bad_mix_or_no_daemon_is_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("mix.jsonl");
    std::fs::write(&mix, "{\"principal\": \"user/a\"}\n{\"principal\": \"user/a\", \"action\": \"a:b\", \"expect\": \"YES\"}\nnot json\n").unwrap();
    let out = iamd(&["bench", "--mix", &mix.display().to_string()], "");
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    for expected in [
        ":1: a request needs `principal` and `action`",
        ":2: expected decision `YES`",
        ":3: not JSON",
    ] {
        assert!(e.contains(expected), "{e}");
    }
    let port = crate::cli::free_port();
    // One load thread, and two (each connects its own connections).
    for workers in ["1", "2"] {
        let out = iamd(
            &[
                "bench",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--mix",
                "examples/bench/docs-mix.jsonl",
                "--quiet",
                "--workers",
                workers,
            ],
            "",
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
