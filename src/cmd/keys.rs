//! `iamd keys`: users' access keys in the credentials directory, the way
//! `aws iam create-access-key`, `list-access-keys`, `update-access-key` and
//! `delete-access-key` manage them.
//!
//! The directory is the credentials source a daemon reads
//! (`serve --credentials DIR`): edit a working copy, then publish it as
//! the Kubernetes Secret the daemon mounts (docs/credentials.md). The
//! secret of a new key is printed once and never again.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use iamd_credentials::file::{self, AccessKey, CredentialsFile, KEYS_PER_USER, Status};

use super::secrets::{Dir, Failure, bundle_with, finish, read, refused};
use iamd_credentials::key::{self, KeyKind};

/// `iamd keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Make an access key for a user and print it, secret included, as
    /// `aws iam create-access-key` does: the only time the secret is shown.
    Create(CreateArgs),
    /// List access keys (all, or a user's): ID, user, status, creation
    /// time. Never the secrets.
    List(ListArgs),
    /// Make a key unable to sign (kept, so that it can be made active
    /// again): the first step of a rotation.
    Deactivate(KeyArgs),
    /// Make an inactive key able to sign again.
    Activate(KeyArgs),
    /// Delete a key for good.
    Delete(KeyArgs),
    /// Make a new session key, which seals the session tokens of the local
    /// STS from now on; the previous one still opens the tokens it sealed
    /// until they expire, and the one before it is dropped.
    RotateSessionKey(Dir),
}

/// `iamd keys create` options.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The user: `user/NAME` (or `NAME`).
    pub(crate) user: String,
    #[command(flatten)]
    pub(crate) dir: Dir,
    /// Also write the key as the console's `credentials.csv` (`User
    /// Name,Access key ID,Secret access key`; a new file, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub(crate) csv: Option<PathBuf>,
    /// Refuse a user that this bundle does not have.
    #[arg(long, value_name = "PATH")]
    pub(crate) bundle: Option<PathBuf>,
}

/// `iamd keys list` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only this user's keys: `user/NAME` (or `NAME`).
    pub(crate) user: Option<String>,
    #[command(flatten)]
    pub(crate) dir: Dir,
}

/// Options of the commands on one key.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// The access key ID (`AKIA…`).
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) dir: Dir,
}

/// Runs an `iamd keys` command.
pub(crate) fn run(command: &KeysCommand) -> io::Result<ExitCode> {
    let result = match command {
        KeysCommand::Create(args) => create(args),
        KeysCommand::List(args) => list(args),
        KeysCommand::Deactivate(args) => set_status(args, Status::Inactive),
        KeysCommand::Activate(args) => set_status(args, Status::Active),
        KeysCommand::Delete(args) => delete(args),
        KeysCommand::RotateSessionKey(dir) => rotate_session_key(dir),
    };
    finish(result.map(|()| ExitCode::SUCCESS))
}

/// The user name of `user/NAME` or `NAME`.
fn user_name(text: &str) -> Result<&str, Failure> {
    let name = text.strip_prefix("user/").unwrap_or(text);
    if file::is_user_name(name) {
        Ok(name)
    } else {
        Err(refused(format!(
            "{text:?} is not a user: give user/NAME, NAME being 1 to 64 letters, digits and +=,.@_-"
        )))
    }
}

