//! Program ABI v1: the Rust mirror of `engine/include/ringside.h`.
//!
//! Names, numbers and offsets are fixed by DESIGN.md; tests below pin every
//! offset so a change here cannot slip through.

use serde::{Deserialize, Serialize};

/// ABI version programs are built against.
pub const ABI_VERSION: u32 = 1;

/// Size of [`RsCtx`] in bytes.
pub const CTX_SIZE: usize = 64;
/// Size of [`RsSqe`] in bytes.
pub const SQE_SIZE: usize = 40;
/// `buf_index` value meaning "no registered buffer".
pub const NO_BUF: u16 = 0xffff;
/// `rs_ctx.ctx_flags`: no step follows the completed one.
pub const CTX_LAST_STEP: u16 = 1;
/// `rs_ctx.opcode` of a `bpf` step: a step that runs a program instead of IO.
pub const OP_BPF: u8 = 0xfe;

/// Decision: go on with the next step.
pub const RS_NEXT: u64 = 0;
/// Decision: finish the chain now, successfully, dropping the rest quietly.
pub const RS_STOP: u64 = 1;
/// Decision: fail the chain; the rest is cancelled with -ECANCELED.
pub const RS_FAIL: u64 = 2;

/// Helper ids: the kernel's numbers for the standard helpers, ringside's own above 0x1000.
pub mod helper_id {
    /// `void *bpf_map_lookup_elem(map, key)`
    pub const MAP_LOOKUP_ELEM: u32 = 1;
    /// `long bpf_map_update_elem(map, key, value, flags)`
    pub const MAP_UPDATE_ELEM: u32 = 2;
    /// `long bpf_map_delete_elem(map, key)`
    pub const MAP_DELETE_ELEM: u32 = 3;
    /// `u64 bpf_ktime_get_ns(void)`
    pub const KTIME_GET_NS: u32 = 5;
    /// `long bpf_trace_printk(fmt, fmt_size, a, b, c)`
    pub const TRACE_PRINTK: u32 = 6;
    /// `long rs_submit(ctx, sqe, size, where)`
    pub const RS_SUBMIT: u32 = 0x1000;
    /// `long rs_drop(ctx, step)`
    pub const RS_DROP: u32 = 0x1001;
    /// `long rs_unlink(ctx, step)`
    pub const RS_UNLINK: u32 = 0x1002;
    /// `long rs_emit(ctx, user_data, res, flags)`
    pub const RS_EMIT: u32 = 0x1003;
    /// `long rs_read_buf(ctx, buf_index, off, dst, len)`
    pub const RS_READ_BUF: u32 = 0x1004;
    /// `long rs_set_res(ctx, res)`
    pub const RS_SET_RES: u32 = 0x1005;

    /// Name of a helper id, for disassembly and logs.
    pub fn name(id: u32) -> Option<&'static str> {
        Some(match id {
            MAP_LOOKUP_ELEM => "bpf_map_lookup_elem",
            MAP_UPDATE_ELEM => "bpf_map_update_elem",
            MAP_DELETE_ELEM => "bpf_map_delete_elem",
            KTIME_GET_NS => "bpf_ktime_get_ns",
            TRACE_PRINTK => "bpf_trace_printk",
            RS_SUBMIT => "rs_submit",
            RS_DROP => "rs_drop",
            RS_UNLINK => "rs_unlink",
            RS_EMIT => "rs_emit",
            RS_READ_BUF => "rs_read_buf",
            RS_SET_RES => "rs_set_res",
            _ => return None,
        })
    }

    /// Every helper the engine provides.
    pub const ALL: [u32; 11] = [
        MAP_LOOKUP_ELEM,
        MAP_UPDATE_ELEM,
        MAP_DELETE_ELEM,
        KTIME_GET_NS,
        TRACE_PRINTK,
        RS_SUBMIT,
        RS_DROP,
        RS_UNLINK,
        RS_EMIT,
        RS_READ_BUF,
        RS_SET_RES,
    ];
}

