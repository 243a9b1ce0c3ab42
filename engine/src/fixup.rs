//! Load-time rewrites that make rbpf's interpreter agree with the kernel.
//!
//! rbpf's interpreter zero-extends the 32-bit immediate of the 64-bit
//! unsigned compares (`jeq`, `jne`, `jgt`, `jge`, `jlt`, `jle`), where the
//! kernel, clang and rbpf's own JIT sign-extend it. clang emits such compares
//! for every test of a sign-extended value against a negative constant
//! (`if (res == -EAGAIN)`), so they cannot simply be refused.
//!
//! Each one becomes `mov rT, imm` (64-bit, sign-extending in every
//! implementation) followed by the register form of the compare, where `rT` is
//! a register that holds nothing live at that point (found by liveness
//! analysis). Jump offsets and relocations are renumbered. If no register is
//! free, the program is refused with the instruction and the reason.

use crate::elf::ProgramImage;
use crate::verifier::{Insn, VerifyError, insn_starts, successors, topological_order};

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

/// Rewrite the mismatched compares of `image` in place. Returns, for each
/// instruction of the new code, the index it had in the original (for error
/// messages), or None when nothing needed rewriting.
pub fn sign_extended_compares(image: &mut ProgramImage) -> Result<Option<Vec<usize>>, VerifyError> {
    let code = &image.code;
    let n = code.len() / 8;
    let targets: Vec<usize> = insn_starts(code)
        .into_iter()
        .filter(|&i| is_mismatched_compare(&Insn::decode(code, i)))
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    // Liveness over the reachable CFG, in reverse topological order.
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
    let mut temp_for = std::collections::HashMap::new();
    for &i in &targets {
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

    // New positions: each rewritten compare takes one more slot, in front of
    // it, so a jump to the compare lands on its `mov`.
    let mut new_pos = vec![0usize; n + 1];
    let mut pos = 0;
    for (i, slot) in new_pos.iter_mut().enumerate().take(n) {
        *slot = pos;
        pos += 1 + usize::from(temp_for.contains_key(&i));
    }
    new_pos[n] = pos;
    let mut out = Vec::with_capacity(pos * 8);
    let mut origin = Vec::with_capacity(pos);
    let starts = insn_starts(code);
    let mut lddw_second = vec![false; n];
    for &s in &starts {
        if Insn::decode(code, s).opc == 0x18 && s + 1 < n {
            lddw_second[s + 1] = true;
        }
    }
    for i in 0..n {
        let mut raw: [u8; 8] = code[i * 8..i * 8 + 8].try_into().expect("8 bytes");
        let ins = Insn::decode(code, i);
        if !lddw_second[i] && matches!(ins.opc & 0x07, 0x05 | 0x06) {
            let op = ins.opc & 0xf0;
            if op != 0x80 && op != 0x90 {
                let old_target = (i as i64 + 1 + ins.off as i64) as usize;
                let new_target = new_pos[old_target.min(n)];
                let self_pos = new_pos[i] + usize::from(temp_for.contains_key(&i));
                let off = new_target as i64 - (self_pos as i64 + 1);
                let off = i16::try_from(off).map_err(|_| VerifyError {
                    insn: i,
                    reason: "jump too long after rewriting sign-extended compares".into(),
                })?;
                raw[2..4].copy_from_slice(&off.to_le_bytes());
            }
        }
        if let Some(&t) = temp_for.get(&i) {
            // mov64 rT, imm
            let mut mov = [0u8; 8];
            mov[0] = 0xb7;
            mov[1] = t;
            mov[4..8].copy_from_slice(&ins.imm.to_le_bytes());
            out.extend_from_slice(&mov);
            origin.push(i);
            // jxx rX, rT
            raw[0] |= SRC_X;
            raw[1] = (t << 4) | ins.dst;
            raw[4..8].fill(0);
        }
        out.extend_from_slice(&raw);
        origin.push(i);
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

    fn insn(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = opc;
        b[1] = (src << 4) | dst;
        b[2..4].copy_from_slice(&off.to_le_bytes());
        b[4..8].copy_from_slice(&imm.to_le_bytes());
        b
    }

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
        // r1 = *(u32 *)(r1 + 8); r1 <<= 32; r1 s>>= 32; if r1 == -11 goto +1; r0 = 0; exit; r0 = 1; exit
        let mut img = image(&[
            insn(0x61, 1, 1, 8, 0),
            insn(0x67, 1, 0, 0, 32),
            insn(0xc7, 1, 0, 0, 32),
            insn(0x15, 1, 0, 2, -11),
            insn(0xb7, 0, 0, 0, 0),
            insn(0x95, 0, 0, 0, 0),
            insn(0xb7, 0, 0, 0, 1),
            insn(0x95, 0, 0, 0, 0),
        ]);
        let origin = sign_extended_compares(&mut img).unwrap().unwrap();
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
    fn earlier_jumps_over_the_rewrite_are_renumbered() {
        let mut img = image(&[
            insn(0x05, 0, 0, 2, 0),  // goto +2 -> insn 3
            insn(0x15, 1, 0, 0, -1), // if r1 == -1 goto +0
            insn(0xb7, 0, 0, 0, 0),
            insn(0xb7, 0, 0, 0, 2),
            insn(0x95, 0, 0, 0, 0),
        ]);
        sign_extended_compares(&mut img).unwrap().unwrap();
        let ja = Insn::decode(&img.code, 0);
        assert_eq!(
            1 + ja.off as usize,
            4,
            "goto lands on `r0 = 2` at its new index"
        );
    }

    #[test]
    fn no_rewrite_when_not_needed() {
        let mut img = image(&[
            insn(0x15, 1, 0, 0, 5),
            insn(0xb7, 0, 0, 0, 0),
            insn(0x95, 0, 0, 0, 0),
        ]);
        assert_eq!(sign_extended_compares(&mut img).unwrap(), None);
    }
}
