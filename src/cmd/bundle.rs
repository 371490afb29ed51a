//! `iamd bundle`: archives of bundles, and their signatures.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use iamd_bundle::ReadLimits;
use iamd_source::signature::{self, SigningKey, Verifier};

/// `iamd bundle` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BundleCommand {
    /// Archive a bundle directory (a gzipped tar, the same bytes for the
    /// same files), after checking that it compiles; signed with `--key`.
    Build(BuildArgs),
    /// Make an ed25519 key pair for signing bundles: NAME.key (PKCS#8 PEM,
    /// private, mode 0600) and NAME.pub (the public key, PEM).
    Keygen(KeygenArgs),
    /// Sign a bundle archive (rewritten with its signature inside) or a
    /// bundle directory (its .signatures.json); other keys' signatures of
    /// the same bundle are kept (key rotation).
    Sign(SignArgs),
    /// Check a bundle archive's or directory's signature against public
    /// keys, and that it compiles: exit 0 good, 1 refused.
    Verify(VerifyArgs),
    /// Push a bundle archive (or a directory, archived as `build` does) to
    /// an OCI registry as an artifact; prints the manifest's digest to pin
    /// (`oci://REGISTRY/REPO@sha256:...`).
    Push(PushArgs),
}

/// `iamd bundle push` options.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// A bundle archive or directory.
    pub(crate) bundle: PathBuf,
    /// Where: `oci://REGISTRY/REPOSITORY:TAG` (plain HTTP for a loopback
    /// registry, HTTPS otherwise).
    pub(crate) reference: String,
    /// A file holding a bearer token for the registry.
    #[arg(long, value_name = "FILE")]
    pub(crate) bearer_token_file: Option<PathBuf>,
    /// A file holding `user:password` for the registry.
    #[arg(long, value_name = "FILE")]
    pub(crate) basic_auth_file: Option<PathBuf>,
    /// CAs for the registry's certificate (PEM); default: the system's.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
}

/// `iamd bundle build` options.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// The bundle directory.
    pub(crate) dir: PathBuf,
    /// The archive to write.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Sign with this private key (PEM; repeatable).
    #[arg(long = "key", value_name = "FILE")]
    pub(crate) keys: Vec<PathBuf>,
}

/// `iamd bundle keygen` options.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// The files' path without extension: writes PATH.key and PATH.pub.
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: PathBuf,
}

/// `iamd bundle sign` options.
#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    /// A bundle archive or directory.
    pub(crate) bundle: PathBuf,
    /// The private key (PEM; repeatable).
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub(crate) keys: Vec<PathBuf>,
    /// Write the signed archive here instead of over the input.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// `iamd bundle verify` options.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// A bundle archive or directory.
    pub(crate) bundle: PathBuf,
    /// A trusted public key (PEM; repeatable: any of them).
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub(crate) keys: Vec<PathBuf>,
}

pub(crate) fn run(command: &BundleCommand) -> io::Result<ExitCode> {
    let result = match command {
        BundleCommand::Build(a) => build(a),
        BundleCommand::Keygen(a) => keygen(a),
        BundleCommand::Sign(a) => sign(a),
        BundleCommand::Verify(a) => verify(a),
        BundleCommand::Push(a) => push(a),
    };
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed::Refused(lines)) => {
            for l in lines {
                eprintln!("{l}");
            }
            ExitCode::from(1)
        }
        Err(Failed::Usage(m)) => {
            eprintln!("iamd: {m}");
            ExitCode::from(2)
        }
    })
}

enum Failed {
    /// The bundle is not good (exit 1).
    Refused(Vec<String>),
    /// The command could not run (exit 2).
    Usage(String),
}

impl From<iamd_bundle::BundleError> for Failed {
    fn from(e: iamd_bundle::BundleError) -> Self {
        Self::Refused(e.lines())
    }
}

fn keys(paths: &[PathBuf]) -> Result<Vec<SigningKey>, Failed> {
    paths
        .iter()
        .map(|p| SigningKey::read(p).map_err(|e| Failed::Usage(e.0)))
        .collect()
}

/// The files' revision label, once they compile.
fn compiled_label(files: &iamd_bundle::BundleFiles) -> Result<Option<String>, Failed> {
    Ok(files.compile()?.revision().label.clone())
}

fn build(a: &BuildArgs) -> Result<(), Failed> {
    let keys = keys(&a.keys)?;
    let files = iamd_bundle::BundleFiles::read(&a.dir)?;
    if files.is_export() {
        return Err(Failed::Usage(format!(
            "{} is an AWS export file: `iamd bundle build` archives a bundle directory (serve the export file as it is)",
            a.dir.display()
        )));
    }
    let label = compiled_label(&files)?;
    let signed = (!keys.is_empty())
        .then(|| signature::sign(&keys, files.digest(), label.as_deref(), None).to_text());
    let bytes = iamd_source::archive::build(&files, signed.as_deref())
        .map_err(|e| Failed::Usage(e.to_string()))?;
    write(&a.output, &bytes)?;
    println!(
        "{}: {} files, sha256:{}{}{}",
        a.output.display(),
        files.files().count(),
        files.digest(),
        label.map(|l| format!(", revision {l}")).unwrap_or_default(),
        signed_by(&keys)
    );
    Ok(())
}