/// `rs_submit` placement of the new request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Where {
    /// Linked right after the completed step (`RS_AFTER_CURRENT`, 0).
    AfterCurrent,
    /// Appended to the chain (`RS_AT_END`, 1).
    AtEnd,
    /// Issued now, independent of the chain's order (`RS_DETACHED`, 2).
    Detached,
}

impl Where {
    /// Decode the helper argument.
    #[inline]
    pub fn from_raw(v: u64) -> Option<Where> {
        match v {
            0 => Some(Where::AfterCurrent),
            1 => Some(Where::AtEnd),
            2 => Some(Where::Detached),
            _ => None,
        }
    }
}

/// io_uring opcodes (kernel numbers) the engine knows by name.
pub mod op {
    /// IORING_OP_NOP
    pub const NOP: u8 = 0;
    /// IORING_OP_READV
    pub const READV: u8 = 1;
    /// IORING_OP_WRITEV
    pub const WRITEV: u8 = 2;
    /// IORING_OP_FSYNC
    pub const FSYNC: u8 = 3;
    /// IORING_OP_READ_FIXED
    pub const READ_FIXED: u8 = 4;
    /// IORING_OP_WRITE_FIXED
    pub const WRITE_FIXED: u8 = 5;
    /// IORING_OP_TIMEOUT
    pub const TIMEOUT: u8 = 11;
    /// IORING_OP_ASYNC_CANCEL
    pub const ASYNC_CANCEL: u8 = 14;
    /// IORING_OP_LINK_TIMEOUT
    pub const LINK_TIMEOUT: u8 = 15;
    /// IORING_OP_READ
    pub const READ: u8 = 22;
    /// IORING_OP_WRITE
    pub const WRITE: u8 = 23;
    /// IORING_OP_SEND
    pub const SEND: u8 = 26;
    /// IORING_OP_RECV
    pub const RECV: u8 = 27;

    /// The allow-list: opcodes a program may issue with `rs_submit` and a
    /// workload may use in a step. Every one of them names its file by
    /// registered index and its memory by registered buffer, so a program
    /// can reach only what the application registered.
    pub const ALLOWED: [u8; 9] = [
        NOP,
        FSYNC,
        READ_FIXED,
        WRITE_FIXED,
        TIMEOUT,
        READ,
        WRITE,
        SEND,
        RECV,
    ];

    /// True when `opcode` is on the allow-list.
    #[inline]
    pub fn allowed(opcode: u8) -> bool {
        ALLOWED.contains(&opcode)
    }

    /// Every io_uring opcode by number: (short name, kernel name), as the
    /// kernel's `io_uring_op_str` spells them (`"read_fixed"`, `"READ_FIXED"`).
    pub const NAMES: [(&str, &str); 62] = [
        ("nop", "NOP"),
        ("readv", "READV"),
        ("writev", "WRITEV"),
        ("fsync", "FSYNC"),
        ("read_fixed", "READ_FIXED"),
        ("write_fixed", "WRITE_FIXED"),
        ("poll_add", "POLL_ADD"),
        ("poll_remove", "POLL_REMOVE"),
        ("sync_file_range", "SYNC_FILE_RANGE"),
        ("sendmsg", "SENDMSG"),
        ("recvmsg", "RECVMSG"),
        ("timeout", "TIMEOUT"),
        ("timeout_remove", "TIMEOUT_REMOVE"),
        ("accept", "ACCEPT"),
        ("async_cancel", "ASYNC_CANCEL"),
        ("link_timeout", "LINK_TIMEOUT"),
        ("connect", "CONNECT"),
        ("fallocate", "FALLOCATE"),
        ("openat", "OPENAT"),
        ("close", "CLOSE"),
        ("files_update", "FILES_UPDATE"),
        ("statx", "STATX"),
        ("read", "READ"),
        ("write", "WRITE"),
        ("fadvise", "FADVISE"),
        ("madvise", "MADVISE"),
        ("send", "SEND"),
        ("recv", "RECV"),
        ("openat2", "OPENAT2"),
        ("epoll_ctl", "EPOLL_CTL"),
        ("splice", "SPLICE"),
        ("provide_buffers", "PROVIDE_BUFFERS"),
        ("remove_buffers", "REMOVE_BUFFERS"),
        ("tee", "TEE"),
        ("shutdown", "SHUTDOWN"),
        ("renameat", "RENAMEAT"),
        ("unlinkat", "UNLINKAT"),
        ("mkdirat", "MKDIRAT"),
        ("symlinkat", "SYMLINKAT"),
        ("linkat", "LINKAT"),
        ("msg_ring", "MSG_RING"),
        ("fsetxattr", "FSETXATTR"),
        ("setxattr", "SETXATTR"),
        ("fgetxattr", "FGETXATTR"),
        ("getxattr", "GETXATTR"),
        ("socket", "SOCKET"),
        ("uring_cmd", "URING_CMD"),
        ("send_zc", "SEND_ZC"),
        ("sendmsg_zc", "SENDMSG_ZC"),
        ("read_multishot", "READ_MULTISHOT"),
        ("waitid", "WAITID"),
        ("futex_wait", "FUTEX_WAIT"),
        ("futex_wake", "FUTEX_WAKE"),
        ("futex_waitv", "FUTEX_WAITV"),
        ("fixed_fd_install", "FIXED_FD_INSTALL"),
        ("ftruncate", "FTRUNCATE"),
        ("bind", "BIND"),
        ("listen", "LISTEN"),
        ("recv_zc", "RECV_ZC"),
        ("epoll_wait", "EPOLL_WAIT"),
        ("readv_fixed", "READV_FIXED"),
        ("writev_fixed", "WRITEV_FIXED"),
    ];

