//! Bundle signatures: ed25519 over a bundle's digest and revision.
//!
//! A signed bundle carries [`FILE`] (`.signatures.json`) at its root,
//! inside its archive or in its directory, beside the files it covers and
//! not covered by the digest itself:
//!
//! ```json
//! {"format": "iamd-bundle-signature/v1",
//!  "digest": "<the bundle's SHA-256, hex>", "revision": "<bundle.yaml's revision, or null>",
//!  "signatures": [{"keyid": "ed25519:<16 hex>", "signature": "<base64>"}]}
//! ```
//!
//! Each signature is over [`message`]: the format, the digest and the
//! revision, one a line. A key's id is `ed25519:` and the first 16 hex
//! digits of the SHA-256 of its 32 public-key bytes, so that a verifier
//! needs only the public key files. Several signatures may be given (key
//! rotation: sign with the old and the new key while the fleet moves).
//!
//! Keys are files in the standard formats: a private key in PKCS#8 PEM
//! (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519`
//! or `iamd bundle keygen` writes it), a public key in SubjectPublicKeyInfo
//! PEM (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout` writes it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use iamd_bundle::BundleError;

/// The signature file's name, at the bundle's root.
pub const FILE: &str = ".signatures.json";

/// The format this code writes and reads.
pub const FORMAT: &str = "iamd-bundle-signature/v1";

/// The largest signature file read (a few keys' signatures are < 1 KiB).
const MAX_FILE: u64 = 1 << 20;

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the
/// algorithm `1.3.101.112` and a 33-byte bit string.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The DER before the 32-byte seed of an ed25519 PKCS#8 v1 private key
/// (RFC 8410), and of a v2 one (RFC 5958, as ring makes it).
const PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The signature file, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signatures {
    /// [`FORMAT`].
    pub format: String,
    /// The bundle's digest (lowercase hex SHA-256, [`iamd_bundle::BundleFiles::digest`]).
    pub digest: String,
    /// `revision:` from `bundle.yaml`, if it has one.
    pub revision: Option<String>,
    /// One per signing key.
    pub signatures: Vec<Signature>,
}

/// One key's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// [`key_id`] of the signing key.
    pub keyid: String,
    /// The ed25519 signature of [`message`], standard base64.
    pub signature: String,
}

/// What is signed: the format, the digest and the revision, one a line.
pub fn message(digest: &str, revision: Option<&str>) -> Vec<u8> {
    format!(
        "{FORMAT}\ndigest:{digest}\nrevision:{}\n",
        revision.unwrap_or("")
    )
    .into_bytes()
}

/// A key's id: `ed25519:` and 16 hex digits of the SHA-256 of its public
/// key's bytes.
pub fn key_id(public: &[u8]) -> String {
    let hash = Sha256::digest(public);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("ed25519:{hex}")
}

/// A problem with a key file or a signature, for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

fn read_pem(path: &Path) -> Result<Vec<u8>, KeyError> {
    let bytes = iamd_bundle::regular_file::read(path, 64 << 10)
        .map_err(|e| KeyError(format!("{}: {e}", path.display())))?;
    Ok(bytes)
}

/// A signing key, read from a PKCS#8 PEM file.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is a secret: its id only.
        f.debug_struct("SigningKey").field("id", &self.id).finish()
    }
}

impl SigningKey {
    /// Reads a private key: PKCS#8 PEM (v1 as OpenSSL writes it, or v2
    /// with the public key, as `iamd bundle keygen` does).
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        use rustls_pki_types::pem::PemObject as _;
        let pem = read_pem(path)?;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| {
            KeyError(format!(
                "{}: not a PKCS#8 PEM private key ({e}): give a file that begins `-----BEGIN PRIVATE KEY-----` (`iamd bundle keygen`, or `openssl genpkey -algorithm ed25519`)",
                path.display()
            ))
        })?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der()).map_err(|e| {
                KeyError(format!(
                    "{}: not an ed25519 private key ({e}): bundles are signed with ed25519 keys",
                    path.display()
                ))
            })?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, id })
    }

    /// A new key pair: the private key as PKCS#8 v2 PEM and the public key
    /// as SubjectPublicKeyInfo PEM.
    pub fn generate() -> Result<(String, String), KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| KeyError("the system's random number generator failed".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| KeyError(format!("the generated key: {e}")))?;
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        // ring makes PKCS#8 v2 (RFC 5958: the seed, then the public key),
        // which OpenSSL 3.0 cannot read; written as v1 (RFC 8410: the seed
        // alone), as OpenSSL writes it, both read it.
        let seed = pkcs8
            .as_ref()
            .strip_prefix(&PKCS8_V2_PREFIX[..])
            .and_then(|rest| rest.get(..32))
            .ok_or_else(|| KeyError("the generated key has an unexpected form".into()))?;
        let mut v1 = PKCS8_V1_PREFIX.to_vec();
        v1.extend_from_slice(seed);
        Ok((pem("PRIVATE KEY", &v1), pem("PUBLIC KEY", &spki)))
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This key's signature of a bundle's digest and revision.
    pub fn sign(&self, digest: &str, revision: Option<&str>) -> Signature {
        let sig = self.pair.sign(&message(digest, revision));
        Signature {
            keyid: self.id.clone(),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        }
    }
}