fn create(args: &CreateArgs) -> Result<(), Failure> {
    let user = user_name(&args.user)?;
    if let Some(path) = &args.bundle {
        bundle_with(path, Some(user))?;
    }
    let mut credentials = read(&args.dir.dir)?;
    let existing: Vec<&str> = credentials.keys_of(user).map(|k| k.id.as_str()).collect();
    if existing.len() >= KEYS_PER_USER {
        return Err(refused(format!(
            "user {user} already has {KEYS_PER_USER} access keys ({}), the most AWS allows: delete one first (iamd keys delete ID)",
            existing.join(", ")
        )));
    }
    let (id, secret) = loop {
        let (id, secret) = key::generate(KeyKind::LongTerm).map_err(|e| refused(e.to_string()))?;
        if !credentials.access_keys.iter().any(|k| k.id == id) {
            break (id, secret);
        }
    };
    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    // The CSV first: if it cannot be written, no key exists that nobody has.
    if let Some(path) = &args.csv {
        write_new(
            path,
            &format!(
                "User Name,Access key ID,Secret access key\n{user},{id},{}\n",
                secret.expose()
            ),
        )
        .map_err(|e| refused(format!("cannot write {}: {e}", path.display())))?;
    }
    credentials.access_keys.push(AccessKey {
        id: id.clone(),
        user: user.to_owned(),
        secret: secret.clone(),
        status: Status::Active,
        created: Some(created),
    });
    credentials.write(&args.dir.dir)?;
    let out = serde_json::json!({"AccessKey": {
        "UserName": user,
        "AccessKeyId": id,
        "Status": "Active",
        "SecretAccessKey": secret.expose(),
        "CreateDate": created.to_string(),
    }});
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_default()
    )?;
    Ok(())
}

/// Writes `text` to a new file `path`, readable by its owner only.
fn write_new(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn list(args: &ListArgs) -> Result<(), Failure> {
    let only = args.user.as_deref().map(user_name).transpose()?;
    let credentials = read(&args.dir.dir)?;
    let mut stdout = io::stdout().lock();
    for k in &credentials.access_keys {
        if only.is_some_and(|u| u != k.user) {
            continue;
        }
        let created = k.created.map_or_else(|| "-".to_owned(), |t| t.to_string());
        writeln!(
            stdout,
            "{}  user/{}  {:<8}  {created}",
            k.id,
            k.user,
            k.status.as_str()
        )?;
    }
    Ok(())
}

/// The position of key `id`, or why there is none.
fn position(credentials: &CredentialsFile, id: &str) -> Result<usize, Failure> {
    credentials
        .access_keys
        .iter()
        .position(|k| k.id == id)
        .ok_or_else(|| {
            let shown = if key::kind_of(id).is_some() {
                id
            } else {
                "the key"
            };
            refused(format!(
                "{shown} is not in the credentials: `iamd keys list` shows their IDs"
            ))
        })
}

fn set_status(args: &KeyArgs, status: Status) -> Result<(), Failure> {
    let mut credentials = read(&args.dir.dir)?;
    let at = position(&credentials, &args.id)?;
    let key = &mut credentials.access_keys[at];
    if key.status == status {
        eprintln!("{} is already {}", key.id, status.as_str());
        return Ok(());
    }
    key.status = status;
    eprintln!("{} of user/{} is now {}", key.id, key.user, status.as_str());
    credentials.write(&args.dir.dir)?;
    Ok(())
}

fn delete(args: &KeyArgs) -> Result<(), Failure> {
    let mut credentials = read(&args.dir.dir)?;
    let at = position(&credentials, &args.id)?;
    let key = credentials.access_keys.remove(at);
    credentials.write(&args.dir.dir)?;
    eprintln!("{} of user/{} is deleted", key.id, key.user);
    Ok(())
}

fn rotate_session_key(dir: &Dir) -> Result<(), Failure> {
    let mut credentials = read(&dir.dir)?;
    let key = iamd_credentials::session::SessionKey::generate(jiff::Timestamp::now())
        .map_err(|e| refused(e.to_string()))?;
    let id = key.id.clone();
    credentials.session_keys.insert(0, key);
    let dropped: Vec<String> = credentials
        .session_keys
        .drain(file::SESSION_KEYS_KEPT.min(credentials.session_keys.len())..)
        .map(|k| k.id)
        .collect();
    credentials.write(&dir.dir)?;
    eprintln!("{id} seals new session tokens");
    for old in dropped {
        eprintln!("{old} is dropped: the tokens it sealed no longer open");
    }
    Ok(())
}
