//! File I/O shared by the built-in file tools, made safe against hostile targets:
//!
//! * Only regular files are read or written. FIFOs, sockets and devices are refused before
//!   any blocking call (the open itself uses `O_NONBLOCK`, so a FIFO swapped in after the
//!   check cannot hang it either): a FIFO with no peer would block forever, `/dev/zero` never
//!   ends. `/proc` files (size 0, content generated on read) are regular and read normally.
//! * Reads go chunk by chunk with a byte cap and check the call's cancel token between
//!   chunks, so a huge file costs bounded memory and an abandoned call stops reading.
//! * Writes go to a temporary file in the same directory, are flushed to disk, then renamed
//!   over the target: a failed write (disk full, file-size limit, read-only directory) leaves
//!   the original intact. The file's permission bits (and, when allowed, owner) are kept; a
//!   symlink is written through (its target is replaced, the link stays).

use std::ffi::OsString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::CancelToken;

/// Bytes read per chunk (and between two cancellation checks).
pub(crate) const CHUNK: usize = 64 * 1024;

/// Why a path could not be opened or read.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(io::Error),
    Directory,
    /// Not a regular file: what it is instead ("a FIFO (named pipe)", ...).
    NotRegular(&'static str),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "{e}"),
            OpenError::Directory => f.write_str("it is a directory"),
            OpenError::NotRegular(what) => write!(
                f,
                "it is {what}, not a regular file (only regular files are read or written)"
            ),
        }
    }
}

/// What a non-regular, non-directory file is, in words.
pub(crate) fn kind_of(m: &Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() || t.is_dir() {
        None
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

fn check_kind(m: &Metadata) -> Result<(), OpenError> {
    if m.is_dir() {
        return Err(OpenError::Directory);
    }
    match kind_of(m) {
        Some(k) => Err(OpenError::NotRegular(k)),
        None => Ok(()),
    }
}

/// Open a regular file for reading without ever blocking (see the module docs). Returns the
/// file and its metadata; a directory is `OpenError::Directory`.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), OpenError> {
    // Look first so a device is never even opened (opening some has side effects).
    check_kind(&std::fs::metadata(path)?)?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let m = f.metadata()?;
    check_kind(&m)?;
    Ok((f, m))
}

/// Why a bounded read stopped early.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    Cancelled,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Feed `r` to `visit` chunk by chunk until EOF or until `visit` returns `false`; the cancel
/// token is checked before every chunk. Returns whether EOF was reached.
pub(crate) fn for_each_chunk(
    r: &mut impl Read,
    cancel: &CancelToken,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> Result<bool, ReadError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if cancel.is_cancelled() {
            return Err(ReadError::Cancelled);
        }
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if !visit(&buf[..n]) {
            return Ok(false);
        }
    }
}

/// Read at most `cap` bytes of `r`; the flag tells whether more followed.
pub(crate) fn read_capped(
    r: &mut impl Read,
    cap: usize,
    cancel: &CancelToken,
) -> Result<(Vec<u8>, bool), ReadError> {
    let mut out = Vec::new();
    let mut more = false;
    for_each_chunk(r, cancel, |chunk| {
        let room = cap - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            more = true;
            return false;
        }
        out.extend_from_slice(chunk);
        true
    })?;
    Ok((out, more))
}

/// A reader that fails with a "cancelled" error once `cancel` fires, for consumers (the grep
/// searcher) that read in their own loop.
pub(crate) struct CancelRead<'a, R> {
    pub inner: R,
    pub cancel: &'a CancelToken,
}

impl<R: Read> Read for CancelRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(io::Error::other("the call was cancelled"));
        }
        self.inner.read(buf)
    }
}

/// How [`write_atomic`] treats an existing target.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Existing {
    Replace,
    /// Fail with `AlreadyExists` (and leave it alone) if the target exists.
    Refuse,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The file a write to `path` lands on: a symlink's final target (so the link survives).
