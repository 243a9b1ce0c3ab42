//! Native code for verified programs, compiled with Cranelift.
//!
//! One Cranelift function per program, `extern "C" fn(ctx, stack_top, frame)
//! -> r0`, with the meaning of every instruction taken from
//! [`crate::program::isa`] (the kernel's). The eleven BPF registers are
//! Cranelift variables (SSA values after construction, so they live in
//! machine registers), every basic block of the program is a Cranelift block,
//! and each instruction becomes the few IR instructions that compute exactly
//! what `isa` says:
//!
//! - 32-bit ALU operations work on the low halves (`ireduce`) and
//!   zero-extend the result (`uextend`);
//! - division and modulo never trap: a divisor that is not a known non-zero
//!   constant is replaced by 1 when it is zero (`select`), and the result by 0
//!   (division) or the dividend (modulo; 32-bit: its low half, zero-extended);
//! - shifts use `ishl`/`ushr`/`sshr` on the operation's width, which Cranelift
//!   defines to take the count modulo that width, as the kernel does (its
//!   documented semantics, and the tests below check counts 32, 63, 64...);
//! - immediates are sign-extended to 64 bits for 64-bit operations and
//!   jumps, unsigned compares included;
//! - loads zero-extend (`uload8/16/32`), loads and stores are not assumed
//!   aligned; they are plain host-address accesses `base + off`, so a load
//!   from the context at a constant offset is a single machine load;
//! - helpers are called with the platform ABI (`call_indirect` to the
//!   [`HelperEntry`]), the frame first, then r1..r5; r0 is the result.
//!
//! There are no run-time checks: compiled code runs only programs the
//! verifier proved ([`crate::program::vm::Vm::compiled`]). The compiler still
//! refuses, with the instruction and the reason, anything it does not
//! translate exactly (and never panics): encodings [`isa::check_encoding`]
//! refuses, writes to r10, jumps out of the program or into the middle of an
//! `lddw`, loops, paths that fall off the end, bpf-to-bpf calls, unknown
//! helpers, and programs longer than [`MAX_INSNS`].
//!
//! Why Cranelift rather than a hand-written x86-64 emitter (rbpf's JIT): it
//! is one backend for every host Rust runs the engine on (x86-64, aarch64,
//! riscv64, s390x), its register allocator keeps BPF registers in machine
//! registers across the whole program, its IR has exactly the integer
//! operations BPF needs with documented semantics (no undefined shifts, no
//! implicit traps other than division), its IR verifier checks every function
//! we build, and the ISA backends are shared with Wasmtime and fuzzed there.

use crate::program::host::{HelperEntry, HostFrame};
use crate::program::isa::{self, Insn, alu, class, jmp};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, Block, InstBuilder, MemFlagsData, Signature, Type, UserFuncName, Value, types,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetFrontendConfig};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::Module;
use std::sync::OnceLock;

/// Most instruction slots (an `lddw` takes two) a program may have to be
/// compiled: the verifier's default limit
/// ([`crate::program::verifier::DEFAULT_MAX_INSNS`]). A longer program (a
/// registry loaded with a larger verifier limit) runs under the interpreter.
/// At this size compilation takes milliseconds and the code stays far below
/// anything Cranelift limits (a 4096-instruction program of divisions, the
/// most code per instruction, is tens of KiB).
pub const MAX_INSNS: usize = 4096;

/// Why a program could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("insn {insn}: {reason}")]
pub struct CompileError {
    /// Instruction index (0 when the code generator failed on the function
    /// as a whole, which no instruction of a checked program should cause).
    pub insn: usize,
    /// Why.
    pub reason: CompileProblem,
}

