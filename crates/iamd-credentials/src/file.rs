//! The credentials file (`credentials.json` in the credentials directory):
//! read, checked, changed by `iamd keys`, and written back.
//!
//! ```json
//! {
//!   "accessKeys": [
//!     {"accessKeyId": "AKIA…", "secretAccessKey": "…", "userName": "alice",
//!      "status": "Active", "createDate": "2026-12-04T21:00:00Z"}
//!   ],
//!   "mfaDevices": [
//!     {"serialNumber": "arn:aws:iam::123456789012:mfa/alice", "userName": "alice",
//!      "seed": "BASE32…", "status": "Active", "enableDate": "2026-12-04T21:05:00Z"}
//!   ]
//! }
//! ```
//!
//! Every message about a bad file names the file, the entry and the field,
//! and says how to fix it, but never quotes a value that may be a secret:
//! a syntax error gives its line and column only, and a malformed key ID
//! is described, not shown.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::key::{self, KeyKind, MIN_SECRET_LEN, Secret};
use crate::session::SessionKey;

/// The file's name in the credentials directory.
pub const FILE: &str = "credentials.json";
/// The largest credentials file read (a million keys fit).
pub const MAX_BYTES: u64 = 256 << 20;
/// How many access keys AWS lets a user have.
pub const KEYS_PER_USER: usize = 2;

/// Whether a key can sign requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It can.
    Active,
    /// It cannot (kept, so that it can be made active again).
    Inactive,
}

impl Status {
    /// `Active` or `Inactive`, as AWS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Inactive => "Inactive",
        }
    }
}

/// One access key, as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// `AKIA…`.
    pub id: String,
    /// The user it belongs to (a user name of the bundle).
    pub user: String,
    /// Its secret.
    pub secret: Secret,
    /// Whether it can sign.
    pub status: Status,
    /// When it was made.
    pub created: Option<Timestamp>,
}

/// Whether a virtual MFA device's codes count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaStatus {
    /// Made, not yet activated with two consecutive codes: its codes do not
    /// count.
    Pending,
    /// Activated.
    Active,
}

impl MfaStatus {
    /// `Pending` or `Active`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Active => "Active",
        }
    }
}

/// A virtual MFA device (TOTP), as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaDevice {
    /// `arn:aws:iam::ACCOUNT:mfa/NAME`.
    pub serial: String,
    /// Its user; `None`: the account's root.
    pub user: Option<String>,
    /// Its seed, in base32.
    pub seed: Secret,
    /// Whether its codes count.
    pub status: MfaStatus,
    /// When it was activated.
    pub enabled: Option<Timestamp>,
}

/// The serial number of the virtual MFA device of `user` (`None`: the
/// root) in `account`, as AWS names them.
pub fn mfa_serial(account: &str, user: Option<&str>) -> String {
    match user {
        Some(u) => format!("arn:aws:iam::{account}:mfa/{u}"),
        None => format!("arn:aws:iam::{account}:mfa/root-account-mfa-device"),
    }
}

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialsFile {
    /// The access keys, in file order.
    pub access_keys: Vec<AccessKey>,
    /// The virtual MFA devices, in file order.
    pub mfa_devices: Vec<MfaDevice>,
    /// The keys that seal session tokens: the first seals, all open.
    pub session_keys: Vec<SessionKey>,
}

/// How many session keys a file keeps: the current one and the one before
/// it, whose tokens stay valid until they expire.
pub const SESSION_KEYS_KEPT: usize = 2;

/// A credentials file that cannot be used; the live credentials, if any,
/// stay.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_BYTES`].
    #[error("{} is {bytes} bytes, more than the {MAX_BYTES} a credentials file may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// What is wrong with it: each problem one line naming the file, the
    /// entry and the field.
    #[error("{}", problems.join("\n"))]
    Invalid {
        /// The problems, in file order.
        problems: Vec<String>,
    },
}

