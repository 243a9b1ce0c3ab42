//! The disassembler: instructions as people read them (rbpf's assembler
//! syntax, `ldxw r2, [r1+0x30]`), annotated with what the numbers mean
//! (helper names, maps, read-only data, jump targets). The step debugger,
//! `ringside check` and anything else that shows code use it.
//!
//! It takes any bytes (code from a recording is untrusted): an instruction
//! it does not know, or a truncated `lddw`, becomes a line that says so;
//! it never panics.

use crate::abi::helper_id;
use crate::program::MAP_HANDLE_TAG;
use crate::program::isa::{self, Insn, alu, class, jmp};
use crate::program::mem::FIRST_STATIC_ID;

/// One instruction of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Slot of its first half (what a trace's `pc` counts).
    pub slot: usize,
    /// Slots it takes (2 for `lddw`).
    pub width: usize,
    /// The instruction.
    pub text: String,
    /// What its numbers mean: helper name, map, rodata, jump target.
    pub note: Option<String>,
    /// It calls a helper.
    pub is_call: bool,
}

/// A signed offset as rbpf writes one: `+0x8`, `-0x10`.
fn signed(off: i16) -> String {
    if off >= 0 {
        format!("+{off:#x}")
    } else {
        format!("-{:#x}", -(off as i32))
    }
}

fn alu_name(op: u8) -> Option<&'static str> {
    Some(match op {
        alu::ADD => "add",
        alu::SUB => "sub",
        alu::MUL => "mul",
        alu::DIV => "div",
        alu::OR => "or",
        alu::AND => "and",
        alu::LSH => "lsh",
        alu::RSH => "rsh",
        alu::NEG => "neg",
        alu::MOD => "mod",
        alu::XOR => "xor",
        alu::MOV => "mov",
        alu::ARSH => "arsh",
        _ => return None,
    })
}

fn jmp_name(op: u8) -> Option<&'static str> {
    Some(match op {
        jmp::JEQ => "jeq",
        jmp::JGT => "jgt",
        jmp::JGE => "jge",
        jmp::JSET => "jset",
        jmp::JNE => "jne",
        jmp::JSGT => "jsgt",
        jmp::JSGE => "jsge",
        jmp::JLT => "jlt",
        jmp::JLE => "jle",
        jmp::JSLT => "jslt",
        jmp::JSLE => "jsle",
        _ => return None,
    })
}

fn size_suffix(ins: &Insn) -> &'static str {
    match ins.size() {
        1 => "b",
        2 => "h",
        4 => "w",
        _ => "dw",
    }
}

