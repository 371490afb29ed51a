//! Reading the files the daemon depends on (bundle files, TLS certificates
//! and keys, its configuration) so that no file can hang or exhaust it: only
//! regular files are read, they are opened without blocking (a FIFO is an
//! error, not a wait for a writer that never comes), and they are read with
//! a byte limit applied while reading (a link to `/dev/zero` is an error,
//! not an endless read).

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// Why a file could not be read. Printed after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The name exists but is something else than a regular file.
    #[error("is {0}: give a regular file")]
    NotRegular(&'static str),
    /// The file is larger than the limit.
    #[error("the file has more than {0} bytes")]
    TooBig(u64),
    /// The operating system refused (absent, no permission, a dangling
    /// link, a loop).
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens a regular file for reading without blocking and without making it
/// a controlling terminal, and checks that what was opened is a regular
/// file (a FIFO swapped in after a check is caught too).
pub fn open(path: &Path) -> Result<(File, Metadata), ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    Ok((file, meta))
}

/// Reads a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open(path)?;
    if meta.len() > limit {
        return Err(ReadError::TooBig(limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte more than the limit tells a file that grew past it.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooBig(limit));
    }
    Ok(bytes)
}

/// What a file that is not a regular file is, for messages.
pub fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::{ReadError, read};

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read(&file, 5).unwrap(), b"12345");
        assert!(matches!(read(&file, 4), Err(ReadError::TooBig(4))));
        assert!(matches!(
            read(dir.path(), 5),
            Err(ReadError::NotRegular("a directory"))
        ));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(matches!(
            read(&fifo, 5),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read(std::path::Path::new("/dev/zero"), 5),
            Err(ReadError::NotRegular("a device"))
        ));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        let e = read(&dangling, 5).unwrap_err();
        assert!(matches!(e, ReadError::Io(_)), "{e}");
        assert!(e.to_string().starts_with("cannot read: "), "{e}");
    }
}
