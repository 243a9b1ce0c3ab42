//! The BPF instruction set as ringside runs it: encodings, and the meaning of
//! every ALU, byte-swap and jump instruction. One meaning, the kernel's
//! (RFC 9669): the verifier folds constants with these functions, the
//! interpreter executes them, the compiled backend is tested against them,
//! and a differential test checks them against the host kernel.
//!
//! Where the kernel's choice is not obvious:
//! - 32-bit operations work on the low halves and zero-extend the result;
//! - division by zero gives 0; modulo by zero leaves the dividend, which for
//!   a 32-bit modulo means its low half, zero-extended (rbpf 0.4 keeps the
//!   upper half, the bug that let a verified program take the JIT);
//! - shift counts are taken modulo the width (the verifier refuses constant
//!   counts >= the width, as the kernel's does);
//! - immediates are sign-extended to 64 bits for 64-bit operations and jumps,
//!   unsigned compares included;
//! - `le16`/`le32` truncate, `be*` swap and truncate.

/// Instruction classes (low 3 bits of the opcode).
pub mod class {
    /// `lddw` (the only LD instruction allowed).
    pub const LD: u8 = 0x00;
    /// Loads from memory.
    pub const LDX: u8 = 0x01;
    /// Stores of an immediate.
    pub const ST: u8 = 0x02;
    /// Stores of a register.
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps, calls, exit.
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
}

/// The source bit: operand is a register (`X`) rather than the immediate (`K`).
pub const SRC_X: u8 = 0x08;
/// Memory mode of loads and stores (`BPF_MEM`).
pub const MODE_MEM: u8 = 0x60;
/// The opcode of `lddw` (`BPF_LD | BPF_DW | BPF_IMM`).
pub const LDDW: u8 = 0x18;
/// `call imm`.
pub const CALL: u8 = 0x85;
/// `exit`.
pub const EXIT: u8 = 0x95;
/// `ja off`.
pub const JA: u8 = 0x05;
/// `le` (to little endian): `BPF_ALU | BPF_END | BPF_TO_LE`.
pub const END_LE: u8 = 0xd4;
/// `be` (to big endian): `BPF_ALU | BPF_END | BPF_TO_BE`.
pub const END_BE: u8 = 0xdc;

/// ALU operations (high 4 bits).
pub mod alu {
    /// `+=`
    pub const ADD: u8 = 0x00;
    /// `-=`
    pub const SUB: u8 = 0x10;
    /// `*=`
    pub const MUL: u8 = 0x20;
    /// `/=` (unsigned)
    pub const DIV: u8 = 0x30;
    /// `|=`
    pub const OR: u8 = 0x40;
    /// `&=`
    pub const AND: u8 = 0x50;
    /// `<<=`
    pub const LSH: u8 = 0x60;
    /// `>>=` (logical)
    pub const RSH: u8 = 0x70;
    /// `= -dst`
    pub const NEG: u8 = 0x80;
    /// `%=` (unsigned)
    pub const MOD: u8 = 0x90;
    /// `^=`
    pub const XOR: u8 = 0xa0;
    /// `=`
    pub const MOV: u8 = 0xb0;
    /// `s>>=`
    pub const ARSH: u8 = 0xc0;
    /// byte swap
    pub const END: u8 = 0xd0;
}

