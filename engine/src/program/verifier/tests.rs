//! One test per verifier rule: a program that breaks it is rejected with the
//! instruction and the reason; the nearest correct program is accepted.

use super::domain::Slot;
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
                e.reason.to_string().contains(reason),
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
    assert!(e.reason.to_string().contains("recursion"), "{e}");
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
    assert!(e.reason.to_string().contains("bpf-to-bpf"), "{e}");
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

// ---- what the verifier believes is what runs ------------------------------
//
// Each of these was a way for a verified program to hold a value the
// verifier did not know about (and so to reach memory it should not, or to
// see a host address).

#[test]
fn mod32_by_zero_is_known_to_zero_extend() {
    // The mod32 exploit: r0 is 0xffffffff after `w0 %= w2` with r2 = 0 (the
    // kernel's meaning), so after `r0 >>= 32` it is 0, and the verifier knows.
    let report = accepted(
        "mov64 r2, 0\nmov64 r0, -1\nmod32 r0, r2\nrsh64 r0, 32\nexit",
        &[],
    );
    assert_eq!(report.max_path, 5);
    // And scaled into a stack offset, the verifier sees the real offset:
    // 0x1_0000_0008 % 0 (32-bit) is 8, not 0x1_0000_0008.
    accepted(
        "mov64 r2, 0\nlddw r3, 0x100000008\nmod32 r3, r2\nmov64 r4, r10\nsub64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
        &[],
    );
}

#[test]
fn a_divisor_that_may_be_zero_may_give_zero() {
    // r2 in [0, 1]; 0x10000 / r2 is 0 or 0x10000 (not only 0x10000), so
    // 0x10000 - that may be -0x10000: no constant offset.
    rejected(
        "ldxw r2, [r1+8]\nand64 r2, 1\nmov64 r3, 0x10000\ndiv64 r3, r2\nsub64 r3, 0x10000\nmov64 r4, r10\nadd64 r4, -8\nadd64 r4, r3\nstdw [r4+0], 1\nmov64 r0, 0\nexit",
        &[],
        7,
        "pointer offset out of range",
    );
}

#[test]
fn pointers_are_compared_only_whole_and_only_within_a_region() {
    rejected(
        "jeq32 r1, 0, +1\nmov64 r0, 0\nmov64 r0, 1\nexit",
        &[],
        0,
        "compares",
    );
    rejected(
        "jgt32 r10, r1, +1\nmov64 r0, 0\nmov64 r0, 1\nexit",
        &[],
        0,
        "compares",
    );
    rejected(
        "jgt r1, 4096, +1\nmov64 r0, 0\nmov64 r0, 1\nexit",
        &[],
        0,
        "compares",
    );
    accepted(
        "mov64 r2, r10\nadd64 r2, -8\njgt r10, r2, +1\nmov64 r0, 0\nmov64 r0, 1\nexit",
        &[],
    );
    // Two map values: their order is where the map keeps them.
    let two = "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\njeq r0, 0, +9\nmov64 r6, r0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\njeq r0, 0, +2\n";
    rejected(
        &format!("{two}jgt r6, r0, +0\nmov64 r0, 0\nexit"),
        &[(3, 0), (10, 0)],
        14,
        "compares",
    );
    rejected(
        &format!("{two}sub64 r6, r0\nmov64 r0, 0\nexit"),
        &[(3, 0), (10, 0)],
        14,
        "pointer arithmetic",
    );
}

#[test]
fn a_null_check_of_one_lookup_says_nothing_of_another() {
    // Two lookups meet in r6 and r7 (each on its own path); r6 is checked,
    // r7 is used: on the second path r7 may be null.
    let src = "
        stw [r10-4], 0
        ldxw r8, [r1+8]
        jeq r8, 0, +8
        mov64 r2, r10
        add64 r2, -4
        lddw r1, 0
        call 1
        mov64 r6, r0
        mov64 r7, r0
        ja +12
        mov64 r2, r10
        add64 r2, -4
        lddw r1, 0
        call 1
        mov64 r6, r0
        mov64 r2, r10
        add64 r2, -4
        lddw r1, 0
        call 1
        mov64 r7, r0
        mov64 r0, 0
        jeq r6, 0, +1
        ldxdw r0, [r7+0]
        exit";
    // Path sensitivity keeps the two paths apart up to 16 states; force the
    // join by checking the rule on the joined state directly too.
    match check(src, &[(5, 0), (13, 0), (19, 0)]) {
        Ok(_) => panic!("accepted a dereference of an unchecked lookup"),
        Err(e) => assert!(e.reason.to_string().contains("may be null"), "{e}"),
    }
    let mut next = 10;
    let a = State {
        regs: std::array::from_fn(|r| match r {
            6 | 7 => Val::ValueOrNull { map: 0, id: 1 },
            _ => Val::Uninit,
        }),
        stack: State::entry().stack,
    };
    let b = State {
        regs: std::array::from_fn(|r| match r {
            6 => Val::ValueOrNull { map: 0, id: 2 },
            7 => Val::ValueOrNull { map: 0, id: 3 },
            _ => Val::Uninit,
        }),
        stack: State::entry().stack,
    };
    let j = a.join(&b, &mut next);
    assert_ne!(
        j.regs[6], j.regs[7],
        "different lookups on one path stay apart"
    );
    let c = a.join(&a.clone(), &mut next);
    assert_eq!(c.regs[6], c.regs[7], "one lookup's copies stay tied");
}

