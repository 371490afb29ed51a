//! Bundle scale: load-plus-compile time, peak memory and decision latency
//! for synthetic bundles of 100, 10,000 and 100,000 users (with groups,
//! roles and about 10 policies each), and how soon a changed file is served
//! (each kind of change on 100,000 users, debounce 100 and 20 ms).
//!
//! Run: `cargo bench --bench bundle` (each size runs in a child process so
//! that its peak memory is its own); one size: `-- --size 1000000`; the
//! changes alone: `-- --changes USERS DEBOUNCE_MS`. Results in
//! `docs/benchmarks.md`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use iamd_bundle as bundle;

/// The daemon's allocator (src/main.rs), so that load times and peak
/// memory are the daemon's: with glibc's, the parser thread and the
/// compiling thread contend for its arena locks (futex calls were a
/// quarter of the time), and a 100,000-user load took 5.3 s in process
/// where the daemon took 3.1 s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use iamd_policy::context::Context;
use iamd_policy::eval::{Outcome, Request, evaluate};
use iamd_server::reload::{self, Reloader, Store, Trigger, WatchOptions};

const MANAGED: usize = 200;
const GROUPS: usize = 50;

/// Writes a synthetic bundle of `users` users (and `users / 10` roles) to
/// `dir`: each user is in 2 groups (3 managed policies each), attaches 2
/// managed policies and has 1 inline policy, with a team tag; each role has
/// a trust policy and 3 managed policies.
fn generate(dir: &Path, users: usize) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("bundle.yaml"),
        "account: \"123456789012\"\nrevision: synthetic\n",
    )
    .unwrap();
    for p in 0..MANAGED {
        let mut stmts = Vec::new();
        for s in 0..5 {
            let svc = (p * 5 + s) % 40;
            stmts.push(format!(
                r#"{{"Sid":"S{s}","Effect":"Allow","Action":["svc{svc}:Get*","svc{svc}:List*","svc{svc}:Put{s}"],"Resource":"arn:acme:svc{svc}:eu-1:123456789012:thing/{p}/*","Condition":{{"StringEquals":{{"aws:PrincipalTag/team":"team{}"}},"Bool":{{"aws:SecureTransport":"true"}}}}}}"#,
                p % 20
            ));
        }
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            stmts.join(",")
        );
        std::fs::write(dir.join(format!("policies/P{p}.json")), doc).unwrap();
    }
    let mut groups = String::new();
    for g in 0..GROUPS {
        writeln!(
            groups,
            "- name: g{g}\n  policies: [P{}, P{}, P{}]",
            (g * 3) % MANAGED,
            (g * 3 + 1) % MANAGED,
            (g * 3 + 2) % MANAGED
        )
        .unwrap();
    }
    std::fs::write(dir.join("groups.yaml"), groups).unwrap();
    let mut out = String::with_capacity(users * 400);
    for u in 0..users {
        writeln!(
            out,
            "- name: user{u}\n  groups: [g{}, g{}]\n  policies: [P{}, P{}]\n  tags: {{team: team{}}}\n  inline:\n    own:\n      Version: \"2012-10-17\"\n      Statement:\n        - {{Effect: Allow, Action: 'docs:*', Resource: 'arn:acme:docs:eu-1:123456789012:doc/${{aws:username}}/*'}}\n        - {{Effect: Deny, Action: 'docs:Delete*', Resource: '*', Condition: {{BoolIfExists: {{aws:MultiFactorAuthPresent: 'false'}}}}}}",
            u % GROUPS,
            (u + 7) % GROUPS,
            (u * 7) % MANAGED,
            (u * 11 + 3) % MANAGED,
            u % 20
        )
        .unwrap();
    }
    std::fs::write(dir.join("users.yaml"), out).unwrap();
    let mut roles = String::new();
    for r in 0..(users / 10).max(1) {
        writeln!(
            roles,
            "- name: role{r}\n  policies: [P{}, P{}, P{}]\n  trust:\n    Statement:\n      - {{Effect: Allow, Principal: {{AWS: arn:aws:iam::123456789012:user/user{r}}}, Action: 'sts:AssumeRole'}}",
            r % MANAGED,
            (r + 1) % MANAGED,
            (r + 2) % MANAGED
        )
        .unwrap();
    }
    std::fs::write(dir.join("roles.yaml"), roles).unwrap();
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One size, in this process: prints one line of results.
fn measure(users: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    generate(&dir, users);
    let bytes: u64 = ["users.yaml", "groups.yaml", "roles.yaml"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum();
    let base = peak_rss_kib();
    let started = Instant::now();
    // As the daemon's first load: through a cache (kept for the next), with
    // a file limit that lets a 1,000,000-user users.yaml (400 MB) be read.
    let limits = bundle::ReadLimits {
        file_bytes: 1 << 30,
        bundle_bytes: 4 << 30,
        ..bundle::ReadLimits::default()
    };
    let mut cache = bundle::Cache::new();
    let b = bundle::BundleFiles::read_with(&dir, Duration::ZERO, &limits)
        .and_then(|f| f.compile_cached(&mut cache))
        .unwrap_or_else(|e| panic!("{e}"));
    let load = started.elapsed();
    let peak = peak_rss_kib().saturating_sub(base);
    let stats = b.stats();
    // Decision latency: resolve the principal, then decide; users in turn.
    let mut ctx = Context::new();
    ctx.insert(
        "aws:SecureTransport",
        iamd_policy::context::ContextValue::Single("true".into()),
    )
    .unwrap();
    let names: Vec<String> = (0..1000)
        .map(|i| format!("user/user{}", (i * 7919) % users))
        .collect();
    let resolved: Vec<_> = names.iter().map(|n| b.resolve(n).unwrap()).collect();
    let mut tagged: Vec<Context> = Vec::new();
    for r in &resolved {
        let mut c = ctx.clone();
        c.add_facts(r.facts(), jiff::Timestamp::now(), true);
        tagged.push(c);
    }
    let resource = "arn:acme:svc3:eu-1:123456789012:thing/0/x";
    let mut matched = Vec::with_capacity(16);
    let mut allowed = 0u64;
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            let r = b.resolve(name).unwrap();
            let req = Request::new(&r.principal, "svc3:GetThing", resource, &tagged[i]);
            let d = evaluate(&b.layers(&r, &req, None), &req, &mut matched);
            allowed += u64::from(d.outcome == Outcome::Allow);
        }
    }
    let per = started.elapsed().as_nanos() as f64 / (rounds * names.len()) as f64;
    println!(
        "| {users} | {} | {} | {:.1} MB | {} ms | {} MiB | {per:.0} ns | {} |",
        stats.roles,
        stats.statements,
        bytes as f64 / 1e6,
        load.as_millis(),
        peak / 1024,
        allowed * 100 / (rounds * names.len()) as u64
    );
}

