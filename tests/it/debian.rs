//! Debian packages for the tests that need a real server (nginx, the CNCF
//! Distribution registry): downloaded with `apt-get download` and unpacked
//! with `dpkg -x` under the target directory, once, never installed into
//! the system. In CI they must be fetched; elsewhere, without `apt-get`, a
//! test says so and passes.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The longest a download may take.
const DOWNLOAD: Duration = Duration::from_secs(300);

/// The unpacked root of package `name` (its files under `usr/...`), or
/// `None` outside CI without `apt-get`.
pub(crate) fn package(name: &str, purpose: &str) -> Option<PathBuf> {
    if !crate::python::available("apt-get", purpose) {
        return None;
    }
    let _installing = crate::python::install_lock(&format!("deb-{name}"));
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("debs")
        .join(name);
    let done = root.join(".unpacked");
    if done.exists() {
        return Some(root);
    }
    let _ = std::fs::remove_dir_all(&root);
    let downloads = root.with_extension("download");
    let _ = std::fs::remove_dir_all(&downloads);
    std::fs::create_dir_all(&downloads).unwrap();
    let download = |update: bool| {
        if update {
            // A machine whose package lists were never fetched.
            let _ = Command::new("timeout")
                .arg(DOWNLOAD.as_secs().to_string())
                .args(["apt-get", "update", "-qq"])
                .status();
        }
        Command::new("timeout")
            .arg(DOWNLOAD.as_secs().to_string())
            .args(["apt-get", "download", "-qq", name])
            .current_dir(&downloads)
            .output()
            .unwrap()
    };
    let mut out = download(false);
    if !out.status.success() {
        out = download(true);
    }
    assert!(
        out.status.success(),
        "apt-get download {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = std::fs::read_dir(&downloads)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("apt-get download {name} left no .deb"));
    crate::python::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    std::fs::write(&done, deb.display().to_string()).unwrap();
    let _ = std::fs::remove_dir_all(&downloads);
    Some(root)
}
