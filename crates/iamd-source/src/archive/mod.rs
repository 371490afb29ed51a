//! A bundle archive: a gzipped tar of a bundle directory, its entries at
//! the root (`bundle.yaml`, `users.yaml`, `policies/P.json`, ...), and the
//! signature file ([`crate::signature::FILE`]) beside them when signed.
//!
//! [`read`] unpacks one in memory, never to disk, and applies a
//! directory's rules ([`BundleFiles::from_files`]) and limits. It refuses,
//! each with its own message: an absolute path or a `..` (path
//! traversal), a link (symbolic or hard: an archive's files are stored,
//! not pointed to), a device, FIFO or other special file, an entry given
//! twice, more entries than [`ReadLimits::files`], and more unpacked bytes
//! than [`ReadLimits::bundle_bytes`] (a decompression bomb is cut off as
//! it unpacks, not after). Entries that are not bundle files (a README)
//! are skipped, as in a directory.
//!
//! [`build`] writes one deterministically: the same files give the same
//! bytes (entries in path order, mode 0644, owner 0, time 0, no names of
//! users or hosts, a gzip header without a time or file name).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use iamd_bundle::{BundleError, BundleFiles, Diagnostic, ReadLimits};

use crate::{Fetched, signature};

/// The bytes of a tar header block; an entry's data is padded to it.
const BLOCK: u64 = 512;

