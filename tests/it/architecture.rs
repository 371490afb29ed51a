//! The crate graph is the architecture: each crate may depend only on the
//! crates below it, and the engine on none of the runtime's.

use std::collections::{BTreeMap, BTreeSet};

/// Each workspace crate and the workspace crates it may depend on (normal
/// dependencies; dev-dependencies are the tests' business).
const ALLOWED: &[(&str, &[&str])] = &[
    ("iamd-policy", &[]),
    ("iamd-bundle", &["iamd-policy"]),
    ("iamd-proto", &[]),
    ("iamd-credentials", &[]),
    ("iamd-source", &["iamd-bundle"]),
    (
        "iamd-server",
        &[
            "iamd-policy",
            "iamd-bundle",
            "iamd-proto",
            "iamd-source",
            "iamd-credentials",
        ],
    ),
    ("iamd-tools", &["iamd-policy", "iamd-bundle"]),
    (
        "iamd-bench",
        &["iamd-policy", "iamd-proto", "iamd-server", "iamd-tools"],
    ),
    (
        "iamd",
        &[
            "iamd-policy",
            "iamd-bundle",
            "iamd-proto",
            "iamd-server",
            "iamd-source",
            "iamd-tools",
            "iamd-bench",
            "iamd-credentials",
        ],
    ),
];

/// Crates the engine must not pull in, however indirectly.
const NOT_IN_THE_ENGINE: &[&str] = &[
    "serde",
    "serde_json",
    "tokio",
    "tonic",
    "prost",
    "notify",
    "hyper",
];

/// The host's target triple (`rustc -vV`).
fn host() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_owned()
}

/// `cargo metadata` for this machine's platform (so that no other
/// platform's crates are needed, offline).
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Package id -> (name, normal dependencies' ids), from the resolved graph.
fn graph(meta: &serde_json::Value) -> BTreeMap<String, (String, Vec<String>)> {
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let id = n["id"].as_str().unwrap();
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap().to_owned())
                .collect();
            (id.to_owned(), (names[id].to_owned(), deps))
        })
        .collect()
}

#[test]
fn no_crate_depends_on_one_above_it() {
    let meta = metadata();
    let graph = graph(&meta);
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| graph[m.as_str().unwrap()].0.as_str())
        .collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    assert_eq!(
        members,
        allowed.keys().copied().collect(),
        "a crate was added or removed: give it its place in ALLOWED and in docs/architecture.md"
    );
    for (name, deps) in graph.values() {
        let Some(may) = allowed.get(name.as_str()) else {
            continue;
        };
        for dep in deps {
            let dep = graph[dep].0.as_str();
            assert!(
                !members.contains(dep) || may.contains(&dep),
                "{name} depends on {dep}, which is not below it (docs/architecture.md)"
            );
        }
    }
}

#[test]
fn the_engine_builds_without_the_runtime() {
    let meta = metadata();
    let graph = graph(&meta);
    let root = graph
        .iter()
        .find(|(_, (n, _))| n == "iamd-policy")
        .map(|(id, _)| id.clone())
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        if seen.insert(id.clone()) {
            todo.extend(graph[&id].1.iter().cloned());
        }
    }
    let names: BTreeSet<&str> = seen.iter().map(|id| graph[id].0.as_str()).collect();
    for banned in NOT_IN_THE_ENGINE {
        assert!(
            !names.contains(banned),
            "iamd-policy pulls in {banned}: {names:?}"
        );
    }
    // The check sees the engine's real dependencies.
    assert!(names.contains("jsonc-parser"), "{names:?}");
}

/// README's library example is the engine crate's doc example, which the
/// test command compiles and runs: the two must not drift apart.
#[test]
fn the_readmes_library_example_is_the_tested_one() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```rust\n").expect("README has a Rust example") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let example = &readme[start..end];
    let lib = std::fs::read_to_string(root.join("crates/iamd-policy/src/lib.rs")).unwrap();
    let doc: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let start = doc.find("```\n").expect("the crate doc has an example") + 4;
    let end = start + doc[start..].find("```").unwrap();
    assert_eq!(example.trim_end(), doc[start..end].trim_end());
}
