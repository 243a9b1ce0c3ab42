//! A tracing interpreter with rbpf's semantics.
//!
//! rbpf runs decisions; this interpreter re-runs them when someone needs to
//! see inside one: it counts instructions (for the decision log and the
//! instruction budget) and yields, after each instruction, the pc, the
//! instruction, the registers and the memory it touched (the step debugger).
//! It must agree with rbpf on every decision: a differential test runs both
//! over the pattern programs and generated programs.
//!
//! Memory accesses are checked over their whole length against the regions
//! the program may touch (rbpf checks only the first byte of allowed ranges).

use crate::program::verifier::{Insn, eval_end};
use crate::program::vm::HelperHost;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Stack bytes (as rbpf).
pub const STACK_SIZE: usize = 512;

/// A memory access an instruction made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemAccess {
    /// Address.
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

/// A named memory region the program may touch.
#[derive(Clone, Debug)]
pub struct MemRegion {
    /// Kind, for traces: `map`, `rodata`, ...
    pub kind: &'static str,
    /// Addresses.
    pub range: Range<u64>,
    /// Whether stores are allowed.
    pub writable: bool,
}

impl MemRegion {
    /// A map's values.
    pub fn map(m: &crate::program::maps::Map) -> MemRegion {
        MemRegion {
            kind: "map",
            range: m.arena_range(),
            writable: true,
        }
    }
}

/// Why a run stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterpError {
    /// An access outside every region.
    OutOfBounds {
        /// Instruction.
        pc: usize,
        /// Address.
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
    /// An instruction the interpreter does not run.
    BadInsn {
        /// Instruction.
        pc: usize,
        /// Opcode.
        opc: u8,
    },
    /// Ran past the end of the code.
    FellOff,
}

impl std::fmt::Display for InterpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpError::OutOfBounds {
                pc,
                addr,
                len,
                write,
            } => write!(
                f,
                "insn {pc}: out of bounds {} of {len} bytes at {addr:#x}",
                if *write { "store" } else { "load" }
            ),
            InterpError::InsnLimit { limit } => write!(f, "instruction limit {limit} reached"),
            InterpError::BadInsn { pc, opc } => {
                write!(f, "insn {pc}: unsupported opcode {opc:#04x}")
            }
            InterpError::FellOff => write!(f, "ran past the end of the program"),
        }
    }
}

impl std::error::Error for InterpError {}

/// Whether conditional jump `opc` is taken, with rbpf's semantics: 64-bit
/// unsigned compares zero-extend the immediate (see fixup.rs), `jset` and
/// signed compares sign-extend it; 32-bit jumps compare the low halves.
/// None for an opcode that is not a conditional jump.
fn jump_taken(opc: u8, a: u64, src: u64, imm: i32) -> Option<bool> {
    let x = opc & 0x08 != 0;
    let op = opc & 0xf0;
    if opc & 0x07 == 0x05 {
        let bu = if x { src } else { imm as u32 as u64 };
        let bs = if x { src as i64 } else { imm as i64 };
        let bset = if x { src } else { imm as i64 as u64 };
        let a_s = a as i64;
        return Some(match op {
            0x10 => a == bu,
            0x20 => a > bu,
            0x30 => a >= bu,
            0x40 => a & bset != 0,
            0x50 => a != bu,
            0x60 => a_s > bs,
            0x70 => a_s >= bs,
            0xa0 => a < bu,
            0xb0 => a <= bu,
            0xc0 => a_s < bs,
            0xd0 => a_s <= bs,
            _ => return None,
        });
    }
    let (a, b) = (a as u32, if x { src as u32 } else { imm as u32 });
    let (a_s, b_s) = (a as i32, b as i32);
    Some(match op {
        0x10 => a == b,
        0x20 => a > b,
        0x30 => a >= b,
        0x40 => a & b != 0,
        0x50 => a != b,
        0x60 => a_s > b_s,
        0x70 => a_s >= b_s,
        0xa0 => a < b,
        0xb0 => a <= b,
        0xc0 => a_s < b_s,
        0xd0 => a_s <= b_s,
        _ => return None,
    })
}

