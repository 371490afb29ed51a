//! The deployment material runs as written: the container image's command
//! and health check (run here with the built binary, paths and ports
//! swapped, since the image itself cannot be built without a network).

use std::process::{Command, Stdio};

/// The JSON array after `instruction` in the Dockerfile (for
/// `HEALTHCHECK`, the one after its `CMD`).
fn exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with(instruction))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    let array = &line[line.find('[').unwrap()..];
    serde_json::from_str(array).unwrap()
}

#[test]
fn the_container_image_serves_and_its_health_check_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("deploy/docker/Dockerfile")).unwrap();
    assert_eq!(
        exec_form(&dockerfile, "ENTRYPOINT"),
        ["/usr/local/bin/iamd"]
    );
    assert!(dockerfile.contains("COPY --from=build /src/examples/bundle /etc/iamd/bundle"));
    assert!(dockerfile.contains("USER nonroot:nonroot"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let swap = |arg: &str| match arg {
        "/etc/iamd/bundle" => root.join("examples/bundle").display().to_string(),
        "0.0.0.0:50051" | "127.0.0.1:50051" => format!("127.0.0.1:{port}"),
        "0.0.0.0:9464" => "127.0.0.1:0".to_owned(),
        other => other.to_owned(),
    };
    let cmd: Vec<String> = exec_form(&dockerfile, "CMD [")
        .iter()
        .map(|a| swap(a))
        .collect();
    let mut server = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(&cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let health = exec_form(&dockerfile, "HEALTHCHECK");
    assert_eq!(health[0], "/usr/local/bin/iamd");
    let probe: Vec<String> = health[1..].iter().map(|a| swap(a)).collect();
    let mut ok = false;
    for _ in 0..100 {
        let out = Command::new(env!("CARGO_BIN_EXE_iamd"))
            .args(&probe)
            .output()
            .unwrap();
        if out.status.success() {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::cli::stop(&mut server);
    assert!(ok, "the health check never passed: {probe:?}");
}
