//! The Linux kernel as the oracle for BPF instruction semantics.
//!
//! ringside runs eBPF in userspace (rbpf's interpreter and JIT, and its own
//! tracing interpreter). What "correct" means for every instruction is what
//! the kernel does (RFC 9669 describes it, the kernel defines it). This
//! module runs a sequence of raw instructions, a *body*, in the kernel and
//! hands back all ten general registers, so a differential test can compare
//! them with what ringside's backends compute for the same body and inputs.
//!
//! Include it from a test file with `mod oracle;`.
//!
//! # How
//!
//! The body is wrapped in a `BPF_PROG_TYPE_SYSCALL` program (loaded with
//! `BPF_F_SLEEPABLE`, which the kernel requires for that type) and run with
//! `BPF_PROG_TEST_RUN`. A syscall program's context is a plain user buffer:
//! the kernel copies `ctx_in` in, runs the program once on it, and copies it
//! back over `ctx_in` (this type refuses `ctx_out`). Our context is ten
//! little-endian `u64`s, r0..r9 in order:
//!
//! ```text
//! prologue:  *(u64 *)(r10 - 512) = r1      spill the ctx pointer: the body
//!                                          may use every register r0..r9
//!            r0 = *(u64 *)(r1 + 0)
//!            r2 = *(u64 *)(r1 + 16) ... r9 = *(u64 *)(r1 + 72)
//!            r1 = *(u64 *)(r1 + 8)         last: r1 is an input too
//! body:      the caller's instructions
//! epilogue:  *(u64 *)(r10 - 504) = r0      free r0 ...
//!            r0 = *(u64 *)(r10 - 512)      ... to hold the ctx pointer
//!            *(u64 *)(r0 + 8) = r1 ... *(u64 *)(r0 + 72) = r9
//!            r1 = *(u64 *)(r10 - 504)
//!            *(u64 *)(r0 + 0) = r1         the body's r0
//!            r0 = 0                        a syscall program returns a scalar
//!            exit
//! ```
//!
//! # Rules for a body
//!
//! - Every register r0..r9 is initialised (preloaded), so the verifier never
//!   sees an uninitialised read; r10 is the frame pointer, as usual.
//! - The stack slot `[r10 - 512, r10 - 504)`, the bottom of the 512-byte
//!   stack and the one a body is least likely to want, holds the spilled ctx
//!   pointer. A body that overwrites it with anything but that pointer is
//!   rejected by the verifier (the epilogue would dereference a number), so
//!   it can't produce wrong results. The epilogue also writes
//!   `[r10 - 504, r10 - 496)`, after the body: the body may use it freely.
//! - A jump may land anywhere in `0..=body.len()` (counted in 8-byte slots;
//!   `lddw` takes two). A jump to `body.len()` means "exit": it lands on the
//!   epilogue. Jumps outside that range are refused here
//!   ([`OracleError::InvalidBody`]), since they would land in the harness.
//! - An `exit` instruction in the body also means "exit": it is rewritten
//!   into a jump to the epilogue, so the registers are still reported (the
//!   verifier log shows a `goto` there; `gotol` past 32767 slots).
//! - `call` instructions are refused here: a helper call leaves r1..r5
//!   unreadable, so the epilogue could not store them, and a bpf-to-bpf call
//!   returns through `exit`, which is rewritten.
//! - Everything else is the kernel verifier's business: it refuses some
//!   bodies ringside's backends would run, e.g. a shift by an immediate
//!   `>=` the operand width, a division or modulo by the immediate 0, and
//!   instructions no path reaches ("unreachable insn", which includes the
//!   epilogue when the body never finishes). Those come back as
//!   [`OracleError::Rejected`] with the verifier's log.
//! - And it accepts some that ringside rejects: bounded loops, and, for a
//!   privileged loader, reads of stack bytes the body never wrote. Those
//!   read whatever the kernel left there (often a kernel address), so their
//!   values must not be compared.
//!
//! # Which kernel
//!
//! The kernel runs the program with its JIT when the JIT is on (and on
//! kernels built with `CONFIG_BPF_JIT_ALWAYS_ON`, always), else with its
//! interpreter; both are meant to agree, and a differential test checks
//! ringside against whichever ran (the JIT where it is always on).
//! Verified bodies may also be patched by the verifier (e.g. division by a
//! register gets a zero check), which is part of the kernel's semantics.
//!
//! # When the kernel can't
//!
//! No `bpf(2)` (ENOSYS), not privileged (EPERM), or no syscall program type
//! (EINVAL on the probe, kernels before 5.14): [`availability`] says so once,
//! and every call returns [`OracleError::Unavailable`]. Tests print a loud
//! SKIP line then ([`skip_unless_available`]); with
//! `RINGSIDE_REQUIRE_KERNEL_ORACLE=1` in the environment they fail instead,
//! for machines where the oracle must run.
#![allow(dead_code)]

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

