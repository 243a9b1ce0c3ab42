//! A corpus of hostile programs, each with the verdict it must get.
//!
//! Every class of attack docs/verifier.md lists is here: semantics the
//! verifier could model differently from what runs, value ranges it could
//! get wrong, pointers that could leave the program, memory outside the
//! program's regions, control flow that could loop or escape, encodings two
//! backends could read two ways, sizes that could break a backend. A program
//! the verifier accepts runs under the interpreter and the compiled backend
//! on edge-case contexts, and the two must agree exactly; the interpreter,
//! which checks every access, must never stop an accepted program (that
//! would be a hole in the verifier).

use ringside_engine::abi::RsCtx;
use ringside_engine::decision::{
    self, Budgets, ChainView, DecisionRecord, DecisionRequest, DecisionResult, InputSource,
    Registrations,
};
use ringside_engine::program::elf::{ElfObject, ProgramImage, Reloc, RelocTarget};
use ringside_engine::program::isa::Insn;
use ringside_engine::program::maps::{MAP_TYPE_ARRAY, MAP_TYPE_HASH, MapDef};
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, Registry};

/// What a case must get.
#[derive(Debug)]
enum Verdict {
    /// Accepted; runs identically everywhere.
    Pass,
    /// Rejected, with this in the reason (and at this instruction, if given).
    No(Option<usize>, &'static str),
}
use Verdict::*;

fn no(reason: &'static str) -> Verdict {
    No(None, reason)
}
fn no_at(insn: usize, reason: &'static str) -> Verdict {
    No(Some(insn), reason)
}

/// Code: rbpf assembly, or raw instructions for encodings no assembler writes.
enum Code {
    Asm(String),
    Raw(Vec<Insn>),
}

struct Case {
    name: &'static str,
    class: &'static str,
    code: Code,
    /// (lddw instruction, map index): map 0 is an array (4-byte key, 8-byte
    /// value, 4 entries), map 1 a hash (8-byte key, 16-byte value).
    relocs: Vec<(usize, usize)>,
    verdict: Verdict,
}

fn asm(s: &str) -> Code {
    Code::Asm(
        s.trim()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        opc,
        dst,
        src,
        off,
        imm,
    }
}

/// `r0 = 0; exit`, to end raw cases.
fn tail() -> Vec<Insn> {
    vec![ins(0xb7, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)]
}

fn raw(mut v: Vec<Insn>) -> Code {
    v.extend(tail());
    Code::Raw(v)
}

/// Look up key 0 in the array map (value: 8 bytes); r0 = value or NULL.
/// Five slots; its lddw is at insn 3.
const LOOKUP_ARR: &str = "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\n";
/// Look up key 0 in the hash map (value: 16 bytes); lddw at insn 3.
const LOOKUP_HASH: &str = "stdw [r10-8], 0\nmov64 r2, r10\nadd64 r2, -8\nlddw r1, 0\ncall 1\n";

fn case(name: &'static str, class: &'static str, code: Code, verdict: Verdict) -> Case {
    Case {
        name,
        class,
        code,
        relocs: vec![],
        verdict,
    }
}

fn with_map(
    name: &'static str,
    class: &'static str,
    code: Code,
    relocs: &[(usize, usize)],
    verdict: Verdict,
) -> Case {
    Case {
        name,
        class,
        code,
        relocs: relocs.to_vec(),
        verdict,
    }
}

fn corpus() -> Vec<Case> {
    let arr = |body: &str| asm(&format!("{LOOKUP_ARR}{body}"));
    let hash = |body: &str| asm(&format!("{LOOKUP_HASH}{body}"));
    let moves = (0..4094)
        .map(|i| format!("mov64 r{}, {i}", i % 10))
        .collect::<Vec<_>>()
        .join("\n");
    let divs = (0..600)
        .map(|_| "div64 r0, r2\nmod32 r0, r2\n".to_string())
        .collect::<String>();
    vec![
        // ---- semantics: what the verifier computes is what runs ----------
        case(
            "mod32 by zero, shifted out",
            "semantics",
            asm("mov64 r2, 0\nmov64 r0, -1\nmod32 r0, r2\nrsh64 r0, 32\nexit"),
            Pass,
        ),
        case(
            "mod32 by zero as a stack offset",
            "semantics",
            asm(
                "mov64 r2, 0\nlddw r3, 0x100000008\nmod32 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nldxdw r0, [r4+0]\nexit",
            ),
            Pass,
        ),
        case(
            "mod32 by zero: the verifier knows the upper half is 0",
            "semantics",
            asm(
                "mov64 r2, 0\nmov64 r3, -1\nmod32 r3, r2\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no_at(4, "pointer offset out of range"),
        ),
        case(
            "mod32 by zero, 13-instruction write above the stack",
            "semantics",
            asm(
                "mov64 r2, 0\nlddw r3, 0xffffffff00000010\nmod32 r3, r2\nlsh64 r3, 3\nmov64 r4, r10\nadd64 r4, r3\nlddw r5, 0x414141414140\nstxdw [r4+0], r5\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "div32 by zero is 0",
            "semantics",
            asm("mov64 r2, 0\nmov64 r0, -1\ndiv32 r0, r2\nexit"),
            Pass,
        ),
        case(
            "div64 by zero is 0, then used as an offset",
            "semantics",
            asm(
                "mov64 r2, 0\nmov64 r3, 64\ndiv64 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "mod64 by zero keeps the dividend",
            "semantics",
            asm(
                "mov64 r2, 0\nmov64 r3, 600\nmod64 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "mov32 zero-extends",
            "semantics",
            asm(
                "mov64 r3, -1\nmov32 r3, r3\nrsh64 r3, 32\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "add32 wraps and zero-extends",
            "semantics",
            asm(
                "mov64 r3, -1\nadd32 r3, 1\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "neg32 zero-extends",
            "semantics",
            asm("mov64 r3, 1\nneg32 r3\nrsh64 r3, 32\nmov64 r0, r3\nexit"),
            Pass,
        ),
        case(
            "arsh32 zero-extends",
            "semantics",
            asm("mov64 r3, -8\narsh32 r3, 1\nrsh64 r3, 32\nmov64 r0, r3\nexit"),
            Pass,
        ),
        case(
            "le16 truncates",
            "semantics",
            asm(
                "mov64 r3, -1\nle16 r3\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "le32 truncates",
            "semantics",
            asm(
                "lddw r3, 0x100000008\nle32 r3\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "be16 swaps and truncates",
            "semantics",
            asm(
                "mov64 r3, 0x800\nbe16 r3\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "shift by a register is masked",
            "semantics",
            asm(
                "mov64 r2, 67\nmov64 r3, 1\nlsh64 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "shift32 by a register is masked",
            "semantics",
            asm(
                "mov64 r2, 35\nmov64 r3, 1\nlsh32 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "jeq with a negative immediate sign-extends",
            "semantics",
            asm(
                "ldxw r2, [r1+8]\nlsh64 r2, 32\narsh64 r2, 32\njeq r2, -11, +2\nmov64 r0, 0\nexit\nmov64 r0, 1\nexit",
            ),
            Pass,
        ),
        case(
            "jgt against -1 (all ones) is never taken",
            "semantics",
            asm(
                "ldxdw r2, [r1+0]\njgt r2, -1, +3\nmov64 r4, r10\nstdw [r4-8], 1\nja +2\nstdw [r10+0], 1\nmov64 r0, 0\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "jmp32 compares the low half only",
            "semantics",
            asm("lddw r2, 0x100000000\njeq32 r2, 0, +2\nmov64 r0, 0\nexit\nmov64 r0, 1\nexit"),
            Pass,
        ),
        case(
            "64-bit immediates are sign-extended",
            "semantics",
            asm(
                "mov64 r3, 0\nadd64 r3, -8\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "32-bit immediates in 32-bit ops",
            "semantics",
            asm(
                "mov64 r3, 0\nadd32 r3, -8\nmov64 r4, r10\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        // ---- value ranges ---------------------------------------------------
        case(
            "a divisor that may be 0",
            "ranges",
            asm(
                "ldxw r2, [r1+8]\nand64 r2, 1\nmov64 r3, 0x10000\ndiv64 r3, r2\nsub64 r3, 0x10000\nmov64 r4, r10\nadd64 r4, -8\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
            ),
            no_at(7, "pointer offset out of range"),
        ),
        case(
            "mod bounds the result below the divisor",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nmod64 r2, 64\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "mod by a register that may be 0 keeps the dividend's range",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nldxw r3, [r1+8]\nand64 r3, 7\nmod64 r2, r3\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "and bounds",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nand64 r2, 0x1f9\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "and bounds (fits)",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nand64 r2, 0x1f0\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "or can raise the top bit",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\nor64 r2, 0x100\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "xor of two bytes stays a byte",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\nldxb r3, [r1+1]\nxor64 r2, r3\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "lsh that overflows the width",
            "ranges",
            asm(
                "ldxw r2, [r1+8]\nlsh32 r2, 8\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "add that may wrap",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nadd64 r2, 8\nmov64 r4, r10\nadd64 r4, r2\nstdw [r4-16], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "sub that may go below 0",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\nsub64 r2, 16\nmov64 r4, r10\nadd64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "mul that may overflow",
            "ranges",
            asm(
                "ldxw r2, [r1+8]\nmul64 r2, 0x10000000\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "arsh of a value that may be negative",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\narsh64 r2, 56\nmov64 r4, r10\nadd64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "rsh bounds",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nrsh64 r2, 56\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "a 32-bit op on a wide value covers every low half",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nadd32 r2, 0\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "signed compare with a negative bound does not narrow",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njsgt r2, -100, +3\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "unsigned compare narrows",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njgt r2, 400, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "off by one at the narrowing",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njgt r2, 505, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "jmp32 narrowing of a wide value says nothing",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njgt32 r2, 400, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        case(
            "jne narrows only at the ends",
            "ranges",
            asm(
                "ldxb r2, [r1+0]\njne r2, 0, +3\nmov64 r0, 0\nstdw [r10-8], 0\nexit\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "narrowing the source operand too",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\nmov64 r3, 400\njlt r3, r2, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            Pass,
        ),
        case(
            "jset does not narrow",
            "ranges",
            asm(
                "ldxdw r2, [r1+0]\njset r2, -512, +5\nmov64 r4, r10\nsub64 r4, r2\nstdw [r4-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            no("pointer offset out of range"),
        ),
        // ---- pointers never leave the program -------------------------------
        case(
            "return the stack pointer",
            "pointer leak",
            asm("mov64 r0, r10\nexit"),
            no_at(1, "returns r0"),
        ),
        case(
            "return the context pointer",
            "pointer leak",
            asm("mov64 r0, r1\nexit"),
            no_at(1, "returns r0"),
        ),
        case(
            "return a pointer plus an offset",
            "pointer leak",
            asm("mov64 r0, r10\nadd64 r0, -8\nexit"),
            no("returns r0"),
        ),
        with_map(
            "return a map value pointer",
            "pointer leak",
            arr("jeq r0, 0, +1\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("returns r0"),
        ),
        with_map(
            "return a map handle",
            "pointer leak",
            asm("lddw r0, 0\nexit"),
            &[(0, 0)],
            no("returns r0"),
        ),
        with_map(
            "store a pointer in a map value",
            "pointer leak",
            arr("jeq r0, 0, +2\nstxdw [r0+0], r10\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("stores a pointer"),
        ),
        with_map(
            "store a map value pointer in itself",
            "pointer leak",
            arr("jeq r0, 0, +2\nstxdw [r0+0], r0\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("stores a pointer"),
        ),
        case(
            "pass a pointer as rs_emit's user_data",
            "pointer leak",
            asm("mov64 r2, r10\nmov64 r3, 0\nmov64 r4, 0\ncall 0x1003\nmov64 r0, 0\nexit"),
            no_at(3, "pointers may not leave"),
        ),
        case(
            "pass a pointer as rs_set_res's result",
            "pointer leak",
            asm("mov64 r2, r1\ncall 0x1005\nmov64 r0, 0\nexit"),
            no("pointers may not leave"),
        ),
        case(
            "pass a pointer to bpf_trace_printk as a %p argument",
            "pointer leak",
            asm(
                "stw [r10-4], 0x7025\nmov64 r1, r10\nadd64 r1, -4\nmov64 r2, 4\nmov64 r3, r10\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("pointers may not leave"),
        ),
        with_map(
            "a pointer as a map update's flags",
            "pointer leak",
            asm(
                "stw [r10-4], 0\nstdw [r10-16], 0\nmov64 r2, r10\nadd64 r2, -4\nmov64 r3, r10\nadd64 r3, -16\nmov64 r4, r10\nlddw r1, 0\ncall 2\nmov64 r0, 0\nexit",
            ),
            &[(7, 0)],
            no("pointers may not leave"),
        ),
        case(
            "multiply a pointer",
            "pointer leak",
            asm("mov64 r2, r1\nmul64 r2, 2\nmov64 r0, 0\nexit"),
            no_at(1, "pointer arithmetic"),
        ),
        case(
            "xor a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nxor64 r2, 1\nmov64 r0, 0\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "shift a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nrsh64 r2, 12\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "and a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nand64 r2, 0xfff\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "negate a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nneg64 r2\nmov64 r0, 0\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "32-bit move of a pointer",
            "pointer leak",
            asm("mov32 r0, r10\nexit"),
            no("32-bit move"),
        ),
        case(
            "32-bit add to a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nadd32 r2, 8\nmov64 r0, 0\nexit"),
            no("32-bit arithmetic on a pointer"),
        ),
        case(
            "scalar minus a pointer",
            "pointer leak",
            asm("mov64 r2, 0\nsub64 r2, r10\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "pointer plus a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nadd64 r2, r1\nmov64 r0, 0\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "stack pointer minus context pointer",
            "pointer leak",
            asm("mov64 r2, r10\nsub64 r2, r1\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "stack minus stack is a distance",
            "pointer leak",
            asm("mov64 r2, r10\nadd64 r2, -16\nmov64 r0, r10\nsub64 r0, r2\nexit"),
            Pass,
        ),
        with_map(
            "two map values' distance",
            "pointer leak",
            asm(&format!(
                "{LOOKUP_ARR}jeq r0, 0, +9\nmov64 r6, r0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\njeq r0, 0, +2\nsub64 r6, r0\nmov64 r0, r6\nexit"
            )),
            &[(3, 0), (10, 0)],
            no("pointer arithmetic"),
        ),
        case(
            "compare a pointer with a number",
            "pointer leak",
            asm("jgt r1, 4096, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no_at(0, "compares"),
        ),
        case(
            "compare the low half of a pointer with 0",
            "pointer leak",
            asm("jeq32 r1, 0, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no_at(0, "compares"),
        ),
        case(
            "compare two pointers' low halves",
            "pointer leak",
            asm("mov64 r2, r10\nadd64 r2, -8\njgt32 r10, r2, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no("compares"),
        ),
        case(
            "compare the stack with the context",
            "pointer leak",
            asm("jgt r10, r1, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no("compares"),
        ),
        case(
            "jset on a pointer",
            "pointer leak",
            asm("jset r10, 0x1000, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no("compares"),
        ),
        case(
            "read a spilled pointer's low half",
            "pointer leak",
            asm("stxdw [r10-8], r10\nldxw r0, [r10-8]\nexit"),
            no_at(1, "part of a spilled pointer"),
        ),
        case(
            "overwrite a byte of a spilled pointer, read it whole",
            "pointer leak",
            asm("stxdw [r10-8], r10\nstb [r10-8], 0\nldxdw r0, [r10-8]\nexit"),
            no_at(1, "overwrites part of the pointer"),
        ),
        case(
            "a variable-offset store that may hit a spilled pointer",
            "pointer leak",
            asm(
                "stxdw [r10-8], r10\nldxw r2, [r1+8]\nand64 r2, 15\nmov64 r3, r10\nadd64 r3, -16\nadd64 r3, r2\nstb [r3+0], 0\nldxdw r0, [r10-8]\nexit",
            ),
            no_at(6, "variable stack offset"),
        ),
        case(
            "a pointer spilled on one path, a number on the other",
            "pointer leak",
            asm(
                "ldxw r2, [r1+8]\njeq r2, 0, +2\nstxdw [r10-8], r10\nja +2\nstw [r10-8], 0\nstw [r10-4], 0\nldxw r0, [r10-8]\nexit",
            ),
            no("spilled pointer"),
        ),
        case(
            "rs_read_buf over part of a spilled pointer",
            "pointer leak",
            asm(
                "stxdw [r10-8], r10\nldxw r5, [r1+8]\nand64 r5, 7\nadd64 r5, 1\nmov64 r4, r10\nadd64 r4, -8\nmov64 r2, 0\nmov64 r3, 0\ncall 0x1004\nldxdw r0, [r10-8]\nexit",
            ),
            no_at(8, "overwrite part of the pointer"),
        ),
        with_map(
            "a spilled pointer as a map key",
            "pointer leak",
            asm(
                "stxdw [r10-8], r10\nmov64 r2, r10\nadd64 r2, -8\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit",
            ),
            &[(3, 1)],
            no("spilled pointer"),
        ),
        case(
            "a spilled pointer as bpf_trace_printk's format",
            "pointer leak",
            asm(
                "stxdw [r10-8], r1\nmov64 r1, r10\nadd64 r1, -8\nmov64 r2, 8\nmov64 r3, 0\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("spilled pointer"),
        ),
        case(
            "a pointer spilled at a misaligned offset",
            "pointer leak",
            asm("stxdw [r10-12], r10\nmov64 r0, 0\nexit"),
            no("aligned 8-byte store"),
        ),
        case(
            "a spilled pointer restored whole is fine",
            "pointer leak",
            asm("stxdw [r10-8], r10\nldxdw r2, [r10-8]\nstdw [r2-16], 3\nldxdw r0, [r10-16]\nexit"),
            Pass,
        ),
        // ---- memory -----------------------------------------------------------
        case(
            "read past the context",
            "memory",
            asm("ldxdw r0, [r1+60]\nexit"),
            no_at(0, "outside its 64 bytes"),
        ),
        case(
            "read before the context",
            "memory",
            asm("ldxb r0, [r1-1]\nexit"),
            no_at(0, "outside its 64 bytes"),
        ),
        case(
            "write the context",
            "memory",
            asm("stw [r1+8], 0\nmov64 r0, 0\nexit"),
            no_at(0, "read-only context"),
        ),
        case(
            "write the context through a copy",
            "memory",
            asm("mov64 r6, r1\nadd64 r6, 8\nstxw [r6+0], r6\nmov64 r0, 0\nexit"),
            no("read-only context"),
        ),
        case(
            "rs_read_buf into the context",
            "memory",
            asm(
                "mov64 r4, r1\nmov64 r2, 0\nmov64 r3, 0\nmov64 r5, 8\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("read-only context"),
        ),
        case(
            "write below the stack",
            "memory",
            asm("stdw [r10-520], 1\nmov64 r0, 0\nexit"),
            no_at(0, "outside its 512 bytes"),
        ),
        case(
            "write above the stack",
            "memory",
            asm("stdw [r10+0], 1\nmov64 r0, 0\nexit"),
            no_at(0, "outside its 512 bytes"),
        ),
        case(
            "a write straddling r10",
            "memory",
            asm("stdw [r10-4], 1\nmov64 r0, 0\nexit"),
            no_at(0, "outside its 512 bytes"),
        ),
        case(
            "read uninitialised stack",
            "memory",
            asm("ldxdw r0, [r10-8]\nexit"),
            no_at(0, "uninitialised stack"),
        ),
        case(
            "read half-initialised stack",
            "memory",
            asm("stw [r10-8], 1\nldxdw r0, [r10-8]\nexit"),
            no_at(1, "uninitialised stack"),
        ),
        case(
            "a variable context offset without a bound",
            "memory",
            asm("ldxw r2, [r1+48]\nadd64 r1, r2\nldxb r0, [r1+0]\nexit"),
            no("pointer offset out of range"),
        ),
        case(
            "a variable context offset with a loose bound",
            "memory",
            asm("ldxw r2, [r1+48]\nand64 r2, 0xff\nadd64 r1, r2\nldxb r0, [r1+0]\nexit"),
            no("outside its 64 bytes"),
        ),
        case(
            "a variable context offset with a tight bound",
            "memory",
            asm("ldxw r2, [r1+48]\nand64 r2, 0x37\nadd64 r1, r2\nldxdw r0, [r1+0]\nexit"),
            Pass,
        ),
        with_map(
            "use a map value without a null check",
            "memory",
            arr("ldxdw r0, [r0+0]\nexit"),
            &[(3, 0)],
            no_at(6, "may be null"),
        ),
        with_map(
            "read past a map value",
            "memory",
            arr("jeq r0, 0, +2\nldxdw r0, [r0+4]\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("outside its 8 bytes"),
        ),
        with_map(
            "write past a map value",
            "memory",
            hash("jeq r0, 0, +3\nstdw [r0+16], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit"),
            &[(3, 1)],
            no("outside its 16 bytes"),
        ),
        with_map(
            "write before a map value",
            "memory",
            hash("jeq r0, 0, +3\nstdw [r0-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit"),
            &[(3, 1)],
            no("outside its 16 bytes"),
        ),
        with_map(
            "use a map value after checking another",
            "memory",
            asm(
                "stw [r10-4], 0\nldxw r8, [r1+8]\njeq r8, 0, +8\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\nmov64 r6, r0\nmov64 r7, r0\nja +12\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\nmov64 r6, r0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\nmov64 r7, r0\nmov64 r0, 0\njeq r6, 0, +1\nldxdw r0, [r7+0]\nexit",
            ),
            &[(5, 0), (13, 0), (19, 0)],
            no("may be null"),
        ),
        with_map(
            "a null check in 32 bits",
            "memory",
            arr("jeq32 r0, 0, +2\nldxdw r0, [r0+0]\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("compares"),
        ),
        with_map(
            "read through the null branch",
            "memory",
            arr("jne r0, 0, +2\nldxdw r0, [r0+0]\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("which is the scalar 0"),
        ),
        with_map(
            "read through a map handle",
            "memory",
            asm("lddw r2, 0\nldxdw r0, [r2+0]\nexit"),
            &[(0, 0)],
            no("a handle to map 0"),
        ),
        with_map(
            "a map value as another map's key (too small)",
            "memory",
            arr(
                "jeq r0, 0, +7\nmov64 r2, r0\nadd64 r2, 4\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            &[(3, 0), (9, 1)],
            no("outside its 8 bytes"),
        ),
        with_map(
            "a map value as a key that fits",
            "memory",
            hash(
                "jeq r0, 0, +6\nmov64 r2, r0\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            &[(3, 1), (8, 1)],
            Pass,
        ),
        case(
            "rs_read_buf longer than its destination",
            "memory",
            asm(
                "mov64 r4, r10\nadd64 r4, -8\nmov64 r2, 0\nmov64 r3, 0\nmov64 r5, 16\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "rs_read_buf with an unbounded length",
            "memory",
            asm(
                "ldxw r5, [r1+48]\nmov64 r4, r10\nadd64 r4, -64\nmov64 r2, 0\nmov64 r3, 0\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("must have a known bound"),
        ),
        case(
            "rs_read_buf into a variable stack offset",
            "memory",
            asm(
                "ldxw r2, [r1+48]\nand64 r2, 8\nmov64 r4, r10\nadd64 r4, -32\nadd64 r4, r2\nmov64 r2, 0\nmov64 r3, 0\nmov64 r5, 8\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("variable offset"),
        ),
        case(
            "rs_submit of a template on uninitialised stack",
            "memory",
            asm(
                "mov64 r2, r10\nadd64 r2, -40\nmov64 r3, 40\nmov64 r4, 0\ncall 0x1000\nmov64 r0, 0\nexit",
            ),
            no("uninitialised stack"),
        ),
        case(
            "rs_submit of a template past the stack",
            "memory",
            asm(
                "mov64 r2, r10\nadd64 r2, -8\nstdw [r10-8], 0\nmov64 r3, 40\nmov64 r4, 0\ncall 0x1000\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "a number as a memory argument",
            "memory",
            asm(
                "mov64 r1, 4096\nmov64 r2, 8\nmov64 r3, 0\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("argument 1"),
        ),
        case(
            "printk's format size unbounded",
            "memory",
            asm(
                "ldxdw r2, [r1+0]\nstdw [r10-8], 0\nmov64 r1, r10\nadd64 r1, -8\nmov64 r3, 0\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("must have a known bound"),
        ),
        case(
            "the context argument must be the context itself",
            "memory",
            asm("add64 r1, 8\nmov64 r2, 0\ncall 0x1005\nmov64 r0, 0\nexit"),
            no("must be the context pointer"),
        ),
        case(
            "the stack as the context argument",
            "memory",
            asm("mov64 r1, r10\nmov64 r2, 0\ncall 0x1005\nmov64 r0, 0\nexit"),
            no("must be the context pointer"),
        ),
        case(
            "a number as the map argument",
            "memory",
            asm(
                "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nmov64 r1, 0\ncall 1\nmov64 r0, 0\nexit",
            ),
            no_at(4, "must be a map"),
        ),
        // ---- registers ----------------------------------------------------------
        case(
            "read a register never written",
            "registers",
            asm("mov64 r0, r3\nexit"),
            no_at(0, "r3 is read before it is written"),
        ),
        case(
            "exit without a decision",
            "registers",
            asm("exit"),
            no_at(0, "exit without setting r0"),
        ),
        case(
            "read r1 after a call",
            "registers",
            asm("call 5\nmov64 r0, r1\nexit"),
            no_at(1, "r1 is read before it is written"),
        ),
        case(
            "read r5 after a call",
            "registers",
            asm("mov64 r5, 1\ncall 5\nmov64 r0, r5\nexit"),
            no("r5 is read before it is written"),
        ),
        case(
            "r6 survives a call",
            "registers",
            asm("mov64 r6, 1\ncall 5\nmov64 r0, r6\nexit"),
            Pass,
        ),
        case(
            "write r10",
            "registers",
            asm("mov64 r10, 0\nmov64 r0, 0\nexit"),
            no_at(0, "r10"),
        ),
        case(
            "add to r10",
            "registers",
            asm("add64 r10, -8\nmov64 r0, 0\nexit"),
            no_at(0, "r10"),
        ),
        case(
            "load into r10",
            "registers",
            asm("stdw [r10-8], 0\nldxdw r10, [r10-8]\nmov64 r0, 0\nexit"),
            no_at(1, "r10"),
        ),
        case(
            "lddw into r10",
            "registers",
            raw(vec![ins(0x18, 10, 0, 0, 1), ins(0, 0, 0, 0, 0)]),
            no_at(0, "r10"),
        ),
        case(
            "register 11",
            "registers",
            raw(vec![ins(0xb7, 11, 0, 0, 1)]),
            no_at(0, "bad register"),
        ),
        case(
            "source register 15",
            "registers",
            raw(vec![ins(0xbf, 0, 15, 0, 0)]),
            no_at(0, "bad register"),
        ),
        case(
            "a value that is a pointer on one path and a number on the other",
            "registers",
            asm("ldxw r2, [r1+8]\nmov64 r3, 0\njeq r2, 0, +1\nmov64 r3, r10\nmov64 r0, r3\nexit"),
            no("returns r0"),
        ),
        // ---- control flow -------------------------------------------------------
        case(
            "a loop",
            "control flow",
            asm("mov64 r0, 0\nadd64 r0, 1\njlt r0, 10, -2\nexit"),
            no_at(2, "loop"),
        ),
        case(
            "jump to itself",
            "control flow",
            asm("ja -1\nexit"),
            no_at(0, "loop"),
        ),
        case(
            "a loop through two jumps",
            "control flow",
            asm("mov64 r0, 0\nja +1\nexit\nja -3"),
            no("loop"),
        ),
        case(
            "a shared tail is no loop",
            "control flow",
            asm("ldxw r1, [r1+8]\njeq r1, 0, +2\nmov64 r0, 1\nexit\nmov64 r0, 2\nja -3"),
            Pass,
        ),
        case(
            "jump past the end",
            "control flow",
            asm("ja +5\nmov64 r0, 0\nexit"),
            no_at(0, "past the end"),
        ),
        case(
            "jump before the start",
            "control flow",
            asm("ja -3\nmov64 r0, 0\nexit"),
            no_at(0, "before the start"),
        ),
        case(
            "jump into the middle of lddw",
            "control flow",
            asm("ja +1\nlddw r0, 1\nexit"),
            no_at(0, "middle of lddw"),
        ),
        case(
            "fall off the end",
            "control flow",
            asm("mov64 r0, 0"),
            no("end of the program"),
        ),
        case(
            "fall off the end on one branch",
            "control flow",
            asm("ldxw r2, [r1+8]\nmov64 r0, 0\njeq r2, 0, +1\nexit\nmov64 r0, 1"),
            no("end of the program"),
        ),
        case(
            "a bpf-to-bpf call",
            "control flow",
            raw(vec![ins(0x85, 0, 1, 0, 1)]),
            no_at(0, "bpf-to-bpf call"),
        ),
        case(
            "a recursive call",
            "control flow",
            raw(vec![ins(0x85, 0, 1, 0, -1)]),
            no_at(0, "recursion"),
        ),
        case(
            "a kfunc call",
            "control flow",
            raw(vec![ins(0x85, 0, 2, 0, 1234)]),
            no_at(0, "kfuncs"),
        ),
        case(
            "a tail call",
            "control flow",
            asm("call 12\nmov64 r0, 0\nexit"),
            no_at(0, "unknown helper 12"),
        ),
        case(
            "an unknown ringside helper",
            "control flow",
            asm("call 0x1006\nmov64 r0, 0\nexit"),
            no_at(0, "unknown helper"),
        ),
        case(
            "a helper id with the sign bit",
            "control flow",
            raw(vec![ins(0x85, 0, 0, 0, -1)]),
            no_at(0, "unknown helper"),
        ),
        case(
            "4094 moves and exit",
            "size",
            asm(&format!("{moves}\nexit")),
            Pass,
        ),
        case(
            "one instruction over the limit",
            "size",
            asm(&format!("{moves}\nmov64 r0, 1\nmov64 r0, 2\nexit")),
            no("limit is 4096"),
        ),
        case(
            "600 divisions by zero",
            "size",
            asm(&format!("mov64 r0, 7\nmov64 r2, 0\n{divs}exit")),
            Pass,
        ),
        case(
            "an empty program",
            "size",
            Code::Raw(vec![]),
            no("empty program"),
        ),
        // ---- encodings two backends could read two ways -----------------------
        case(
            "ja with the register bit",
            "encoding",
            raw(vec![ins(0x0d, 0, 0, 0, 0)]),
            no_at(0, "malformed goto"),
        ),
        case(
            "ja with an immediate",
            "encoding",
            raw(vec![ins(0x05, 0, 0, 0, 1)]),
            no_at(0, "malformed goto"),
        ),
        case(
            "gotol (JMP32 JA)",
            "encoding",
            raw(vec![ins(0x06, 0, 0, 0, 0)]),
            no_at(0, "gotol"),
        ),
        case(
            "ALU immediate with a source register",
            "encoding",
            raw(vec![ins(0x07, 1, 2, 0, 1)]),
            no_at(0, "immediate operand with a source register"),
        ),
        case(
            "ALU register with an immediate",
            "encoding",
            raw(vec![ins(0x0f, 1, 2, 0, 1)]),
            no_at(0, "register operand with a non-zero immediate"),
        ),
        case(
            "shift by 64",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x67, 1, 0, 0, 64)]),
            no_at(1, "out of range for a 64-bit shift"),
        ),
        case(
            "shift32 by 32",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x74, 1, 0, 0, 32)]),
            no_at(1, "out of range for a 32-bit shift"),
        ),
        case(
            "arsh by -1",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xc7, 1, 0, 0, -1)]),
            no_at(1, "out of range"),
        ),
        case(
            "division by the constant 0",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x37, 1, 0, 0, 0)]),
            no_at(1, "division by the constant zero"),
        ),
        case(
            "mod32 by the constant 0",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x94, 1, 0, 0, 0)]),
            no_at(1, "division by the constant zero"),
        ),
        case(
            "signed division (sdiv)",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x37, 1, 0, 1, 3)]),
            no_at(1, "offset 1"),
        ),
        case(
            "signed modulo (smod)",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x97, 1, 0, 1, 3)]),
            no_at(1, "offset 1"),
        ),
        case(
            "sign-extending move (movsx)",
            "encoding",
            raw(vec![ins(0xbf, 1, 1, 8, 0)]),
            no_at(0, "offset 8"),
        ),
        case(
            "unconditional byte swap (bswap)",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xd7, 1, 0, 0, 16)]),
            no_at(1, "ALU64 END"),
        ),
        case(
            "byte swap of 8 bits",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xd4, 1, 0, 0, 8)]),
            no_at(1, "byte swap of 8 bits"),
        ),
        case(
            "byte swap with a source register",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0xdc, 1, 3, 0, 16)]),
            no_at(1, "source register"),
        ),
        case(
            "neg with an operand",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x87, 1, 0, 0, 5)]),
            no_at(1, "neg takes no operand"),
        ),
        case(
            "neg with the register bit",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x8f, 1, 2, 0, 0)]),
            no_at(1, "neg takes no operand"),
        ),
        case(
            "ALU operation 0xe0",
            "encoding",
            raw(vec![ins(0xe7, 1, 0, 0, 0)]),
            no_at(0, "unknown ALU operation"),
        ),
        case(
            "sign-extending load (ldxsw)",
            "encoding",
            raw(vec![ins(0x81, 1, 1, 0, 0)]),
            no_at(0, "sign-extending"),
        ),
        case(
            "load with an immediate",
            "encoding",
            raw(vec![ins(0x61, 2, 1, 0, 7)]),
            no_at(0, "non-zero immediate"),
        ),
        case(
            "store immediate with a source register",
            "encoding",
            raw(vec![ins(0x72, 10, 3, -8, 0)]),
            no_at(0, "with a source register"),
        ),
        case(
            "store register with an immediate",
            "encoding",
            raw(vec![ins(0x73, 10, 1, -8, 5)]),
            no_at(0, "non-zero immediate"),
        ),
        case(
            "atomic add",
            "encoding",
            raw(vec![ins(0xdb, 10, 1, -8, 0)]),
            no_at(0, "atomic"),
        ),
        case(
            "atomic exchange on a map value",
            "encoding",
            raw(vec![ins(0xc3, 10, 1, -8, 0xe1)]),
            no_at(0, "atomic"),
        ),
        case(
            "legacy packet load (LD_ABS)",
            "encoding",
            raw(vec![ins(0x30, 0, 0, 0, 0)]),
            no_at(0, "LD_ABS"),
        ),
        case(
            "legacy packet load (LD_IND)",
            "encoding",
            raw(vec![ins(0x50, 0, 1, 0, 0)]),
            no_at(0, "LD_ABS"),
        ),
        case(
            "lddw without its second half",
            "encoding",
            Code::Raw(vec![ins(0xb7, 0, 0, 0, 0), ins(0x18, 0, 0, 0, 1)]),
            no("second half"),
        ),
        case(
            "lddw with a malformed second half",
            "encoding",
            raw(vec![ins(0x18, 0, 0, 0, 1), ins(0xb7, 0, 0, 0, 0)]),
            no("malformed second half"),
        ),
        case(
            "lddw of a map value (src 2)",
            "encoding",
            raw(vec![ins(0x18, 0, 2, 0, 1), ins(0, 0, 0, 0, 0)]),
            no_at(0, "lddw with src 2"),
        ),
        case(
            "lddw with src 1 but no relocation",
            "encoding",
            raw(vec![ins(0x18, 0, 1, 0, 1), ins(0, 0, 0, 0, 0)]),
            no_at(0, "without a relocation"),
        ),
        case(
            "exit with an immediate",
            "encoding",
            Code::Raw(vec![ins(0xb7, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 1)]),
            no_at(1, "malformed exit"),
        ),
        case(
            "exit in JMP32",
            "encoding",
            Code::Raw(vec![ins(0xb7, 0, 0, 0, 0), ins(0x96, 0, 0, 0, 0)]),
            no_at(1, "malformed exit"),
        ),
        case(
            "call with an offset",
            "encoding",
            raw(vec![ins(0x85, 0, 0, 3, 5)]),
            no_at(0, "malformed call"),
        ),
        case(
            "jump operation 0xe0",
            "encoding",
            raw(vec![ins(0xe5, 1, 0, 0, 0)]),
            no_at(0, "unknown jump"),
        ),
        case(
            "register compare with an immediate",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x1d, 1, 1, 0, 9)]),
            no_at(1, "register compare with a non-zero immediate"),
        ),
        case(
            "immediate compare with a source register",
            "encoding",
            raw(vec![ins(0xb7, 1, 0, 0, 1), ins(0x15, 1, 2, 0, 9)]),
            no_at(1, "immediate compare with a source register"),
        ),
        case(
            "unknown class-0 opcode",
            "encoding",
            raw(vec![ins(0x00, 0, 0, 0, 0)]),
            no_at(0, "LD"),
        ),
    ]
}

fn maps() -> Vec<MapDef> {
    vec![
        MapDef::validate("arr", MAP_TYPE_ARRAY, 4, 8, 4, 0).unwrap(),
        MapDef::validate("hash", MAP_TYPE_HASH, 8, 16, 4, 0).unwrap(),
    ]
}

fn object(c: &Case) -> ElfObject {
    let code = match &c.code {
        Code::Asm(s) => rbpf::assembler::assemble(s)
            .unwrap_or_else(|e| panic!("{}: bad test asm: {e}\n{s}", c.name)),
        Code::Raw(v) => v.iter().flat_map(Insn::encode).collect(),
    };
    ElfObject {
        file: "hostile.o".into(),
        programs: vec![ProgramImage {
            name: "h".into(),
            section: "ringside/h".into(),
            code,
            relocs: c
                .relocs
                .iter()
                .map(|&(insn, m)| Reloc {
                    insn,
                    target: RelocTarget::Map(m),
                })
                .collect(),
            file_offset: 0,
        }],
        maps: maps(),
        rodata: vec![],
    }
}

struct Fixed(u64);

impl InputSource for Fixed {
    fn ktime_ns(&mut self) -> u64 {
        self.0 += 1000;
        self.0
    }
    fn read_buf(&mut self, _buf: u16, off: u64, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = (off as usize + i) as u8;
        }
    }
}

fn contexts() -> Vec<RsCtx> {
    let mut v = Vec::new();
    for (res, len, user_data) in [
        (0, 0, 0u64),
        (-11, 4096, 1),
        (i32::MIN, u32::MAX, u64::MAX),
        (i32::MAX, 63, 1 << 63),
        (64, 0x37, 0x1_0000_0000),
        (-1, 1, 0xdead_beef),
    ] {
        v.push(RsCtx {
            user_data,
            res,
            len,
            chain_id: 3,
            step: 0,
            nsteps: 2,
            opcode: 22,
            attempt: 1,
            fd: 0,
            off: user_data.rotate_left(7),
            buf_index: 0,
            buf_off: 16,
            ..Default::default()
        });
    }
    v
}

fn run(reg: &mut Registry, id: ringside_engine::program::ProgId, ctx: RsCtx) -> DecisionRecord {
    let regs = Registrations {
        files: 2,
        buffers: vec![4096],
    };
    let budgets = Budgets::default();
    let (p, maps) = reg.program_and_maps(id).unwrap();
    decision::execute(
        p,
        maps,
        DecisionRequest {
            seq: 0,
            ctx,
            view: ChainView {
                chain: 3,
                step: 0,
                nsteps: 2,
                opcode: 22,
                fd: 0,
                attempt: 1,
                pending: vec![],
            },
            regs: &regs,
            budgets: &budgets,
            record: true,
            count_insns: true,
        },
        &mut Fixed(1_000_000),
    )
}

#[test]
fn the_corpus_is_large_and_covers_every_class() {
    let c = corpus();
    assert!(c.len() >= 100, "{} cases", c.len());
    let mut classes: Vec<&str> = c.iter().map(|c| c.class).collect();
    classes.sort();
    classes.dedup();
    for want in [
        "semantics",
        "ranges",
        "pointer leak",
        "memory",
        "registers",
        "control flow",
        "size",
        "encoding",
    ] {
        assert!(classes.contains(&want), "no case of class {want}");
    }
    let mut names: Vec<&str> = c.iter().map(|c| c.name).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "case names are unique");
}

#[test]
fn every_hostile_program_gets_its_verdict() {
    let mut failures = Vec::new();
    for c in corpus() {
        let obj = object(&c);
        let mut interp = Registry::new();
        let loaded = interp.load_parsed(
            &obj,
            &LoadOptions {
                exec: ExecMode::Interpreter,
                ..Default::default()
            },
        );
        match (&c.verdict, loaded) {
            (No(insn, reason), Err(e)) => {
                let ok_insn = insn.is_none_or(|i| e.insn == Some(i));
                if !ok_insn || !e.reason.contains(reason) {
                    failures.push(format!(
                        "{} [{}]: rejected as `{e}`, expected insn {insn:?} and `{reason}`",
                        c.name, c.class
                    ));
                }
            }
            (No(_, reason), Ok(_)) => failures.push(format!(
                "{} [{}]: ACCEPTED, expected rejection for `{reason}`",
                c.name, c.class
            )),
            (Pass, Err(e)) => failures.push(format!("{} [{}]: rejected: {e}", c.name, c.class)),
            (Pass, Ok(a)) => {
                let mut compiled = Registry::new();
                let b = compiled
                    .load_parsed(
                        &obj,
                        &LoadOptions {
                            exec: ExecMode::Compiled,
                            ..Default::default()
                        },
                    )
                    .expect("the same object loads for the compiler");
                let (ia, ib) = (a.programs[0].1, b.programs[0].1);
                for ctx in contexts() {
                    let ra = run(&mut interp, ia, ctx);
                    let rb = run(&mut compiled, ib, ctx);
                    if let DecisionResult::VmError { message } = &ra.result {
                        failures.push(format!(
                            "{} [{}]: the interpreter stopped an accepted program: {message}",
                            c.name, c.class
                        ));
                    }
                    let key = |r: &DecisionRecord| {
                        (
                            r.ret,
                            r.result.clone(),
                            r.calls.clone(),
                            r.actions.clone(),
                            r.map_writes.clone(),
                            r.insns,
                        )
                    };
                    if key(&ra) != key(&rb) {
                        failures.push(format!(
                            "{} [{}]: interpreter and compiled code disagree on {ctx:?}:\n  {:?}\n  {:?}",
                            c.name,
                            c.class,
                            key(&ra),
                            key(&rb)
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
