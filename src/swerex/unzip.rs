//! Extracting an uploaded zip under a target directory without letting any entry escape it:
//! names with `..` or absolute paths, symlink entries pointing outside, and writing through a
//! symlink (already on disk or earlier in the archive) that leads outside are all refused. The
//! whole archive is checked before anything is written, so a refused upload writes nothing.
//! The uncompressed total is capped (a zip bomb is refused, not extracted). Blocking code: run
//! it on a blocking thread.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use zip::ZipArchive;

/// What went wrong, for the client's message.
#[derive(Debug, PartialEq, Eq)]
pub enum UnzipError {
    /// Not a readable zip archive.
    BadZip(String),
    /// An entry would land outside the target (or is otherwise unsafe).
    Unsafe(String),
    /// More uncompressed bytes than allowed.
    TooLarge(u64),
    Io(String),
}

impl std::fmt::Display for UnzipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnzipError::BadZip(m) | UnzipError::Unsafe(m) | UnzipError::Io(m) => f.write_str(m),
            UnzipError::TooLarge(max) => write!(
                f,
                "the archive expands to more than {max} bytes; refusing to extract it"
            ),
        }
    }
}

enum Kind {
    Dir,
    File { executable: bool },
    Symlink(PathBuf),
}

struct Entry {
    index: usize,
    rel: PathBuf,
    kind: Kind,
}

/// `rel` joined onto a lexical stack of normal components; `None` if it climbs out.
fn push_lexical(stack: &mut Vec<std::ffi::OsString>, rel: &Path) -> Option<()> {
    for c in rel.components() {
        match c {
            Component::Normal(n) => stack.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                stack.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(())
}

/// Whether a symlink at `rel` (relative to the target) with target `link` stays inside.
fn link_stays_inside(rel: &Path, link: &Path) -> bool {
    if link.is_absolute() {
        return false;
    }
    let mut stack: Vec<_> = rel
        .parent()
        .map(|p| p.iter().map(|s| s.to_os_string()).collect())
        .unwrap_or_default();
    push_lexical(&mut stack, link).is_some()
}

fn unsafe_entry(name: &str, why: &str) -> UnzipError {
    UnzipError::Unsafe(format!("refusing zip entry {name:?}: {why}"))
}

/// Read and check every entry; nothing is written.
fn plan<R: Read + io::Seek>(
    zip: &mut ZipArchive<R>,
    max_bytes: u64,
) -> Result<Vec<Entry>, UnzipError> {
    let mut entries = Vec::with_capacity(zip.len());
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let mut f = zip
            .by_index(index)
            .map_err(|e| UnzipError::BadZip(format!("entry {index}: {e}")))?;
        let name = f.name().to_string();
        let rel = f.enclosed_name().ok_or_else(|| {
            unsafe_entry(
                &name,
                "absolute path or '..' leading outside the target directory",
            )
        })?;
        total = total.saturating_add(f.size());
        if total > max_bytes {
            return Err(UnzipError::TooLarge(max_bytes));
        }
        let kind = if f.is_symlink() {
            let mut link = String::new();
            f.by_ref()
                .take(4096)
                .read_to_string(&mut link)
                .map_err(|e| UnzipError::BadZip(format!("entry {name:?}: {e}")))?;
            let link = PathBuf::from(link);
            if !link_stays_inside(&rel, &link) {
                return Err(unsafe_entry(
                    &name,
                    &format!("symlink to {link:?} points outside the target directory"),
                ));
            }
            Kind::Symlink(link)
        } else if f.is_dir() {
            Kind::Dir
        } else {
            Kind::File {
                executable: f.unix_mode().is_some_and(|m| m & 0o111 != 0),
            }
        };
        entries.push(Entry { index, rel, kind });
    }
    Ok(entries)
}

/// Create the directories of `rel` under `root` (canonical), refusing to pass through a symlink
/// that leads outside `root`. Returns the full path.
fn safe_dirs(root: &Path, rel: &Path) -> Result<PathBuf, UnzipError> {
    let mut p = root.to_path_buf();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = fs::canonicalize(&p).map_err(|e| io_err(&p, e))?;
                if !real.starts_with(root) || !real.is_dir() {
                    return Err(UnzipError::Unsafe(format!(
                        "refusing to extract through {p:?}: a symlink leading outside the target \
                         directory"
                    )));
                }
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(UnzipError::Io(format!(
                    "{p:?} exists and is not a directory"
                )));
            }
            Err(_) => fs::create_dir(&p).map_err(|e| io_err(&p, e))?,
        }
    }
    Ok(p)
}

fn io_err(p: &Path, e: io::Error) -> UnzipError {
    UnzipError::Io(format!("{}: {e}", p.display()))
}

