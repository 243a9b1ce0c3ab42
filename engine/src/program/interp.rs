//! The interpreter: the reference meaning of every program, and the engine
//! that steps through one.
//!
//! It runs any program (verified or trusted) with the kernel's semantics
//! ([`crate::program::isa`]), over virtual addresses (see
//! [`crate::program::mem`]): every load and store is checked over its whole
//! length against the region it falls in, so even a program that was never
//! proved safe cannot touch anything else, and an error names the region,
//! offset and size, never a host address. It counts instructions (budgets)
//! and, when asked, yields after each instruction the pc, the instruction,
//! the registers and the memory it touched (the step debugger).

use crate::program::host::HelperHost;
use crate::program::isa::{self, Insn, alu, class};
use crate::program::mem::{AddrSpace, Addressing, Place, Region, RegionKind, STACK_SIZE};
use serde::{Deserialize, Serialize};

/// A memory access an instruction made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemAccess {
    /// Address, as the program saw it (virtual).
    pub addr: u64,
    /// Bytes.
    pub len: u8,
    /// Store (true) or load.
    pub write: bool,
    /// Region kind the address fell in (`ctx`, `stack`, `map`, `rodata`).
    pub region: String,
    /// Offset inside that region (stack: negative, from r10).
    pub offset: i64,
    /// The bytes loaded or stored.
    pub bytes: Vec<u8>,
}

/// State after one instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    /// Instruction index that ran.
    pub pc: usize,
    /// Raw instruction (8 bytes; `lddw` shows its first half).
    pub insn: [u8; 8],
    /// r0..r10 after it ran.
    pub regs: [u64; 11],
    /// Memory it touched, if any.
    pub mem: Option<MemAccess>,
    /// Helper it called, if any (id).
    pub helper: Option<u32>,
}

/// Result of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// r0 at exit.
    pub ret: u64,
    /// Instructions executed (an `lddw` counts once).
    pub insns: u64,
}

/// Why a run stopped early. Every value is in program terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterpError {
    /// An access outside every region the program may touch, or a store to a
    /// read-only one.
    OutOfBounds {
        /// Instruction.
        pc: usize,
        /// Where it starts, when that is inside a region.
        place: Option<Place>,
        /// The address the program computed (virtual: never a host address).
        addr: u64,
        /// Length.
        len: usize,
        /// Store?
        write: bool,
    },
    /// The instruction limit was reached.
    InsnLimit {
        /// The limit.
        limit: u64,
    },
    /// An instruction the interpreter does not run (the verifier refuses it).
    BadInsn {
        /// Instruction.
        pc: usize,
        /// Opcode.
        opc: u8,
    },
    /// Ran past the end of the code.
    FellOff {
        /// The last instruction that ran.
        pc: usize,
    },
}

impl InterpError {
    /// The instruction it stopped at (none for the instruction limit).
    pub fn pc(&self) -> Option<usize> {
        match self {
            InterpError::OutOfBounds { pc, .. }
            | InterpError::BadInsn { pc, .. }
            | InterpError::FellOff { pc } => Some(*pc),
            InterpError::InsnLimit { .. } => None,
        }
    }
}

impl std::fmt::Display for InterpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpError::OutOfBounds {
                pc,
                place,
                addr,
                len,
                write,
            } => {
                let what = if *write { "store" } else { "load" };
                match place {
                    Some(p)
                        if *write && matches!(p.kind, RegionKind::Ctx | RegionKind::Rodata(_)) =>
                    {
                        write!(
                            f,
                            "insn {pc}: {what} of {len} bytes at offset {} of {}, which is read-only",
                            display_offset(p),
                            p.kind
                        )
                    }
                    Some(p) => write!(
                        f,
                        "insn {pc}: {what} of {len} bytes at offset {} of {} runs past its end",
                        display_offset(p),
                        p.kind
                    ),
                    None => write!(
                        f,
                        "insn {pc}: {what} of {len} bytes at {addr:#x}, which is not in the context, the stack, a map value or read-only data"
                    ),
                }
            }
            InterpError::InsnLimit { limit } => write!(f, "instruction limit {limit} reached"),
            InterpError::BadInsn { pc, opc } => {
                write!(f, "insn {pc}: unsupported opcode {opc:#04x}")
            }
            InterpError::FellOff { pc } => {
                write!(f, "insn {pc}: ran past the end of the program")
            }
        }
    }
}

impl std::error::Error for InterpError {}

/// A stack offset as programs write it (from r10: negative); others from 0.
fn display_offset(p: &Place) -> i64 {
    match p.kind {
        RegionKind::Stack => p.offset as i64 - STACK_SIZE as i64,
        _ => p.offset as i64,
    }
}