/// Whether `name` is an IAM user name (1 to 64 of letters, digits and
/// `+=,.@_-`).
pub fn is_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl CredentialsFile {
    /// The file at `dir/credentials.json`, checked, and the SHA-256 of its
    /// bytes (hex). A directory without the file holds no keys.
    pub fn read(dir: &Path) -> Result<(Self, String), CredentialsError> {
        let path = dir.join(FILE);
        let read = |source| CredentialsError::Read {
            path: path.clone(),
            source,
        };
        let bytes = match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_BYTES => {
                return Err(CredentialsError::TooLarge {
                    path: path.clone(),
                    bytes: m.len(),
                });
            }
            Ok(_) => std::fs::read(&path).map_err(read)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => Vec::new(),
            Err(e) => return Err(read(e)),
        };
        let digest = hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
        if bytes.is_empty() {
            return Ok((Self::default(), digest));
        }
        let text = std::str::from_utf8(&bytes).map_err(|e| CredentialsError::Invalid {
            problems: vec![format!(
                "{FILE}: not UTF-8 text (byte {}): write it as JSON in UTF-8",
                e.valid_up_to()
            )],
        })?;
        Ok((Self::parse(text)?, digest))
    }

    /// Parses and checks a credentials file's text.
    pub fn parse(text: &str) -> Result<Self, CredentialsError> {
        let invalid = |problems| CredentialsError::Invalid { problems };
        // serde_json's syntax errors never quote the input; its type errors
        // may, so the structure is checked here, field by field.
        let value: Value = serde_json::from_str(text).map_err(|e| {
            invalid(vec![format!(
                "{FILE} line {} column {}: not valid JSON ({}): fix the syntax there",
                e.line(),
                e.column(),
                syntax(&e)
            )])
        })?;
        let mut problems = Vec::new();
        let Value::Object(top) = value else {
            return Err(invalid(vec![format!(
                "{FILE}: the file must be a JSON object with an `accessKeys` list"
            )]));
        };
        for name in top
            .keys()
            .filter(|k| !matches!(k.as_str(), "accessKeys" | "mfaDevices" | "sessionKeys"))
        {
            problems.push(format!(
                "{FILE}: unknown field `{}`: the file has `accessKeys`, `mfaDevices` and `sessionKeys`",
                printable(name)
            ));
        }
        let list = |name: &str, problems: &mut Vec<String>| match top.get(name) {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(entries)) => &entries[..],
            Some(_) => {
                problems.push(format!("{FILE}: `{name}` must be a list"));
                &[][..]
            }
        };
        let access_keys = list("accessKeys", &mut problems)
            .iter()
            .enumerate()
            .filter_map(|(i, e)| entry_of(i, e, &mut problems))
            .collect::<Vec<_>>();
        let mfa_devices = list("mfaDevices", &mut problems)
            .iter()
            .enumerate()
            .filter_map(|(i, e)| device_of(i, e, &mut problems))
            .collect::<Vec<_>>();
        let session_keys = list("sessionKeys", &mut problems)
            .iter()
            .enumerate()
            .filter_map(|(i, e)| session_key_of(i, e, &mut problems))
            .collect::<Vec<_>>();
        let file = Self {
            access_keys,
            mfa_devices,
            session_keys,
        };
        file.check_set(&mut problems);
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(invalid(problems))
        }
    }

    /// Unique IDs, and at most [`KEYS_PER_USER`] keys a user.
    fn check_set(&self, problems: &mut Vec<String>) {
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut users: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, k) in self.access_keys.iter().enumerate() {
            if let Some(first) = ids.insert(&k.id, i) {
                problems.push(format!(
                    "{FILE}: accessKeys[{i}]: {} is also accessKeys[{first}]: an ID names one key; delete one of them",
                    k.id
                ));
            }
            users.entry(&k.user).or_default().push(i);
        }
        let mut session_ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, k) in self.session_keys.iter().enumerate() {
            if let Some(first) = session_ids.insert(&k.id, i) {
                problems.push(format!(
                    "{FILE}: sessionKeys[{i}]: the ID {} is also sessionKeys[{first}]'s: give each key its own",
                    k.id
                ));
            }
        }
        let mut serials: BTreeMap<&str, usize> = BTreeMap::new();
        let mut owners: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        for (i, d) in self.mfa_devices.iter().enumerate() {
            if let Some(first) = serials.insert(&d.serial, i) {
                problems.push(format!(
                    "{FILE}: mfaDevices[{i}]: {} is also mfaDevices[{first}]: a serial number names one device; delete one of them",
                    d.serial
                ));
            }
            if let Some(first) = owners.insert(d.user.as_deref(), i) {
                let owner = d
                    .user
                    .as_deref()
                    .map_or("the root".to_owned(), |u| format!("user {u}"));
                problems.push(format!(
                    "{FILE}: mfaDevices[{i}]: {owner} also has mfaDevices[{first}]: iamd gives each a single virtual MFA device; delete one (`iamd mfa deactivate`)"
                ));
            }
        }
        for (user, at) in users {
            if at.len() > KEYS_PER_USER {
                let list: Vec<String> = at.iter().map(|i| format!("accessKeys[{i}]")).collect();
                problems.push(format!(
                    "{FILE}: user {user} has {} access keys ({}); a user may have {KEYS_PER_USER}, as in AWS: delete the others (`iamd keys delete`)",
                    at.len(),
                    list.join(", ")
                ));
            }
        }
    }

    /// The keys of `user`, in file order.
    pub fn keys_of<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a AccessKey> + 'a {
        self.access_keys.iter().filter(move |k| k.user == user)
    }

    /// The MFA device of `user` (`None`: the root), if it has one.
    pub fn device_of(&self, user: Option<&str>) -> Option<&MfaDevice> {
        self.mfa_devices.iter().find(|d| d.user.as_deref() == user)
    }

    /// The file's text: JSON, one key a line group, in file order.
    pub fn to_json(&self) -> String {
        let keys: Vec<Value> = self
            .access_keys
            .iter()
            .map(|k| {
                let mut m = Map::new();
                m.insert("accessKeyId".into(), k.id.clone().into());
                m.insert("secretAccessKey".into(), k.secret.expose().into());
                m.insert("userName".into(), k.user.clone().into());
                m.insert("status".into(), k.status.as_str().into());
                if let Some(t) = k.created {
                    m.insert("createDate".into(), t.to_string().into());
                }
                Value::Object(m)
            })
            .collect();
        let devices: Vec<Value> = self
            .mfa_devices
            .iter()
            .map(|d| {
                let mut m = Map::new();
                m.insert("serialNumber".into(), d.serial.clone().into());
                if let Some(u) = &d.user {
                    m.insert("userName".into(), u.clone().into());
                }
                m.insert("seed".into(), d.seed.expose().into());
                m.insert("status".into(), d.status.as_str().into());
                if let Some(t) = d.enabled {
                    m.insert("enableDate".into(), t.to_string().into());
                }
                Value::Object(m)
            })
            .collect();
        let session_keys: Vec<Value> = self
            .session_keys
            .iter()
            .map(|k| {
                let mut m = Map::new();
                m.insert("id".into(), k.id.clone().into());
                m.insert("key".into(), k.encoded().into());
                if let Some(t) = k.created {
                    m.insert("createDate".into(), t.to_string().into());
                }
                Value::Object(m)
            })
            .collect();
        let mut top = Map::new();
        top.insert("accessKeys".into(), Value::Array(keys));
        if !devices.is_empty() {
            top.insert("mfaDevices".into(), Value::Array(devices));
        }
        if !session_keys.is_empty() {
            top.insert("sessionKeys".into(), Value::Array(session_keys));
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(top)).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the file into `dir` (made if missing) in one rename, readable
    /// by its owner only.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(self.to_json().as_bytes())?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, dir.join(FILE))
    }
}

