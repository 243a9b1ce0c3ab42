//! The one kernel struct offset the probes need from BTF: where
//! `struct io_ring_ctx` keeps its `IORING_SETUP_*` flags.
//!
//! A ring created before the probes attached fired no `io_uring_create`,
//! and fdinfo does not print setup flags; the ring itself has them. The BPF
//! side reads them from the ctx pointer every event carries, at the offset
//! found here in the running kernel's BTF (the struct's layout changes
//! between kernels; `flags` sits inside an anonymous struct).

use std::path::Path;

/// Where the running kernel's BTF is.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why the offset could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The file is not BTF btfparse can read.
    #[error("{path} is not readable BTF: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// The type or member is not in it.
    #[error("{path} has no {what}")]
    Missing {
        /// The file.
        path: String,
        /// What was looked for (`struct io_ring_ctx`, `io_ring_ctx.flags`).
        what: String,
    },
    /// The member is not a 4-byte-aligned byte offset (a bitfield).
    #[error("{path}: io_ring_ctx.flags is a bitfield or misaligned ({offset})")]
    Layout {
        /// The file.
        path: String,
        /// The offset as btfparse gave it.
        offset: String,
    },
}

/// A byte slice as btfparse reads input.
struct Bytes(Vec<u8>);

impl btfparse::Readable for Bytes {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(buffer.len())?));
        match src {
            Some(src) => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            None => Err(btfparse::Error::new(
                btfparse::ErrorKind::IOError,
                "read past the end of the BTF data",
            )),
        }
    }
}

/// Byte offset of `flags` in `struct io_ring_ctx` per the BTF at `path`.
/// Parsing the kernel's BTF takes a few hundred milliseconds: callers run
/// it off the hot path.
pub fn ctx_flags_offset(path: &Path) -> Result<u32, BtfError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| BtfError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    ctx_flags_offset_in(&shown, bytes)
}

/// [`ctx_flags_offset`] of the running kernel ([`VMLINUX_BTF`]), parsed
/// once per process: every probe session after the first gets it at once
/// (the parse is most of a second in a debug build, tens of seconds in an
/// emulated guest).
pub fn running_kernel_ctx_flags_offset() -> Result<u32, BtfError> {
    static CACHE: std::sync::OnceLock<Result<u32, BtfError>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| ctx_flags_offset(Path::new(VMLINUX_BTF)))
        .clone()
}

/// [`ctx_flags_offset`] of BTF bytes (`path` names them in errors).
pub fn ctx_flags_offset_in(path: &str, bytes: Vec<u8>) -> Result<u32, BtfError> {
    let info = btfparse::TypeInformation::new(&Bytes(bytes)).map_err(|e| BtfError::Parse {
        path: path.into(),
        reason: format!("{e:?}"),
    })?;
    let id = info.id_of("io_ring_ctx").ok_or_else(|| BtfError::Missing {
        path: path.into(),
        what: "struct io_ring_ctx".into(),
    })?;
    let (_, offset) = info.offset_of(id, "flags").map_err(|_| BtfError::Missing {
        path: path.into(),
        what: "io_ring_ctx.flags".into(),
    })?;
    match offset {
        btfparse::Offset::ByteOffset(b) if b % 4 == 0 => Ok(b),
        other => Err(BtfError::Layout {
            path: path.into(),
            offset: format!("{other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        for bytes in [vec![], vec![0u8; 7], vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0]] {
            let e = ctx_flags_offset_in("x", bytes).unwrap_err();
            assert!(
                matches!(e, BtfError::Parse { .. } | BtfError::Missing { .. }),
                "{e}"
            );
        }
    }

    #[test]
    fn the_running_kernel_has_it() {
        if !Path::new(VMLINUX_BTF).exists() {
            eprintln!(
                "SKIP the_running_kernel_has_it: {VMLINUX_BTF} is missing (kernel without BTF)"
            );
            return;
        }
        let off = ctx_flags_offset(Path::new(VMLINUX_BTF)).unwrap();
        assert!(off < 4096, "{off}");
    }
}
