//! Bundles in an OCI registry: Debian's `docker-registry` (the CNCF
//! Distribution registry), installed by the test and started on a loopback
//! port, with its storage in a temporary directory the test can tamper
//! with. `iamd bundle push` puts bundles there; an OCI source pulls them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iamd_server::reload::{ReloadOutcome, Reloader, Store, Trigger};
use iamd_source::oci::{Credentials, OciOptions, OciSource};

use crate::remote::archive;

/// A running registry.
struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

/// The user and password of a registry started with `auth`.
const USER: &str = "ci";
const PASSWORD: &str = "p4ss-w0rd";

impl Registry {
    /// A registry on a free loopback port; `auth`: HTTP Basic with
    /// [`USER`] and [`PASSWORD`] (an htpasswd file, bcrypt).
    fn start(auth: bool) -> Option<Self> {
        let root = crate::debian::package("docker-registry", "to serve bundles from a registry")?;
        let dir = tempfile::tempdir().unwrap();
        let port = crate::cli::free_port();
        let d = dir.path().display();
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {d}/data}}\nhttp:\n  addr: 127.0.0.1:{port}\n"
        );
        if auth {
            let script = "import crypt, sys; print(sys.argv[1] + ':' + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))";
            let line = crate::python::run(
                Command::new("python3").args(["-W", "ignore", "-c", script, USER, PASSWORD]),
            );
            std::fs::write(dir.path().join("htpasswd"), line).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd: {{realm: iamd-test, path: {d}/htpasswd}}\n"
            ));
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(root.join("usr/bin/docker-registry"))
            .arg("serve")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen: {}",
                std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { dir, port, child })
    }

    fn reference(&self, rest: &str) -> String {
        format!("oci://127.0.0.1:{}/{rest}", self.port)
    }

    /// The file holding a blob's bytes in the registry's storage.
    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `iamd bundle push FILE REFERENCE extra...`: the pinned reference it
/// printed.
fn push(file: &Path, reference: &str, extra: &[&str]) -> String {
    let mut args = vec!["bundle", "push", file.to_str().unwrap(), reference];
    args.extend_from_slice(extra);
    let out = crate::cli::iamd(&args, "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim()
        .rsplit_once("pin it as ")
        .map(|(_, pin)| pin.to_owned())
        .unwrap_or_else(|| panic!("{text}"))
}

fn source(reference: &str, credentials: Credentials) -> Box<OciSource> {
    let mut options = OciOptions::new(reference);
    options.credentials = credentials;
    Box::new(OciSource::new(options).unwrap())
}

fn label(store: &Store) -> Option<String> {
    store.bundle().and_then(|b| b.revision().label.clone())
}

fn failed(outcome: ReloadOutcome) -> String {
    match outcome {
        ReloadOutcome::Failed(e) => e.join("\n"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn pushed_bundles_are_pulled_by_tag_retagged_pinned_and_a_tampered_layer_is_refused() {
    let Some(registry) = Registry::start(false) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let (r1, r2) = (archive("o1", &[]), archive("o2", &[]));
    let tag = registry.reference("iamd/bundle:prod");
    let pin1 = push(&write("r1.tar.gz", &r1), &tag, &[]);
    assert!(pin1.contains("/iamd/bundle@sha256:"), "{pin1}");
    let (store, publisher) = Store::new();
    let mut by_tag = Reloader::new(source(&tag, Credentials::default()), publisher);
    assert!(matches!(
        by_tag.reload(Trigger::Start),
        ReloadOutcome::Loaded(_)
    ));
    assert_eq!(label(&store).as_deref(), Some("o1"));
    assert_eq!(store.status().live.unwrap().source, tag);
    assert_eq!(by_tag.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    // The tag moves: the next poll follows it.
    let pin2 = push(&write("r2.tar.gz", &r2), &tag, &[]);
    assert_ne!(pin1, pin2);
    assert!(matches!(
        by_tag.reload(Trigger::Timer),
        ReloadOutcome::Loaded(_)
    ));
    assert_eq!(label(&store).as_deref(), Some("o2"));
    // Pinned by digest: the first bundle, whatever the tag says.
    let (pinned_store, publisher) = Store::new();
    let mut pinned = Reloader::new(source(&pin1, Credentials::default()), publisher);
    assert!(matches!(
        pinned.reload(Trigger::Start),
        ReloadOutcome::Loaded(_)
    ));
    assert_eq!(label(&pinned_store).as_deref(), Some("o1"));
    assert_eq!(pinned.reload(Trigger::Timer), ReloadOutcome::Unchanged);
    // The layer altered in the registry's storage: refused, by a new
    // daemon pinned to it and by the tag's daemon.
    let layer = format!("sha256:{}", {
        use sha2::Digest as _;
        let h = sha2::Sha256::digest(&r1);
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    let mut altered = r1;
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    std::fs::write(registry.blob(&layer), &altered).unwrap();
    let (fresh, publisher) = Store::new();
    let e = failed(
        Reloader::new(source(&pin1, Credentials::default()), publisher).reload(Trigger::Start),
    );
    assert!(
        e.contains("the bundle layer's digest is sha256:")
            && e.contains("tampered or corrupt; refused"),
        "{e}"
    );
    assert!(!fresh.serving());
    // A manifest altered in storage: a pin refuses it.
    let manifest = pin2.rsplit_once('@').unwrap().1.to_owned();
    let mut text = std::fs::read(registry.blob(&manifest)).unwrap();
    text.push(b' ');
    std::fs::write(registry.blob(&manifest), &text).unwrap();
    let (_, publisher) = Store::new();
    let e = failed(
        Reloader::new(source(&pin2, Credentials::default()), publisher).reload(Trigger::Start),
    );
    assert!(
        e.contains("not the pinned one: tampered or corrupt; refused"),
        "{e}"
    );
    // No such tag.
    let (_, publisher) = Store::new();
    let e = failed(
        Reloader::new(
            source(
                &registry.reference("iamd/bundle:none"),
                Credentials::default(),
            ),
            publisher,
        )
        .reload(Trigger::Start),
    );
    assert!(e.contains("answered 404"), "{e}");
}

#[test]
fn a_registry_that_requires_credentials_is_pushed_to_and_pulled_from_with_them() {
    let Some(registry) = Registry::start(true) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    std::fs::write(&creds, format!("{USER}:{PASSWORD}\n")).unwrap();
    let file = tmp.path().join("b.tar.gz");
    std::fs::write(&file, archive("auth", &[])).unwrap();
    let tag = registry.reference("private/bundle:v1");
    // Without credentials: refused, saying so.
    let out = crate::cli::iamd(&["bundle", "push", file.to_str().unwrap(), &tag], "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("answered 401: the registry refused"), "{err}");
    push(&file, &tag, &["--basic-auth-file", creds.to_str().unwrap()]);
    let with = Credentials {
        basic_file: Some(creds),
        ..Credentials::default()
    };
    let (store, publisher) = Store::new();
    let mut r = Reloader::new(source(&tag, with), publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    assert_eq!(label(&store).as_deref(), Some("auth"));
    let (_, publisher) = Store::new();
    let e = failed(
        Reloader::new(source(&tag, Credentials::default()), publisher).reload(Trigger::Start),
    );
    assert!(e.contains("answered 401"), "{e}");
    assert!(!e.contains(PASSWORD));
}
