//! One test per verifier rule: a program that breaks it is rejected with the
//! instruction and the reason; the nearest correct program is accepted.

use super::*;
use crate::program::elf::{ProgramImage, Reloc};
use crate::program::maps::{MAP_TYPE_ARRAY, MAP_TYPE_HASH, MapDef};

fn image(src: &str, map_relocs: &[(usize, usize)]) -> ProgramImage {
    let code =
        rbpf::assembler::assemble(src).unwrap_or_else(|e| panic!("bad test asm: {e}\n{src}"));
    ProgramImage {
        name: "t".into(),
        section: "ringside/t".into(),
        code,
        relocs: map_relocs
            .iter()
            .map(|&(insn, m)| Reloc {
                insn,
                target: RelocTarget::Map(m),
            })
            .collect(),
        file_offset: 0,
    }
}

fn maps() -> Vec<MapDef> {
    vec![
        MapDef::validate("arr", MAP_TYPE_ARRAY, 4, 8, 4, 0).unwrap(),
        MapDef::validate("hash", MAP_TYPE_HASH, 8, 16, 4, 0).unwrap(),
    ]
}

fn check(src: &str, relocs: &[(usize, usize)]) -> Result<VerifyReport, VerifyError> {
    let img = image(src, relocs);
    let maps = maps();
    verify(&VerifyInput {
        image: &img,
        maps: &maps,
        rodata_sizes: &[],
        limits: Limits::default(),
    })
}

#[track_caller]
fn rejected(src: &str, relocs: &[(usize, usize)], insn: usize, reason: &str) {
    match check(src, relocs) {
        Ok(_) => panic!("accepted, expected rejection at insn {insn} for `{reason}`:\n{src}"),
        Err(e) => {
            assert_eq!(e.insn, insn, "wrong insn for `{}`", e.reason);
            assert!(
                e.reason.contains(reason),
                "reason `{}` does not contain `{reason}`",
                e.reason
            );
        }
    }
}

#[track_caller]
fn accepted(src: &str, relocs: &[(usize, usize)]) -> VerifyReport {
    check(src, relocs).unwrap_or_else(|e| panic!("rejected: {e}\n{src}"))
}

#[test]
fn a_loop_is_rejected_but_a_shared_tail_is_not() {
    rejected(
        "mov64 r0, 0\nadd64 r0, 1\njlt r0, 10, -2\nexit",
        &[],
        2,
        "loop",
    );
    rejected("ja -1\nexit", &[], 0, "loop");
    // A backward jump to a shared exit block is no loop.
    accepted(
        "ldxw r1, [r1+8]\njeq r1, 0, +2\nmov64 r0, 1\nexit\nmov64 r0, 2\nja -3",
        &[],
    );
}

#[test]
fn recursion_and_subprograms_are_rejected() {
    rejected("call -1\nmov64 r0, 0\nexit", &[], 0, "");
    let img = ProgramImage {
        code: [
            0x85u8, 0x10, 0, 0, 0xff, 0xff, 0xff,
            0xff, // call -1 (bpf-to-bpf, src = 1) -> itself
            0x95, 0, 0, 0, 0, 0, 0, 0,
        ]
        .to_vec(),
        ..image("exit", &[])
    };
    let e = verify(&VerifyInput {
        image: &img,
        maps: &[],
        rodata_sizes: &[],
        limits: Limits::default(),
    })
    .unwrap_err();
    assert_eq!(e.insn, 0);
    assert!(e.reason.contains("recursion"), "{e}");
    let img = ProgramImage {
        code: [
            0x85u8, 0x10, 0, 0, 1, 0, 0, 0, // call +1 (bpf-to-bpf)
            0x95, 0, 0, 0, 0, 0, 0, 0, 0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0,
        ]
        .to_vec(),
        ..image("exit", &[])
    };
    let e = verify(&VerifyInput {
        image: &img,
        maps: &[],
        rodata_sizes: &[],
        limits: Limits::default(),
    })
    .unwrap_err();
    assert!(e.reason.contains("bpf-to-bpf"), "{e}");
}