/// Run `code` over `ctx`, calling `host` for helpers. `limit` caps executed
/// instructions; `trace`, when given, sees every step.
pub fn run(
    code: &[u8],
    ctx: &mut [u8],
    regions: &[MemRegion],
    host: &mut dyn HelperHost,
    limit: Option<u64>,
    mut trace: Option<&mut dyn FnMut(&TraceStep)>,
) -> Result<RunResult, InterpError> {
    // On the native stack: this runs once per counted decision.
    let mut stack = [0u8; STACK_SIZE];
    let n = code.len() / 8;
    let mut reg = [0u64; 11];
    reg[1] = ctx.as_mut_ptr() as u64;
    reg[10] = stack.as_mut_ptr() as u64 + STACK_SIZE as u64;
    let ctx_range = ctx.as_ptr() as u64..ctx.as_ptr() as u64 + ctx.len() as u64;
    let stack_range = stack.as_ptr() as u64..stack.as_ptr() as u64 + STACK_SIZE as u64;

    // Where an access lands: (kind, offset) or None when out of bounds.
    let locate = |addr: u64, len: usize, write: bool| -> Option<(&'static str, i64)> {
        let end = addr.checked_add(len as u64)?;
        if ctx_range.start <= addr && end <= ctx_range.end {
            return Some(("ctx", (addr - ctx_range.start) as i64));
        }
        if stack_range.start <= addr && end <= stack_range.end {
            return Some(("stack", addr as i64 - stack_range.end as i64));
        }
        regions
            .iter()
            .find(|r| r.range.start <= addr && end <= r.range.end && (!write || r.writable))
            .map(|r| (r.kind, (addr - r.range.start) as i64))
    };

    let tracing = trace.is_some();
    let mut pc = 0usize;
    let mut count = 0u64;
    loop {
        if pc >= n {
            return Err(InterpError::FellOff);
        }
        if let Some(l) = limit
            && count >= l
        {
            return Err(InterpError::InsnLimit { limit: l });
        }
        count += 1;
        let ins = Insn::decode(code, pc);
        let raw: [u8; 8] = code[pc * 8..pc * 8 + 8].try_into().expect("8 bytes");
        let here = pc;
        pc += 1;
        let dst = ins.dst as usize;
        let src = ins.src as usize;
        let imm = ins.imm;
        let mut mem = None;
        let mut helper = None;
        let jump = |pc: &mut usize| *pc = (*pc as i64 + ins.off as i64) as usize;

        macro_rules! load {
            ($len:expr) => {{
                let addr = reg[src].wrapping_add(ins.off as i64 as u64);
                let len: usize = $len;
                let Some((kind, offset)) = locate(addr, len, false) else {
                    return Err(InterpError::OutOfBounds {
                        pc: here,
                        addr,
                        len,
                        write: false,
                    });
                };
                let mut b = [0u8; 8];
                // SAFETY: `locate` proved [addr, addr+len) inside a live region.
                unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, b.as_mut_ptr(), len) };
                if tracing {
                    mem = Some(MemAccess {
                        addr,
                        len: len as u8,
                        write: false,
                        region: kind.into(),
                        offset,
                        bytes: b[..len].to_vec(),
                    });
                }
                reg[dst] = u64::from_le_bytes(b);
            }};
        }
        macro_rules! store {
            ($len:expr, $val:expr) => {{
                let addr = reg[dst].wrapping_add(ins.off as i64 as u64);
                let len: usize = $len;
                let Some((kind, offset)) = locate(addr, len, true) else {
                    return Err(InterpError::OutOfBounds {
                        pc: here,
                        addr,
                        len,
                        write: true,
                    });
                };
                let b = ($val as u64).to_le_bytes();
                // SAFETY: `locate` proved [addr, addr+len) inside a writable live region.
                unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), addr as *mut u8, len) };
                if tracing {
                    mem = Some(MemAccess {
                        addr,
                        len: len as u8,
                        write: true,
                        region: kind.into(),
                        offset,
                        bytes: b[..len].to_vec(),
                    });
                }
            }};
        }
        match ins.opc {
            0x18 => {
                if pc >= n {
                    return Err(InterpError::FellOff);
                }
                let hi = Insn::decode(code, pc);
                pc += 1;
                reg[dst] = (imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
            }
            0x71 => load!(1),
            0x69 => load!(2),
            0x61 => load!(4),
            0x79 => load!(8),
            0x72 => store!(1, imm),
            0x6a => store!(2, imm),
            0x62 => store!(4, imm),
            0x7a => store!(8, imm as i64),
            0x73 => store!(1, reg[src]),
            0x6b => store!(2, reg[src]),
            0x63 => store!(4, reg[src]),
            0x7b => store!(8, reg[src]),

            0x04 => reg[dst] = (reg[dst] as i32).wrapping_add(imm) as u32 as u64,
            0x0c => reg[dst] = (reg[dst] as i32).wrapping_add(reg[src] as i32) as u32 as u64,
            0x14 => reg[dst] = (reg[dst] as i32).wrapping_sub(imm) as u32 as u64,
            0x1c => reg[dst] = (reg[dst] as i32).wrapping_sub(reg[src] as i32) as u32 as u64,
            0x24 => reg[dst] = (reg[dst] as i32).wrapping_mul(imm) as u32 as u64,
            0x2c => reg[dst] = (reg[dst] as i32).wrapping_mul(reg[src] as i32) as u32 as u64,
            0x34 => reg[dst] = (reg[dst] as u32).checked_div(imm as u32).unwrap_or(0) as u64,
            0x3c => reg[dst] = (reg[dst] as u32).checked_div(reg[src] as u32).unwrap_or(0) as u64,
            0x44 => reg[dst] = (reg[dst] as u32 | imm as u32) as u64,
            0x4c => reg[dst] = (reg[dst] as u32 | reg[src] as u32) as u64,
            0x54 => reg[dst] = (reg[dst] as u32 & imm as u32) as u64,
            0x5c => reg[dst] = (reg[dst] as u32 & reg[src] as u32) as u64,
            0x64 => reg[dst] = (reg[dst] as u32).wrapping_shl(imm as u32) as u64,
            0x6c => reg[dst] = (reg[dst] as u32).wrapping_shl(reg[src] as u32) as u64,
            0x74 => reg[dst] = (reg[dst] as u32).wrapping_shr(imm as u32) as u64,
            0x7c => reg[dst] = (reg[dst] as u32).wrapping_shr(reg[src] as u32) as u64,
            0x84 => reg[dst] = (reg[dst] as i32).wrapping_neg() as u64 & 0xffff_ffff,
            0x94 => {
                if imm as u32 != 0 {
                    reg[dst] = (reg[dst] as u32 % imm as u32) as u64
                }
            }
            0x9c => {
                if reg[src] as u32 != 0 {
                    reg[dst] = (reg[dst] as u32 % reg[src] as u32) as u64
                }
            }
            0xa4 => reg[dst] = (reg[dst] as u32 ^ imm as u32) as u64,
            0xac => reg[dst] = (reg[dst] as u32 ^ reg[src] as u32) as u64,
            0xb4 => reg[dst] = imm as u32 as u64,
            0xbc => reg[dst] = reg[src] as u32 as u64,
            0xc4 => reg[dst] = (reg[dst] as i32).wrapping_shr(imm as u32) as u64 & 0xffff_ffff,
            0xcc => reg[dst] = (reg[dst] as i32).wrapping_shr(reg[src] as u32) as u64 & 0xffff_ffff,
            0xd4 | 0xdc => reg[dst] = eval_end(ins.opc, imm, reg[dst]),

            0x07 => reg[dst] = reg[dst].wrapping_add(imm as i64 as u64),
            0x0f => reg[dst] = reg[dst].wrapping_add(reg[src]),
            0x17 => reg[dst] = reg[dst].wrapping_sub(imm as i64 as u64),
            0x1f => reg[dst] = reg[dst].wrapping_sub(reg[src]),
            0x27 => reg[dst] = reg[dst].wrapping_mul(imm as i64 as u64),
            0x2f => reg[dst] = reg[dst].wrapping_mul(reg[src]),
            0x37 => reg[dst] = reg[dst].checked_div(imm as i64 as u64).unwrap_or(0),
            0x3f => reg[dst] = reg[dst].checked_div(reg[src]).unwrap_or(0),
            0x47 => reg[dst] |= imm as i64 as u64,
            0x4f => reg[dst] |= reg[src],
            0x57 => reg[dst] &= imm as i64 as u64,
            0x5f => reg[dst] &= reg[src],
            0x67 => reg[dst] <<= imm as u64 & 63,
            0x6f => reg[dst] <<= reg[src] & 63,
            0x77 => reg[dst] >>= imm as u64 & 63,
            0x7f => reg[dst] >>= reg[src] & 63,
            0x87 => reg[dst] = (reg[dst] as i64).wrapping_neg() as u64,
            0x97 => {
                if imm != 0 {
                    reg[dst] %= imm as i64 as u64
                }
            }
            0x9f => {
                if reg[src] != 0 {
                    reg[dst] %= reg[src]
                }
            }
            0xa7 => reg[dst] ^= imm as i64 as u64,
            0xaf => reg[dst] ^= reg[src],
            0xb7 => reg[dst] = imm as i64 as u64,
            0xbf => reg[dst] = reg[src],
            0xc7 => reg[dst] = ((reg[dst] as i64) >> (imm as u64 & 63)) as u64,
            0xcf => reg[dst] = ((reg[dst] as i64) >> (reg[src] & 63)) as u64,

            0x05 => jump(&mut pc),
            opc if matches!(opc & 0x07, 0x05 | 0x06) && !matches!(opc & 0xf0, 0x80 | 0x90) => {
                match jump_taken(opc, reg[dst], reg[src], imm) {
                    Some(true) => jump(&mut pc),
                    Some(false) => {}
                    None => return Err(InterpError::BadInsn { pc: here, opc }),
                }
            }

            0x85 if ins.src == 0 => {
                helper = Some(imm as u32);
                reg[0] = host.call(imm as u32, [reg[1], reg[2], reg[3], reg[4], reg[5]]);
            }
            0x95 => {
                if let Some(t) = trace.as_mut() {
                    t(&TraceStep {
                        pc: here,
                        insn: raw,
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
            opc => return Err(InterpError::BadInsn { pc: here, opc }),
        }
        if let Some(t) = trace.as_mut() {
            t(&TraceStep {
                pc: here,
                insn: raw,
                regs: reg,
                mem,
                helper,
            });
        }
    }
}