/// A new file next to the credentials file, readable by its owner only.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, file))
}

/// One entry of `accessKeys`, or its problems.
fn entry_of(i: usize, entry: &Value, problems: &mut Vec<String>) -> Option<AccessKey> {
    let at = format!("{FILE}: accessKeys[{i}]");
    let Value::Object(fields) = entry else {
        problems.push(format!(
            "{at}: an access key must be an object with accessKeyId, secretAccessKey, userName and status"
        ));
        return None;
    };
    let before = problems.len();
    for name in fields.keys() {
        if !matches!(
            name.as_str(),
            "accessKeyId" | "secretAccessKey" | "userName" | "status" | "createDate"
        ) {
            problems.push(format!(
                "{at}: unknown field `{}`: an access key has accessKeyId, secretAccessKey, userName, status and createDate",
                printable(name)
            ));
        }
    }
    // The ID is shown only once it is known to be one: a secret pasted in
    // the wrong field must not reach a log.
    let at = match fields.get("accessKeyId") {
        Some(Value::String(id)) if key::kind_of(id) == Some(KeyKind::LongTerm) => {
            format!("{at} ({id})")
        }
        _ => at,
    };
    let mut text = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            problems.push(format!("{at}: `{name}` must be a string"));
            None
        }
        None => {
            problems.push(format!("{at}: `{name}` is missing"));
            None
        }
    };
    let id = text("accessKeyId");
    let secret = text("secretAccessKey");
    let user = text("userName");
    let status = text("status");
    if id.is_some_and(|id| key::kind_of(id) != Some(KeyKind::LongTerm)) {
        problems.push(format!(
            "{at}: `accessKeyId` is not a long-term access key ID: 20 characters, AKIA then 16 upper-case letters and digits (`iamd keys create` makes one)"
        ));
    }
    if let Some(s) = secret
        && (s.len() < MIN_SECRET_LEN || !s.bytes().all(|b| b.is_ascii_graphic()))
    {
        problems.push(format!(
                "{at}: `secretAccessKey` must be at least {MIN_SECRET_LEN} printable ASCII characters without spaces (`iamd keys create` makes one)"
            ));
    }
    if let Some(u) = user
        && !is_user_name(u)
    {
        problems.push(format!(
            "{at}: `userName` is not an IAM user name: 1 to 64 letters, digits and +=,.@_-"
        ));
    }
    let status = match status {
        Some("Active") => Some(Status::Active),
        Some("Inactive") => Some(Status::Inactive),
        Some(_) => {
            problems.push(format!("{at}: `status` must be Active or Inactive"));
            None
        }
        None => None,
    };
    let created = match fields.get("createDate") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.parse::<Timestamp>() {
            Ok(t) => Some(t),
            Err(_) => {
                problems.push(format!(
                    "{at}: `createDate` must be an RFC 3339 time such as 2026-12-04T21:00:00Z"
                ));
                None
            }
        },
        Some(_) => {
            problems.push(format!("{at}: `createDate` must be a string"));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(AccessKey {
        id: id?.to_owned(),
        user: user?.to_owned(),
        secret: Secret::new(secret?.to_owned()),
        status: status?,
        created,
    })
}