/// What the compiler refuses, one variant per cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileProblem {
    /// The code is not whole instructions.
    #[error("the code is {bytes} bytes, not a whole number of 8-byte instructions")]
    Length {
        /// Its length.
        bytes: usize,
    },
    /// No instructions.
    #[error("empty program")]
    Empty,
    /// More than [`MAX_INSNS`] instruction slots.
    #[error(
        "the program is {insns} instructions long; at most {MAX_INSNS} are compiled (it runs under the interpreter)"
    )]
    TooLong {
        /// Its instruction slots.
        insns: usize,
    },
    /// An encoding [`isa::check_encoding`] refuses.
    #[error("{0}")]
    Encoding(isa::EncodingError),
    /// A write to r10.
    #[error("r10 (the frame pointer) is read-only")]
    FramePointer,
    /// A bpf-to-bpf call.
    #[error("bpf-to-bpf calls are not supported (make the function static __always_inline)")]
    BpfCall,
    /// A call with another pseudo source.
    #[error("call with src {0} is not supported")]
    CallSrc(u8),
    /// A call of a helper the engine does not have.
    #[error("call to unknown helper {0} ({0:#x})")]
    UnknownHelper(u32),
    /// A jump out of the program.
    #[error("jump to insn {target}, outside the program")]
    JumpOutside {
        /// Where it goes.
        target: i64,
    },
    /// A jump to the second half of an `lddw`.
    #[error("jump into the middle of the lddw at insn {lddw}")]
    JumpIntoLddw {
        /// The `lddw`.
        lddw: i64,
    },
    /// A path that does not end in `exit`.
    #[error("execution can run past the end of the program (every path must end in exit)")]
    RunsPastEnd,
    /// A loop.
    #[error(
        "loop: insn {from} can reach itself again through insn {through} (compiled code runs loop-free programs only)"
    )]
    Loop {
        /// The instruction that jumps back.
        from: usize,
        /// Where it jumps to.
        through: usize,
    },
    /// The host's code generator could not be built.
    #[error("{0}")]
    Host(HostError),
    /// Cranelift failed on the function.
    #[error("cranelift: {stage}: {message}")]
    Cranelift {
        /// What we asked of it: `declare`, `compile`, `finalize`.
        stage: &'static str,
        /// Its message.
        message: String,
    },
    /// A bug of the compiler's own, caught.
    #[error("internal error: {0}")]
    Internal(Internal),
}

/// Compiler bugs that are reported (the program runs under the interpreter)
/// rather than panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Internal {
    /// A jump target without a block.
    #[error("no block for a jump target")]
    NoBlock,
    /// Instruction 0 without a block.
    #[error("no block for insn 0")]
    NoFirstBlock,
    /// An ALU operation the checks should have refused.
    #[error("ALU operation {0:#x}")]
    AluOp(u8),
    /// A jump operation the checks should have refused.
    #[error("jump operation {0:#x}")]
    JumpOp(u8),
    /// A call whose helper was not looked up.
    #[error("call without a helper entry")]
    NoHelperEntry,
    /// An instruction after a block's end that starts none.
    #[error("instruction outside any block")]
    OutsideBlock,
    /// The last block falls through.
    #[error("the last block has no end")]
    NoLastEnd,
    /// Cranelift panicked.
    #[error("the code generator panicked")]
    Panicked,
}

/// Why the host's code generator could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Cranelift refused one of our settings.
    #[error("cranelift setting {key}={value}: {message}")]
    Setting {
        /// The setting.
        key: &'static str,
        /// Its value.
        value: &'static str,
        /// Cranelift's message.
        message: String,
    },
    /// Cranelift has no backend for this host.
    #[error("this host is not supported by cranelift: {0}")]
    Unsupported(String),
    /// Building the ISA failed.
    #[error("cranelift: {0}")]
    Isa(String),
    /// Pointers are not 64 bits.
    #[error("compiled code needs a 64-bit host")]
    Not64Bit,
}

fn refuse<T>(insn: usize, reason: CompileProblem) -> Result<T, CompileError> {
    Err(CompileError { insn, reason })
}