/// One BPF instruction as it is encoded: 8 bytes, little endian.
pub type Insn = [u8; 8];

/// Why the kernel could not run a program.
#[derive(Debug)]
pub enum OracleError {
    /// This machine can't run BPF programs the way the oracle needs (no
    /// `bpf(2)`, not privileged, no `BPF_PROG_TYPE_SYSCALL`, big-endian
    /// host). Tests print a loud SKIP line and return.
    Unavailable(String),
    /// The kernel's verifier refused the program. `log` is its verifier
    /// log (level 1), whose instruction numbers count the harness's
    /// prologue: body instruction N is N + [`BODY_START`]. `errno` is what
    /// `BPF_PROG_LOAD` failed with: seen on 6.18, EINVAL for encodings and
    /// static checks (invalid shift, div by zero, unknown opcode,
    /// unreachable insn) and EACCES for what the abstract interpretation
    /// finds (a write to r10, a bad memory access).
    Rejected { log: String, errno: i32 },
    /// The body breaks one of this harness's rules (see the module docs);
    /// nothing was loaded. Unlike `Rejected`, this says nothing about what
    /// the kernel would do.
    InvalidBody(String),
    /// A syscall failed for a reason that is neither of the above, e.g.
    /// `BPF_PROG_TEST_RUN` of a loaded program.
    Io(io::Error),
}

impl fmt::Display for OracleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OracleError::Unavailable(why) => write!(f, "kernel BPF unavailable: {why}"),
            OracleError::Rejected { log, errno } => {
                write!(
                    f,
                    "kernel verifier rejected the program (errno {errno}; in the log, \
                     body insn N is insn N + {BODY_START}):\n{log}"
                )
            }
            OracleError::InvalidBody(why) => write!(f, "body not accepted by the oracle: {why}"),
            OracleError::Io(e) => write!(f, "bpf(2): {e}"),
        }
    }
}

impl std::error::Error for OracleError {}

/// Run `body` in the kernel with r0..r9 preloaded from `regs`; return r0..r9
/// as they were when the body exited (fell off its end, jumped to
/// `body.len()`, or ran an `exit`).
///
/// Loads one program, runs it once, closes it. To run one body on many
/// register sets, [`KernelProgram::load`] it once and [`KernelProgram::run`]
/// it as often as needed: loading (the verifier and the JIT) is the cost.
pub fn run_in_kernel(body: &[Insn], regs: [u64; 10]) -> Result<[u64; 10], OracleError> {
    KernelProgram::load(body)?.run(regs)
}

