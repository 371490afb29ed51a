//! Reload integrity: what an unlucky operator's file system does to a
//! bundle (swaps during a read, half-written files, names that exist but
//! are not readable files, FIFOs, devices, huge files) never publishes a
//! bundle nobody wrote, never drops a part of one, never hangs or crashes
//! the reloader, and keeps the last good bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iamd_bundle::{self as bundle, BundleFiles, ReadLimits};
use iamd_server::reload::{ReloadOutcome, Reloader, Store, Trigger};

const ACCOUNT: &str = "account: \"123456789012\"\n";

pub(crate) fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A small good bundle: alice may read documents, and `resources.yaml`
/// denies everyone `doc/secret`.
fn good(dir: &Path) {
    write(dir, "bundle.yaml", &format!("{ACCOUNT}revision: good\n"));
    write(
        dir,
        "users.yaml",
        "- name: alice\n  inline:\n    p:\n      Statement: {Effect: Allow, Action: 'docs:*', Resource: '*'}\n",
    );
    write(
        dir,
        "resources.yaml",
        "- resource: arn:acme:docs:eu-1:123456789012:doc/secret\n  policy:\n    Statement: {Effect: Deny, Principal: '*', Action: 'docs:*'}\n",
    );
}

/// Reads `dir` on another thread: the answer must come within 10 s (a
/// bound against a hang, not a timing goal).
fn read_bounded(dir: &Path) -> Result<BundleFiles, bundle::BundleError> {
    let dir = dir.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(BundleFiles::read(&dir));
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the read hung")
}

fn errors(dir: &Path) -> String {
    match read_bounded(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn names_that_are_not_readable_files_are_errors_not_absences() {
    // Each of these once made the file silently absent: a Deny vanished.
    type Damage<'a> = &'a dyn Fn(&Path);
    let cases: &[(&str, Damage<'_>, &str)] = &[
        (
            "a dangling link (a missing `..data` target)",
            &|d| {
                std::fs::remove_file(d.join("resources.yaml")).unwrap();
                std::os::unix::fs::symlink("..data/resources.yaml", d.join("resources.yaml"))
                    .unwrap();
            },
            "resources.yaml: cannot read",
        ),
        (
            "a link loop",
            &|d| {
                std::fs::remove_file(d.join("resources.yaml")).unwrap();
                std::os::unix::fs::symlink("resources.yaml", d.join("resources.yaml")).unwrap();
            },
            "resources.yaml: cannot read",
        ),
        (
            "a directory",
            &|d| {
                std::fs::remove_file(d.join("resources.yaml")).unwrap();
                std::fs::create_dir(d.join("resources.yaml")).unwrap();
            },
            "resources.yaml: is a directory",
        ),
        (
            "a FIFO",
            &|d| {
                std::fs::remove_file(d.join("resources.yaml")).unwrap();
                mkfifo(&d.join("resources.yaml"));
            },
            "resources.yaml: is a FIFO",
        ),
        (
            "a link to /dev/zero",
            &|d| {
                std::fs::remove_file(d.join("users.yaml")).unwrap();
                std::os::unix::fs::symlink("/dev/zero", d.join("users.yaml")).unwrap();
            },
            "users.yaml: is a device",
        ),
        (
            "a FIFO among the policies",
            &|d| {
                std::fs::create_dir(d.join("policies")).unwrap();
                mkfifo(&d.join("policies/Fifo.json"));
            },
            "policies/Fifo.json: is a FIFO",
        ),
        (
            "a dangling link among the policies",
            &|d| {
                std::fs::create_dir(d.join("policies")).unwrap();
                std::os::unix::fs::symlink("gone.json", d.join("policies/Gone.json")).unwrap();
            },
            "policies/Gone.json: cannot read",
        ),
        (
            "a file where a directory belongs",
            &|d| write(d, "resources.d", "not a directory"),
            "resources.d: is not a regular file",
        ),
        (
            "a dangling link where a directory belongs",
            &|d| std::os::unix::fs::symlink("..data/scps", d.join("scps")).unwrap(),
            "scps: cannot list",
        ),
    ];
    for (what, damage, expected) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        good(dir);
        let (store, publisher) = Store::new();
        let mut r = Reloader::for_dir(dir, publisher);
        assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
        damage(dir);
        let e = errors(dir);
        assert!(e.contains(expected), "{what}: {e}");
        // The reloader keeps the last good bundle, and says why (`Start`
        // reads without waiting for the fresh files to settle).
        assert!(
            matches!(r.reload(Trigger::Start), ReloadOutcome::Failed(_)),
            "{what}"
        );
        let live = store.bundle().as_ref().cloned().unwrap();
        assert_eq!(live.revision().label.as_deref(), Some("good"), "{what}");
        assert_eq!(live.stats().resource_policies, 1, "{what}");
    }
}

pub(crate) fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn reads_are_bounded_in_bytes_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    good(dir);
    write(dir, "policies/Big.json", &" ".repeat(5000));
    let small = ReadLimits {
        file_bytes: 4096,
        ..ReadLimits::default()
    };
    let e = BundleFiles::read_with(dir, Duration::ZERO, &small)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("policies/Big.json: the file has more than 4096 bytes"),
        "{e}"
    );
    let whole = ReadLimits {
        bundle_bytes: 4500,
        ..ReadLimits::default()
    };
    let e = BundleFiles::read_with(dir, Duration::ZERO, &whole)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the bundle has more than 4500 bytes"), "{e}");
    let few = ReadLimits {
        files: 2,
        ..ReadLimits::default()
    };
    let e = BundleFiles::read_with(dir, Duration::ZERO, &few)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the bundle has more than 2 files"), "{e}");
}