#[test]
fn unknown_helpers_are_rejected() {
    rejected("call 7\nmov64 r0, 0\nexit", &[], 0, "unknown helper 7");
    rejected(
        "mov64 r0, 0\ncall 0x1006\nexit",
        &[],
        1,
        "unknown helper 4102",
    );
    let r = accepted("call 5\nmov64 r0, 0\nexit", &[]);
    assert!(r.helpers.contains(&helper_id::KTIME_GET_NS));
}

#[test]
fn the_context_is_read_only_and_64_bytes() {
    rejected(
        "stw [r1+8], 0\nmov64 r0, 0\nexit",
        &[],
        0,
        "read-only context",
    );
    rejected(
        "mov64 r2, 5\nstxdw [r1+0], r2\nmov64 r0, 0\nexit",
        &[],
        1,
        "read-only context",
    );
    rejected(
        "ldxdw r2, [r1+60]\nmov64 r0, 0\nexit",
        &[],
        0,
        "outside its 64 bytes",
    );
    rejected(
        "ldxb r2, [r1+64]\nmov64 r0, 0\nexit",
        &[],
        0,
        "outside its 64 bytes",
    );
    rejected("ldxw r2, [r1-4]\nmov64 r0, 0\nexit", &[], 0, "outside");
    accepted(
        "ldxdw r2, [r1+56]\nldxb r3, [r1+63]\nmov64 r0, 0\nexit",
        &[],
    );
}

#[test]
fn a_variable_context_offset_must_stay_inside() {
    // r2 in [0, 7] after the mask: ctx + r2 + 56 reads at most byte 63+... of 8 bytes: out.
    rejected(
        "ldxw r2, [r1+8]\nand64 r2, 7\nadd64 r1, r2\nldxdw r0, [r1+56]\nexit",
        &[],
        3,
        "outside",
    );
    accepted(
        "ldxw r2, [r1+8]\nand64 r2, 7\nadd64 r1, r2\nldxdw r0, [r1+48]\nmov64 r0, 0\nexit",
        &[],
    );
}

#[test]
fn programs_longer_than_the_limit_are_rejected() {
    let body = "mov64 r0, 0\n".repeat(DEFAULT_MAX_INSNS);
    rejected(
        &format!("{body}exit"),
        &[],
        DEFAULT_MAX_INSNS,
        "limit is 4096",
    );
}

#[test]
fn registers_must_be_written_before_they_are_read() {
    rejected(
        "mov64 r0, r3\nexit",
        &[],
        0,
        "r3 is read before it is written",
    );
    rejected("exit", &[], 0, "without setting r0");
    // Set on one path only: the join is uninitialised.
    rejected(
        "ldxw r2, [r1+8]\njeq r2, 0, +1\nmov64 r3, 1\nmov64 r0, r3\nexit",
        &[],
        3,
        "r3",
    );
}

#[test]
fn the_stack_must_be_written_before_it_is_read() {
    rejected("ldxdw r0, [r10-8]\nexit", &[], 0, "uninitialised stack");
    rejected(
        "stw [r10-8], 1\nldxdw r0, [r10-8]\nexit",
        &[],
        1,
        "uninitialised stack byte at offset -4",
    );
    accepted("stdw [r10-8], 1\nldxdw r0, [r10-8]\nexit", &[]);
    rejected(
        "stdw [r10-520], 1\nmov64 r0, 0\nexit",
        &[],
        0,
        "outside its 512 bytes",
    );
}

#[test]
fn map_values_need_a_null_check() {
    let lookup = "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\n";
    rejected(
        &format!("{lookup}ldxdw r0, [r0+0]\nexit"),
        &[(3, 0)],
        6,
        "may be null",
    );
    accepted(
        &format!("{lookup}jeq r0, 0, +2\nldxdw r0, [r0+0]\nexit\nmov64 r0, 0\nexit"),
        &[(3, 0)],
    );
    // Value is 8 bytes: reading at 4 for 8 is out.
    rejected(
        &format!("{lookup}jeq r0, 0, +2\nldxdw r0, [r0+4]\nexit\nmov64 r0, 0\nexit"),
        &[(3, 0)],
        7,
        "outside its 8 bytes",
    );
    // A copy of the lookup result is refined by the check too.
    accepted(
        &format!("{lookup}mov64 r6, r0\njne r0, 0, +2\nmov64 r0, 0\nexit\nldxdw r0, [r6+0]\nexit"),
        &[(3, 0)],
    );
}