fn internal<T>(insn: usize, bug: Internal) -> Result<T, CompileError> {
    refuse(insn, CompileProblem::Internal(bug))
}

/// The compiled function: `r0 = f(ctx, stack_top, frame)`.
type EntryFn = unsafe extern "C" fn(*const u8, *mut u8, *mut HostFrame<'_, '_>) -> u64;

/// A compiled program: machine code owned by its own JIT module, freed when
/// this is dropped.
pub struct Compiled {
    entry: EntryFn,
    /// Bytes of machine code.
    code_len: usize,
    /// Owns the code's memory; `None` only while dropping.
    module: Option<JITModule>,
}

// SAFETY: after `Compiled::new` the module is never touched again except to
// free its memory in `drop` (which has `&mut self`, so no run is going on).
// What `&Compiled` gives access to is the entry address of immutable,
// executable code that keeps no state of its own (everything it touches is
// passed to each run), so it may be run from any thread, by several at once.
// JITModule is not Send/Sync only because of bookkeeping (symbol caches in a
// RefCell, boxed lookup closures) that we never use after finalization.
unsafe impl Send for Compiled {}
// SAFETY: as above.
unsafe impl Sync for Compiled {}

impl Drop for Compiled {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the only pointer into the module's memory is `entry`,
            // which dies with `self`; no run can be going on (we have
            // `&mut self`). cranelift-jit leaks the code unless told to free it.
            unsafe { m.free_memory() };
        }
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("code_len", &self.code_len)
            .finish()
    }
}

/// The host's code generator, built once: detecting the CPU's features and
/// building the ISA need not be repeated for every program.
fn host_isa() -> Result<OwnedTargetIsa, HostError> {
    static ISA: OnceLock<Result<OwnedTargetIsa, HostError>> = OnceLock::new();
    ISA.get_or_init(|| {
        let mut flags = settings::builder();
        for (k, v) in [
            ("opt_level", "speed"),
            // cranelift-jit requires both.
            ("use_colocated_libcalls", "false"),
            ("is_pic", "false"),
            // A frame larger than a page is probed inline rather than by a
            // libcall (none is linked in); ours are small, this is a guard.
            ("enable_probestack", "true"),
            ("probestack_strategy", "inline"),
            // The IR verifier stays on (the default): a function we build
            // wrongly is refused at load instead of miscompiled. It costs
            // compile time only, once per program.
            ("enable_verifier", "true"),
        ] {
            flags.set(k, v).map_err(|e| HostError::Setting {
                key: k,
                value: v,
                message: e.to_string(),
            })?;
        }
        let builder =
            cranelift_native::builder().map_err(|e| HostError::Unsupported(e.to_string()))?;
        let isa = builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| HostError::Isa(e.to_string()))?;
        if isa.pointer_type() != types::I64 {
            return Err(HostError::Not64Bit);
        }
        Ok(isa)
    })
    .clone()
}

/// What the checks found out about a program, for the translation.
struct Plan {
    insns: Vec<Insn>,
    /// Instructions reachable from 0 (every one starts an instruction).
    reachable: Vec<bool>,
    /// Instructions that start a basic block: 0, jump targets, and the
    /// instruction after a conditional jump.
    leader: Vec<bool>,
    /// The entry of the helper each reachable `call` calls.
    helpers: Vec<Option<HelperEntry>>,
}

/// The instructions control reaches after `i` (jump targets checked already).
fn successors(ins: &Insn, i: usize) -> ([usize; 2], usize) {
    let target = (i as i64 + 1 + ins.off as i64) as usize;
    match ins.class() {
        class::LD => ([i + 2, 0], 1),
        class::JMP | class::JMP32 => match ins.op() {
            jmp::EXIT => ([0, 0], 0),
            jmp::CALL => ([i + 1, 0], 1),
            jmp::JA => ([target, 0], 1),
            _ => ([i + 1, target], 2),
        },
        _ => ([i + 1, 0], 1),
    }
}