    /// Short name of an opcode (`"read"`, `"write_fixed"`, ...); `"bpf"`
    /// for ringside's bpf step, `"op?"` for a number the table does not have.
    pub fn name(opcode: u8) -> &'static str {
        match opcode {
            super::OP_BPF => "bpf",
            _ => NAMES.get(opcode as usize).map_or("op?", |n| n.0),
        }
    }

    /// The kernel's name of an opcode (`"READ_FIXED"`), or `"?"`.
    pub fn kernel_name(opcode: u8) -> &'static str {
        NAMES.get(opcode as usize).map_or("?", |n| n.1)
    }

    /// Opcode from its short name.
    pub fn from_name(name: &str) -> Option<u8> {
        Some(match name {
            "nop" => NOP,
            "fsync" => FSYNC,
            "read_fixed" => READ_FIXED,
            "write_fixed" => WRITE_FIXED,
            "timeout" => TIMEOUT,
            "read" => READ,
            "write" => WRITE,
            "send" => SEND,
            "recv" => RECV,
            "bpf" => super::OP_BPF,
            _ => return None,
        })
    }

    /// Whether the opcode needs a registered file.
    #[inline]
    pub fn needs_file(opcode: u8) -> bool {
        matches!(
            opcode,
            FSYNC | READ_FIXED | WRITE_FIXED | READ | WRITE | SEND | RECV
        )
    }

    /// Whether the opcode moves data through a buffer.
    #[inline]
    pub fn needs_buffer(opcode: u8) -> bool {
        matches!(
            opcode,
            READ_FIXED | WRITE_FIXED | READ | WRITE | SEND | RECV
        )
    }

    /// Whether a result shorter than `len` is a link failure, as the kernel
    /// treats IOSQE_IO_LINK chains (short reads and writes break links).
    #[inline]
    pub fn short_is_failure(opcode: u8) -> bool {
        matches!(
            opcode,
            READ_FIXED | WRITE_FIXED | READ | WRITE | READV | WRITEV
        )
    }
}

/// The decision context (`struct rs_ctx`): 64 bytes, little endian.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsCtx {
    /// user_data of the completed request.
    pub user_data: u64,
    /// CQE result (bytes, or -errno).
    pub res: i32,
    /// CQE flags.
    pub cqe_flags: u32,
    /// Engine-assigned id of the chain.
    pub chain_id: u64,
    /// Index of the completed step in its chain.
    pub step: u32,
    /// Steps in the chain now.
    pub nsteps: u32,
    /// IORING_OP_* of the completed request.
    pub opcode: u8,
    /// 1 on first issue, +1 per resubmission of this step.
    pub attempt: u8,
    /// `RS_CTX_*` flags.
    pub ctx_flags: u16,
    /// Registered-file index as submitted.
    pub fd: i32,
    /// File offset as submitted.
    pub off: u64,
    /// Length as submitted.
    pub len: u32,
    /// Registered buffer index, 0xffff if none.
    pub buf_index: u16,
    /// Padding (always 0).
    pub _pad: u16,
    /// Offset inside the registered buffer.
    pub buf_off: u64,
}