/// Unpacks the archive `bytes` (named `origin` in errors) into a bundle's
/// files and its signatures.
pub fn read(origin: &str, bytes: &[u8], limits: &ReadLimits) -> Result<Fetched, BundleError> {
    let fail = |m: String| crate::error(origin, m);
    if bytes.len() < 2 || bytes[..2] != [0x1f, 0x8b] {
        return Err(fail(
            "is not a gzipped tar (no gzip header): a bundle archive is made by `iamd bundle build DIR -o bundle.tar.gz`".into(),
        ));
    }
    // Every byte the archive unpacks to, headers and padding included, is
    // counted as it is produced: the files' limit, and room for their
    // headers.
    let budget = limits
        .bundle_bytes
        .saturating_add(BLOCK.saturating_mul(2 * (limits.files as u64 + 4)));
    let exceeded = std::cell::Cell::new(false);
    let mut unpacked = Budget {
        inner: flate2::read::GzDecoder::new(bytes),
        left: budget,
        exceeded: &exceeded,
    };
    let mut tar = tar::Archive::new(&mut unpacked);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut signatures = None;
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    let mut count = 0usize;
    let mut total = 0u64;
    let entries = tar.entries().map_err(|e| fail(unreadable(&e)))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(Diagnostic::file(origin, unreadable(&e)));
                break;
            }
        };
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        count += 1;
        if count > limits.files {
            problems.push(Diagnostic::file(
                origin,
                format!(
                    "has more than {} entries: a decompression bomb, or a bundle over its file limit; the last good bundle stays",
                    limits.files
                ),
            ));
            break;
        }
        let kind = entry.header().entry_type();
        // Every entry's data counts, those skipped too: it is unpacked
        // all the same.
        total = total.saturating_add(entry.header().size().unwrap_or(u64::MAX));
        if total > limits.bundle_bytes {
            problems.push(Diagnostic::file(
                origin,
                format!(
                    "unpacks to more than {} bytes (the bundle's limit): a decompression bomb, or a bundle over its limit; the last good bundle stays",
                    limits.bundle_bytes
                ),
            ));
            break;
        }
        let rel = match relative(&name) {
            Ok(rel) => rel,
            Err(why) => {
                problems.push(Diagnostic::file(&name, why));
                continue;
            }
        };
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {}
            T::Directory => continue,
            T::Symlink | T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let leaves = target.starts_with('/') || escapes(&rel, &target);
                problems.push(Diagnostic::file(
                    &rel,
                    if leaves {
                        format!("is a link to `{target}`, outside the bundle: refused (path traversal)")
                    } else {
                        format!("is a link (to `{target}`): an archive's files must be stored, not linked; build it with `iamd bundle build`")
                    },
                ));
                continue;
            }
            T::Char | T::Block | T::Fifo => {
                problems.push(Diagnostic::file(
                    &rel,
                    "is a device or FIFO: an archive holds regular files only",
                ));
                continue;
            }
            // Extended headers that tar reads itself; anything else is a
            // kind of file a bundle never holds.
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                problems.push(Diagnostic::file(
                    &rel,
                    format!(
                        "is a tar entry of type {:?}: an archive holds regular files only",
                        other.as_byte() as char
                    ),
                ));
                continue;
            }
        }
        if !seen.insert(rel.clone()) {
            problems.push(Diagnostic::file(
                &rel,
                "is in the archive twice: a bundle holds one file of each name",
            ));
            continue;
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > limits.file_bytes {
            problems.push(Diagnostic::file(
                &rel,
                format!(
                    "has {size} bytes, more than the limit of {} for one file: the last good bundle stays",
                    limits.file_bytes
                ),
            ));
            continue;
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        if let Err(e) = (&mut entry).take(size).read_to_end(&mut data) {
            problems.push(Diagnostic::file(&rel, unreadable(&e)));
            break;
        }
        if rel == signature::FILE {
            match String::from_utf8(data) {
                Ok(text) => signatures = Some(text),
                Err(_) => problems.push(Diagnostic::file(&rel, "not UTF-8 text")),
            }
        } else {
            files.push((rel, data));
        }
    }
    if exceeded.get() {
        // What was cut short is reported as this, not as a broken archive.
        problems.pop();
        problems.push(Diagnostic::file(
            origin,
            format!(
                "unpacks to more than {budget} bytes (the bundle's limit of {} and its tar headers): a decompression bomb, or a bundle over its limit; the last good bundle stays",
                limits.bundle_bytes
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(BundleError::new(problems));
    }
    let hint = nested(&files);
    let files = BundleFiles::from_files(Path::new(origin), files, limits).map_err(|e| match hint {
        Some(top) if e.lines().iter().any(|l| l.contains("no `bundle.yaml`")) => fail(format!(
            "no `bundle.yaml` at the archive's root: its entries are all under `{top}/`; make it with `iamd bundle build {top} -o FILE` (or `tar -C {top}`), whose entries are at the root"
        )),
        _ => e,
    })?;
    Ok(Fetched {
        files,
        signatures,
        persisted: false,
    })
}

/// An error of the tar or gzip reader, for an operator.
fn unreadable(e: &std::io::Error) -> String {
    format!("cannot unpack the archive: {e} (truncated or not a gzipped tar)")
}

/// The path of an entry relative to the bundle, `./` and empty components
/// dropped; an absolute path or a `..` is refused.
fn relative(name: &str) -> Result<String, String> {
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("is an absolute path: refused (path traversal); an archive's entries are relative to the bundle".into());
    }
    let mut parts = Vec::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                return Err("leaves the bundle (`..`): refused (path traversal)".into());
            }
            p if p.chars().any(char::is_control) => {
                return Err("has a control character in its name: refused".into());
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether a link at `rel` to the relative `target` resolves outside the
/// bundle.
fn escapes(rel: &str, target: &str) -> bool {
    let mut depth: i64 = rel.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// When every entry is under one directory (`bundle/...`), its name: the
/// archive was made of the directory rather than of its contents.
fn nested(files: &[(String, Vec<u8>)]) -> Option<String> {
    let mut tops = files.iter().map(|(p, _)| p.split_once('/').map(|(t, _)| t));
    let first = tops.next()??;
    tops.all(|t| t == Some(first)).then(|| first.to_owned())
}

/// A reader that stops with an error once it has given `left` bytes.
struct Budget<'a, R> {
    inner: R,
    left: u64,
    exceeded: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for Budget<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One byte more than allowed tells a full budget from an
            // archive that ends exactly at it.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.set(true);
                    Err(std::io::Error::other("the archive unpacks past its limit"))
                }
            };
        }
        let room = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The archive of `files` (their paths and texts), with `signatures` (the
/// text of [`signature::FILE`]) first when given: deterministic.
pub fn build(files: &BundleFiles, signatures: Option<&str>) -> std::io::Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let entries = signatures
        .map(|s| (signature::FILE, s))
        .into_iter()
        .chain(files.files());
    for (path, text) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        tar.append_data(&mut header, path, text.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

#[cfg(test)]
mod tests;
