//! A bundle given as bytes (what an archive or a fetch gives) is read by
//! the rules of a directory: the same files make the same digest and the
//! same bundle, and what a directory could not hold is refused.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test fails loudly")]

use std::path::{Path, PathBuf};

use iamd_bundle::{BundleFiles, ReadLimits};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle")
}

/// Every file under `dir`, with its path relative to `dir`.
fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out
}

fn from(files: Vec<(String, Vec<u8>)>) -> Result<BundleFiles, Vec<String>> {
    BundleFiles::from_files(Path::new("bundle.tar.gz"), files, &ReadLimits::default())
        .map_err(|e| e.lines())
}

fn errors(files: Vec<(&str, &str)>) -> Vec<String> {
    let files = files
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t.as_bytes().to_vec()))
        .collect();
    match from(files) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

const ACCOUNT: &str = "account: \"123456789012\"\n";

#[test]
fn the_same_files_make_the_same_digest_and_bundle_as_the_directory() {
    let dir = BundleFiles::read(&example()).unwrap();
    let mut files = walk(&example());
    // The example holds files that are not bundle files (its tests, its
    // requests): left out by both readers.
    assert!(files.iter().any(|(n, _)| n.starts_with("tests/")));
    // In any order, with `./` prefixes, as archives write them.
    files.reverse();
    for (name, _) in files.iter_mut().step_by(2) {
        *name = format!("./{name}");
    }
    files.push(("policies/.hidden.json".into(), b"not json".to_vec()));
    files.push(("policies/nested/Deep.json".into(), b"not json".to_vec()));
    files.push(("README.md".into(), b"# not read".to_vec()));
    let bytes = from(files).unwrap();
    assert_eq!(bytes.digest(), dir.digest());
    let (a, b) = (dir.compile().unwrap(), bytes.compile().unwrap());
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.stats(), b.stats());
}

#[test]
fn paths_that_leave_the_bundle_are_refused() {
    for name in ["../bundle.yaml", "policies/../../etc/passwd", "/etc/passwd"] {
        let e = errors(vec![("bundle.yaml", ACCOUNT), (name, "{}")]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(name), "{e:?}");
        assert!(e[0].contains("..") || e[0].contains("absolute"), "{e:?}");
    }
}

#[test]
fn duplicates_two_formats_and_bad_text_are_errors() {
    let e = errors(vec![
        ("bundle.yaml", ACCOUNT),
        ("./bundle.yaml", ACCOUNT),
        ("users.yaml", "[]"),
        ("users.json", "[]"),
    ]);
    assert!(
        e.iter().any(|m| m.starts_with("bundle.yaml: given twice")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("users.yaml and users.json give the same part")),
        "{e:?}"
    );
    let files = vec![
        ("bundle.yaml".to_owned(), ACCOUNT.as_bytes().to_vec()),
        ("policies/P.json".to_owned(), vec![0xff, 0xfe]),
    ];
    assert_eq!(
        from(files).unwrap_err(),
        ["policies/P.json: not UTF-8 text"]
    );
    let e = errors(vec![("users.yaml", "[]")]);
    assert!(e[0].contains("no `bundle.yaml`"), "{e:?}");
}

#[test]
fn the_read_limits_apply() {
    let files = |n: usize, size: usize| -> Vec<(String, Vec<u8>)> {
        let mut f = vec![("bundle.yaml".to_owned(), ACCOUNT.as_bytes().to_vec())];
        f.extend((0..n).map(|i| (format!("policies/P{i}.json"), vec![b' '; size])));
        f
    };
    let limits = ReadLimits {
        file_bytes: 100,
        bundle_bytes: 250,
        files: 4,
        ..ReadLimits::default()
    };
    let read = |f| BundleFiles::from_files(Path::new("b"), f, &limits).map_err(|e| e.lines());
    assert!(read(files(2, 100)).is_ok());
    let e = read(files(1, 101)).unwrap_err();
    assert_eq!(
        e,
        [
            "policies/P0.json: the file has more than 100 bytes: split it, or raise the limit (the daemon's `bundle.maxFileBytes`); the last good bundle stays"
        ]
    );
    let e = read(files(4, 10)).unwrap_err();
    assert_eq!(
        e,
        [
            "policies/P3.json: the bundle has more than 4 files: raise the limit (the daemon's `bundle.maxFiles`)"
        ]
    );
    let e = read(files(3, 100)).unwrap_err();
    assert_eq!(
        e,
        [
            "policies/P2.json: the bundle has more than 250 bytes: raise the limit (the daemon's `bundle.maxTotalBytes`); the last good bundle stays"
        ]
    );
}