/// Check everything the translation relies on.
fn plan(code: &[u8], helpers: &dyn Fn(u32) -> Option<HelperEntry>) -> Result<Plan, CompileError> {
    if !code.len().is_multiple_of(8) {
        return refuse(code.len() / 8, CompileProblem::Length { bytes: code.len() });
    }
    let n = code.len() / 8;
    if n == 0 {
        return refuse(0, CompileProblem::Empty);
    }
    if n > MAX_INSNS {
        return refuse(MAX_INSNS, CompileProblem::TooLong { insns: n });
    }
    let insns: Vec<Insn> = (0..n).map(|i| Insn::decode(code, i)).collect();

    // Encodings, and where instructions start (the second half of an lddw
    // is no instruction of its own).
    let mut starts = vec![false; n];
    let mut entries = vec![None; n];
    let mut i = 0;
    while i < n {
        let ins = &insns[i];
        starts[i] = true;
        isa::check_encoding(ins, insns.get(i + 1)).map_err(|e| CompileError {
            insn: i,
            reason: CompileProblem::Encoding(e),
        })?;
        if ins.dst == 10
            && matches!(
                ins.class(),
                class::LD | class::LDX | class::ALU | class::ALU64
            )
        {
            return refuse(i, CompileProblem::FramePointer);
        }
        if ins.opc == isa::CALL {
            match ins.src {
                0 => {}
                1 => {
                    return refuse(i, CompileProblem::BpfCall);
                }
                s => return refuse(i, CompileProblem::CallSrc(s)),
            }
            let id = ins.imm as u32;
            match helpers(id) {
                Some(e) => entries[i] = Some(e),
                None => return refuse(i, CompileProblem::UnknownHelper(id)),
            }
        }
        i += if ins.class() == class::LD { 2 } else { 1 };
    }

    // Jump targets: inside the program, at the start of an instruction.
    for (i, ins) in insns.iter().enumerate() {
        if !starts[i] || !(ins.opc == isa::JA || ins.is_cond_jump()) {
            continue;
        }
        let t = i as i64 + 1 + ins.off as i64;
        if t < 0 || t >= n as i64 {
            return refuse(i, CompileProblem::JumpOutside { target: t });
        }
        if !starts[t as usize] {
            return refuse(i, CompileProblem::JumpIntoLddw { lddw: t - 1 });
        }
    }

    // Reachability, refusing loops (compiled code counts nothing, so it must
    // end by construction) and paths that run past the last instruction.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; n];
    let mut leader = vec![false; n];
    leader[0] = true;
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    state[0] = ON_PATH;
    while let Some(top) = stack.last_mut() {
        let (i, k) = *top;
        let ins = &insns[i];
        let (succ, count) = successors(ins, i);
        if k == count {
            state[i] = DONE;
            stack.pop();
            continue;
        }
        top.1 += 1;
        let t = succ[k];
        if t >= n {
            return refuse(i, CompileProblem::RunsPastEnd);
        }
        if ins.is_cond_jump() || ins.opc == isa::JA {
            leader[t] = true;
            if ins.is_cond_jump() {
                leader[i + 1] = true;
            }
        }
        match state[t] {
            NEW => {
                state[t] = ON_PATH;
                stack.push((t, 0));
            }
            ON_PATH => {
                return refuse(
                    i,
                    CompileProblem::Loop {
                        from: i,
                        through: t,
                    },
                );
            }
            _ => {}
        }
    }
    let reachable: Vec<bool> = state.iter().map(|&s| s == DONE).collect();
    Ok(Plan {
        insns,
        reachable,
        leader,
        helpers: entries,
    })
}