fn write_target(path: &Path) -> io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(e.kind(), "it is a symbolic link to a missing file")
            } else {
                e
            }
        }),
        _ => Ok(path.to_path_buf()),
    }
}

fn not_regular(m: &Metadata) -> Option<io::Error> {
    if m.is_dir() {
        return Some(io::Error::from_raw_os_error(libc::EISDIR));
    }
    kind_of(m).map(|k| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {k}, not a regular file (only regular files are written)"),
        )
    })
}

/// Replace the content of `path` with `bytes` atomically (see the module docs).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    let target = write_target(path)?;
    let old = match std::fs::metadata(&target) {
        Ok(_) if existing == Existing::Refuse => {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        Ok(m) => {
            if let Some(e) = not_regular(&m) {
                return Err(e);
            }
            Some(m)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(name);
    let mode = old
        .as_ref()
        .map_or(0o666, |m| m.permissions().mode() & 0o7777);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let written = (|| -> io::Result<()> {
        if let Some(m) = &old {
            // The umask applied at creation: set the exact bits, and keep the owner when
            // allowed (root editing another user's file).
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            let (uid, gid) = (m.uid(), m.gid());
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        match existing {
            Existing::Replace => std::fs::rename(&tmp, &target),
            Existing::Refuse => rename_noreplace(&tmp, &target),
        }
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; a failure here leaves the new content in place.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `rename` that fails with `AlreadyExists` instead of replacing an existing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // File systems without RENAME_NOREPLACE: a hard link fails the same way if `to` exists.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Append `bytes` to the regular file `path` (created if missing). A failed write truncates
/// the file back to its old length, so it is never left half-appended.
pub(crate) fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Ok(m) = std::fs::metadata(path) {
        if let Some(e) = not_regular(&m) {
            return Err(e);
        }
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let m = f.metadata()?;
    if let Some(e) = not_regular(&m) {
        return Err(e);
    }
    let before = m.len();
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_data()) {
        let _ = f.set_len(before);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_and_devices_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("p");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from(0o600)).unwrap();
        let e = open_regular(&fifo).unwrap_err();
        assert!(
            matches!(e, OpenError::NotRegular("a FIFO (named pipe)")),
            "{e:?}"
        );
        let e = write_atomic(&fifo, b"x", Existing::Replace).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(append(&fifo, b"x")
            .unwrap_err()
            .to_string()
            .contains("FIFO"));
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(e, OpenError::NotRegular("a character device")),
            "{e:?}"
        );
        assert!(matches!(open_regular(d.path()), Err(OpenError::Directory)));
    }

    #[test]
    fn capped_reads_and_cancellation() {
        let cancel = CancelToken::new();
        let data = vec![7u8; CHUNK * 3 + 5];
        let (got, more) = read_capped(&mut &data[..], 10, &cancel).unwrap();
        assert_eq!((got.len(), more), (10, true));
        let (got, more) = read_capped(&mut &data[..], data.len(), &cancel).unwrap();
        assert_eq!((got.len(), more), (data.len(), false));
        // /proc files report size 0 but have content.
        let (f, _) = open_regular(Path::new("/proc/self/status")).unwrap();
        let (got, _) = read_capped(&mut &f, 1 << 20, &cancel).unwrap();
        assert!(String::from_utf8_lossy(&got).contains("Pid:"));
        cancel.cancel();
        assert!(matches!(
            read_capped(&mut &data[..], 10, &cancel),
            Err(ReadError::Cancelled)
        ));
    }

    #[test]
    fn atomic_writes_keep_mode_links_and_refuse_existing() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.sh");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o751)).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink("f.sh", &link).unwrap();
        write_atomic(&link, b"new", Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o751
        );
        let e = write_atomic(&f, b"x", Existing::Refuse).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        write_atomic(&d.path().join("g"), b"g", Existing::Refuse).unwrap();
        // Nothing but the files themselves is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let e = write_atomic(d.path(), b"x", Existing::Replace).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR));
    }
}