/// Extract `archive` under `target` (created if missing).
pub fn extract(archive: &Path, target: &Path, max_bytes: u64) -> Result<(), UnzipError> {
    let file = fs::File::open(archive).map_err(|e| io_err(archive, e))?;
    let mut zip = ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| UnzipError::BadZip(format!("File is not a zip file ({e})")))?;
    let entries = plan(&mut zip, max_bytes)?;
    fs::create_dir_all(target).map_err(|e| io_err(target, e))?;
    let root = fs::canonicalize(target).map_err(|e| io_err(target, e))?;
    let mut written: u64 = 0;
    for e in entries {
        if let Kind::Dir = e.kind {
            safe_dirs(&root, &e.rel)?;
            continue;
        }
        let parent = match e.rel.parent() {
            Some(p) => safe_dirs(&root, p)?,
            None => root.clone(),
        };
        let Some(name) = e.rel.file_name() else {
            continue;
        };
        let dest = parent.join(name);
        // Replace whatever is there; never write through an existing symlink.
        if let Ok(m) = fs::symlink_metadata(&dest) {
            if m.is_dir() {
                return Err(UnzipError::Io(format!(
                    "{dest:?} exists and is a directory"
                )));
            }
            fs::remove_file(&dest).map_err(|err| io_err(&dest, err))?;
        }
        match e.kind {
            Kind::Symlink(link) => {
                std::os::unix::fs::symlink(&link, &dest).map_err(|err| io_err(&dest, err))?;
            }
            Kind::File { executable } => {
                let mut f = zip
                    .by_index(e.index)
                    .map_err(|err| UnzipError::BadZip(err.to_string()))?;
                let mut out = fs::File::create(&dest).map_err(|err| io_err(&dest, err))?;
                // The declared sizes were checked; the actual bytes are capped too.
                let budget = max_bytes.saturating_sub(written);
                let n = io::copy(&mut f.by_ref().take(budget.saturating_add(1)), &mut out)
                    .map_err(|err| UnzipError::BadZip(format!("{}: {err}", e.rel.display())))?;
                written = written.saturating_add(n);
                if written > max_bytes {
                    drop(out);
                    let _ = fs::remove_file(&dest);
                    return Err(UnzipError::TooLarge(max_bytes));
                }
                out.flush().map_err(|err| io_err(&dest, err))?;
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(0o755));
                }
            }
            Kind::Dir => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn make_zip(dir: &Path, build: impl FnOnce(&mut zip::ZipWriter<fs::File>)) -> PathBuf {
        let p = dir.join("a.zip");
        let mut w = zip::ZipWriter::new(fs::File::create(&p).unwrap());
        build(&mut w);
        w.finish().unwrap();
        p
    }

    fn file(w: &mut zip::ZipWriter<fs::File>, name: &str, data: &[u8]) {
        w.start_file(name, SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }

    #[test]
    fn extracts_files_dirs_and_inner_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let z = make_zip(d.path(), |w| {
            w.add_directory("sub/", SimpleFileOptions::default())
                .unwrap();
            file(w, "sub/a.txt", b"hello");
            file(w, "top.txt", b"top");
            w.add_symlink("sub/link", "../top.txt", SimpleFileOptions::default())
                .unwrap();
        });
        let t = d.path().join("out");
        extract(&z, &t, 1 << 20).unwrap();
        assert_eq!(fs::read_to_string(t.join("sub/a.txt")).unwrap(), "hello");
        assert_eq!(fs::read_to_string(t.join("sub/link")).unwrap(), "top");
    }

    #[test]
    fn refuses_escapes_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        type Build = Box<dyn Fn(&mut zip::ZipWriter<fs::File>)>;
        let cases: Vec<Build> = vec![
            Box::new(|w| file(w, "../evil.txt", b"x")),
            Box::new(|w| file(w, "a/../../evil.txt", b"x")),
            Box::new(|w| file(w, "/abs/evil.txt", b"x")),
            Box::new(|w| {
                w.add_symlink("l", "/etc", SimpleFileOptions::default())
                    .unwrap();
            }),
            Box::new(|w| {
                w.add_symlink("a/l", "../../x", SimpleFileOptions::default())
                    .unwrap();
            }),
        ];
        for (i, build) in cases.into_iter().enumerate() {
            let z = make_zip(d.path(), |w| {
                file(w, "ok.txt", b"ok");
                build(w);
            });
            let t = d.path().join(format!("out{i}"));
            let err = extract(&z, &t, 1 << 20).unwrap_err();
            assert!(matches!(err, UnzipError::Unsafe(_)), "case {i}: {err:?}");
            assert!(!t.join("ok.txt").exists(), "case {i} wrote before refusing");
            assert!(!d.path().join("evil.txt").exists());
        }
    }

    #[test]
    fn refuses_writing_through_an_existing_symlink_out() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let t = d.path().join("out");
        fs::create_dir(&t).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("l")).unwrap();
        let z = make_zip(d.path(), |w| file(w, "l/x.txt", b"x"));
        let err = extract(&z, &t, 1 << 20).unwrap_err();
        assert!(matches!(err, UnzipError::Unsafe(_)), "{err:?}");
        assert!(!outside.join("x.txt").exists());
    }

    #[test]
    fn caps_the_uncompressed_size_and_rejects_non_zips() {
        let d = tempfile::tempdir().unwrap();
        let z = make_zip(d.path(), |w| file(w, "big", &vec![0u8; 10_000]));
        let err = extract(&z, &d.path().join("o"), 1000).unwrap_err();
        assert_eq!(err, UnzipError::TooLarge(1000));
        let junk = d.path().join("junk");
        fs::write(&junk, b"not a zip").unwrap();
        assert!(matches!(
            extract(&junk, &d.path().join("o2"), 1000),
            Err(UnzipError::BadZip(_))
        ));
    }
}