/// PEM text of `der` under `label`, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A trusted public key.
#[derive(Debug, Clone)]
struct Trusted {
    path: PathBuf,
    key: Vec<u8>,
}

/// The keys a daemon trusts: a bundle is live only with a good signature
/// by one of them.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    keys: BTreeMap<String, Trusted>,
}

/// What a good signature said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed.
    pub keyid: String,
    /// The revision it signed.
    pub revision: Option<String>,
}

impl Verifier {
    /// Reads public keys (SubjectPublicKeyInfo PEM): files, or directories
    /// whose `*.pub` and `*.pem` files are keys (a mounted ConfigMap);
    /// every problem at once.
    pub fn read(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        let mut problems = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            if !path.is_dir() {
                files.push(path.clone());
                continue;
            }
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| KeyError(format!("{}: {e}", path.display())))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    !name.starts_with('.') && (name.ends_with(".pub") || name.ends_with(".pem"))
                })
                .collect();
            if found.is_empty() {
                problems.push(format!(
                    "{}: no public key in it (files named `*.pub` or `*.pem`)",
                    path.display()
                ));
            }
            found.sort();
            files.extend(found);
        }
        for path in &files {
            match public_key(path) {
                Ok(key) => {
                    keys.insert(
                        key_id(&key),
                        Trusted {
                            path: path.clone(),
                            key,
                        },
                    );
                }
                Err(e) => problems.push(e.0),
            }
        }
        if !problems.is_empty() {
            return Err(KeyError(problems.join("\n")));
        }
        Ok(Self { keys })
    }

    /// The trusted keys' ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks `signatures` (the signature file's text; `None`: unsigned)
    /// against the bundle's `digest`. Good when a trusted key signed this
    /// digest; refused when the bundle is unsigned, signed for other files,
    /// signed only by unknown keys, or when any signature by a trusted key
    /// is bad (a tampered file).
    pub fn verify(&self, signatures: Option<&str>, digest: &str) -> Result<Verified, String> {
        let Some(text) = signatures else {
            return Err(format!(
                "unsigned: this daemon trusts only bundles signed by {} (`bundle.verify.keys`), and the bundle has no `{FILE}`; sign it with `iamd bundle sign`",
                self.list()
            ));
        };
        let file: Signatures = serde_json::from_str(text)
            .map_err(|e| format!("`{FILE}` is not a signature file ({e}): sign the bundle again with `iamd bundle sign`"))?;
        if file.format != FORMAT {
            return Err(format!(
                "`{FILE}` has format `{}`; this daemon reads `{FORMAT}`",
                file.format
            ));
        }
        if file.digest != digest {
            return Err(format!(
                "the signature is for other files (signed sha256:{}, these are sha256:{}): the bundle changed after it was signed; sign it again",
                short(&file.digest),
                short(digest)
            ));
        }
        let msg = message(&file.digest, file.revision.as_deref());
        let mut good = None;
        for sig in &file.signatures {
            let Some(trusted) = self.keys.get(&sig.keyid) else {
                continue;
            };
            let ok = base64::engine::general_purpose::STANDARD
                .decode(&sig.signature)
                .is_ok_and(|bytes| {
                    UnparsedPublicKey::new(&ED25519, &trusted.key)
                        .verify(&msg, &bytes)
                        .is_ok()
                });
            if !ok {
                return Err(format!(
                    "bad signature by trusted key {} ({}): the bundle or its signature was altered; refused",
                    sig.keyid,
                    trusted.path.display()
                ));
            }
            good.get_or_insert_with(|| sig.keyid.clone());
        }
        match good {
            Some(keyid) => Ok(Verified {
                keyid,
                revision: file.revision,
            }),
            None => {
                let by: Vec<&str> = file.signatures.iter().map(|s| s.keyid.as_str()).collect();
                Err(format!(
                    "signed only by unknown keys ({}); this daemon trusts {}: add the signer's public key to `bundle.verify.keys`, or sign with a trusted key",
                    if by.is_empty() {
                        "none".to_owned()
                    } else {
                        by.join(", ")
                    },
                    self.list()
                ))
            }
        }
    }

    fn list(&self) -> String {
        let ids: Vec<&str> = self.ids().collect();
        ids.join(", ")
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// A public key's 32 bytes, from SubjectPublicKeyInfo PEM.
fn public_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    use rustls_pki_types::pem::PemObject as _;
    let pem = read_pem(path)?;
    let der = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(&pem).map_err(|e| {
        KeyError(format!(
            "{}: not a PEM public key ({e}): give a file that begins `-----BEGIN PUBLIC KEY-----` (`iamd bundle keygen`, or `openssl pkey -in KEY -pubout`)",
            path.display()
        ))
    })?;
    match der.as_ref().strip_prefix(&SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(key.to_vec()),
        _ => Err(KeyError(format!(
            "{}: not an ed25519 public key: bundles are verified with ed25519 keys",
            path.display()
        ))),
    }
}