/// Memory accesses: never trapping (the verifier proved every one in bounds),
/// not known to be aligned (BPF allows unaligned accesses).
fn mem_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// `v` as a constant of type `ty` (narrow types take the low bits, as
/// Cranelift wants its immediates).
fn konst(b: &mut FunctionBuilder<'_>, ty: Type, v: u64) -> Value {
    let v = match ty.bits() {
        64 => v,
        bits => v & ((1u64 << bits) - 1),
    };
    b.ins().iconst(ty, v as i64)
}

/// Translation state of one function.
struct Emitter<'a, 'f> {
    b: FunctionBuilder<'f>,
    regs: [Variable; 11],
    frame: Value,
    helper_sig: cranelift_codegen::ir::SigRef,
    blocks: &'a [Option<Block>],
}

impl Emitter<'_, '_> {
    fn get(&mut self, r: u8) -> Value {
        self.b.use_var(self.regs[r as usize])
    }

    fn set(&mut self, r: u8, v: Value) {
        self.b.def_var(self.regs[r as usize], v);
    }

    fn block(&self, i: usize) -> Result<Block, CompileError> {
        match self.blocks.get(i).copied().flatten() {
            Some(b) => Ok(b),
            None => internal(i, Internal::NoBlock),
        }
    }

    /// The second operand of an ALU or jump instruction, 64 bits wide: the
    /// source register or the sign-extended immediate.
    fn operand(&mut self, ins: &Insn) -> Value {
        if ins.is_reg() {
            self.get(ins.src)
        } else {
            konst(&mut self.b, types::I64, ins.imm as i64 as u64)
        }
    }

    /// `dst op= src` (not END), in `ty` (I32: low halves, result
    /// zero-extended).
    fn alu(&mut self, ins: &Insn) -> Result<(), CompileError> {
        let ty = if ins.class() == class::ALU64 {
            types::I64
        } else {
            types::I32
        };
        let narrow = |e: &mut Self, v: Value| {
            if ty == types::I64 {
                v
            } else {
                e.b.ins().ireduce(ty, v)
            }
        };
        let d64 = self.get(ins.dst);
        let s64 = self.operand(ins);
        let x = narrow(self, d64);
        let y = narrow(self, s64);
        // A divisor known not to be zero needs no select.
        let known_nonzero = !ins.is_reg() && {
            let k = ins.imm as i64 as u64;
            if ty == types::I64 {
                k != 0
            } else {
                k as u32 != 0
            }
        };
        let ins_ = self.b.ins();
        let r = match ins.op() {
            alu::ADD => ins_.iadd(x, y),
            alu::SUB => ins_.isub(x, y),
            alu::MUL => ins_.imul(x, y),
            alu::OR => ins_.bor(x, y),
            alu::AND => ins_.band(x, y),
            alu::XOR => ins_.bxor(x, y),
            // Cranelift masks shift counts to the width of `x`: the kernel's
            // meaning (isa::eval_alu), so no masking of our own.
            alu::LSH => ins_.ishl(x, y),
            alu::RSH => ins_.ushr(x, y),
            alu::ARSH => ins_.sshr(x, y),
            alu::NEG => ins_.ineg(x),
            alu::MOV => y,
            alu::DIV | alu::MOD if known_nonzero => {
                if ins.op() == alu::DIV {
                    ins_.udiv(x, y)
                } else {
                    ins_.urem(x, y)
                }
            }
            alu::DIV | alu::MOD => {
                // udiv/urem trap on zero: divide by 1 instead, then pick the
                // kernel's result for a zero divisor (0, or the dividend).
                let zero = konst(&mut self.b, ty, 0);
                let one = konst(&mut self.b, ty, 1);
                let is_zero = self.b.ins().icmp(IntCC::Equal, y, zero);
                let safe = self.b.ins().select(is_zero, one, y);
                if ins.op() == alu::DIV {
                    let q = self.b.ins().udiv(x, safe);
                    self.b.ins().select(is_zero, zero, q)
                } else {
                    let m = self.b.ins().urem(x, safe);
                    self.b.ins().select(is_zero, x, m)
                }
            }
            op => {
                return internal(0, Internal::AluOp(op));
            }
        };
        let r = if ty == types::I64 {
            r
        } else {
            self.b.ins().uextend(types::I64, r)
        };
        self.set(ins.dst, r);
        Ok(())
    }

