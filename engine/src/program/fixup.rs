//! Load-time rewrites that make rbpf's interpreter, rbpf's JIT and the kernel
//! agree on every instruction a program runs.
//!
//! A differential test (tests/differential.rs) found three disagreements:
//!
//! - rbpf's interpreter zero-extends the 32-bit immediate of the 64-bit
//!   unsigned compares (`jeq`, `jne`, `jgt`, `jge`, `jlt`, `jle`), where the
//!   kernel, clang and the JIT sign-extend it. clang emits such compares for
//!   every test of a sign-extended value against a negative constant
//!   (`if (res == -EAGAIN)`). Each becomes `mov rT, imm` (64-bit,
//!   sign-extending everywhere) and the register form of the compare, where
//!   `rT` holds nothing live at that point (liveness analysis); if no register
//!   is free the program is refused.
//! - rbpf's JIT does not zero-extend `mov32 dst, src`: it becomes
//!   `mov32 dst, src; and32 dst, -1`, which every implementation runs right.
//! - rbpf's JIT treats `le16`/`le32` as no-ops instead of truncating: they
//!   become `and64 dst, 0xffff` / `and32 dst, -1` (the same thing on a
//!   little-endian machine).
//!
//! Jump offsets and relocations are renumbered; the object-file index of
//! every new instruction is kept for error messages.

use crate::program::elf::ProgramImage;
use crate::program::verifier::{Insn, VerifyError, insn_starts, successors, topological_order};

const SRC_X: u8 = 0x08;

/// Whether `ins` is a 64-bit unsigned compare with a negative immediate.
pub fn is_mismatched_compare(ins: &Insn) -> bool {
    ins.opc & 0x07 == 0x05
        && ins.opc & SRC_X == 0
        && matches!(ins.opc & 0xf0, 0x10 | 0x20 | 0x30 | 0xa0 | 0xb0 | 0x50)
        && ins.imm < 0
}

/// Registers read and written by an instruction (bit i = ri).
fn use_def(ins: &Insn) -> (u16, u16) {
    let b = |r: u8| 1u16 << r;
    let x = ins.opc & SRC_X != 0;
    match ins.opc & 0x07 {
        0x00 => (0, b(ins.dst)),              // lddw
        0x01 => (b(ins.src), b(ins.dst)),     // ldx
        0x02 => (b(ins.dst), 0),              // st
        0x03 => (b(ins.dst) | b(ins.src), 0), // stx
        0x04 | 0x07 => {
            let op = ins.opc & 0xf0;
            let src = if x && op != 0x80 && op != 0xd0 {
                b(ins.src)
            } else {
                0
            };
            let dst = if op == 0xb0 { 0 } else { b(ins.dst) }; // mov does not read dst
            (src | dst, b(ins.dst))
        }
        _ => match ins.opc & 0xf0 {
            0x00 => (0, 0),                 // ja
            0x80 => (0b11_1110, 0b11_1111), // call: r1-r5 in, r0-r5 out
            0x90 => (b(0), 0),              // exit
            _ => (b(ins.dst) | if x { b(ins.src) } else { 0 }, 0),
        },
    }
}