#[test]
fn map_keys_must_be_initialised_stack() {
    // The hash map's key is 8 bytes: only 4 were written.
    rejected(
        "stw [r10-8], 0\nmov64 r2, r10\nadd64 r2, -8\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit",
        &[(3, 1)],
        5,
        "uninitialised stack",
    );
    // The key must be memory, not a number.
    rejected(
        "mov64 r2, 0\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit",
        &[(1, 0)],
        3,
        "argument 2",
    );
    // The first argument must be a map.
    rejected(
        "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nmov64 r1, 0\ncall 1\nmov64 r0, 0\nexit",
        &[],
        4,
        "must be a map",
    );
}

#[test]
fn pointers_never_leave_the_program() {
    rejected("mov64 r0, r10\nexit", &[], 1, "returns r0");
    rejected("mov64 r0, r1\nexit", &[], 1, "returns r0");
    // Passing the stack pointer where rs_emit wants a number (user_data).
    rejected(
        "mov64 r2, r10\nmov64 r3, 0\nmov64 r4, 0\ncall 0x1003\nmov64 r0, 0\nexit",
        &[],
        3,
        "pointers may not leave",
    );
    // Storing a pointer into a map value.
    let lookup = "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\n";
    rejected(
        &format!("{lookup}jeq r0, 0, +2\nstxdw [r0+0], r10\nexit\nmov64 r0, 0\nexit"),
        &[(3, 0)],
        7,
        "stores a pointer",
    );
    // Arithmetic that is not pointer + scalar.
    rejected(
        "mov64 r2, r1\nmul64 r2, 2\nmov64 r0, 0\nexit",
        &[],
        1,
        "pointer arithmetic",
    );
}

#[test]
fn helpers_take_the_context_first() {
    // rs_set_res(ctx, res): r1 must be the context itself.
    rejected(
        "mov64 r1, 0\nmov64 r2, 5\ncall 0x1005\nmov64 r0, 0\nexit",
        &[],
        2,
        "must be the context pointer",
    );
    rejected(
        "add64 r1, 8\nmov64 r2, 5\ncall 0x1005\nmov64 r0, 0\nexit",
        &[],
        2,
        "must be the context pointer",
    );
    accepted("mov64 r2, 5\ncall 0x1005\nmov64 r0, 0\nexit", &[]);
}

#[test]
fn memory_sizes_need_a_bound() {
    // rs_read_buf(ctx, 0, 0, stack, len): len from the context is unbounded.
    let pre =
        "mov64 r6, r1\nldxw r5, [r1+48]\nmov64 r4, r10\nadd64 r4, -16\nmov64 r3, 0\nmov64 r2, 0\n";
    rejected(
        &format!("{pre}call 0x1004\nmov64 r0, 0\nexit"),
        &[],
        6,
        "known bound",
    );
    // Clamped to 16: fine.
    accepted(
        &format!("{pre}jle r5, 16, +1\nmov64 r5, 16\ncall 0x1004\nmov64 r0, 0\nexit"),
        &[],
    );
    // Clamped to 32, but only 16 bytes of stack: out.
    rejected(
        &format!("{pre}jle r5, 32, +1\nmov64 r5, 32\ncall 0x1004\nmov64 r0, 0\nexit"),
        &[],
        8,
        "outside",
    );
}

#[test]
fn falling_off_the_end_is_rejected() {
    rejected("mov64 r0, 0", &[], 0, "fall off the end");
    rejected("mov64 r0, 0\njeq r1, 0, +0", &[], 1, "past the end");
}

#[test]
fn division_by_constant_zero_is_rejected() {
    rejected(
        "mov64 r0, 1\ndiv64 r0, 0\nexit",
        &[],
        1,
        "division by the constant zero",
    );
}

#[test]
fn report_counts_the_longest_path() {
    let r = accepted(
        "ldxw r2, [r1+8]\njeq r2, 0, +3\nmov64 r0, 1\nmov64 r0, 2\nexit\nmov64 r0, 3\nexit",
        &[],
    );
    assert_eq!(r.max_path, 5);
    assert_eq!(r.insns, 7);
    assert!(r.memory_safe);
}