/// How soon a changed file is served: write, then wait for the new revision.
fn reload_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    generate(&dir, 10_000);
    let (store, publisher) = Store::new();
    let mut r = Reloader::for_dir(&dir, publisher);
    r.reload(Trigger::Start);
    let _w = reload::watch(
        r,
        WatchOptions {
            sighup: false,
            ..WatchOptions::default()
        },
    )
    .unwrap();
    let mut samples = Vec::new();
    for i in 0..5 {
        std::fs::write(
            dir.join("bundle.yaml"),
            format!("account: \"123456789012\"\nrevision: change{i}\n"),
        )
        .unwrap();
        let label = format!("change{i}");
        let waited = wait_until("the change", Duration::from_secs(30), || {
            store
                .bundle()
                .is_some_and(|b| b.revision().label.as_ref() == Some(&label))
        });
        samples.push(waited.as_millis());
    }
    samples.sort();
    println!(
        "reload of a 10,000-user bundle after a file change (debounce 100 ms, settle 1 s): median {} ms, max {} ms (5 changes)",
        samples[2], samples[4]
    );
}

/// Waits until `done` (every millisecond, at most `limit`, or panics naming
/// `what`); returns how long it took.
fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} was not served");
        std::thread::sleep(Duration::from_millis(1));
    }
    started.elapsed()
}

/// Runs this benchmark again with `args`, in a process of its own (so
/// that its peak memory is its own).
fn child(args: &[&str]) {
    let me = std::env::current_exe().unwrap();
    let status = Command::new(&me).args(args).status().unwrap();
    assert!(status.success(), "{args:?}: {status}");
}

/// One kind of change to the synthetic bundle: in `file`, after `anchor`,
/// the first `from` is replaced by `to` with the round's number in it.
struct Change {
    kind: &'static str,
    file: &'static str,
    anchor: String,
    from: &'static str,
    to: &'static str,
}

impl Change {
    /// The file's text at round `i` (each round a different text).
    fn text(&self, original: &str, i: usize) -> String {
        let at = original.find(&self.anchor).expect("anchor") + self.anchor.len();
        let from = at + original[at..].find(self.from).expect("from");
        let to = self.to.replace("{i}", &i.to_string());
        format!(
            "{}{to}{}",
            &original[..from],
            &original[from + self.from.len()..]
        )
    }
}

/// The kinds of change measured, on a bundle of `users` users.
fn changes(users: usize) -> Vec<Change> {
    let user = format!("- name: user{}\n", users / 2);
    vec![
        Change {
            kind: "one user's tags",
            file: "users.yaml",
            anchor: user.clone(),
            from: "tags: {team: ",
            to: "tags: {team: x{i}",
        },
        Change {
            kind: "one user's inline policy",
            file: "users.yaml",
            anchor: user,
            from: "Action: 'docs:*'",
            to: "Action: 'docs{i}:*'",
        },
        Change {
            kind: "one managed policy (P7)",
            file: "policies/P7.json",
            anchor: String::new(),
            from: r#""Sid":"S0""#,
            to: r#""Sid":"S0x{i}""#,
        },
        Change {
            kind: "one role",
            file: "roles.yaml",
            anchor: format!("- name: role{}\n", users / 20),
            from: "policies: [",
            to: "policies: [P{i}0, ",
        },
        Change {
            kind: "everything (organizationId)",
            file: "bundle.yaml",
            anchor: String::new(),
            from: "revision:",
            to: "organizationId: o-aaaaaaaaa{i}\nrevision:",
        },
    ]
}