/// Jump operations (high 4 bits).
pub mod jmp {
    /// `goto`
    pub const JA: u8 = 0x00;
    /// `==`
    pub const JEQ: u8 = 0x10;
    /// `>` (unsigned)
    pub const JGT: u8 = 0x20;
    /// `>=` (unsigned)
    pub const JGE: u8 = 0x30;
    /// `&`
    pub const JSET: u8 = 0x40;
    /// `!=`
    pub const JNE: u8 = 0x50;
    /// `s>`
    pub const JSGT: u8 = 0x60;
    /// `s>=`
    pub const JSGE: u8 = 0x70;
    /// call
    pub const CALL: u8 = 0x80;
    /// exit
    pub const EXIT: u8 = 0x90;
    /// `<` (unsigned)
    pub const JLT: u8 = 0xa0;
    /// `<=` (unsigned)
    pub const JLE: u8 = 0xb0;
    /// `s<`
    pub const JSLT: u8 = 0xc0;
    /// `s<=`
    pub const JSLE: u8 = 0xd0;
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode byte.
    pub opc: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl Insn {
    /// Decode instruction `i` of `code` (caller checks bounds).
    #[inline]
    pub fn decode(code: &[u8], i: usize) -> Insn {
        let b = &code[i * 8..i * 8 + 8];
        Insn {
            opc: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encode as 8 bytes.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.opc;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// The class (low 3 bits).
    #[inline]
    pub fn class(&self) -> u8 {
        self.opc & 0x07
    }

    /// The operation (high 4 bits) of an ALU or jump instruction.
    #[inline]
    pub fn op(&self) -> u8 {
        self.opc & 0xf0
    }

    /// Whether the operand is a register.
    #[inline]
    pub fn is_reg(&self) -> bool {
        self.opc & SRC_X != 0
    }

    /// Bytes a load or store moves.
    #[inline]
    pub fn size(&self) -> usize {
        match self.opc & 0x18 {
            0x00 => 4,
            0x08 => 2,
            0x10 => 1,
            _ => 8,
        }
    }

    /// Whether this is a conditional jump (`JMP`/`JMP32` other than ja, call, exit).
    #[inline]
    pub fn is_cond_jump(&self) -> bool {
        matches!(self.class(), class::JMP | class::JMP32)
            && !matches!(self.op(), jmp::JA | jmp::CALL | jmp::EXIT)
    }
}

/// The operand of an ALU instruction: the source register, or the immediate
/// (sign-extended to 64 bits; 32-bit operations use its low half).
#[inline]
pub fn alu_operand(ins: &Insn, src: u64) -> u64 {
    if ins.is_reg() {
        src
    } else {
        ins.imm as i64 as u64
    }
}

/// Result of ALU operation `op` (not `END`) on `dst` and `src`, 64-bit or
/// 32-bit (`is64 == false`: low halves in, zero-extended result out).
#[inline]
pub fn eval_alu(op: u8, is64: bool, dst: u64, src: u64) -> u64 {
    if is64 {
        match op {
            alu::ADD => dst.wrapping_add(src),
            alu::SUB => dst.wrapping_sub(src),
            alu::MUL => dst.wrapping_mul(src),
            alu::DIV => dst.checked_div(src).unwrap_or(0),
            alu::OR => dst | src,
            alu::AND => dst & src,
            alu::LSH => dst << (src & 63),
            alu::RSH => dst >> (src & 63),
            alu::NEG => dst.wrapping_neg(),
            alu::MOD => dst.checked_rem(src).unwrap_or(dst),
            alu::XOR => dst ^ src,
            alu::MOV => src,
            alu::ARSH => ((dst as i64) >> (src & 63)) as u64,
            _ => 0,
        }
    } else {
        let (a, b) = (dst as u32, src as u32);
        (match op {
            alu::ADD => a.wrapping_add(b),
            alu::SUB => a.wrapping_sub(b),
            alu::MUL => a.wrapping_mul(b),
            alu::DIV => a.checked_div(b).unwrap_or(0),
            alu::OR => a | b,
            alu::AND => a & b,
            alu::LSH => a << (b & 31),
            alu::RSH => a >> (b & 31),
            alu::NEG => a.wrapping_neg(),
            alu::MOD => a.checked_rem(b).unwrap_or(a),
            alu::XOR => a ^ b,
            alu::MOV => b,
            alu::ARSH => ((a as i32) >> (b & 31)) as u32,
            _ => 0,
        }) as u64
    }
}

/// Byte swap: `le` (opcode [`END_LE`]) or `be` ([`END_BE`]) of `width` bits
/// (16, 32 or 64), on a little-endian machine.
#[inline]
pub fn eval_end(opc: u8, width: i32, a: u64) -> u64 {
    let le = opc & SRC_X == 0;
    match (le, width) {
        (true, 16) => a as u16 as u64,
        (true, 32) => a as u32 as u64,
        (true, _) => a,
        (false, 16) => (a as u16).swap_bytes() as u64,
        (false, 32) => (a as u32).swap_bytes() as u64,
        (false, _) => a.swap_bytes(),
    }
}

/// Whether conditional jump `ins` is taken with `dst` and the source
/// register's value `src` (ignored for immediates). None for an opcode that
/// is not a conditional jump.
#[inline]
pub fn jump_taken(ins: &Insn, dst: u64, src: u64) -> Option<bool> {
    let b = alu_operand(ins, src);
    let (a, b) = if ins.class() == class::JMP32 {
        (dst as u32 as u64, b as u32 as u64)
    } else {
        (dst, b)
    };
    let (sa, sb) = if ins.class() == class::JMP32 {
        (a as u32 as i32 as i64, b as u32 as i32 as i64)
    } else {
        (a as i64, b as i64)
    };
    Some(match ins.op() {
        jmp::JEQ => a == b,
        jmp::JNE => a != b,
        jmp::JGT => a > b,
        jmp::JGE => a >= b,
        jmp::JLT => a < b,
        jmp::JLE => a <= b,
        jmp::JSET => a & b != 0,
        jmp::JSGT => sa > sb,
        jmp::JSGE => sa >= sb,
        jmp::JSLT => sa < sb,
        jmp::JSLE => sa <= sb,
        _ => return None,
    })
}

/// Why an instruction's encoding is not one ringside runs (see
/// [`check_encoding`]). The instruction's index is the caller's to add
/// (the verifier and the compiler print it as `insn N: `).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// A register field names no register.
    #[error("bad register number (dst r{dst}, src r{src})")]
    Register {
        /// The dst field.
        dst: u8,
        /// The src field.
        src: u8,
    },
    /// An `lddw` in the last slot.
    #[error("lddw is missing its second half")]
    LddwMissingHalf,
    /// The second slot of an `lddw` has non-zero fields.
    #[error("malformed second half of lddw")]
    LddwBadHalf,
    /// `div`/`mod` by an immediate zero.
    #[error("division by the constant zero")]
    DivByZero,
    /// A shift by an immediate at or past the operation's width.
    #[error("shift by {imm} is out of range for a {width}-bit shift")]
    ShiftRange {
        /// The shift count.
        imm: i32,
        /// 32 or 64.
        width: i32,
    },
    /// What is wrong with the instruction's opcode and the fields it uses.
    #[error("opcode {opcode:#04x}: {problem}")]
    Opcode {
        /// The opcode byte.
        opcode: u8,
        /// What is wrong.
        problem: OpcodeProblem,
    },
}

/// What [`EncodingError::Opcode`] found wrong with an opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpcodeProblem {
    /// A `BPF_LD` mode other than `lddw`.
    #[error("legacy packet access (LD_ABS/LD_IND) and other LD modes are not supported")]
    LdMode,
    /// An `lddw` with a pseudo source other than plain or map/rodata.
    #[error("lddw with src {0} (only plain and map/rodata loads are supported)")]
    LddwSrc(u8),
    /// An `lddw` with an offset.
    #[error("lddw with a non-zero offset")]
    LddwOffset,
    /// A load mode other than `BPF_MEM`.
    #[error("not a supported load (only BPF_MEM loads; no sign-extending loads)")]
    LoadMode,
    /// A load with an immediate.
    #[error("load with a non-zero immediate")]
    LoadImm,
    /// An atomic instruction.
    #[error("atomic instructions are not supported")]
    Atomic,
    /// A store mode other than `BPF_MEM`.
    #[error("not a supported store")]
    StoreMode,
    /// `BPF_ST` with a source register.
    #[error("store of an immediate with a source register")]
    StoreImmSrc,
    /// `BPF_STX` with an immediate.
    #[error("store of a register with a non-zero immediate")]
    StoreRegImm,
    /// An ALU operation past `END`.
    #[error("unknown ALU operation")]
    AluOp,
    /// An ALU instruction with an offset (the newer signed forms).
    #[error(
        "ALU instruction with offset {0} (signed division, sign-extending moves: not supported)"
    )]
    AluOffset(i16),
    /// `ALU64 END` (bswap).
    #[error("unconditional byte swap (ALU64 END) is not supported")]
    Bswap64,
    /// A byte swap with a source register.
    #[error("byte swap with a source register")]
    BswapSrc,
    /// A byte swap of a width other than 16, 32 or 64.
    #[error("byte swap of {0} bits")]
    BswapWidth(i32),
    /// `neg` with an operand.
    #[error("neg takes no operand")]
    NegOperand,
    /// A register operand with an immediate.
    #[error("register operand with a non-zero immediate")]
    RegImm,
    /// An immediate operand with a source register.
    #[error("immediate operand with a source register")]
    ImmSrc,
    /// `exit` with non-zero fields.
    #[error("malformed exit")]
    Exit,
    /// `call` with non-zero fields.
    #[error("malformed call")]
    Call,
    /// `JMP32 JA`.
    #[error("gotol (JMP32 JA) is not supported")]
    Gotol,
    /// `ja` with non-zero fields.
    #[error("malformed goto")]
    Goto,
    /// A register compare with an immediate.
    #[error("register compare with a non-zero immediate")]
    CmpRegImm,
    /// An immediate compare with a source register.
    #[error("immediate compare with a source register")]
    CmpImmSrc,
    /// A jump operation that does not exist.
    #[error("unknown jump operation")]
    JumpOp,
}