    /// `le`/`be` 16/32/64 (isa::eval_end): le truncates, be swaps and truncates.
    fn end(&mut self, ins: &Insn) {
        let a = self.get(ins.dst);
        let be = ins.opc & isa::SRC_X != 0;
        let r = match (be, ins.imm) {
            (false, 64) => a,
            (true, 64) => self.b.ins().bswap(a),
            (be, bits) => {
                let ty = if bits == 16 { types::I16 } else { types::I32 };
                let v = self.b.ins().ireduce(ty, a);
                let v = if be { self.b.ins().bswap(v) } else { v };
                self.b.ins().uextend(types::I64, v)
            }
        };
        self.set(ins.dst, r);
    }

    fn load(&mut self, ins: &Insn) {
        let base = self.get(ins.src);
        let (f, off) = (mem_flags(), ins.off as i32);
        let i = self.b.ins();
        let v = match ins.size() {
            1 => i.uload8(types::I64, f, base, off),
            2 => i.uload16(types::I64, f, base, off),
            4 => i.uload32(f, base, off),
            _ => i.load(types::I64, f, base, off),
        };
        self.set(ins.dst, v);
    }

    fn store(&mut self, ins: &Insn) {
        let base = self.get(ins.dst);
        let v = if ins.class() == class::ST {
            konst(&mut self.b, types::I64, ins.imm as i64 as u64)
        } else {
            self.get(ins.src)
        };
        let (f, off) = (mem_flags(), ins.off as i32);
        let i = self.b.ins();
        match ins.size() {
            1 => i.istore8(f, v, base, off),
            2 => i.istore16(f, v, base, off),
            4 => i.istore32(f, v, base, off),
            _ => i.store(f, v, base, off),
        };
    }

    /// A conditional jump at `i`: to the target when isa::jump_taken says so,
    /// else to `i + 1`.
    fn cond_jump(&mut self, i: usize, ins: &Insn) -> Result<(), CompileError> {
        let taken = self.block((i as i64 + 1 + ins.off as i64) as usize)?;
        let next = self.block(i + 1)?;
        if taken == next {
            // `off == 0`: both ways lead to the same place.
            self.b.ins().jump(next, &[]);
            return Ok(());
        }
        let mut a = self.get(ins.dst);
        let mut c = self.operand(ins);
        if ins.class() == class::JMP32 {
            a = self.b.ins().ireduce(types::I32, a);
            c = self.b.ins().ireduce(types::I32, c);
        }
        let cc = match ins.op() {
            jmp::JEQ => IntCC::Equal,
            jmp::JNE => IntCC::NotEqual,
            jmp::JGT => IntCC::UnsignedGreaterThan,
            jmp::JGE => IntCC::UnsignedGreaterThanOrEqual,
            jmp::JLT => IntCC::UnsignedLessThan,
            jmp::JLE => IntCC::UnsignedLessThanOrEqual,
            jmp::JSGT => IntCC::SignedGreaterThan,
            jmp::JSGE => IntCC::SignedGreaterThanOrEqual,
            jmp::JSLT => IntCC::SignedLessThan,
            jmp::JSLE => IntCC::SignedLessThanOrEqual,
            jmp::JSET => {
                let ty = self.b.func.dfg.value_type(a);
                let both = self.b.ins().band(a, c);
                a = both;
                c = konst(&mut self.b, ty, 0);
                IntCC::NotEqual
            }
            op => return internal(i, Internal::JumpOp(op)),
        };
        let cond = self.b.ins().icmp(cc, a, c);
        self.b.ins().brif(cond, taken, &[], next, &[]);
        Ok(())
    }