fn encode(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = opc;
    b[1] = (src << 4) | dst;
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// Rewrite `image` in place (see the module docs). Returns, for each
/// instruction of the new code, the index it had in the object file, or None
/// when nothing needed rewriting.
pub fn rewrite(image: &mut ProgramImage) -> Result<Option<Vec<usize>>, VerifyError> {
    let code = &image.code;
    let n = code.len() / 8;
    let starts = insn_starts(code);
    let mut lddw_second = vec![false; n];
    for &s in &starts {
        if Insn::decode(code, s).opc == 0x18 && s + 1 < n {
            lddw_second[s + 1] = true;
        }
    }
    let needs = |i: usize| {
        let ins = Insn::decode(code, i);
        !lddw_second[i]
            && (is_mismatched_compare(&ins)
                || ins.opc == 0xbc
                || (ins.opc == 0xd4 && ins.imm != 64))
    };
    if !(0..n).any(needs) {
        return Ok(None);
    }

    // Free registers for the compares: liveness over the reachable CFG.
    let mut temp_for = std::collections::HashMap::new();
    if starts
        .iter()
        .any(|&i| is_mismatched_compare(&Insn::decode(code, i)))
    {
        let order = topological_order(code)?;
        let mut live_in = vec![0u16; n + 2];
        for &i in order.iter().rev() {
            let ins = Insn::decode(code, i);
            let out = successors(code, i)
                .iter()
                .fold(0u16, |acc, &s| acc | live_in.get(s).copied().unwrap_or(0));
            let (u, d) = use_def(&ins);
            live_in[i] = u | (out & !d);
        }
        for &i in &starts {
            if !is_mismatched_compare(&Insn::decode(code, i)) {
                continue;
            }
            // A register neither read by the compare nor live into it is free to clobber.
            let busy = live_in[i] | (1 << 10);
            let Some(t) = (0..10u8).find(|r| busy & (1 << r) == 0) else {
                return Err(VerifyError {
                    insn: i,
                    reason: "64-bit unsigned compare with a negative immediate and no free register to rewrite it \
                             (rbpf's interpreter zero-extends such immediates); compare against a register"
                        .into(),
                });
            };
            temp_for.insert(i, t);
        }
    }

    // Expansion of each slot; a jump is always the last of its expansion.
    let expand = |i: usize| -> Vec<[u8; 8]> {
        let raw: [u8; 8] = code[i * 8..i * 8 + 8].try_into().expect("8 bytes");
        if lddw_second[i] {
            return vec![raw];
        }
        let ins = Insn::decode(code, i);
        if let Some(&t) = temp_for.get(&i) {
            let mut cmp = raw;
            cmp[0] |= SRC_X;
            cmp[1] = (t << 4) | ins.dst;
            cmp[4..8].fill(0);
            return vec![encode(0xb7, t, 0, 0, ins.imm), cmp];
        }
        match (ins.opc, ins.imm) {
            (0xbc, _) => vec![raw, encode(0x54, ins.dst, 0, 0, -1)],
            (0xd4, 16) => vec![encode(0x57, ins.dst, 0, 0, 0xffff)],
            (0xd4, 32) => vec![encode(0x54, ins.dst, 0, 0, -1)],
            _ => vec![raw],
        }
    };
    let expansions: Vec<Vec<[u8; 8]>> = (0..n).map(expand).collect();
    let mut new_pos = vec![0usize; n + 1];
    let mut pos = 0;
    for i in 0..n {
        new_pos[i] = pos;
        pos += expansions[i].len();
    }
    new_pos[n] = pos;

    let mut out = Vec::with_capacity(pos * 8);
    let mut origin = Vec::with_capacity(pos);
    for (i, exp) in expansions.into_iter().enumerate() {
        let last = exp.len() - 1;
        for (k, mut raw) in exp.into_iter().enumerate() {
            let ins = Insn::decode(code, i);
            let is_jump = !lddw_second[i]
                && matches!(ins.opc & 0x07, 0x05 | 0x06)
                && !matches!(ins.opc & 0xf0, 0x80 | 0x90);
            if is_jump && k == last {
                let old_target = (i as i64 + 1 + ins.off as i64).clamp(0, n as i64) as usize;
                let self_pos = new_pos[i] + k;
                let off = new_pos[old_target] as i64 - (self_pos as i64 + 1);
                let off = i16::try_from(off).map_err(|_| VerifyError {
                    insn: i,
                    reason: "jump too long after rewriting for rbpf".into(),
                })?;
                raw[2..4].copy_from_slice(&off.to_le_bytes());
            }
            out.extend_from_slice(&raw);
            origin.push(i);
        }
    }
    for r in image.relocs.iter_mut() {
        r.insn = new_pos[r.insn];
    }
    image.code = out;
    Ok(Some(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(insns: &[[u8; 8]]) -> ProgramImage {
        ProgramImage {
            name: "t".into(),
            section: "ringside/t".into(),
            code: insns.concat(),
            relocs: vec![],
            file_offset: 0,
        }
    }

    #[test]
    fn rewrites_negative_compare_with_a_dead_register() {
        // r1 = *(u32 *)(r1 + 8); r1 <<= 32; r1 s>>= 32; if r1 == -11 goto +2; r0 = 0; exit; r0 = 1; exit
        let mut img = image(&[
            encode(0x61, 1, 1, 8, 0),
            encode(0x67, 1, 0, 0, 32),
            encode(0xc7, 1, 0, 0, 32),
            encode(0x15, 1, 0, 2, -11),
            encode(0xb7, 0, 0, 0, 0),
            encode(0x95, 0, 0, 0, 0),
            encode(0xb7, 0, 0, 0, 1),
            encode(0x95, 0, 0, 0, 0),
        ]);
        let origin = rewrite(&mut img).unwrap().unwrap();
        assert_eq!(img.code.len() / 8, 9);
        assert_eq!(origin, vec![0, 1, 2, 3, 3, 4, 5, 6, 7]);
        let mov = Insn::decode(&img.code, 3);
        assert_eq!((mov.opc, mov.imm), (0xb7, -11));
        let cmp = Insn::decode(&img.code, 4);
        assert_eq!(cmp.opc, 0x1d);
        assert_eq!(cmp.src, mov.dst);
        assert_ne!(mov.dst, 1);
        // The jump still lands on `r0 = 1`.
        assert_eq!(4 + 1 + cmp.off as usize, 7);
    }

    #[test]
    fn jumps_into_a_rewritten_instruction_land_on_its_first_part() {
        let mut img = image(&[
            encode(0x05, 0, 0, 1, 0),  // goto +1 -> insn 2
            encode(0xb7, 0, 0, 0, 0),  // r0 = 0
            encode(0x15, 1, 0, 0, -1), // if r1 == -1 goto +0
            encode(0xb7, 0, 0, 0, 2),
            encode(0x95, 0, 0, 0, 0),
        ]);
        rewrite(&mut img).unwrap().unwrap();
        let ja = Insn::decode(&img.code, 0);
        assert_eq!(
            1 + ja.off as usize,
            2,
            "goto lands on the mov that now precedes the compare"
        );
        assert_eq!(Insn::decode(&img.code, 2).opc, 0xb7);
    }

    #[test]
    fn mov32_and_le_are_made_explicit() {
        let mut img = image(&[
            encode(0xbc, 0, 2, 0, 0),  // w0 = w2
            encode(0xd4, 0, 0, 0, 16), // le16 r0
            encode(0xd4, 0, 0, 0, 32), // le32 r0
            encode(0xd4, 0, 0, 0, 64), // le64 r0 (fine as it is)
            encode(0x95, 0, 0, 0, 0),
        ]);
        let origin = rewrite(&mut img).unwrap().unwrap();
        let ops: Vec<(u8, i32)> = (0..img.code.len() / 8)
            .map(|i| {
                let x = Insn::decode(&img.code, i);
                (x.opc, x.imm)
            })
            .collect();
        assert_eq!(
            ops,
            vec![
                (0xbc, 0),
                (0x54, -1),
                (0x57, 0xffff),
                (0x54, -1),
                (0xd4, 64),
                (0x95, 0)
            ]
        );
        assert_eq!(origin, vec![0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn no_rewrite_when_not_needed() {
        let mut img = image(&[
            encode(0x15, 1, 0, 0, 5),
            encode(0xb7, 0, 0, 0, 0),
            encode(0x95, 0, 0, 0, 0),
        ]);
        assert_eq!(rewrite(&mut img).unwrap(), None);
    }
}