/// One entry of `mfaDevices`, or its problems. The seed is never quoted.
fn device_of(i: usize, entry: &Value, problems: &mut Vec<String>) -> Option<MfaDevice> {
    let at = format!("{FILE}: mfaDevices[{i}]");
    let Value::Object(fields) = entry else {
        problems.push(format!(
            "{at}: an MFA device must be an object with serialNumber, seed and status"
        ));
        return None;
    };
    let before = problems.len();
    for name in fields.keys() {
        if !matches!(
            name.as_str(),
            "serialNumber" | "userName" | "seed" | "status" | "enableDate"
        ) {
            problems.push(format!(
                "{at}: unknown field `{}`: an MFA device has serialNumber, userName, seed, status and enableDate",
                printable(name)
            ));
        }
    }
    let string = |name: &str, problems: &mut Vec<String>| match fields.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        None | Some(Value::Null) => None,
        Some(_) => {
            problems.push(format!("{at}: `{name}` must be a string"));
            None
        }
    };
    let serial = string("serialNumber", problems);
    let user = string("userName", problems);
    let seed = string("seed", problems);
    let status = string("status", problems);
    let enabled = string("enableDate", problems);
    let serial_ok = serial.is_some_and(|s| {
        let Some((account, name)) = s
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.split_once(":mfa/"))
        else {
            return false;
        };
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        account_ok
            && match user {
                Some(u) => name == u,
                None => name == "root-account-mfa-device",
            }
    });
    if !serial_ok {
        problems.push(format!(
            "{at}: `serialNumber` must be arn:aws:iam::ACCOUNT:mfa/USER_NAME (the device's user), or arn:aws:iam::ACCOUNT:mfa/root-account-mfa-device without a userName"
        ));
    }
    if let Some(u) = user
        && !is_user_name(u)
    {
        problems.push(format!(
            "{at}: `userName` is not an IAM user name: 1 to 64 letters, digits and +=,.@_-"
        ));
    }
    let seed_ok = seed
        .and_then(crate::totp::from_base32)
        .is_some_and(|b| b.len() >= 10);
    if !seed_ok {
        problems.push(format!(
            "{at}: `seed` must be the device's seed in base32, at least 80 bits (`iamd mfa enable` makes one)"
        ));
    }
    let status = match status {
        Some("Active") => Some(MfaStatus::Active),
        Some("Pending") => Some(MfaStatus::Pending),
        _ => {
            problems.push(format!("{at}: `status` must be Active or Pending"));
            None
        }
    };
    let enabled = match enabled.map(str::parse::<Timestamp>) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            problems.push(format!(
                "{at}: `enableDate` must be an RFC 3339 time such as 2026-12-04T21:00:00Z"
            ));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(MfaDevice {
        serial: serial?.to_owned(),
        user: user.map(str::to_owned),
        seed: Secret::new(seed?.to_owned()),
        status: status?,
        enabled,
    })
}