/// Batch version of [`run_in_kernel`]: one result per case, in order.
///
/// Each case's body is loaded, run and closed before the next is loaded, so
/// at most one program fd is open at a time whatever the batch size. The
/// availability probe is done once (cached), and the instruction and
/// verifier-log buffers are reused across cases. A case's failure does not
/// stop the batch.
pub fn run_many<'a, I>(cases: I) -> Vec<Result<[u64; 10], OracleError>>
where
    I: IntoIterator<Item = (&'a [Insn], [u64; 10])>,
{
    let mut loader = Loader::default();
    cases
        .into_iter()
        .map(|(body, regs)| loader.load(body)?.run(regs))
        .collect()
}

/// Why [`availability`] says no.
#[derive(Clone, Debug)]
pub struct Unavailable {
    /// What is missing, for the SKIP line.
    pub why: String,
    /// `true` when the kernel has what the oracle needs but the harness
    /// still failed (the empty body didn't load, didn't run, or changed a
    /// register): a bug here or a kernel change, never a reason to skip.
    pub harness_fault: bool,
}

/// `Ok(())` when this machine can run the oracle, else why not. Probed once
/// per process by loading and running an empty body.
pub fn availability() -> Result<(), Unavailable> {
    static PROBE: OnceLock<Result<(), Unavailable>> = OnceLock::new();
    PROBE.get_or_init(probe).clone()
}

/// For tests: `true` when the oracle can run. When the machine can't, print
/// a loud SKIP line naming `test` to stderr and return `false` (the test
/// should return), or panic when `RINGSIDE_REQUIRE_KERNEL_ORACLE=1` is set,
/// so a machine that must run the oracle can't pass by skipping. A harness
/// fault always panics.
pub fn skip_unless_available(test: &str) -> bool {
    match availability() {
        Ok(()) => true,
        Err(Unavailable {
            why,
            harness_fault: true,
        }) => panic!("{test}: the kernel oracle is broken: {why}"),
        Err(Unavailable { why, .. }) => {
            if std::env::var_os("RINGSIDE_REQUIRE_KERNEL_ORACLE").is_some_and(|v| v == "1") {
                panic!(
                    "{test}: kernel oracle required (RINGSIDE_REQUIRE_KERNEL_ORACLE=1) but {why}"
                );
            }
            // Straight to fd 2: libtest captures eprintln! of passing tests,
            // and a SKIP nobody sees is a silent pass.
            let _ = io::Write::write_all(
                &mut io::stderr(),
                format!("\n######## SKIP {test}: {why} ########\n\n").as_bytes(),
            );
            false
        }
    }
}

/// A body wrapped in the harness and loaded into the kernel; closed on drop.
#[derive(Debug)]
pub struct KernelProgram {
    fd: OwnedFd,
}

impl KernelProgram {
    /// Wrap and load `body` (see the module docs for the rules).
    pub fn load(body: &[Insn]) -> Result<KernelProgram, OracleError> {
        Loader::default().load(body)
    }

    /// Run the loaded program once with r0..r9 preloaded from `regs`.
    pub fn run(&self, regs: [u64; 10]) -> Result<[u64; 10], OracleError> {
        test_run(&self.fd, regs).map_err(OracleError::Io)
    }
}

// ---------------------------------------------------------------------------
// Building the program.

/// The prologue's length: the wrapped program's instruction `BODY_START +
/// N` is the body's instruction N (verifier logs count that way), and the
/// epilogue starts at `BODY_START + body.len()`.
pub const BODY_START: usize = 11;

/// Where the harness keeps the ctx pointer and, in the epilogue, r0.
const CTX_SLOT: i16 = -512;
const R0_SLOT: i16 = -504;

const BPF_LDX_MEM_DW: u8 = 0x79; // BPF_LDX | BPF_MEM | BPF_DW
const BPF_STX_MEM_DW: u8 = 0x7b; // BPF_STX | BPF_MEM | BPF_DW
const BPF_MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_LD_IMM_DW: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW (two slots)
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_JA: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
const BPF_JMP_JA: u8 = BPF_JMP | BPF_JA; // 0x05: `goto +off`
const BPF_JMP32_JA: u8 = BPF_JMP32 | BPF_JA; // 0x06: `gotol +imm` (cpu v4)
const R10: u8 = 10;

/// Encode one instruction (little endian, dst in the low nibble).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [code, (src << 4) | dst, o[0], o[1], i[0], i[1], i[2], i[3]]
}