    fn call(&mut self, i: usize, entry: Option<HelperEntry>) -> Result<(), CompileError> {
        let Some(entry) = entry else {
            return internal(i, Internal::NoHelperEntry);
        };
        let callee = konst(&mut self.b, types::I64, entry as usize as u64);
        let mut args = [self.frame; 6];
        for r in 1..=5u8 {
            args[r as usize] = self.get(r);
        }
        let call = self.b.ins().call_indirect(self.helper_sig, callee, &args);
        let r0 = self.b.inst_results(call)[0];
        self.set(0, r0);
        Ok(())
    }

    /// Translate instruction `i`; true when it ends its block.
    fn insn(&mut self, i: usize, plan: &Plan) -> Result<bool, CompileError> {
        let ins = plan.insns[i];
        match ins.class() {
            class::LD => {
                let hi = plan.insns[i + 1];
                let v = (ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
                let v = konst(&mut self.b, types::I64, v);
                self.set(ins.dst, v);
            }
            class::LDX => self.load(&ins),
            class::ST | class::STX => self.store(&ins),
            class::ALU | class::ALU64 if ins.op() == alu::END => self.end(&ins),
            class::ALU | class::ALU64 => self.alu(&ins).map_err(|e| CompileError {
                insn: i,
                reason: e.reason,
            })?,
            _ => match ins.opc {
                isa::EXIT => {
                    let r0 = self.get(0);
                    self.b.ins().return_(&[r0]);
                    return Ok(true);
                }
                isa::JA => {
                    let t = self.block((i as i64 + 1 + ins.off as i64) as usize)?;
                    self.b.ins().jump(t, &[]);
                    return Ok(true);
                }
                isa::CALL => self.call(i, plan.helpers[i])?,
                _ => {
                    self.cond_jump(i, &ins)?;
                    return Ok(true);
                }
            },
        }
        Ok(false)
    }
}

/// Build the function's IR into `func`.
fn translate(
    plan: &Plan,
    func: &mut cranelift_codegen::ir::Function,
    helper_sig: Signature,
    config: TargetFrontendConfig,
) -> Result<(), CompileError> {
    let n = plan.insns.len();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(func, &mut fctx);
    let helper_sig = b.import_signature(helper_sig);
    let regs: [Variable; 11] = std::array::from_fn(|_| b.declare_var(types::I64));

    // The entry block sets the registers (r1 = ctx, r10 = stack top, the
    // others 0) and goes to insn 0's block (an entry block has no
    // predecessors; insn 0's may, in principle).
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (ctx, stack_top, frame) = (params[0], params[1], params[2]);
    let zero = b.ins().iconst(types::I64, 0);
    for (r, &v) in regs.iter().enumerate() {
        b.def_var(
            v,
            match r {
                1 => ctx,
                10 => stack_top,
                _ => zero,
            },
        );
    }
    let blocks: Vec<Option<Block>> = (0..n)
        .map(|i| (plan.leader[i] && plan.reachable[i]).then(|| b.create_block()))
        .collect();
    let first = blocks[0].ok_or(CompileError {
        insn: 0,
        reason: CompileProblem::Internal(Internal::NoFirstBlock),
    })?;
    b.ins().jump(first, &[]);

    let mut e = Emitter {
        b,
        regs,
        frame,
        helper_sig,
        blocks: &blocks,
    };
    // True when the current block has its terminator.
    let mut ended = true;
    for (i, &block) in blocks.iter().enumerate() {
        if !plan.reachable[i] {
            continue;
        }
        if let Some(block) = block {
            if !ended {
                e.b.ins().jump(block, &[]);
            }
            e.b.switch_to_block(block);
        } else if ended {
            // Only a leader follows an instruction that ends a block.
            return internal(i, Internal::OutsideBlock);
        }
        ended = e.insn(i, plan)?;
    }
    if !ended {
        return internal(n - 1, Internal::NoLastEnd);
    }
    e.b.seal_all_blocks();
    e.b.finalize(config);
    Ok(())
}

impl Compiled {
    /// Compile verified `code` (host addresses in its `lddw`s); `helpers`
    /// gives the entry of each helper id it calls.
    pub fn new(
        code: &[u8],
        helpers: &dyn Fn(u32) -> Option<HelperEntry>,
    ) -> Result<Compiled, CompileError> {
        let plan = plan(code, helpers)?;
        // The checks above are what keep Cranelift's assertions from firing;
        // should one fire anyway (a bug, ours or Cranelift's), the program
        // runs under the interpreter rather than taking the process down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(&plan)))
            .unwrap_or_else(|_| internal(0, Internal::Panicked))
    }