/// One entry of `sessionKeys`, or its problems. The key is never quoted.
fn session_key_of(i: usize, entry: &Value, problems: &mut Vec<String>) -> Option<SessionKey> {
    let at = format!("{FILE}: sessionKeys[{i}]");
    let fix = "(`iamd keys rotate-session-key` makes one)";
    let Value::Object(fields) = entry else {
        problems.push(format!(
            "{at}: a session key must be an object with id and key {fix}"
        ));
        return None;
    };
    let before = problems.len();
    for name in fields
        .keys()
        .filter(|k| !matches!(k.as_str(), "id" | "key" | "createDate"))
    {
        problems.push(format!(
            "{at}: unknown field `{}`: a session key has id, key and createDate",
            printable(name)
        ));
    }
    let id = match fields.get("id") {
        Some(Value::String(id))
            if (1..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            Some(id.clone())
        }
        _ => {
            problems.push(format!(
                "{at}: `id` must be 1 to 64 letters, digits and dashes {fix}"
            ));
            None
        }
    };
    let key = match fields.get("key") {
        Some(Value::String(k)) => SessionKey::decode(k),
        _ => None,
    };
    if key.is_none() {
        problems.push(format!("{at}: `key` must be 32 bytes in base64 {fix}"));
    }
    let created = match fields.get("createDate") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => s.parse::<Timestamp>().ok(),
        Some(_) => None,
    };
    if fields.get("createDate").is_some_and(|v| !v.is_null()) && created.is_none() {
        problems.push(format!(
            "{at}: `createDate` must be an RFC 3339 time such as 2026-12-04T21:00:00Z"
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(SessionKey::new(id?, key?, created))
}

/// A field name as it may be printed: names are not secrets, but one can
/// be anything, so at most 64 printable characters of it.
fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// What kind of syntax error, in words that never quote the input.
fn syntax(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "the file ends early",
        _ => "unexpected text",
    }
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn entry(id: &str, user: &str) -> String {
        format!(
            r#"{{"accessKeyId": "{id}", "secretAccessKey": "{SECRET}", "userName": "{user}", "status": "Active"}}"#
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match CredentialsFile::parse(text) {
            Err(CredentialsError::Invalid { problems }) => problems,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_written_reads_back_the_same() {
        let (id, secret) = key::generate(KeyKind::LongTerm).unwrap();
        let file = CredentialsFile {
            access_keys: vec![AccessKey {
                id,
                user: "alice".into(),
                secret,
                status: Status::Inactive,
                created: Some("2026-12-04T21:00:00Z".parse().unwrap()),
            }],
            ..CredentialsFile::default()
        };
        let dir = tempfile::tempdir().unwrap();
        file.write(dir.path()).unwrap();
        let (read, digest) = CredentialsFile::read(dir.path()).unwrap();
        assert_eq!(read, file);
        assert_eq!(digest.len(), 64);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No file: no keys. No directory: an error.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            CredentialsFile::read(empty.path()).unwrap().0,
            CredentialsFile::default()
        );
        assert!(CredentialsFile::read(&empty.path().join("missing")).is_err());
    }

    #[test]
    fn each_problem_names_its_entry_and_field_and_never_the_secret() {
        let cases: &[(String, &str)] = &[
            (
                format!(
                    r#"{{"accessKeys": [{}"#,
                    entry("AKIAIOSFODNN7EXAMPLE", "alice")
                ),
                "credentials.json line 1 column 159: not valid JSON (the file ends early)",
            ),
            (
                r#"{"accessKey": []}"#.to_owned(),
                "credentials.json: unknown field `accessKey`: the file has `accessKeys`, `mfaDevices` and `sessionKeys`",
            ),
            (
                format!(
                    r#"{{"accessKeys": [{{"accessKeyId": "{SECRET}", "secretAccessKey": "AKIAIOSFODNN7EXAMPLE", "userName": "alice", "status": "Active"}}]}}"#
                ),
                "credentials.json: accessKeys[0]: `accessKeyId` is not a long-term access key ID",
            ),
            (
                r#"{"accessKeys": [{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": 12345678901234567890, "userName": "alice", "status": "Active"}]}"#.to_owned(),
                "credentials.json: accessKeys[0] (AKIAIOSFODNN7EXAMPLE): `secretAccessKey` must be a string",
            ),
            (
                r#"{"accessKeys": [{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "short", "userName": "alice", "status": "On"}]}"#.to_owned(),
                "credentials.json: accessKeys[0] (AKIAIOSFODNN7EXAMPLE): `secretAccessKey` must be at least 16",
            ),
            (
                r#"{"accessKeys": [{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "al ice", "status": "Active"}]}"#.to_owned(),
                "credentials.json: accessKeys[0] (AKIAIOSFODNN7EXAMPLE): `secretAccessKey` is missing",
            ),
            (
                format!(
                    r#"{{"accessKeys": [{}, {}]}}"#,
                    entry("AKIAIOSFODNN7EXAMPLE", "alice"),
                    entry("AKIAIOSFODNN7EXAMPLE", "bob")
                ),
                "credentials.json: accessKeys[1]: AKIAIOSFODNN7EXAMPLE is also accessKeys[0]",
            ),
            (
                format!(
                    r#"{{"accessKeys": [{}, {}, {}]}}"#,
                    entry("AKIAAAAAAAAAAAAAAAAA", "alice"),
                    entry("AKIABBBBBBBBBBBBBBBB", "alice"),
                    entry("AKIACCCCCCCCCCCCCCCC", "alice")
                ),
                "credentials.json: user alice has 3 access keys (accessKeys[0], accessKeys[1], accessKeys[2]); a user may have 2",
            ),
        ];
        for (text, expected) in cases {
            let found = problems(text);
            assert!(
                found.iter().any(|p| p.starts_with(expected)),
                "{text}\nexpected {expected}\nfound {found:#?}"
            );
            for p in &found {
                assert!(
                    !p.contains(SECRET) && !p.contains("12345678901234567890"),
                    "{p}"
                );
            }
        }
        // Every problem of an entry is reported, not only the first.
        let found = problems(
            r#"{"accessKeys": [{"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "short", "userName": "al ice", "status": "On", "createDate": "yesterday"}]}"#,
        );
        assert_eq!(found.len(), 4, "{found:#?}");
    }

    #[test]
    fn mfa_devices_read_back_and_their_problems_never_quote_the_seed() {
        let seed = crate::totp::base32(b"0123456789abcdefghij");
        let text = format!(
            r#"{{"mfaDevices": [{{"serialNumber": "arn:aws:iam::123456789012:mfa/alice", "userName": "alice", "seed": "{seed}", "status": "Active", "enableDate": "2026-12-04T21:05:00Z"}},
              {{"serialNumber": "arn:aws:iam::123456789012:mfa/root-account-mfa-device", "seed": "{seed}", "status": "Pending"}}]}}"#
        );
        let file = CredentialsFile::parse(&text).unwrap();
        assert_eq!(file.mfa_devices.len(), 2);
        assert_eq!(file.device_of(None).unwrap().status, MfaStatus::Pending);
        assert_eq!(
            file.device_of(Some("alice")).unwrap().serial,
            mfa_serial("123456789012", Some("alice"))
        );
        assert_eq!(CredentialsFile::parse(&file.to_json()).unwrap(), file);
        // Session keys too; a bad one is named, never quoted.
        let now = "2026-12-04T22:00:00Z".parse().unwrap();
        let with_keys = CredentialsFile {
            session_keys: vec![
                SessionKey::generate(now).unwrap(),
                SessionKey::generate(now).unwrap(),
            ],
            ..file
        };
        assert_eq!(
            CredentialsFile::parse(&with_keys.to_json()).unwrap(),
            with_keys
        );
        let short = r#"{"sessionKeys": [{"id": "sk-1", "key": "c2hvcnQga2V5"}]}"#;
        let found = problems(short);
        assert!(
            found[0]
                .starts_with("credentials.json: sessionKeys[0]: `key` must be 32 bytes in base64"),
            "{found:#?}"
        );
        assert!(!found[0].contains("c2hvcnQga2V5"));
        for (entry, expected) in [
            (
                format!(r#"{{"serialNumber": "arn:aws:iam::123456789012:mfa/bob", "userName": "alice", "seed": "{seed}", "status": "Active"}}"#),
                "credentials.json: mfaDevices[0]: `serialNumber` must be arn:aws:iam::ACCOUNT:mfa/USER_NAME",
            ),
            (
                r#"{"serialNumber": "arn:aws:iam::123456789012:mfa/alice", "userName": "alice", "seed": "not base32!", "status": "Active"}"#.to_owned(),
                "credentials.json: mfaDevices[0]: `seed` must be the device's seed in base32",
            ),
            (
                format!(r#"{{"serialNumber": "arn:aws:iam::123456789012:mfa/alice", "userName": "alice", "seed": "{seed}", "status": "On"}}"#),
                "credentials.json: mfaDevices[0]: `status` must be Active or Pending",
            ),
        ] {
            let found = problems(&format!(r#"{{"mfaDevices": [{entry}]}}"#));
            assert!(found.iter().any(|p| p.starts_with(expected)), "{found:#?}");
            assert!(found.iter().all(|p| !p.contains(&seed) && !p.contains("not base32")), "{found:#?}");
        }
        let twice = format!(
            r#"{{"mfaDevices": [{{"serialNumber": "arn:aws:iam::123456789012:mfa/alice", "userName": "alice", "seed": "{seed}", "status": "Active"}}, {{"serialNumber": "arn:aws:iam::210987654321:mfa/alice", "userName": "alice", "seed": "{seed}", "status": "Active"}}]}}"#
        );
        let found = problems(&twice);
        assert!(
            found[0]
                .starts_with("credentials.json: mfaDevices[1]: user alice also has mfaDevices[0]"),
            "{found:#?}"
        );
    }

    #[test]
    fn keys_of_a_user() {
        let text = format!(
            r#"{{"accessKeys": [{}, {}, {}]}}"#,
            entry("AKIAAAAAAAAAAAAAAAAA", "alice"),
            entry("AKIABBBBBBBBBBBBBBBB", "bob"),
            entry("AKIACCCCCCCCCCCCCCCC", "alice")
        );
        let file = CredentialsFile::parse(&text).unwrap();
        let ids: Vec<&str> = file.keys_of("alice").map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["AKIAAAAAAAAAAAAAAAAA", "AKIACCCCCCCCCCCCCCCC"]);
    }
}