fn off_of(i: &Insn) -> i16 {
    i16::from_le_bytes([i[2], i[3]])
}

fn imm_of(i: &Insn) -> i32 {
    i32::from_le_bytes([i[4], i[5], i[6], i[7]])
}

/// Context offset of register `r`.
fn ctx_off(r: u8) -> i16 {
    8 * i16::from(r)
}

/// Instructions before the body.
fn prologue(out: &mut Vec<Insn>) {
    let start = out.len();
    out.push(insn(BPF_STX_MEM_DW, R10, 1, CTX_SLOT, 0));
    for r in [0, 2, 3, 4, 5, 6, 7, 8, 9, 1] {
        out.push(insn(BPF_LDX_MEM_DW, r, 1, ctx_off(r), 0));
    }
    debug_assert_eq!(out.len() - start, BODY_START);
}

/// Instructions after the body; a jump to `body.len()` lands on the first.
fn epilogue(out: &mut Vec<Insn>) {
    out.push(insn(BPF_STX_MEM_DW, R10, 0, R0_SLOT, 0));
    out.push(insn(BPF_LDX_MEM_DW, 0, R10, CTX_SLOT, 0));
    for r in 1..=9 {
        out.push(insn(BPF_STX_MEM_DW, 0, r, ctx_off(r), 0));
    }
    out.push(insn(BPF_LDX_MEM_DW, 1, R10, R0_SLOT, 0));
    out.push(insn(BPF_STX_MEM_DW, 0, 1, ctx_off(0), 0));
    out.push(insn(BPF_MOV64_K, 0, 0, 0, 0));
    out.push(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
}

/// Append `body` to `out`, checking its jumps and rewriting its `exit`s
/// into jumps to the epilogue (which starts right after the body).
fn append_body(out: &mut Vec<Insn>, body: &[Insn]) -> Result<(), OracleError> {
    let len = body.len() as i64;
    let mut pc = 0usize;
    while pc < body.len() {
        let i = body[pc];
        let code = i[0];
        let class = code & 0x07;
        let op = code & 0xf0;
        if code == BPF_LD_IMM_DW {
            // Two slots; the second is data, never an instruction of its own.
            let Some(hi) = body.get(pc + 1) else {
                return Err(OracleError::InvalidBody(format!(
                    "insn {pc}: lddw in the last slot has no second half"
                )));
            };
            out.push(i);
            out.push(*hi);
            pc += 2;
            continue;
        }
        if class == BPF_JMP || class == BPF_JMP32 {
            match op {
                BPF_CALL => {
                    return Err(OracleError::InvalidBody(format!(
                        "insn {pc}: call instructions are not supported (a helper call leaves \
                         r1..r5 unreadable, so they could not be reported)"
                    )));
                }
                BPF_EXIT if class == BPF_JMP => {
                    let to_end = len - pc as i64 - 1;
                    out.push(match i16::try_from(to_end) {
                        Ok(off) => insn(BPF_JMP_JA, 0, 0, off, 0),
                        Err(_) => insn(BPF_JMP32_JA, 0, 0, 0, to_end as i32),
                    });
                    pc += 1;
                    continue;
                }
                BPF_EXIT => {} // JMP32 | EXIT is no instruction: the verifier says so.
                _ => {
                    let delta = if code == BPF_JMP32_JA {
                        i64::from(imm_of(&i))
                    } else {
                        i64::from(off_of(&i))
                    };
                    let target = pc as i64 + 1 + delta;
                    if !(0..=len).contains(&target) {
                        return Err(OracleError::InvalidBody(format!(
                            "insn {pc}: jump to {target}, outside the body (0..={len}; \
                             {len} means exit)"
                        )));
                    }
                }
            }
        }
        out.push(i);
        pc += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// bpf(2).

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_PROG_TYPE_SYSCALL: u32 = 31;
const BPF_F_SLEEPABLE: u32 = 1 << 4;

/// The head of `union bpf_attr` as `BPF_PROG_LOAD` reads it
/// (include/uapi/linux/bpf.h). The kernel accepts a shorter attr than its
/// own and treats the missing tail as zero, so only the fields used here
/// are spelled out. Offsets relied on:
///
/// | off | field |
/// |---|---|
/// | 0 | `__u32 prog_type` |
/// | 4 | `__u32 insn_cnt` |
/// | 8 | `__aligned_u64 insns` |
/// | 16 | `__aligned_u64 license` |
/// | 24 | `__u32 log_level` |
/// | 28 | `__u32 log_size` |
/// | 32 | `__aligned_u64 log_buf` |
/// | 40 | `__u32 kern_version` |
/// | 44 | `__u32 prog_flags` |
/// | 48 | `char prog_name[16]` |
///
/// 64 bytes in all.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr` as `BPF_PROG_TEST_RUN` reads it (the `test` struct).
/// Offsets relied on:
///
/// | off | field |
/// |---|---|
/// | 0 | `__u32 prog_fd` |
/// | 4 | `__u32 retval` (written by the kernel) |
/// | 8 | `__u32 data_size_in` |
/// | 12 | `__u32 data_size_out` |
/// | 16 | `__aligned_u64 data_in` |
/// | 24 | `__aligned_u64 data_out` |
/// | 32 | `__u32 repeat` |
/// | 36 | `__u32 duration` |
/// | 40 | `__u32 ctx_size_in` |
/// | 44 | `__u32 ctx_size_out` |
/// | 48 | `__aligned_u64 ctx_in` |
/// | 56 | `__aligned_u64 ctx_out` |
/// | 64 | `__u32 flags` |
/// | 68 | `__u32 cpu` |
/// | 72 | `__u32 batch_size` |
///
/// 80 bytes with the tail padding. For a syscall program everything but
/// `prog_fd`, `ctx_size_in` and `ctx_in` must be zero (EINVAL otherwise),
/// and the context is copied back over `ctx_in`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Tail padding made explicit: the kernel refuses (EINVAL) an attr
    /// whose bytes past the last field it knows are not zero, and implicit
    /// padding has no defined value.
    _pad: u32,
}

const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 64);
const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, log_buf) == 32);
const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, prog_flags) == 44);
const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, prog_name) == 48);
const _: () = assert!(std::mem::size_of::<TestRunAttr>() == 80);
const _: () = assert!(std::mem::offset_of!(TestRunAttr, ctx_size_in) == 40);
const _: () = assert!(std::mem::offset_of!(TestRunAttr, ctx_in) == 48);
const _: () = assert!(std::mem::offset_of!(TestRunAttr, batch_size) == 72);

fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] value of the layout
    // `cmd` reads, and every pointer in it points at memory that outlives
    // the call (the callers keep the buffers borrowed across it).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

const LICENSE: &CStr = c"GPL";
/// Verifier log size on rejection. Large enough for long bodies; a longer
/// log is cut (ENOSPC), which only shortens the message.
const LOG_SIZE: usize = 1 << 20;

/// Buffers reused across loads by [`run_many`].
#[derive(Default)]
struct Loader {
    insns: Vec<Insn>,
    log: Vec<u8>,
}

impl Loader {
    fn load(&mut self, body: &[Insn]) -> Result<KernelProgram, OracleError> {
        availability().map_err(|u| OracleError::Unavailable(u.why))?;
        self.load_unprobed(body)
    }

    fn load_unprobed(&mut self, body: &[Insn]) -> Result<KernelProgram, OracleError> {
        self.insns.clear();
        prologue(&mut self.insns);
        append_body(&mut self.insns, body)?;
        epilogue(&mut self.insns);
        // The fast path asks for no log: formatting it costs as much as
        // verifying. Only a rejection pays for a second load with the log.
        match self.prog_load(0) {
            Ok(fd) => Ok(KernelProgram { fd }),
            Err(first) => {
                let errno = first.raw_os_error().unwrap_or(0);
                let log = match self.prog_load(1) {
                    // Deterministic verifier: this does not happen, but say
                    // so rather than hide it.
                    Ok(_) => format!("(loads with a log; failed without one: {first})"),
                    Err(_) => self.log_text(),
                };
                Err(OracleError::Rejected { log, errno })
            }
        }
    }