/// The kubelet's layout: `..VERSION` directories, `..data` linking to one,
/// and every name a link through `..data`.
fn configmap_swap(dir: &Path, version: &str, files: &[(String, String)]) {
    let real = dir.join(format!("..{version}"));
    for (name, text) in files {
        write(&real, name, text);
    }
    swap_data_link(dir, version);
}

/// Points `..data` at `..VERSION` in one rename, as the kubelet does, and
/// makes each top-level name a link through `..data` the first time.
pub(crate) fn swap_data_link(dir: &Path, version: &str) {
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp_link).unwrap();
    std::fs::rename(&tmp_link, dir.join("..data")).unwrap();
    for top in ["bundle.yaml", "users.yaml", "users.d", "policies"] {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from("..data").join(top), &link).unwrap();
        }
    }
}

/// Version `v` of a bundle whose every file names `v`, with `filler` users
/// in `users.d/` so that a read takes a while.
fn version(v: &str, filler: usize) -> Vec<(String, String)> {
    let mut files = vec![
        ("bundle.yaml".into(), format!("{ACCOUNT}revision: {v}\n")),
        (
            "users.yaml".into(),
            format!("- name: bob\n  tags: {{v: {v}}}\n  policies: [P]\n"),
        ),
        (
            "policies/P.json".into(),
            format!(
                r#"{{"Statement": {{"Sid": "{v}", "Effect": "Allow", "Action": "docs:Get", "Resource": "*"}}}}"#
            ),
        ),
    ];
    for i in 0..filler {
        files.push((
            format!("users.d/u{i:04}.yaml"),
            format!("- name: u{i}\n  tags: {{v: {v}}}\n"),
        ));
    }
    files
}

#[test]
fn a_configmap_swap_during_a_read_never_mixes_two_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let versions = [version("one", 300), version("two", 300)];
    configmap_swap(&dir, "v0", &versions[0]);
    let digest_of = |files: &[(String, String)]| {
        let other = tempfile::tempdir().unwrap();
        for (n, t) in files {
            write(other.path(), n, t);
        }
        BundleFiles::read(other.path()).unwrap().digest().to_owned()
    };
    let digests = [digest_of(&versions[0]), digest_of(&versions[1])];
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, dir, swaps) = (stop.clone(), dir.clone(), swaps.clone());
        std::thread::spawn(move || {
            let mut n = 0usize;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                n += 1;
                swaps.store(n, Ordering::Relaxed);
                let old = format!("..v{}", n - 1);
                configmap_swap(&dir, &format!("v{n}"), &versions[n % 2]);
                // The kubelet removes the old version after the swap.
                let _ = std::fs::remove_dir_all(dir.join(old));
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let mut loaded = 0;
    let start = Instant::now();
    // Reads until 30 swaps happened under them (at most 30 s).
    while swaps.load(Ordering::Relaxed) < 30 && start.elapsed() < Duration::from_secs(30) {
        match BundleFiles::read(&dir) {
            Ok(files) => {
                assert!(
                    digests.contains(&files.digest().to_owned()),
                    "a bundle nobody wrote: {}",
                    files.digest()
                );
                loaded += 1;
            }
            // Changing all the time: an error, never a mix.
            Err(e) => assert!(e.to_string().contains("kept changing"), "{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps >= 30, "{swaps} swaps");
    assert!(loaded > 0, "no read succeeded among {swaps} swaps");
}

#[test]
fn a_half_written_file_waits_for_its_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    good(&dir);
    let (store, publisher) = Store::new();
    let mut r = Reloader::for_dir(&dir, publisher);
    assert!(matches!(r.reload(Trigger::Start), ReloadOutcome::Loaded(_)));
    // The first write ends before bob's boundary; the second comes 400 ms
    // later, as `cat > file` or an editor saving in place would.
    let users = "- name: alice\n  inline:\n    p:\n      Statement: {Effect: Allow, Action: 'docs:*', Resource: '*'}\n- name: bob\n  policies: [All]\n";
    let rest = "  boundary: NoPurge\n";
    write(
        &dir,
        "policies/All.json",
        r#"{"Statement": {"Effect": "Allow", "Action": "docs:*", "Resource": "*"}}"#,
    );
    write(
        &dir,
        "policies/NoPurge.json",
        r#"{"Statement": [{"Effect": "Allow", "Action": "docs:*", "Resource": "*"}, {"Effect": "Deny", "Action": "docs:PurgeDocuments", "Resource": "*"}]}"#,
    );
    write(&dir, "bundle.yaml", &format!("{ACCOUNT}revision: bob\n"));
    write(&dir, "users.yaml", users);
    let writer = {
        let users = dir.join("users.yaml");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(users)
                .unwrap();
            f.write_all(rest.as_bytes()).unwrap();
        })
    };
    // The debounce fires 100 ms after the first write.
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(r.reload(Trigger::Event), ReloadOutcome::Loaded(_)));
    writer.join().unwrap();
    let live = store.bundle().as_ref().cloned().unwrap();
    let bob = live.resolve("user/bob").unwrap();
    assert!(
        bob.entity.boundary().is_some(),
        "the prefix of users.yaml was loaded"
    );
}