fn signed_by(keys: &[SigningKey]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let ids: Vec<&str> = keys.iter().map(SigningKey::id).collect();
    format!(", signed by {}", ids.join(", "))
}

fn keygen(a: &KeygenArgs) -> Result<(), Failed> {
    let (private, public) = SigningKey::generate().map_err(|e| Failed::Usage(e.0))?;
    let with = |ext: &str| {
        let mut p = a.output.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (key_path, pub_path) = (with(".key"), with(".pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(Failed::Usage(format!(
                "{} exists: not overwriting a key; choose another `-o`",
                p.display()
            )));
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let fail = |p: &Path, e: io::Error| Failed::Usage(format!("{}: {e}", p.display()));
    options
        .open(&key_path)
        .and_then(|mut f| f.write_all(private.as_bytes()))
        .map_err(|e| fail(&key_path, e))?;
    std::fs::write(&pub_path, &public).map_err(|e| fail(&pub_path, e))?;
    let id = SigningKey::read(&key_path).map_err(|e| Failed::Usage(e.0))?;
    println!(
        "{} (private: keep it secret) and {} (public: give it to the daemons): key {}",
        key_path.display(),
        pub_path.display(),
        id.id()
    );
    Ok(())
}

fn sign(a: &SignArgs) -> Result<(), Failed> {
    let keys = keys(&a.keys)?;
    let fetched = iamd_source::read_local(&a.bundle, &ReadLimits::default())?;
    let label = compiled_label(&fetched.files)?;
    let digest = fetched.files.digest();
    let text = signature::sign(
        &keys,
        digest,
        label.as_deref(),
        fetched.signatures.as_deref(),
    )
    .to_text();
    let out = if a.bundle.is_dir() {
        if a.output.is_some() {
            return Err(Failed::Usage(
                "`-o` is for an archive; a directory's signature is its .signatures.json".into(),
            ));
        }
        let path = a.bundle.join(signature::FILE);
        write(&path, text.as_bytes())?;
        path
    } else {
        let bytes = iamd_source::archive::build(&fetched.files, Some(&text))
            .map_err(|e| Failed::Usage(e.to_string()))?;
        let out = a.output.clone().unwrap_or_else(|| a.bundle.clone());
        write(&out, &bytes)?;
        out
    };
    println!("{}: sha256:{digest}{}", out.display(), signed_by(&keys));
    Ok(())
}

fn verify(a: &VerifyArgs) -> Result<(), Failed> {
    let verifier = Verifier::read(&a.keys).map_err(|e| Failed::Usage(e.0))?;
    let fetched = iamd_source::read_local(&a.bundle, &ReadLimits::default())?;
    let digest = fetched.files.digest();
    let shown = a.bundle.display();
    let verified = verifier
        .verify(fetched.signatures.as_deref(), digest)
        .map_err(|e| Failed::Refused(vec![format!("{shown}: {e}")]))?;
    let label = compiled_label(&fetched.files)?;
    if label != verified.revision {
        return Err(Failed::Refused(vec![format!(
            "{shown}: the signature is for revision {:?}, and bundle.yaml says {:?}: sign the bundle again",
            verified.revision.unwrap_or_default(),
            label.unwrap_or_default()
        )]));
    }
    println!(
        "{shown}: good signature by {}, sha256:{digest}{}",
        verified.keyid,
        label.map(|l| format!(", revision {l}")).unwrap_or_default()
    );
    Ok(())
}

fn push(a: &PushArgs) -> Result<(), Failed> {
    use iamd_source::oci::{self, Credentials, Reference};
    let reference = Reference::parse(&a.reference).map_err(Failed::Usage)?;
    let fetched = iamd_source::read_local(&a.bundle, &ReadLimits::default())?;
    let label = compiled_label(&fetched.files)?;
    let bytes = if a.bundle.is_dir() {
        iamd_source::archive::build(&fetched.files, fetched.signatures.as_deref())
            .map_err(|e| Failed::Usage(e.to_string()))?
    } else {
        std::fs::read(&a.bundle)
            .map_err(|e| Failed::Usage(format!("{}: {e}", a.bundle.display())))?
    };
    let digest = fetched.files.digest();
    let mut annotations = vec![("dev.iamd.bundle.digest", digest)];
    if let Some(l) = &label {
        annotations.push(("dev.iamd.bundle.revision", l.as_str()));
    }
    let options = iamd_source::ClientOptions {
        ca_file: a.ca_file.clone(),
        ..iamd_source::ClientOptions::default()
    };
    let credentials = Credentials {
        token_file: a.bearer_token_file.clone(),
        basic_file: a.basic_auth_file.clone(),
    };
    let pushed = oci::push(&reference, &bytes, &annotations, options, credentials)
        .map_err(|e| Failed::Refused(vec![e]))?;
    println!(
        "{reference}: pushed sha256:{digest}{}{}; pin it as oci://{}/{}@{}",
        label.map(|l| format!(", revision {l}")).unwrap_or_default(),
        if fetched.signatures.is_some() {
            ", signed"
        } else {
            ", unsigned"
        },
        reference.registry,
        reference.repository,
        pushed.manifest
    );
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it and a
/// rename: a reader (a web server serving the archive) never sees half.
fn write(path: &Path, bytes: &[u8]) -> Result<(), Failed> {
    let fail = |e: io::Error| Failed::Usage(format!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