/// Fields of [`RsCtx`]: (name, offset, size) in ABI order, for decoders and the UI.
pub const CTX_FIELDS: [(&str, usize, usize); 15] = [
    ("user_data", 0, 8),
    ("res", 8, 4),
    ("cqe_flags", 12, 4),
    ("chain_id", 16, 8),
    ("step", 24, 4),
    ("nsteps", 28, 4),
    ("opcode", 32, 1),
    ("attempt", 33, 1),
    ("ctx_flags", 34, 2),
    ("fd", 36, 4),
    ("off", 40, 8),
    ("len", 48, 4),
    ("buf_index", 52, 2),
    ("_pad", 54, 2),
    ("buf_off", 56, 8),
];

#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
#[inline]
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
#[inline]
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl RsCtx {
    /// Little-endian bytes as a program sees them.
    #[inline]
    pub fn to_bytes(&self) -> [u8; CTX_SIZE] {
        let mut b = [0u8; CTX_SIZE];
        b[0..8].copy_from_slice(&self.user_data.to_le_bytes());
        b[8..12].copy_from_slice(&self.res.to_le_bytes());
        b[12..16].copy_from_slice(&self.cqe_flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.chain_id.to_le_bytes());
        b[24..28].copy_from_slice(&self.step.to_le_bytes());
        b[28..32].copy_from_slice(&self.nsteps.to_le_bytes());
        b[32] = self.opcode;
        b[33] = self.attempt;
        b[34..36].copy_from_slice(&self.ctx_flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.fd.to_le_bytes());
        b[40..48].copy_from_slice(&self.off.to_le_bytes());
        b[48..52].copy_from_slice(&self.len.to_le_bytes());
        b[52..54].copy_from_slice(&self.buf_index.to_le_bytes());
        b[54..56].copy_from_slice(&self._pad.to_le_bytes());
        b[56..64].copy_from_slice(&self.buf_off.to_le_bytes());
        b
    }

    /// Decode the 64 context bytes.
    #[inline]
    pub fn from_bytes(b: &[u8; CTX_SIZE]) -> RsCtx {
        RsCtx {
            user_data: le_u64(b, 0),
            res: le_u32(b, 8) as i32,
            cqe_flags: le_u32(b, 12),
            chain_id: le_u64(b, 16),
            step: le_u32(b, 24),
            nsteps: le_u32(b, 28),
            opcode: b[32],
            attempt: b[33],
            ctx_flags: le_u16(b, 34),
            fd: le_u32(b, 36) as i32,
            off: le_u64(b, 40),
            len: le_u32(b, 48),
            buf_index: le_u16(b, 52),
            _pad: le_u16(b, 54),
            buf_off: le_u64(b, 56),
        }
    }
}

/// A request a program issues (`struct rs_sqe`): 40 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsSqe {
    /// Opcode; must be on the allow-list.
    pub opcode: u8,
    /// Reserved, must be 0.
    pub _rsvd: u8,
    /// Registered buffer, 0xffff if none.
    pub buf_index: u16,
    /// Registered-file index (never a raw fd).
    pub fd: i32,
    /// File offset (TIMEOUT: relative timeout in ns).
    pub off: u64,
    /// Offset inside the registered buffer.
    pub buf_off: u64,
    /// Length.
    pub len: u32,
    /// rw_flags / msg_flags / fsync_flags / timeout flags.
    pub op_flags: u32,
    /// user_data reported for this request.
    pub user_data: u64,
}

