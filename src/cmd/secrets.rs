//! What `iamd keys` and `iamd mfa` share: the credentials directory
//! argument, reading its file (a directory that does not exist yet holds
//! nothing: the first key or device makes it), the check that a bundle has
//! a user, and how a refusal ends the command.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use iamd_credentials::file::CredentialsFile;

/// Where the credentials are.
#[derive(Debug, clap::Args)]
pub(crate) struct Dir {
    /// The credentials directory (its `credentials.json`).
    #[arg(long = "credentials", env = "IAMD_CREDENTIALS", value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

/// Why a command stopped.
pub(crate) enum Failure {
    /// Writing the output or the file failed.
    Io(io::Error),
    /// The request was refused, with a sentence for the operator.
    Refused(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A refusal saying `why`.
pub(crate) fn refused(why: impl Into<String>) -> Failure {
    Failure::Refused(why.into())
}

/// The exit status of a command's `result`: a refusal is said on standard
/// error and exits 1.
pub(crate) fn finish(result: Result<ExitCode, Failure>) -> io::Result<ExitCode> {
    match result {
        Ok(code) => Ok(code),
        Err(Failure::Io(e)) => Err(e),
        Err(Failure::Refused(why)) => {
            eprintln!("iamd: {why}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The credentials file of `dir` (empty when the directory does not exist).
pub(crate) fn read(dir: &Path) -> Result<CredentialsFile, Failure> {
    if !dir.exists() {
        return Ok(CredentialsFile::default());
    }
    CredentialsFile::read(dir)
        .map(|(f, _)| f)
        .map_err(|e| refused(format!("the credentials do not load:\n{e}")))
}

/// The bundle at `path`, refused unless it has the user `user` (`None`:
/// the root, which every bundle has).
pub(crate) fn bundle_with(path: &Path, user: Option<&str>) -> Result<iamd_bundle::Bundle, Failure> {
    let bundle =
        iamd_bundle::load(path).map_err(|e| refused(format!("the bundle does not load:\n{e}")))?;
    if let Some(u) = user
        && bundle.resolve(&format!("user/{u}")).is_none()
    {
        return Err(refused(format!(
            "the bundle {} has no user {u}: add the user first, or leave out --bundle",
            path.display()
        )));
    }
    Ok(bundle)
}