/// The text of instruction `ins` (`next`: the slot after it, for `lddw`).
fn text(ins: &Insn, next: Option<&Insn>) -> String {
    let unknown = || format!("unknown opcode {:#04x}", ins.opc);
    match ins.class() {
        class::LD if ins.opc == isa::LDDW => match next {
            Some(hi) => {
                let v = (ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
                format!("lddw r{}, {v:#x}", ins.dst)
            }
            None => "lddw (its second half is missing)".into(),
        },
        class::LDX if ins.opc & 0xe0 == isa::MODE_MEM => format!(
            "ldx{} r{}, [r{}{}]",
            size_suffix(ins),
            ins.dst,
            ins.src,
            signed(ins.off)
        ),
        class::ST if ins.opc & 0xe0 == isa::MODE_MEM => format!(
            "st{} [r{}{}], {:#x}",
            size_suffix(ins),
            ins.dst,
            signed(ins.off),
            ins.imm
        ),
        class::STX if ins.opc & 0xe0 == isa::MODE_MEM => format!(
            "stx{} [r{}{}], r{}",
            size_suffix(ins),
            ins.dst,
            signed(ins.off),
            ins.src
        ),
        class::ALU | class::ALU64 => {
            let width = if ins.class() == class::ALU64 {
                "64"
            } else {
                "32"
            };
            match ins.op() {
                alu::END if ins.class() == class::ALU => {
                    let name = if ins.opc == isa::END_BE { "be" } else { "le" };
                    format!("{name}{} r{}", ins.imm, ins.dst)
                }
                alu::NEG => format!("neg{width} r{}", ins.dst),
                op => match alu_name(op) {
                    Some(n) if ins.is_reg() => format!("{n}{width} r{}, r{}", ins.dst, ins.src),
                    Some(n) => format!("{n}{width} r{}, {:#x}", ins.dst, ins.imm),
                    None => unknown(),
                },
            }
        }
        class::JMP | class::JMP32 => {
            let width = if ins.class() == class::JMP32 {
                "32"
            } else {
                ""
            };
            match (ins.opc, ins.op()) {
                (isa::EXIT, _) => "exit".into(),
                (isa::JA, _) => format!("ja {}", signed(ins.off)),
                (isa::CALL, _) if ins.src == 0 => format!("call {:#x}", ins.imm),
                (isa::CALL, _) if ins.src == 1 => format!("callx {:#x}", ins.imm),
                (_, op) => match jmp_name(op) {
                    Some(n) if ins.is_reg() => {
                        format!("{n}{width} r{}, r{}, {}", ins.dst, ins.src, signed(ins.off))
                    }
                    Some(n) => format!(
                        "{n}{width} r{}, {:#x}, {}",
                        ins.dst,
                        ins.imm,
                        signed(ins.off)
                    ),
                    None => unknown(),
                },
            }
        }
        _ => unknown(),
    }
}

/// The text of the instruction at `slot` of `code`, if there is one.
pub fn insn_text(code: &[u8], slot: usize) -> Option<String> {
    let n = code.len() / 8;
    (slot < n).then(|| {
        let next = (slot + 1 < n).then(|| Insn::decode(code, slot + 1));
        text(&Insn::decode(code, slot), next.as_ref())
    })
}

/// What the 64-bit value of an `lddw` means in a program's code: a map
/// handle, or a virtual address in the program's address space (see
/// [`crate::program::mem`]).
fn lddw_note(v: u64, maps: &[String]) -> Option<String> {
    if v & 0xffff_ffff_0000_0000 == MAP_HANDLE_TAG {
        let local = (v & 0xffff_ffff) as usize;
        return Some(match maps.get(local) {
            Some(m) => format!("map {m}"),
            None => format!("map #{local}"),
        });
    }
    // Only rodata is ever named by an lddw; anything else is a number.
    let first_rodata = FIRST_STATIC_ID as u64 + maps.len() as u64;
    let r = (v >> 32).checked_sub(first_rodata)?;
    (r < 64).then(|| format!("rodata {r} + {}", v & 0xffff_ffff))
}

/// Every instruction of `code`, annotated (`maps`: the program's map names,
/// in object order).
pub fn disassemble(code: &[u8], maps: &[String]) -> Vec<Line> {
    let n = code.len() / 8;
    let mut lines = Vec::with_capacity(n);
    let mut slot = 0;
    while slot < n {
        let ins = Insn::decode(code, slot);
        let wide = ins.opc == isa::LDDW && slot + 1 < n;
        let next = (slot + 1 < n).then(|| Insn::decode(code, slot + 1));
        let mut note = None;
        let mut is_call = false;
        if ins.opc == isa::CALL {
            is_call = true;
            note = Some(
                helper_id::name(ins.imm as u32)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("helper {:#x}", ins.imm)),
            );
        } else if let (true, Some(hi)) = (wide, &next) {
            note = lddw_note(
                (ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32),
                maps,
            );
        } else if ins.opc == isa::JA || ins.is_cond_jump() {
            note = Some(format!("-> {}", slot as i64 + 1 + ins.off as i64));
        }
        lines.push(Line {
            slot,
            width: if wide { 2 } else { 1 },
            text: text(&ins, next.as_ref()),
            note,
            is_call,
        });
        slot += if wide { 2 } else { 1 };
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(src: &str) -> Vec<u8> {
        rbpf::assembler::assemble(src).expect("asm")
    }

    #[test]
    fn reads_as_rbpf_writes_it() {
        // Every instruction rbpf's assembler writes reads back as written.
        let src = "ldxw r2, [r1+0x30]\nstxdw [r10-0x8], r2\nstw [r10-0x10], 0x5\nadd64 r2, 0x1\nsub32 r3, r2\nneg64 r4\nbe16 r1\nle64 r1\njeq r2, 0x0, +0x1\njsgt32 r2, r3, -0x1\nja +0x2\ncall 0x1004\nlddw r1, 0x1122334455667788\nexit";
        let c = code(src);
        let got: Vec<String> = disassemble(&c, &[]).into_iter().map(|l| l.text).collect();
        assert_eq!(got, src.lines().collect::<Vec<_>>());
    }

    #[test]
    fn never_panics_and_says_what_it_cannot_read() {
        assert_eq!(
            insn_text(&[0xff, 0, 0, 0, 0, 0, 0, 0], 0).unwrap(),
            "unknown opcode 0xff"
        );
        assert!(
            insn_text(&[0x18, 0, 0, 0, 1, 0, 0, 0], 0)
                .unwrap()
                .contains("missing")
        );
        assert_eq!(insn_text(&[0x95; 4], 0), None);
        let mut junk = vec![0u8; 4096];
        for (i, b) in junk.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        assert_eq!(
            disassemble(&junk, &[])
                .iter()
                .map(|l| l.width)
                .sum::<usize>(),
            512
        );
    }

    #[test]
    fn notes_name_helpers_maps_rodata_and_targets() {
        let mut c = code("call 0x1\nlddw r1, 0x0\njeq r1, 0x0, +0x1\nexit\nexit");
        let handle = MAP_HANDLE_TAG | 1;
        c[12..16].copy_from_slice(&(handle as u32).to_le_bytes());
        c[20..24].copy_from_slice(&((handle >> 32) as u32).to_le_bytes());
        let l = disassemble(&c, &["a".into(), "counts".into()]);
        assert_eq!(l[0].note.as_deref(), Some("bpf_map_lookup_elem"));
        assert!(l[0].is_call);
        assert_eq!(l[1].note.as_deref(), Some("map counts"));
        assert_eq!(l[2].note.as_deref(), Some("-> 5"));
        let ro = crate::program::mem::AddrSpace::virtual_addr(FIRST_STATIC_ID + 2, 12);
        assert_eq!(
            lddw_note(ro, &["a".into(), "b".into()]).as_deref(),
            Some("rodata 0 + 12")
        );
    }
}