#[test]
fn a_slot_that_holds_a_pointer_on_one_path_holds_no_number_after_the_join() {
    let mut with_ptr = State::entry();
    with_ptr.stack[slot_index(-8)] = Slot {
        spill: Some(Val::Ptr {
            region: Region::Stack,
            lo: 0,
            hi: 0,
        }),
        init: 0xff,
    };
    let mut with_bytes = State::entry();
    with_bytes.stack[slot_index(-8)] = Slot {
        spill: None,
        init: 0xff,
    };
    let j = with_ptr.join(&with_bytes, &mut 1);
    assert_eq!(j.stack[slot_index(-8)].spill, Some(Val::Conflict));
}

#[test]
fn a_spilled_pointer_is_never_read_as_a_number() {
    // Spill r10 at -8, overwrite one byte of it, read it back whole.
    rejected(
        "stxdw [r10-8], r10\nstb [r10-8], 0\nldxdw r0, [r10-8]\nexit",
        &[],
        1,
        "overwrites part of the pointer",
    );
    // A store at a variable offset that may hit it.
    rejected(
        "stxdw [r10-8], r10\nldxw r2, [r1+8]\nand64 r2, 15\nmov64 r3, r10\nadd64 r3, -16\nadd64 r3, r2\nstb [r3+0], 0\nldxdw r0, [r10-8]\nexit",
        &[],
        6,
        "variable stack offset",
    );
    // A pointer on one path, a number on the other, read after they meet.
    rejected(
        "ldxw r2, [r1+8]\njeq r2, 0, +2\nstxdw [r10-8], r10\nja +2\nstw [r10-8], 0\nstw [r10-4], 0\nldxw r0, [r10-8]\nexit",
        &[],
        6,
        "spilled pointer",
    );
    // rs_read_buf writing 1..8 bytes over a spilled pointer.
    rejected(
        "stxdw [r10-8], r10\nldxw r5, [r1+8]\nand64 r5, 7\nadd64 r5, 1\nmov64 r4, r10\nadd64 r4, -8\nmov64 r2, 0\nmov64 r3, 0\ncall 0x1004\nldxdw r0, [r10-8]\nexit",
        &[],
        8,
        "overwrite part of the pointer",
    );
    // Overwriting it whole is fine: the slot then holds a number.
    accepted(
        "stxdw [r10-8], r10\nstdw [r10-8], 7\nldxdw r0, [r10-8]\nexit",
        &[],
    );
}

#[test]
fn byte_swaps_read_only_their_destination() {
    // ntohs after a map lookup: r0 is a pointer, be16 must not read it.
    let lookup = "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\n";
    accepted(
        &format!("{lookup}jeq r0, 0, +3\nldxh r1, [r0+0]\nbe16 r1\nmov64 r0, r1\nexit"),
        &[(3, 0)],
    );
    accepted("ldxw r0, [r1+8]\nbe32 r0\nbe64 r0\nle16 r0\nexit", &[]);
}

#[test]
fn encodings_are_strict() {
    let raw = |insns: &[Insn]| -> Result<VerifyReport, VerifyError> {
        let img = ProgramImage {
            name: "t".into(),
            section: "ringside/t".into(),
            code: insns.iter().flat_map(|i| i.encode()).collect(),
            relocs: vec![],
            file_offset: 0,
        };
        verify(&VerifyInput {
            image: &img,
            maps: &[],
            rodata_sizes: &[],
            limits: Limits::default(),
        })
    };
    let ins = |opc, dst, src, off, imm| Insn {
        opc,
        dst,
        src,
        off,
        imm,
    };
    let exit = [ins(0xb7, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)];
    for (bad, why) in [
        (ins(0x0d, 0, 0, 0, 0), "malformed goto"), // ja with the X bit
        (
            ins(0x07, 1, 2, 0, 1),
            "immediate operand with a source register",
        ),
        (
            ins(0x0f, 1, 2, 0, 1),
            "register operand with a non-zero immediate",
        ),
        (ins(0x67, 1, 0, 0, 64), "out of range for a 64-bit shift"),
        (ins(0x64, 1, 0, 0, 32), "out of range for a 32-bit shift"),
        (ins(0x37, 1, 0, 1, 3), "offset 1"),   // sdiv
        (ins(0xbf, 1, 2, 8, 0), "offset 8"),   // movsx
        (ins(0xd7, 1, 0, 0, 16), "ALU64 END"), // bswap
        (ins(0x84, 1, 0, 0, 5), "neg takes no operand"),
        (ins(0x81, 1, 2, 0, 0), "sign-extending"), // ldxsw (MEMSX)
        (ins(0x61, 1, 2, 0, 7), "non-zero immediate"),
        (ins(0x72, 10, 3, -8, 0), "with a source register"),
        (ins(0xe5, 1, 0, 0, 0), "unknown jump"),
        (ins(0x95, 0, 0, 0, 1), "malformed exit"),
        (ins(0x06, 0, 0, 0, 0), "gotol"),
    ] {
        let e = raw(&[bad, exit[0], exit[1]]).expect_err(why);
        assert_eq!(e.insn, 0, "{why}: {e}");
        assert!(e.reason.to_string().contains(why), "{why}: {e}");
    }
    // Nothing may write r10, lddw included.
    let e = raw(&[ins(0x18, 10, 0, 0, 1), ins(0, 0, 0, 0, 0), exit[0], exit[1]]).unwrap_err();
    assert!(e.reason.to_string().contains("r10"), "{e}");
}
