//! Why the verifier rejects a program: one variant per cause, carrying the
//! values its message prints.

use super::domain::{Region, Val};
use crate::abi::helper_id;
use crate::program::isa;
use std::fmt;

/// What a register held where the verifier rejected its use (printed as
/// "a scalar in [0, 7]", "a stack pointer at offset -8", ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value(pub(super) Val);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.describe())
    }
}

/// Whether a memory access reads or writes (printed as `read` / `write`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load, or memory a helper reads.
    Read,
    /// A store, or memory a helper writes.
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// `offset 8` for one offset, `offsets [0, 8]` for a range.
fn offsets(lo: &i64, hi: &i64) -> String {
    if lo == hi {
        format!("offset {lo}")
    } else {
        format!("offsets [{lo}, {hi}]")
    }
}

/// The helper's name (`helper` for an id without one).
fn helper_name(id: &u32) -> &'static str {
    helper_id::name(*id).unwrap_or("helper")
}

/// Why a program is rejected, one variant per cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No instructions.
    #[error("empty program")]
    Empty,
    /// More instruction slots than [`super::Limits::max_insns`].
    #[error("program is {len} instructions long, the limit is {limit}")]
    TooLong {
        /// Its instruction slots.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An encoding [`isa::check_encoding`] refuses.
    #[error("{0}")]
    Encoding(isa::EncodingError),
    /// A write to r10.
    #[error("r10 (the frame pointer) is read-only")]
    FramePointer,
    /// An `lddw` with a pseudo source but no relocation to say what it loads.
    #[error("lddw with src {src} (pseudo map load) without a relocation")]
    LddwWithoutReloc {
        /// Its source field.
        src: u8,
    },
    /// A relocated `lddw` of a map the object does not have.
    #[error("lddw names map {map}, the object has {maps}")]
    LddwMap {
        /// The map index it names.
        map: usize,
        /// Maps in the object.
        maps: usize,
    },
    /// A call of a helper the engine does not have.
    #[error("call to unknown helper {id} ({id:#x})")]
    UnknownHelper {
        /// The helper id.
        id: u32,
    },
    /// A bpf-to-bpf call to itself or an earlier instruction.
    #[error("recursion: call back to insn {target} (programs must terminate)")]
    Recursion {
        /// Where the call goes.
        target: i64,
    },
    /// A bpf-to-bpf call forward.
    #[error(
        "bpf-to-bpf call to insn {target} is not supported (make the function static __always_inline)"
    )]
    BpfCall {
        /// Where the call goes.
        target: i64,
    },
    /// A call with another pseudo source (kfuncs and others).
    #[error("call with src {src} (kfuncs and others) is not supported")]
    CallSrc {
        /// Its source field.
        src: u8,
    },
    /// A jump before instruction 0.
    #[error("jump to insn {target}, before the start of the program")]
    JumpBeforeStart {
        /// Where it goes.
        target: i64,
    },
    /// A jump past the last instruction.
    #[error("jump to insn {target}, past the end of the program")]
    JumpPastEnd {
        /// Where it goes.
        target: i64,
    },
    /// A jump to the second half of an `lddw`.
    #[error("jump into the middle of lddw at insn {lddw}")]
    JumpIntoLddw {
        /// The `lddw`.
        lddw: i64,
    },
    /// A path of the control-flow graph that does not end in `exit`.
    #[error("execution can fall off the end of the program (every path must end in exit)")]
    FallsOffEnd,
    /// A loop in the control-flow graph.
    #[error(
        "loop: jump from insn {from} back to insn {to}; the program may not terminate (loops are not allowed, unroll them)"
    )]
    Loop {
        /// The instruction that jumps back.
        from: usize,
        /// Where it jumps to.
        to: usize,
    },
    /// A reachable state whose next instruction is past the end (found by
    /// the abstract interpreter).
    #[error("execution can run past the end of the program")]
    RunsPastEnd,
    /// A register read before any write on some path.
    #[error("r{reg} is read before it is written")]
    Uninit {
        /// The register.
        reg: u8,
    },
    /// A register read whose paths disagree about what it holds.
    #[error("r{reg} is of unknown type (paths disagree)")]
    Conflict {
        /// The register.
        reg: u8,
    },
    /// An access through a lookup result before its null check.
    #[error(
        "{access} through r{reg}, a map value pointer that may be null (check it against 0 first)"
    )]
    MaybeNull {
        /// Read or write.
        access: Access,
        /// The base register.
        reg: u8,
    },
    /// An access through something that is not a pointer.
    #[error("{access} through r{reg}, which is {value}")]
    NotPointer {
        /// Read or write.
        access: Access,
        /// The base register.
        reg: u8,
        /// What it holds.
        value: Value,
    },
    /// An access (possibly) outside its region.
    #[error(
        "{access}s {size} bytes at {} of the {region}, outside its {len} bytes",
        offsets(.lo, .hi)
    )]
    OutOfBounds {
        /// Read or write.
        access: Access,
        /// Bytes accessed.
        size: i64,
        /// Lowest offset of the access in the region.
        lo: i64,
        /// Highest offset of the access in the region.
        hi: i64,
        /// The region.
        region: Region,
        /// The region's size in bytes.
        len: i64,
    },
    /// A write to the context.
    #[error("writes the read-only context (offset {offset})")]
    WriteCtx {
        /// Lowest offset written.
        offset: i64,
    },
    /// A write to read-only data.
    #[error("writes read-only data")]
    WriteRodata,
    /// A load of a stack byte not written on some path.
    #[error("reads uninitialised stack byte at offset {offset}")]
    UninitStack {
        /// The byte's offset from r10.
        offset: i64,
    },
    /// A load of part of a spilled pointer.
    #[error("reads part of a spilled pointer at stack offset {offset}")]
    ReadSpilledPointer {
        /// The byte's offset from r10.
        offset: i64,
    },
    /// A store of a pointer outside the stack.
    #[error("stores a pointer into the {region} (pointers may not leave the program)")]
    StorePointer {
        /// Where it would go.
        region: Region,
    },
    /// A pointer spill that is not an aligned 8-byte store at a constant offset.
    #[error(
        "a pointer may be spilled to the stack only with an aligned 8-byte store at a constant offset"
    )]
    UnalignedSpill,
    /// A store at a variable stack offset over a spilled pointer.
    #[error(
        "a store at a variable stack offset may overwrite part of the pointer spilled at offset {slot}"
    )]
    VariableStoreOverSpill {
        /// The spill slot's offset from r10.
        slot: i64,
    },
    /// A store over part of a spilled pointer.
    #[error(
        "overwrites part of the pointer spilled at stack offset {slot} (the rest of it would become readable)"
    )]
    PartialSpillOverwrite {
        /// The spill slot's offset from r10.
        slot: i64,
    },
    /// A byte swap of a pointer.
    #[error("byte swap of r{reg}, which is {value}")]
    ByteSwapPointer {
        /// The register.
        reg: u8,
        /// What it holds.
        value: Value,
    },
    /// A 32-bit move of a pointer.
    #[error("32-bit move of r{reg} which is {value}")]
    Mov32Pointer {
        /// The source register.
        reg: u8,
        /// What it holds.
        value: Value,
    },
    /// 32-bit arithmetic with a pointer operand.
    #[error("32-bit arithmetic on a pointer (r{reg} is {dst}, operand is {src})")]
    Alu32Pointer {
        /// The destination register.
        reg: u8,
        /// What it holds.
        dst: Value,
        /// The operand.
        src: Value,
    },
    /// Pointer arithmetic other than pointer +/- scalar (or the distance of
    /// two pointers into one region other than a map value).
    #[error("pointer arithmetic other than adding a scalar: r{reg} is {dst}, the operand is {src}")]
    PointerArithmetic {
        /// The destination register.
        reg: u8,
        /// What it holds.
        dst: Value,
        /// The operand.
        src: Value,
    },
    /// Pointer arithmetic whose offset range overflows.
    #[error("pointer offset out of range after arithmetic on r{reg}")]
    PointerOffsetRange {
        /// The destination register.
        reg: u8,
    },
    /// An `exit` with a pointer in r0.
    #[error("returns r0 which is {value} (return a decision)")]
    ReturnsPointer {
        /// What r0 holds.
        value: Value,
    },
    /// An `exit` with r0 unset (or of unknown type) on some path.
    #[error("exit without setting r0 (the decision)")]
    ExitWithoutR0,
    /// A comparison involving a pointer other than a null check or two
    /// pointers into one region.
    #[error(
        "compares r{reg} ({dst}) with {src} (only null checks of map values are allowed on pointers)"
    )]
    ComparePointer {
        /// The destination register.
        reg: u8,
        /// What it holds.
        dst: Value,
        /// The operand.
        src: Value,
    },
    /// A helper memory argument larger than any region.
    #[error("argument {arg} (r{reg}) size {size} is too large")]
    ArgSizeTooLarge {
        /// The argument (1-based).
        arg: usize,
        /// Its register.
        reg: u8,
        /// The size.
        size: u64,
    },
    /// A helper memory argument whose access is rejected.
    #[error("helper argument {arg} (r{reg}): {inner}")]
    HelperArg {
        /// The argument (1-based).
        arg: usize,
        /// Its register.
        reg: u8,
        /// Why its access is rejected.
        inner: Box<Rejection>,
    },
    /// A stack buffer a helper writes at a variable offset.
    #[error("helper argument {arg} (r{reg}): stack buffer at a variable offset")]
    ArgVariableStackBuffer {
        /// The argument (1-based).
        arg: usize,
        /// Its register.
        reg: u8,
    },
    /// A stack buffer a helper writes over part of a spilled pointer.
    #[error(
        "helper argument {arg} (r{reg}) may overwrite part of the pointer spilled at stack offset {slot}"
    )]
    ArgOverwritesSpill {
        /// The argument (1-based).
        arg: usize,
        /// Its register.
        reg: u8,
        /// The spill slot's offset from r10.
        slot: i64,
    },
    /// A stack buffer a helper reads with a byte not written on some path.
    #[error("helper argument {arg} (r{reg}) reads uninitialised stack byte at offset {offset}")]
    ArgUninitStack {
        /// The argument (1-based).
        arg: usize,
        /// Its register.
        reg: u8,
        /// The byte's offset from r10.
        offset: i64,
    },
    /// A stack buffer a helper reads over a spilled pointer.
    #[error("helper argument {arg} (r{reg}) would read a spilled pointer at stack offset {offset}")]
    ArgReadsSpill {
        /// The argument (1-based).
        arg: usize,
        /// Its register.
        reg: u8,
        /// The byte's offset from r10.
        offset: i64,
    },
    /// A helper argument register that cannot be read.
    #[error("{}: argument {arg}: {inner}", helper_name(.helper))]
    ArgRead {
        /// The helper id.
        helper: u32,
        /// The argument (1-based; its register has the same number).
        arg: usize,
        /// Why it cannot be read.
        inner: Box<Rejection>,
    },
    /// A helper argument that must be the context pointer.
    #[error(
        "{}: argument {arg} (r{arg}) must be the context pointer, it is {value}",
        helper_name(.helper)
    )]
    ArgNotCtx {
        /// The helper id.
        helper: u32,
        /// The argument (1-based; its register has the same number).
        arg: usize,
        /// What it holds.
        value: Value,
    },
    /// A helper argument that must be a map handle.
    #[error(
        "{}: argument {arg} (r{arg}) must be a map, it is {value}",
        helper_name(.helper)
    )]
    ArgNotMap {
        /// The helper id.
        helper: u32,
        /// The argument (1-based; its register has the same number).
        arg: usize,
        /// What it holds.
        value: Value,
    },
    /// A pointer passed where a helper expects a number.
    #[error(
        "{}: argument {arg} (r{arg}) is {value} where a number is expected (pointers may not leave the program)",
        helper_name(.helper)
    )]
    ArgPointerAsNumber {
        /// The helper id.
        helper: u32,
        /// The argument (1-based; its register has the same number).
        arg: usize,
        /// What it holds.
        value: Value,
    },
    /// A size argument without a small enough known bound.
    #[error(
        "{}: argument {arg} (r{arg}) is a size and must have a known bound, it is {value}",
        helper_name(.helper)
    )]
    ArgUnboundedSize {
        /// The helper id.
        helper: u32,
        /// The argument (1-based; its register has the same number).
        arg: usize,
        /// What it holds.
        value: Value,
    },
    /// A helper's memory argument (key, value or buffer) that is rejected.
    #[error("{}: {inner}", helper_name(.helper))]
    Helper {
        /// The helper id.
        helper: u32,
        /// Why the argument is rejected.
        inner: Box<Rejection>,
    },
    /// The size of a memory argument that is not a number.
    #[error("{}: size argument {arg} is {value}", helper_name(.helper))]
    SizeArgNotScalar {
        /// The helper id.
        helper: u32,
        /// The size argument (1-based).
        arg: usize,
        /// What it holds.
        value: Value,
    },
    /// The size of a memory argument whose bound is too large.
    #[error(
        "{}: size argument {arg} (r{arg}) must have a known bound, it is up to {max}",
        helper_name(.helper)
    )]
    SizeArgTooLarge {
        /// The helper id.
        helper: u32,
        /// The size argument (1-based; its register has the same number).
        arg: usize,
        /// Its upper bound.
        max: u64,
    },
}
