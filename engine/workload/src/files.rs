//! Files a spec names: the spec itself, program objects and `[[file]]
//! path`s. Each may be anything (a device, a FIFO nobody writes to, a file
//! that grows while it is read), so reads are bounded, non-regular files are
//! refused unless the spec says what they are, and nothing blocks in open(2).

use super::limits;
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a file could not be used. The text says everything (no `source()`).
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// Not a regular file, and the spec did not say it may be something else.
    #[error("it is {what}, not a regular file")]
    NotRegular {
        /// What it is ("a FIFO", "a directory", ...).
        what: &'static str,
    },
    /// The spec said one kind, the file is another.
    #[error("it is {what}, not {expected} (kind = \"{key}\")")]
    WrongKind {
        /// What it is.
        what: &'static str,
        /// What the spec said.
        expected: &'static str,
        /// The spec's `kind`.
        key: &'static str,
    },
    /// Longer than its limit.
    #[error("it is {len} bytes, more than the {} allowed", limits::bytes(*.max))]
    TooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// It grew past its limit while it was read.
    #[error("it grew past the {} allowed while it was read", limits::bytes(*.max))]
    Grew {
        /// The limit.
        max: u64,
    },
    /// Not UTF-8.
    #[error("it is not UTF-8 text")]
    NotUtf8,
    /// The system said no.
    #[error("{0}")]
    Io(std::io::Error),
}

/// What a `[[file]] path` may be (`kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `file` (the default): a regular file.
    Regular,
    /// `fifo`: a named pipe.
    Fifo,
    /// `char`: a character device.
    Char,
    /// `block`: a block device.
    Block,
}

impl FileKind {
    /// The `kind` value, if it is one.
    pub fn parse(s: &str) -> Option<FileKind> {
        Some(match s {
            "file" => FileKind::Regular,
            "fifo" => FileKind::Fifo,
            "char" => FileKind::Char,
            "block" => FileKind::Block,
            _ => return None,
        })
    }

    /// Its `kind` value.
    pub fn key(self) -> &'static str {
        match self {
            FileKind::Regular => "file",
            FileKind::Fifo => "fifo",
            FileKind::Char => "char",
            FileKind::Block => "block",
        }
    }

    /// What it is, in a sentence.
    pub fn what(self) -> &'static str {
        match self {
            FileKind::Regular => "a regular file",
            FileKind::Fifo => "a FIFO",
            FileKind::Char => "a character device",
            FileKind::Block => "a block device",
        }
    }

    /// The kind of a file, or what it is when it is none of them.
    pub fn of(t: FileType) -> Result<FileKind, &'static str> {
        if t.is_file() {
            Ok(FileKind::Regular)
        } else if t.is_fifo() {
            Ok(FileKind::Fifo)
        } else if t.is_char_device() {
            Ok(FileKind::Char)
        } else if t.is_block_device() {
            Ok(FileKind::Block)
        } else if t.is_dir() {
            Err("a directory")
        } else if t.is_socket() {
            Err("a Unix socket")
        } else {
            Err("neither a file nor a device")
        }
    }
}

/// Is `meta` the `expected` kind? The problem to report when not.
pub fn check_kind(meta: &Metadata, expected: FileKind) -> Result<(), FileProblem> {
    match FileKind::of(meta.file_type()) {
        Ok(k) if k == expected => Ok(()),
        Ok(k) if expected == FileKind::Regular => Err(FileProblem::NotRegular { what: k.what() }),
        Ok(k) => Err(FileProblem::WrongKind {
            what: k.what(),
            expected: expected.what(),
            key: expected.key(),
        }),
        Err(what) if expected == FileKind::Regular => Err(FileProblem::NotRegular { what }),
        Err(what) => Err(FileProblem::WrongKind {
            what,
            expected: expected.what(),
            key: expected.key(),
        }),
    }
}