/// Writes `text` to `path` as a deployment does: a new file renamed over
/// the old one.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// How soon each kind of change is served by a watching reloader (settle 0,
/// the given debounce): from the rename to the new revision in the store.
fn change_latency(users: usize, debounce_ms: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    generate(&dir, users);
    let (store, publisher) = Store::new();
    let mut r = Reloader::for_dir(&dir, publisher).with_settle(Duration::ZERO);
    let started = Instant::now();
    r.reload(Trigger::Start);
    let cold = started.elapsed();
    let _w = reload::watch(
        r,
        WatchOptions {
            debounce: Duration::from_millis(debounce_ms),
            sighup: false,
            ..WatchOptions::default()
        },
    )
    .unwrap();
    println!(
        "{users} users, settle 0, debounce {debounce_ms} ms; first load {} ms, peak memory {} MiB",
        cold.as_millis(),
        peak_rss_kib() / 1024
    );
    println!("| change | median | max |");
    println!("|---|---|---|");
    let digest = || store.bundle().map(|b| b.revision().digest.clone());
    for change in changes(users) {
        let path = dir.join(change.file);
        let original = std::fs::read_to_string(&path).unwrap();
        let mut samples = Vec::new();
        for i in 1..=5 {
            // Let the last reload's freeing and the machine settle.
            std::thread::sleep(Duration::from_millis(300));
            let before = digest();
            replace_file(&path, &change.text(&original, i));
            let waited = wait_until(change.kind, Duration::from_secs(60), || digest() != before);
            samples.push(waited.as_millis());
        }
        // The file as it was, served before the next kind is measured.
        let before = digest();
        replace_file(&path, &original);
        wait_until("the restored file", Duration::from_secs(60), || {
            digest() != before
        });
        samples.sort();
        println!(
            "| {} | {} ms | {} ms |",
            change.kind, samples[2], samples[4]
        );
    }
}

/// Writes a bundle of one user whose one managed policy holds `statements`
/// statements (a Deny every tenth, each with an Sid, two actions, a
/// resource and a condition), with the size limits raised: the shape that
/// found the quadratic checks of `iamd validate` and of Sids.
fn generate_one_policy(dir: &Path, statements: usize) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("bundle.yaml"),
        "account: \"123456789012\"\nlimits:\n  managedPolicySize: 1000000000\n",
    )
    .unwrap();
    let mut out = String::from("{\"Version\": \"2012-10-17\", \"Statement\": [");
    for i in 0..statements {
        let effect = if i % 10 == 0 { "Deny" } else { "Allow" };
        let (svc, team) = (i % 50, i % 7);
        if i > 0 {
            out.push(',');
        }
        write!(
            out,
            "\n{{\"Sid\": \"S{i}\", \"Effect\": \"{effect}\", \"Action\": [\"svc{svc}:Get{i}\", \"svc{svc}:List*\"], \"Resource\": \"arn:acme:docs:eu-1:123456789012:doc/{i}/*\", \"Condition\": {{\"StringEquals\": {{\"aws:PrincipalTag/team\": \"t{team}\"}}}}}}"
        )
        .unwrap();
    }
    out.push_str("]}\n");
    std::fs::write(dir.join("policies/Big.json"), out).unwrap();
    std::fs::write(dir.join("users.yaml"), "- name: u\n  policies: [Big]\n").unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--write-policy DIR STATEMENTS`: one user, one policy of that many
    // statements (docs/benchmarks.md, validating large policies).
    if let Some(i) = args.iter().position(|a| a == "--write-policy") {
        generate_one_policy(Path::new(&args[i + 1]), args[i + 2].parse().unwrap());
        return;
    }
    // `--write DIR USERS`: write a synthetic bundle for the load benchmarks
    // (docs/benchmarks.md, reload under load).
    if let Some(i) = args.iter().position(|a| a == "--write") {
        generate(Path::new(&args[i + 1]), args[i + 2].parse().unwrap());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--size") {
        measure(args[i + 1].parse().unwrap());
        return;
    }
    // `--changes USERS DEBOUNCE_MS`: how soon each kind of change is served.
    if let Some(i) = args.iter().position(|a| a == "--changes") {
        change_latency(args[i + 1].parse().unwrap(), args[i + 2].parse().unwrap());
        return;
    }
    // `--reload`: only how soon a change is served.
    if args.iter().any(|a| a == "--reload") {
        reload_latency();
        return;
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo test --benches` asks the harness for its list: nothing to run.
        return;
    }
    let quick = args.iter().any(|a| a == "--test");
    let sizes: &[usize] = if quick {
        &[100]
    } else {
        &[100, 10_000, 100_000]
    };
    println!(
        "| users | roles | statements | YAML | load + compile | peak memory | decision | allowed % |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        child(&["--size", &n.to_string()]);
    }
    if !quick {
        reload_latency();
        for debounce in ["100", "20"] {
            child(&["--changes", "100000", debounce]);
        }
    }
}