    /// Bytes of machine code.
    pub fn code_len(&self) -> usize {
        self.code_len
    }

    /// Run: r1 = `ctx`, r10 = `stack_top`, helpers get `frame`; returns r0.
    ///
    /// # Safety
    /// See [`crate::program::vm::Vm::execute`]: the code was verified, `ctx`
    /// and the 512 bytes below `stack_top` are valid for the run, so are the
    /// regions whose host addresses its `lddw`s hold, and `frame` is what
    /// the helper entries expect.
    pub unsafe fn run(
        &self,
        ctx: *const u8,
        stack_top: *mut u8,
        frame: *mut HostFrame<'_, '_>,
    ) -> u64 {
        // SAFETY: `entry` is the finalized code of this program, alive as
        // long as `self`; the caller upholds what the code assumes.
        unsafe { (self.entry)(ctx, stack_top, frame) }
    }
}

fn cranelift_error(stage: &'static str, e: impl std::fmt::Display) -> CompileError {
    CompileError {
        insn: 0,
        reason: CompileProblem::Cranelift {
            stage,
            message: e.to_string(),
        },
    }
}

fn build(plan: &Plan) -> Result<Compiled, CompileError> {
    let isa = host_isa().map_err(|e| CompileError {
        insn: 0,
        reason: CompileProblem::Host(e),
    })?;
    let mut module = JITModule::new(JITBuilder::with_isa(
        isa,
        cranelift_module::default_libcall_names(),
    ));
    let call_conv = module.isa().default_call_conv();
    let i64p = AbiParam::new(types::I64);
    let mut sig = Signature::new(call_conv);
    sig.params.extend([i64p; 3]);
    sig.returns.push(i64p);
    let mut helper_sig = Signature::new(call_conv);
    helper_sig.params.extend([i64p; 6]);
    helper_sig.returns.push(i64p);

    let id = module
        .declare_anonymous_function(&sig)
        .map_err(|e| cranelift_error("declare", e))?;
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    // Built before anything owns code memory: a refusal frees nothing.
    let built = translate(plan, &mut ctx.func, helper_sig, module.target_config());
    let result = built.and_then(|()| {
        module
            .define_function(id, &mut ctx)
            .map_err(|e| cranelift_error("compile", format!("{e:?}")))?;
        let code_len = ctx
            .compiled_code()
            .map(|c| c.code_info().total_size as usize)
            .unwrap_or(0);
        module
            .finalize_definitions()
            .map_err(|e| cranelift_error("finalize", e))?;
        Ok(code_len)
    });
    match result {
        Ok(code_len) => {
            let ptr = module.get_finalized_function(id);
            // SAFETY: `ptr` is the entry of the function just finalized with
            // signature `sig` in the platform's C convention: (i64, i64, i64)
            // -> i64, which is `EntryFn` on a 64-bit host (host_isa checked).
            let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(ptr) };
            Ok(Compiled {
                entry,
                code_len,
                module: Some(module),
            })
        }
        Err(e) => {
            // SAFETY: nothing from this module is running or referenced.
            unsafe { module.free_memory() };
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