/// Whether an instruction's encoding is one ringside runs, and if not why.
///
/// The check is strict, as the kernel's is: reserved fields must be zero, so
/// that no two backends can read one instruction two ways.
pub fn check_encoding(ins: &Insn, next: Option<&Insn>) -> Result<(), EncodingError> {
    use OpcodeProblem as P;
    let bad = |problem: OpcodeProblem| {
        Err(EncodingError::Opcode {
            opcode: ins.opc,
            problem,
        })
    };
    if ins.dst > 10 || ins.src > 10 {
        return Err(EncodingError::Register {
            dst: ins.dst,
            src: ins.src,
        });
    }
    match ins.class() {
        class::LD => {
            if ins.opc != LDDW {
                return bad(P::LdMode);
            }
            if ins.src > 1 {
                return bad(P::LddwSrc(ins.src));
            }
            if ins.off != 0 {
                return bad(P::LddwOffset);
            }
            match next {
                None => Err(EncodingError::LddwMissingHalf),
                Some(hi) if hi.opc != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 => {
                    Err(EncodingError::LddwBadHalf)
                }
                Some(_) => Ok(()),
            }
        }
        class::LDX => {
            if ins.opc & 0xe0 != MODE_MEM {
                return bad(P::LoadMode);
            }
            if ins.imm != 0 {
                return bad(P::LoadImm);
            }
            Ok(())
        }
        class::ST | class::STX => {
            if ins.opc & 0xe0 == 0xc0 {
                return bad(P::Atomic);
            }
            if ins.opc & 0xe0 != MODE_MEM {
                return bad(P::StoreMode);
            }
            if ins.class() == class::ST && ins.src != 0 {
                return bad(P::StoreImmSrc);
            }
            if ins.class() == class::STX && ins.imm != 0 {
                return bad(P::StoreRegImm);
            }
            Ok(())
        }
        class::ALU | class::ALU64 => {
            let op = ins.op();
            if op > alu::END {
                return bad(P::AluOp);
            }
            if ins.off != 0 {
                return bad(P::AluOffset(ins.off));
            }
            if op == alu::END {
                if ins.class() == class::ALU64 {
                    return bad(P::Bswap64);
                }
                if ins.src != 0 {
                    return bad(P::BswapSrc);
                }
                if !matches!(ins.imm, 16 | 32 | 64) {
                    return bad(P::BswapWidth(ins.imm));
                }
                return Ok(());
            }
            if op == alu::NEG {
                if ins.is_reg() || ins.src != 0 || ins.imm != 0 {
                    return bad(P::NegOperand);
                }
                return Ok(());
            }
            if ins.is_reg() && ins.imm != 0 {
                return bad(P::RegImm);
            }
            if !ins.is_reg() && ins.src != 0 {
                return bad(P::ImmSrc);
            }
            if !ins.is_reg() && matches!(op, alu::DIV | alu::MOD) && ins.imm == 0 {
                return Err(EncodingError::DivByZero);
            }
            let width = if ins.class() == class::ALU64 { 64 } else { 32 };
            if !ins.is_reg()
                && matches!(op, alu::LSH | alu::RSH | alu::ARSH)
                && !(0..width).contains(&ins.imm)
            {
                return Err(EncodingError::ShiftRange {
                    imm: ins.imm,
                    width,
                });
            }
            Ok(())
        }
        _ => {
            // JMP, JMP32
            match ins.op() {
                jmp::EXIT => {
                    if ins.opc != EXIT
                        || ins.dst != 0
                        || ins.src != 0
                        || ins.off != 0
                        || ins.imm != 0
                    {
                        return bad(P::Exit);
                    }
                    Ok(())
                }
                jmp::CALL => {
                    if ins.opc != CALL || ins.dst != 0 || ins.off != 0 {
                        return bad(P::Call);
                    }
                    Ok(())
                }
                jmp::JA => {
                    if ins.class() == class::JMP32 {
                        return bad(P::Gotol);
                    }
                    if ins.opc != JA || ins.dst != 0 || ins.src != 0 || ins.imm != 0 {
                        return bad(P::Goto);
                    }
                    Ok(())
                }
                jmp::JEQ
                | jmp::JGT
                | jmp::JGE
                | jmp::JSET
                | jmp::JNE
                | jmp::JSGT
                | jmp::JSGE
                | jmp::JLT
                | jmp::JLE
                | jmp::JSLT
                | jmp::JSLE => {
                    if ins.is_reg() && ins.imm != 0 {
                        return bad(P::CmpRegImm);
                    }
                    if !ins.is_reg() && ins.src != 0 {
                        return bad(P::CmpImmSrc);
                    }
                    Ok(())
                }
                _ => bad(P::JumpOp),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mod32_by_zero_zero_extends() {
        assert_eq!(eval_alu(alu::MOD, false, u64::MAX, 0), 0xffff_ffff);
        assert_eq!(eval_alu(alu::MOD, true, u64::MAX, 0), u64::MAX);
        assert_eq!(eval_alu(alu::DIV, false, u64::MAX, 0), 0);
        assert_eq!(eval_alu(alu::DIV, true, 7, 0), 0);
    }

    #[test]
    fn shifts_mask_their_count() {
        assert_eq!(eval_alu(alu::LSH, true, 1, 65), 2);
        assert_eq!(eval_alu(alu::LSH, false, 1, 33), 2);
        assert_eq!(eval_alu(alu::ARSH, false, 0x8000_0000, 31), 0xffff_ffff);
        assert_eq!(eval_alu(alu::ARSH, true, 1 << 63, 63), u64::MAX);
    }

    #[test]
    fn negative_immediates_sign_extend_in_unsigned_compares() {
        let ins = Insn {
            opc: class::JMP | jmp::JEQ,
            dst: 1,
            src: 0,
            off: 0,
            imm: -11,
        };
        assert_eq!(jump_taken(&ins, (-11i64) as u64, 0), Some(true));
        assert_eq!(jump_taken(&ins, 0xffff_fff5, 0), Some(false));
        let ins32 = Insn {
            opc: class::JMP32 | jmp::JEQ,
            ..ins
        };
        assert_eq!(jump_taken(&ins32, 0x1_ffff_fff5, 0), Some(true));
    }

    #[test]
    fn byte_swaps_truncate() {
        assert_eq!(eval_end(END_LE, 16, 0x1234_5678), 0x5678);
        assert_eq!(eval_end(END_BE, 16, 0x1234_5678), 0x7856);
        assert_eq!(eval_end(END_BE, 32, 0xaa_1234_5678), 0x7856_3412);
    }
}