#[test]
fn a_reload_in_progress_never_holds_up_a_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    good(&dir);
    let (store, publisher) = Store::new();
    // A settle of a minute: a file written now keeps the reload waiting
    // for its writer far longer than any shutdown may take.
    let mut reloader = Reloader::for_dir(&dir, publisher).with_settle(Duration::from_secs(60));
    assert!(matches!(
        reloader.reload(Trigger::Start),
        ReloadOutcome::Loaded(_)
    ));
    let before = store.bundle().as_ref().unwrap().revision().clone();
    let options = iamd_server::reload::WatchOptions {
        debounce: Duration::from_millis(20),
        ..iamd_server::reload::WatchOptions::default()
    };
    let watcher = iamd_server::reload::watch(reloader, options).unwrap();
    write(&dir, "bundle.yaml", &format!("{ACCOUNT}revision: next\n"));
    // The event reaches the thread, which starts the reload and waits.
    std::thread::sleep(Duration::from_millis(500));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(watcher);
        let _ = tx.send(());
    });
    // Bounded against a hang, far below the minute the reload waits.
    rx.recv_timeout(Duration::from_secs(20))
        .expect("dropping the watcher waited for the reload");
    assert_eq!(*store.bundle().as_ref().unwrap().revision(), before);
}

#[test]
fn daemon_files_that_are_not_regular_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("config.yaml");
    mkfifo(&fifo);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(iamd_server::config::load(&path));
    });
    let e = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reading a FIFO as the configuration hung")
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.yaml: is a FIFO"), "{e}");
    let files = iamd_server::tls::TlsFiles {
        cert: fifo,
        key: PathBuf::from("/dev/zero"),
        client_ca: None,
    };
    let e = iamd_server::tls::Tls::load(files).unwrap_err().to_string();
    assert!(e.contains("config.yaml: is a FIFO"), "{e}");
    let files = iamd_server::tls::TlsFiles {
        cert: tmp.path().join("absent.pem"),
        key: PathBuf::from("/dev/zero"),
        client_ca: None,
    };
    let e = iamd_server::tls::Tls::load(files).unwrap_err().to_string();
    assert!(e.contains("absent.pem: cannot read: "), "{e}");
    // Before, a key linked to /dev/zero was read until memory ran out.
    let cert = tmp.path().join("cert.pem");
    std::fs::write(&cert, "").unwrap();
    let files = iamd_server::tls::TlsFiles {
        cert,
        key: PathBuf::from("/dev/zero"),
        client_ca: None,
    };
    let e = iamd_server::tls::Tls::load(files).unwrap_err().to_string();
    assert_eq!(e, "/dev/zero: is a device: give a regular file");
}

#[test]
fn a_rejected_bundle_reports_a_bounded_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    good(&dir);
    let (store, publisher) = Store::new();
    let mut reloader = Reloader::for_dir(&dir, publisher).with_settle(Duration::ZERO);
    assert!(matches!(
        reloader.reload(Trigger::Start),
        ReloadOutcome::Loaded(_)
    ));
    // 150 errors, each quoting a 100 KB name.
    let long = "g".repeat(100_000);
    let users: String = (0..150)
        .map(|i| format!("- name: u{i}\n  groups: [{long}{i}]\n"))
        .collect();
    write(&dir, "users.yaml", &users);
    let ReloadOutcome::Failed(all) = reloader.reload(Trigger::Signal) else {
        panic!("the bundle loaded");
    };
    assert_eq!(all.len(), 150);
    let status = store.status();
    let kept = &status.last_failure.as_ref().unwrap().errors;
    assert_eq!(kept.len(), iamd_server::reload::REPORTED_ERRORS + 1);
    assert!(
        kept.last()
            .unwrap()
            .starts_with("… and 50 more errors: `iamd validate "),
        "{kept:?}"
    );
    let bytes: usize = kept.iter().map(String::len).sum();
    assert!(bytes < 100 * 300, "{bytes} bytes of errors kept");
    // The good bundle still serves.
    assert!(store.bundle().is_some());
}