/// Open without blocking (a FIFO waits in open(2) for its other end) and
/// without making a terminal ours.
fn open_nonblocking(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

fn set_blocking(f: &File) -> std::io::Result<()> {
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Read a regular file of at most `max` bytes. The length is checked before
/// reading, and the read itself stops at `max + 1` bytes, since a file can
/// grow (or be replaced) between the two.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, FileProblem> {
    let meta = std::fs::metadata(path).map_err(FileProblem::Io)?;
    check_kind(&meta, FileKind::Regular)?;
    if meta.len() > max {
        return Err(FileProblem::TooLarge {
            len: meta.len(),
            max,
        });
    }
    let f = open_nonblocking(path, false).map_err(FileProblem::Io)?;
    // What was opened may not be what was looked at.
    let meta = f.metadata().map_err(FileProblem::Io)?;
    check_kind(&meta, FileKind::Regular)?;
    if meta.len() > max {
        return Err(FileProblem::TooLarge {
            len: meta.len(),
            max,
        });
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(FileProblem::Io)?;
    if out.len() as u64 > max {
        return Err(FileProblem::Grew { max });
    }
    Ok(out)
}

/// Read a spec file: regular, at most [`limits::MAX_SPEC_BYTES`], UTF-8.
pub fn read_spec_text(path: &Path) -> Result<String, FileProblem> {
    let bytes = read_bounded(path, limits::MAX_SPEC_BYTES)?;
    String::from_utf8(bytes).map_err(|_| FileProblem::NotUtf8)
}

/// Why opening an existing file did not finish.
#[derive(Debug)]
pub enum OpenFailure {
    /// The file is not usable.
    Problem(FileProblem),
    /// The run's timeout passed while waiting for a FIFO's writer.
    TimedOut,
    /// Stopped (Ctrl-C, q) while waiting for a FIFO's writer.
    Stopped,
}

/// When to give up waiting.
#[derive(Clone, Copy, Debug)]
pub struct Wait<'a> {
    /// The run's deadline, if it has one.
    pub deadline: Option<Instant>,
    /// Set when the user stops the run.
    pub stop: &'a AtomicBool,
}

/// Open a `[[file]] path` that must be `kind`. Nothing blocks: a FIFO is
/// opened non-blocking, then setup waits (until the deadline or a stop)
/// for its writer's first bytes or its close, as a read of it would; the
/// descriptor is then made blocking for the ring.
pub fn open_existing(
    path: &Path,
    kind: FileKind,
    writable: bool,
    wait: Wait<'_>,
) -> Result<File, OpenFailure> {
    let problem = OpenFailure::Problem;
    // Refuse a device or FIFO the spec did not declare before opening it:
    // opening some devices does something.
    let meta = std::fs::metadata(path).map_err(|e| problem(FileProblem::Io(e)))?;
    check_kind(&meta, kind).map_err(problem)?;
    let f = open_nonblocking(path, writable).map_err(|e| problem(FileProblem::Io(e)))?;
    let meta = f.metadata().map_err(|e| problem(FileProblem::Io(e)))?;
    check_kind(&meta, kind).map_err(problem)?;
    // Opened for writing too, we are a writer ourselves: nothing to wait for.
    if kind == FileKind::Fifo && !writable {
        wait_readable(&f, wait)?;
    }
    set_blocking(&f).map_err(|e| problem(FileProblem::Io(e)))?;
    Ok(f)
}

/// Wait until `f` has something to read or its writer has come and gone.
fn wait_readable(f: &File, wait: Wait<'_>) -> Result<(), OpenFailure> {
    loop {
        if wait.stop.load(Ordering::Relaxed) {
            return Err(OpenFailure::Stopped);
        }
        // Short slices, so a stop is seen soon.
        let mut slice = Duration::from_millis(100);
        if let Some(d) = wait.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(OpenFailure::TimedOut);
            }
            slice = slice.min(left);
        }
        let mut pfd = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, slice.as_millis().max(1) as libc::c_int) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(OpenFailure::Problem(FileProblem::Io(e)));
        }
        if n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn reads_are_bounded_and_only_of_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10).unwrap(), b"0123456789");
        let e = read_bounded(&p, 9).unwrap_err();
        assert!(
            matches!(e, FileProblem::TooLarge { len: 10, max: 9 }),
            "{e}"
        );
        let e = read_bounded(Path::new("/dev/zero"), 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file"
        );
        let e = read_bounded(dir.path(), 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory, not a regular file");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let e = read_bounded(&fifo, 100).unwrap_err();
        assert_eq!(e.to_string(), "it is a FIFO, not a regular file");
    }

    #[test]
    fn a_fifo_nobody_writes_to_ends_at_the_deadline_or_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let stop = AtomicBool::new(false);
        let soon = Wait {
            deadline: Some(Instant::now() + Duration::from_millis(200)),
            stop: &stop,
        };
        assert!(matches!(
            open_existing(&fifo, FileKind::Fifo, false, soon),
            Err(OpenFailure::TimedOut)
        ));
        let stopped = AtomicBool::new(true);
        let never = Wait {
            deadline: None,
            stop: &stopped,
        };
        assert!(matches!(
            open_existing(&fifo, FileKind::Fifo, false, never),
            Err(OpenFailure::Stopped)
        ));
        // Undeclared, it is refused before it is opened.
        assert!(matches!(
            open_existing(&fifo, FileKind::Regular, false, never),
            Err(OpenFailure::Problem(FileProblem::NotRegular {
                what: "a FIFO"
            }))
        ));
        // A writer's first bytes end the wait; the descriptor then blocks.
        let f2 = fifo.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&f2)
                .and_then(|mut w| std::io::Write::write_all(&mut w, b"hi"))
        });
        let wait = Wait {
            deadline: None,
            stop: &stop,
        };
        let mut f = open_existing(&fifo, FileKind::Fifo, false, wait).unwrap();
        writer.join().unwrap().unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hi");
        // Declared wrongly, it says what it is.
        let e = match open_existing(dir.path(), FileKind::Fifo, false, wait) {
            Err(OpenFailure::Problem(p)) => p.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(e, "it is a directory, not a FIFO (kind = \"fifo\")");
    }
}
