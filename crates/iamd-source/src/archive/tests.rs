use std::io::Write as _;

use iamd_bundle::{BundleFiles, ReadLimits};

use super::{build, read};

const BUNDLE: &[(&str, &str)] = &[
    ("bundle.yaml", "account: \"123456789012\"\nrevision: r1\n"),
    ("users.yaml", "- name: alice\n  policies: [Read]\n"),
    (
        "policies/Read.json",
        r#"{"Statement":{"Effect":"Allow","Action":"docs:Get*","Resource":"*"}}"#,
    ),
];

fn files() -> BundleFiles {
    let entries = BUNDLE
        .iter()
        .map(|(p, t)| ((*p).to_owned(), t.as_bytes().to_vec()));
    BundleFiles::from_files("test".as_ref(), entries, &ReadLimits::default()).unwrap()
}

/// A gzipped tar of raw entries: any name (`..` and absolute ones too, which
/// tar's own builder refuses), any type, any link target.
fn raw(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    gzip(&tar.into_inner().unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn good() -> Vec<(&'static str, tar::EntryType, &'static [u8], &'static str)> {
    BUNDLE
        .iter()
        .map(|(p, t)| (*p, tar::EntryType::Regular, t.as_bytes(), ""))
        .collect()
}

fn refused(bytes: &[u8], limits: &ReadLimits) -> String {
    read("b.tar.gz", bytes, limits)
        .unwrap_err()
        .lines()
        .join("\n")
}

#[test]
fn an_archive_is_the_same_bundle_as_its_directory_and_the_same_bytes_each_time() {
    let files = files();
    let a = build(&files, None).unwrap();
    assert_eq!(a, build(&files, None).unwrap(), "deterministic");
    let back = read("b.tar.gz", &a, &ReadLimits::default()).unwrap();
    assert_eq!(back.files.digest(), files.digest());
    assert_eq!(back.signatures, None);
    let signed = build(&files, Some("{\"x\":1}")).unwrap();
    let back = read("b.tar.gz", &signed, &ReadLimits::default()).unwrap();
    assert_eq!(
        back.files.digest(),
        files.digest(),
        "the signature is not covered"
    );
    assert_eq!(back.signatures.as_deref(), Some("{\"x\":1}"));
    // `./` prefixes (`tar -C DIR .`) and directory entries are fine.
    let mut entries = good();
    entries[0].0 = "./bundle.yaml";
    entries.push(("./policies/", tar::EntryType::Directory, b"", ""));
    entries.push(("README.md", tar::EntryType::Regular, b"notes", ""));
    let back = read("b.tar.gz", &raw(&entries), &ReadLimits::default()).unwrap();
    assert_eq!(back.files.digest(), files.digest());
}

#[test]
fn traversal_links_devices_and_duplicates_are_refused_each_by_name() {
    let d = ReadLimits::default();
    let cases: &[(&str, tar::EntryType, &[u8], &str, &str)] = &[
        (
            "../evil.json",
            tar::EntryType::Regular,
            b"{}",
            "",
            "../evil.json: leaves the bundle (`..`): refused (path traversal)",
        ),
        (
            "policies/../../evil.json",
            tar::EntryType::Regular,
            b"{}",
            "",
            "leaves the bundle",
        ),
        (
            "/etc/passwd",
            tar::EntryType::Regular,
            b"x",
            "",
            "is an absolute path: refused (path traversal)",
        ),
        (
            "policies/L.json",
            tar::EntryType::Symlink,
            b"",
            "../../etc/passwd",
            "is a link to `../../etc/passwd`, outside the bundle",
        ),
        (
            "policies/A.json",
            tar::EntryType::Symlink,
            b"",
            "/etc/passwd",
            "outside the bundle",
        ),
        (
            "policies/B.json",
            tar::EntryType::Link,
            b"",
            "policies/Read.json",
            "is a link (to `policies/Read.json`): an archive's files must be stored",
        ),
        (
            "policies/dev.json",
            tar::EntryType::Char,
            b"",
            "",
            "is a device or FIFO",
        ),
        (
            "policies/fifo.json",
            tar::EntryType::Fifo,
            b"",
            "",
            "is a device or FIFO",
        ),
        (
            "users.yaml",
            tar::EntryType::Regular,
            b"[]",
            "",
            "users.yaml: is in the archive twice",
        ),
        (
            "./users.yaml",
            tar::EntryType::Regular,
            b"[]",
            "",
            "users.yaml: is in the archive twice",
        ),
    ];
    for (name, kind, data, link, expected) in cases {
        let mut entries = good();
        entries.push((name, *kind, data, link));
        let e = refused(&raw(&entries), &d);
        assert!(e.contains(expected), "{name}: {e}");
    }
}

#[test]
fn a_decompression_bomb_is_cut_off_as_it_unpacks() {
    // 64 files of 1 MiB of zeros: 64 MiB unpacked, ~64 KiB packed; the
    // files are not bundle files, and still count.
    let zeros = vec![0u8; 1 << 20];
    let names: Vec<String> = (0..64).map(|i| format!("junk/{i}.bin")).collect();
    let mut entries = good();
    for n in &names {
        entries.push((n.as_str(), tar::EntryType::Regular, &zeros, ""));
    }
    let bomb = raw(&entries);
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let limits = ReadLimits {
        bundle_bytes: 8 << 20,
        ..ReadLimits::default()
    };
    let e = refused(&bomb, &limits);
    assert!(
        e.contains("unpacks to more than") && e.contains("a decompression bomb"),
        "{e}"
    );
    // One entry that says it is huge is refused from its header.
    let limits = ReadLimits {
        file_bytes: 1 << 10,
        ..ReadLimits::default()
    };
    let mut entries = good();
    entries.push(("policies/Big.json", tar::EntryType::Regular, &zeros, ""));
    let e = refused(&raw(&entries), &limits);
    assert!(
        e.contains("policies/Big.json: has 1048576 bytes, more than the limit of 1024"),
        "{e}"
    );
    // Too many entries.
    let limits = ReadLimits {
        files: 10,
        ..ReadLimits::default()
    };
    let mut entries = good();
    for n in &names[..20] {
        entries.push((n.as_str(), tar::EntryType::Regular, b"", ""));
    }
    let e = refused(&raw(&entries), &limits);
    assert!(e.contains("has more than 10 entries"), "{e}");
}

#[test]
fn what_is_not_an_archive_says_so() {
    let d = ReadLimits::default();
    assert!(
        refused(b"<html>not found</html>", &d).contains("is not a gzipped tar (no gzip header)")
    );
    let whole = build(&files(), None).unwrap();
    let e = refused(&whole[..whole.len() / 2], &d);
    assert!(
        e.contains("cannot unpack the archive") && e.contains("truncated"),
        "{e}"
    );
    assert!(refused(&gzip(b"garbage, not a tar"), &d).contains("cannot unpack"));
    // A bundle directory archived as itself (`tar czf b.tgz bundle/`).
    let nested: Vec<(String, &[u8])> = BUNDLE
        .iter()
        .map(|(p, t)| (format!("bundle/{p}"), t.as_bytes()))
        .collect();
    let entries: Vec<_> = nested
        .iter()
        .map(|(p, t)| (p.as_str(), tar::EntryType::Regular, *t, ""))
        .collect();
    let e = refused(&raw(&entries), &d);
    assert!(e.contains("its entries are all under `bundle/`"), "{e}");
}