/// Signs a bundle's digest and revision with every key, adding to the
/// signatures `existing` holds for the same digest and revision (another
/// key's, during a rotation) and replacing those of the same keys.
pub fn sign(
    keys: &[SigningKey],
    digest: &str,
    revision: Option<&str>,
    existing: Option<&str>,
) -> Signatures {
    let mut kept: Vec<Signature> = existing
        .and_then(|t| serde_json::from_str::<Signatures>(t).ok())
        .filter(|s| s.format == FORMAT && s.digest == digest && s.revision.as_deref() == revision)
        .map(|s| s.signatures)
        .unwrap_or_default();
    kept.retain(|s| keys.iter().all(|k| k.id() != s.keyid));
    kept.extend(keys.iter().map(|k| k.sign(digest, revision)));
    kept.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    Signatures {
        format: FORMAT.to_owned(),
        digest: digest.to_owned(),
        revision: revision.map(str::to_owned),
        signatures: kept,
    }
}

impl Signatures {
    /// The file's text (pretty JSON, a newline at the end).
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The signature file of the bundle directory `dir`, if it has one.
pub fn read_beside(dir: &Path) -> Result<Option<String>, BundleError> {
    let path = dir.join(FILE);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let bytes = iamd_bundle::regular_file::read(&path, MAX_FILE)
        .map_err(|e| crate::error(&path.display().to_string(), e.to_string()))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| crate::error(&path.display().to_string(), "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::{FILE, SigningKey, Verifier, key_id, pem, sign};

    /// RFC 8032's first test key, as OpenSSL writes a private key (PKCS#8
    /// v1, the seed only) and a public key (SubjectPublicKeyInfo).
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn openssl_style(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut v1 = super::PKCS8_V1_PREFIX.to_vec();
        v1.extend(hex(SEED));
        let mut spki = super::SPKI_PREFIX.to_vec();
        spki.extend(hex(PUBLIC));
        let (key, public) = (dir.join("rfc.key"), dir.join("rfc.pub"));
        std::fs::write(&key, pem("PRIVATE KEY", &v1)).unwrap();
        std::fs::write(&public, pem("PUBLIC KEY", &spki)).unwrap();
        (key, public)
    }

    #[test]
    fn openssl_format_keys_sign_and_verify_and_their_id_is_the_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = openssl_style(dir.path());
        let signer = SigningKey::read(&key).unwrap();
        // The public key derived from the seed is RFC 8032's.
        assert_eq!(signer.id(), key_id(&hex(PUBLIC)));
        assert!(!format!("{signer:?}").contains(SEED));
        let verifier = Verifier::read(&[public]).unwrap();
        let file = sign(&[signer], "d1", Some("r1"), None).to_text();
        let v = verifier.verify(Some(&file), "d1").unwrap();
        assert_eq!(v.keyid, key_id(&hex(PUBLIC)));
        assert_eq!(v.revision.as_deref(), Some("r1"));
    }

    #[test]
    fn unsigned_mis_signed_and_unknown_key_bundles_are_refused_and_rotation_works() {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = Vec::new();
        for name in ["old", "new"] {
            let (private, public) = SigningKey::generate().unwrap();
            // The form OpenSSL writes (and reads): PKCS#8 v1.
            use rustls_pki_types::pem::PemObject as _;
            let der =
                rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(private.as_bytes()).unwrap();
            assert!(der.secret_pkcs8_der().starts_with(&super::PKCS8_V1_PREFIX));
            std::fs::write(dir.path().join(format!("{name}.key")), private).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pub")), public).unwrap();
            keys.push(SigningKey::read(&dir.path().join(format!("{name}.key"))).unwrap());
        }
        let [old, new] = ["old", "new"].map(|n| dir.path().join(format!("{n}.pub")));
        let trusts_old = Verifier::read(std::slice::from_ref(&old)).unwrap();
        let trusts_both = Verifier::read(&[old, new.clone()]).unwrap();
        let trusts_new = Verifier::read(std::slice::from_ref(&new)).unwrap();
        let by_old = sign(&keys[..1], "d", None, None).to_text();
        // Rotation: the new key's signature added beside the old one's.
        let by_both = sign(&keys[1..2], "d", None, Some(&by_old)).to_text();
        assert_eq!(
            sign(&keys[1..2], "d", None, Some(&by_both)).to_text(),
            by_both,
            "re-signing replaces"
        );
        for v in [&trusts_old, &trusts_both] {
            assert!(v.verify(Some(&by_old), "d").is_ok());
            assert!(v.verify(Some(&by_both), "d").is_ok());
        }
        assert!(trusts_new.verify(Some(&by_both), "d").is_ok());
        let e = trusts_new.verify(Some(&by_old), "d").unwrap_err();
        assert!(
            e.contains("signed only by unknown keys") && e.contains(keys[0].id()),
            "{e}"
        );
        let e = trusts_old.verify(None, "d").unwrap_err();
        assert!(e.starts_with("unsigned:") && e.contains(FILE), "{e}");
        let e = trusts_old.verify(Some(&by_old), "other").unwrap_err();
        assert!(e.contains("the signature is for other files"), "{e}");
        let e = trusts_old.verify(Some("{not json"), "d").unwrap_err();
        assert!(e.contains("is not a signature file"), "{e}");
        // A signature by a trusted key over something else: tampering.
        let mut tampered = sign(&keys[..1], "x", None, None);
        tampered.digest = "d".into();
        let e = trusts_old
            .verify(Some(&tampered.to_text()), "d")
            .unwrap_err();
        assert!(e.contains("bad signature by trusted key"), "{e}");
        // The revision is signed too.
        let mut relabelled = sign(&keys[..1], "d", Some("r1"), None);
        relabelled.revision = Some("r2".into());
        assert!(
            trusts_old
                .verify(Some(&relabelled.to_text()), "d")
                .unwrap_err()
                .contains("bad signature")
        );
    }

    #[test]
    fn a_directory_of_public_keys_is_every_key_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        for name in ["a.pub", "b.pem"] {
            let (private, public) = SigningKey::generate().unwrap();
            std::fs::write(dir.path().join(name), public).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), &private).unwrap();
            ids.push(
                SigningKey::read(&dir.path().join(format!("{name}.key")))
                    .unwrap()
                    .id()
                    .to_owned(),
            );
        }
        // Kubernetes' own entries and other files are not keys.
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        std::fs::write(dir.path().join("README"), "keys").unwrap();
        let v = Verifier::read(&[dir.path().to_owned()]).unwrap();
        ids.sort();
        assert_eq!(v.ids().collect::<Vec<_>>(), ids);
        let empty = tempfile::tempdir().unwrap();
        let e = Verifier::read(&[empty.path().to_owned()]).unwrap_err();
        assert!(e.0.contains("no public key in it"), "{e}");
    }

    #[test]
    fn key_files_that_are_not_ed25519_pem_are_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, "hello").unwrap();
        assert!(
            SigningKey::read(&p)
                .unwrap_err()
                .0
                .contains("BEGIN PRIVATE KEY")
        );
        assert!(
            Verifier::read(std::slice::from_ref(&p))
                .unwrap_err()
                .0
                .contains("BEGIN PUBLIC KEY")
        );
        // An RSA-shaped public key: PEM, not ed25519.
        std::fs::write(&p, pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x00])).unwrap();
        assert!(
            Verifier::read(&[p])
                .unwrap_err()
                .0
                .contains("not an ed25519 public key")
        );
    }
}