    fn prog_load(&mut self, log_level: u32) -> io::Result<OwnedFd> {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_SYSCALL,
            insn_cnt: self.insns.len() as u32,
            insns: self.insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            prog_flags: BPF_F_SLEEPABLE,
            prog_name: *b"ringside_oracle\0",
            ..Default::default()
        };
        if log_level > 0 {
            self.log.clear();
            self.log.resize(LOG_SIZE, 0);
            attr.log_level = log_level;
            attr.log_size = LOG_SIZE as u32;
            attr.log_buf = self.log.as_mut_ptr() as u64;
        }
        let fd = sys_bpf(BPF_PROG_LOAD, &mut attr)?;
        // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    fn log_text(&self) -> String {
        let end = self
            .log
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.log.len());
        String::from_utf8_lossy(&self.log[..end])
            .trim_end()
            .to_string()
    }
}

fn test_run(fd: &OwnedFd, regs: [u64; 10]) -> io::Result<[u64; 10]> {
    // Little endian on the wire: the harness loads the registers with
    // native 64-bit loads, and the oracle only runs on little-endian hosts.
    let mut ctx = regs;
    let mut attr = TestRunAttr {
        prog_fd: fd.as_raw_fd() as u32,
        ctx_size_in: std::mem::size_of_val(&ctx) as u32,
        ctx_in: ctx.as_mut_ptr() as u64,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(ctx)
}

/// Load and run the empty body once: if that works, everything the oracle
/// needs is there. Otherwise say which part is missing, or that the harness
/// itself is at fault.
fn probe() -> Result<(), Unavailable> {
    let missing = |why: String| Unavailable {
        why,
        harness_fault: false,
    };
    let fault = |why: String| Unavailable {
        why,
        harness_fault: true,
    };
    if cfg!(target_endian = "big") {
        return Err(missing(
            "the oracle passes little-endian instructions as they are; this host is big-endian"
                .to_string(),
        ));
    }
    let regs: [u64; 10] = std::array::from_fn(|i| 0x0101_0101_0101_0101 * (i as u64 + 1));
    let prog = match Loader::default().load_unprobed(&[]) {
        Ok(p) => p,
        Err(OracleError::Rejected { log, errno }) => {
            let err = io::Error::from_raw_os_error(errno);
            return Err(match errno {
                libc::ENOSYS => missing(format!("no bpf(2) syscall on this kernel ({err})")),
                libc::EPERM => missing(format!(
                    "BPF_PROG_LOAD not permitted: needs root, or CAP_BPF and CAP_PERFMON ({err})"
                )),
                // An unknown program type fails before the verifier runs,
                // so with an empty log.
                libc::EINVAL if log.is_empty() => missing(format!(
                    "this kernel has no BPF_PROG_TYPE_SYSCALL (Linux 5.14+) ({err})"
                )),
                _ => fault(format!(
                    "the empty harness did not load: {err}; verifier log:\n{log}"
                )),
            });
        }
        Err(e) => return Err(fault(format!("the empty harness did not load: {e}"))),
    };
    match prog.run(regs) {
        Ok(out) if out == regs => Ok(()),
        Ok(out) => Err(fault(format!(
            "the empty harness changed its registers: in {regs:x?}, out {out:x?}"
        ))),
        Err(e) => Err(fault(format!(
            "BPF_PROG_TEST_RUN of the empty harness failed: {e}"
        ))),
    }
}