/// Run `code` over `ctx`, with `statics` (the program's map arenas and
/// rodata, in the order their virtual ids count) and `host` for helpers.
/// `limit` caps executed instructions; `trace`, when given, sees every step.
///
/// `code` holds virtual addresses in its relocated `lddw`s
/// ([`crate::program::LoadedProgram::code`]).
pub fn run(
    code: &[u8],
    ctx: &mut [u8],
    statics: &[Region],
    host: &mut dyn HelperHost,
    limit: Option<u64>,
    mut trace: Option<&mut dyn FnMut(&TraceStep)>,
) -> Result<RunResult, InterpError> {
    // Zeroed: a trusted program may read stack it never wrote; it must see
    // nothing of this process.
    let mut stack = [0u8; STACK_SIZE];
    let mem = AddrSpace::new(
        Addressing::Virtual,
        ctx.as_mut_ptr(),
        ctx.len(),
        stack.as_mut_ptr(),
        statics,
    );
    let n = code.len() / 8;
    let mut reg = [0u64; 11];
    (reg[1], reg[10]) = mem.entry_registers();

    let tracing = trace.is_some();
    let limit = limit.unwrap_or(u64::MAX);
    let mut pc = 0usize;
    let mut count = 0u64;
    loop {
        if pc >= n {
            return Err(InterpError::FellOff {
                pc: pc.saturating_sub(1),
            });
        }
        if count >= limit {
            return Err(InterpError::InsnLimit { limit });
        }
        count += 1;
        let ins = Insn::decode(code, pc);
        let here = pc;
        pc += 1;
        let dst = ins.dst as usize;
        let src = ins.src as usize;
        if dst > 10 || src > 10 {
            return Err(InterpError::BadInsn {
                pc: here,
                opc: ins.opc,
            });
        }
        let mut access = None;
        let mut helper = None;
        match ins.class() {
            class::LD => {
                if ins.opc != isa::LDDW || pc >= n {
                    return Err(InterpError::BadInsn {
                        pc: here,
                        opc: ins.opc,
                    });
                }
                let hi = Insn::decode(code, pc);
                pc += 1;
                reg[dst] = (ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
            }
            class::LDX | class::ST | class::STX => {
                if ins.opc & 0xe0 != isa::MODE_MEM {
                    return Err(InterpError::BadInsn {
                        pc: here,
                        opc: ins.opc,
                    });
                }
                let write = ins.class() != class::LDX;
                let base = if write { reg[dst] } else { reg[src] };
                let addr = base.wrapping_add(ins.off as i64 as u64);
                let len = ins.size();
                let Some((place, p)) = mem.locate(addr, len, write) else {
                    return Err(InterpError::OutOfBounds {
                        pc: here,
                        place: mem.place(addr),
                        addr,
                        len,
                        write,
                    });
                };
                let mut b = [0u8; 8];
                if write {
                    let v = if ins.class() == class::ST {
                        ins.imm as i64 as u64
                    } else {
                        reg[src]
                    };
                    b = v.to_le_bytes();
                    // SAFETY: `locate` proved [p, p+len) inside a writable live region.
                    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, len) };
                } else {
                    // SAFETY: `locate` proved [p, p+len) inside a live region.
                    unsafe { std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), len) };
                    reg[dst] = u64::from_le_bytes(b);
                }
                if tracing {
                    access = Some(MemAccess {
                        addr,
                        len: len as u8,
                        write,
                        region: place.kind.name().into(),
                        offset: display_offset(&place),
                        bytes: b[..len].to_vec(),
                    });
                }
            }
            class::ALU | class::ALU64 => {
                let is64 = ins.class() == class::ALU64;
                reg[dst] = if ins.op() == alu::END {
                    isa::eval_end(ins.opc, ins.imm, reg[dst])
                } else if ins.op() <= alu::ARSH {
                    isa::eval_alu(ins.op(), is64, reg[dst], isa::alu_operand(&ins, reg[src]))
                } else {
                    return Err(InterpError::BadInsn {
                        pc: here,
                        opc: ins.opc,
                    });
                };
            }
            _ => match ins.opc {
                isa::JA => pc = jump(pc, ins.off),
                isa::CALL if ins.src == 0 => {
                    helper = Some(ins.imm as u32);
                    reg[0] = host.call(
                        ins.imm as u32,
                        [reg[1], reg[2], reg[3], reg[4], reg[5]],
                        &mem,
                    );
                }
                isa::EXIT => {
                    if let Some(t) = trace.as_mut() {
                        t(&TraceStep {
                            pc: here,
                            insn: ins.encode(),
                            regs: reg,
                            mem: None,
                            helper: None,
                        });
                    }
                    return Ok(RunResult {
                        ret: reg[0],
                        insns: count,
                    });
                }
                _ => match isa::jump_taken(&ins, reg[dst], reg[src]) {
                    Some(true) => pc = jump(pc, ins.off),
                    Some(false) => {}
                    None => {
                        return Err(InterpError::BadInsn {
                            pc: here,
                            opc: ins.opc,
                        });
                    }
                },
            },
        }
        if let Some(t) = trace.as_mut() {
            t(&TraceStep {
                pc: here,
                insn: ins.encode(),
                regs: reg,
                mem: access,
                helper,
            });
        }
    }
}

/// The instruction `off` slots after `next` (a jump out of the code stops
/// the run at the next fetch).
#[inline]
fn jump(next: usize, off: i16) -> usize {
    usize::try_from(next as i64 + off as i64).unwrap_or(usize::MAX)
}