impl RsSqe {
    /// Decode the 40 template bytes.
    #[inline]
    pub fn from_bytes(b: &[u8; SQE_SIZE]) -> RsSqe {
        RsSqe {
            opcode: b[0],
            _rsvd: b[1],
            buf_index: le_u16(b, 2),
            fd: le_u32(b, 4) as i32,
            off: le_u64(b, 8),
            buf_off: le_u64(b, 16),
            len: le_u32(b, 24),
            op_flags: le_u32(b, 28),
            user_data: le_u64(b, 32),
        }
    }

    /// Little-endian bytes as a program writes them.
    #[inline]
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let mut b = [0u8; SQE_SIZE];
        b[0] = self.opcode;
        b[1] = self._rsvd;
        b[2..4].copy_from_slice(&self.buf_index.to_le_bytes());
        b[4..8].copy_from_slice(&self.fd.to_le_bytes());
        b[8..16].copy_from_slice(&self.off.to_le_bytes());
        b[16..24].copy_from_slice(&self.buf_off.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..32].copy_from_slice(&self.op_flags.to_le_bytes());
        b[32..40].copy_from_slice(&self.user_data.to_le_bytes());
        b
    }
}

/// Decision a program returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// `RS_NEXT`
    Next,
    /// `RS_STOP`
    Stop,
    /// `RS_FAIL`
    Fail,
}

impl Verdict {
    /// Decode a program's return value; anything else is a program error.
    #[inline]
    pub fn from_ret(ret: u64) -> Option<Verdict> {
        match ret {
            RS_NEXT => Some(Verdict::Next),
            RS_STOP => Some(Verdict::Stop),
            RS_FAIL => Some(Verdict::Fail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn ctx_layout_matches_design() {
        assert_eq!(size_of::<RsCtx>(), CTX_SIZE);
        let offs = [
            offset_of!(RsCtx, user_data),
            offset_of!(RsCtx, res),
            offset_of!(RsCtx, cqe_flags),
            offset_of!(RsCtx, chain_id),
            offset_of!(RsCtx, step),
            offset_of!(RsCtx, nsteps),
            offset_of!(RsCtx, opcode),
            offset_of!(RsCtx, attempt),
            offset_of!(RsCtx, ctx_flags),
            offset_of!(RsCtx, fd),
            offset_of!(RsCtx, off),
            offset_of!(RsCtx, len),
            offset_of!(RsCtx, buf_index),
            offset_of!(RsCtx, _pad),
            offset_of!(RsCtx, buf_off),
        ];
        for ((name, off, _), actual) in CTX_FIELDS.iter().zip(offs) {
            assert_eq!(*off, actual, "rs_ctx.{name}");
        }
    }

    #[test]
    fn sqe_layout_matches_design() {
        assert_eq!(size_of::<RsSqe>(), SQE_SIZE);
        assert_eq!(offset_of!(RsSqe, opcode), 0);
        assert_eq!(offset_of!(RsSqe, _rsvd), 1);
        assert_eq!(offset_of!(RsSqe, buf_index), 2);
        assert_eq!(offset_of!(RsSqe, fd), 4);
        assert_eq!(offset_of!(RsSqe, off), 8);
        assert_eq!(offset_of!(RsSqe, buf_off), 16);
        assert_eq!(offset_of!(RsSqe, len), 24);
        assert_eq!(offset_of!(RsSqe, op_flags), 28);
        assert_eq!(offset_of!(RsSqe, user_data), 32);
    }

    #[test]
    fn ctx_bytes_round_trip() {
        let c = RsCtx {
            user_data: 0x1122334455667788,
            res: -11,
            cqe_flags: 2,
            chain_id: 9,
            step: 3,
            nsteps: 4,
            opcode: op::READ,
            attempt: 2,
            ctx_flags: CTX_LAST_STEP,
            fd: 1,
            off: 4096,
            len: 65536,
            buf_index: 0,
            _pad: 0,
            buf_off: 12,
        };
        assert_eq!(RsCtx::from_bytes(&c.to_bytes()), c);
        let s = RsSqe {
            opcode: op::WRITE,
            _rsvd: 0,
            buf_index: 1,
            fd: 2,
            off: 3,
            buf_off: 4,
            len: 5,
            op_flags: 6,
            user_data: 7,
        };
        assert_eq!(RsSqe::from_bytes(&s.to_bytes()), s);
    }
}
