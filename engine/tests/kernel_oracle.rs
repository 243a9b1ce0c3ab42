//! The kernel oracle (tests/oracle) against semantics the kernel is known to
//! have (RFC 9669 and the kernel's own behaviour where the RFC leaves a
//! choice). These pin the harness itself: if one fails, either the harness
//! is broken or the kernel changed, and the differential tests built on the
//! oracle can't be trusted until it is understood.
//!
//! Without kernel BPF (not root, no syscall program type) each test prints a
//! loud SKIP line and returns; `RINGSIDE_REQUIRE_KERNEL_ORACLE=1` makes that
//! a failure instead.

mod oracle;

use oracle::{Insn, KernelProgram, OracleError, run_in_kernel, run_many};
use std::time::Instant;

/// Return early (after the SKIP line) when the kernel can't be the oracle.
macro_rules! need_kernel {
    ($name:literal) => {
        if !oracle::skip_unless_available(concat!("kernel_oracle::", $name)) {
            return;
        }
    };
}

// A tiny assembler: enough to write the bodies below readably.

const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;
const K: u8 = 0x00;
const X: u8 = 0x08;

const ADD: u8 = 0x00;
const DIV: u8 = 0x30;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const NEG: u8 = 0x80;
const MOD: u8 = 0x90;
const MOV: u8 = 0xb0;
const ARSH: u8 = 0xc0;
const END: u8 = 0xd0;
/// With END in class ALU: to little endian (`le`); the other is `be`.
const TO_LE: u8 = 0x00;
const TO_BE: u8 = 0x08;

const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JSLT: u8 = 0xc0;
const EXIT: u8 = 0x90;
const CALL: u8 = 0x80;

fn i(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    let o = off.to_le_bytes();
    let m = imm.to_le_bytes();
    [code, (src << 4) | dst, o[0], o[1], m[0], m[1], m[2], m[3]]
}

/// `dst op= src` (class ALU or ALU64).
fn alu_x(class: u8, op: u8, dst: u8, src: u8) -> Insn {
    i(class | op | X, dst, src, 0, 0)
}

/// `dst op= imm`.
fn alu_k(class: u8, op: u8, dst: u8, imm: i32) -> Insn {
    i(class | op | K, dst, 0, 0, imm)
}

/// Signed division/modulo (cpu v4): DIV/MOD with offset 1.
fn salu_x(class: u8, op: u8, dst: u8, src: u8) -> Insn {
    i(class | op | X, dst, src, 1, 0)
}

/// `dst = (s8/s16/s32) src` (cpu v4 movsx): MOV with offset 8, 16 or 32.
fn movsx(class: u8, dst: u8, src: u8, bits: i16) -> Insn {
    i(class | MOV | X, dst, src, bits, 0)
}

/// `if dst op imm goto +off`.
fn jmp_k(class: u8, op: u8, dst: u8, imm: i32, off: i16) -> Insn {
    i(class | op | K, dst, 0, off, imm)
}

/// `if dst op src goto +off`.
fn jmp_x(class: u8, op: u8, dst: u8, src: u8, off: i16) -> Insn {
    i(class | op | X, dst, src, off, 0)
}

fn ja(off: i16) -> Insn {
    i(JMP | JA, 0, 0, off, 0)
}

fn mov64(dst: u8, imm: i32) -> Insn {
    alu_k(ALU64, MOV, dst, imm)
}

/// The registers every test starts from unless it says otherwise: distinct,
/// with the upper halves set, so a body that touches the wrong register or
/// forgets to zero-extend shows.
fn base() -> [u64; 10] {
    std::array::from_fn(|r| 0xa5a5_5a5a_0000_0000 | (0x1111 * r as u64))
}

/// `base()` with some registers replaced.
fn regs(set: &[(usize, u64)]) -> [u64; 10] {
    let mut r = base();
    for &(i, v) in set {
        r[i] = v;
    }
    r
}

fn run(body: &[Insn], regs: [u64; 10]) -> [u64; 10] {
    run_in_kernel(body, regs).unwrap_or_else(|e| panic!("{e}"))
}

/// Run `body` on `input` and check that the registers come out as `input`
/// with `changed` applied (so every other register is checked unchanged).
fn check(body: &[Insn], input: [u64; 10], changed: &[(usize, u64)]) {
    let mut want = input;
    for &(r, v) in changed {
        want[r] = v;
    }
    let got = run(body, input);
    assert_eq!(
        got, want,
        "body {body:02x?}\n  in   {input:#x?}\n  got  {got:#x?}\n  want {want:#x?}"
    );
}

/// The verifier's log and errno for a body it must refuse.
fn rejected(body: &[Insn]) -> (String, i32) {
    match run_in_kernel(body, base()) {
        Err(OracleError::Rejected { log, errno }) => (log, errno),
        other => panic!("expected a verifier rejection of {body:02x?}, got {other:?}"),
    }
}

#[test]
fn empty_body_returns_every_register_as_given() {
    need_kernel!("empty_body_returns_every_register_as_given");
    for input in [
        base(),
        [0; 10],
        [u64::MAX; 10],
        std::array::from_fn(|r| 0x8000_0000_0000_0000 >> r),
    ] {
        check(&[], input, &[]);
    }
}

#[test]
fn every_register_is_an_output() {
    need_kernel!("every_register_is_an_output");
    let body: Vec<Insn> = (0..10).map(|r| mov64(r, -(r as i32) - 1)).collect();
    let want: Vec<(usize, u64)> = (0..10).map(|r| (r, (-(r as i64) - 1) as u64)).collect();
    check(&body, base(), &want);
}

#[test]
fn every_register_is_an_input() {
    need_kernel!("every_register_is_an_input");
    // r0 = r0 + r1 + ... + r9: each input lands in its own nibble.
    let body: Vec<Insn> = (1..10).map(|r| alu_x(ALU64, ADD, 0, r)).collect();
    let input: [u64; 10] = std::array::from_fn(|r| 1 << (4 * r));
    check(&body, input, &[(0, 0x11_1111_1111)]);
}

#[test]
fn mod32_by_zero_leaves_the_low_half_zero_extended() {
    need_kernel!("mod32_by_zero_leaves_the_low_half_zero_extended");
    let body = [alu_x(ALU, MOD, 0, 2)];
    check(&body, regs(&[(0, u64::MAX), (2, 0)]), &[(0, 0xffff_ffff)]);
    // Only the low half of the divisor counts: 1 << 32 is zero as a w-reg.
    check(
        &body,
        regs(&[(0, 0x1234_5678_9abc_def0), (2, 1 << 32)]),
        &[(0, 0x9abc_def0)],
    );
}

#[test]
fn div_by_zero_gives_zero() {
    need_kernel!("div_by_zero_gives_zero");
    check(
        &[alu_x(ALU64, DIV, 0, 2)],
        regs(&[(0, u64::MAX), (2, 0)]),
        &[(0, 0)],
    );
    check(
        &[alu_x(ALU, DIV, 0, 2)],
        regs(&[(0, u64::MAX), (2, 0xffff_ffff_0000_0000)]),
        &[(0, 0)],
    );
}

#[test]
fn mod64_by_zero_leaves_dst_unchanged() {
    need_kernel!("mod64_by_zero_leaves_dst_unchanged");
    check(
        &[alu_x(ALU64, MOD, 0, 2)],
        regs(&[(0, 0xdead_beef_cafe_f00d), (2, 0)]),
        &[],
    );
}

#[test]
fn signed_division_and_modulo() {
    need_kernel!("signed_division_and_modulo");
    let min = i64::MIN as u64;
    let m1 = u64::MAX; // -1
    // INT_MIN / -1 wraps to INT_MIN, INT_MIN % -1 is 0 (no trap).
    check(&[salu_x(ALU64, DIV, 0, 2)], regs(&[(0, min), (2, m1)]), &[]);
    check(
        &[salu_x(ALU64, MOD, 0, 2)],
        regs(&[(0, min), (2, m1)]),
        &[(0, 0)],
    );
    // Truncating toward zero; the remainder takes the dividend's sign.
    check(
        &[salu_x(ALU64, DIV, 0, 2)],
        regs(&[(0, -7i64 as u64), (2, 2)]),
        &[(0, -3i64 as u64)],
    );
    check(
        &[salu_x(ALU64, MOD, 0, 2)],
        regs(&[(0, -7i64 as u64), (2, 2)]),
        &[(0, -1i64 as u64)],
    );
    check(
        &[salu_x(ALU64, MOD, 0, 2)],
        regs(&[(0, 7), (2, -2i64 as u64)]),
        &[(0, 1)],
    );
    // By zero: as unsigned (quotient 0, remainder = dividend).
    check(
        &[salu_x(ALU64, DIV, 0, 2)],
        regs(&[(0, min), (2, 0)]),
        &[(0, 0)],
    );
    check(&[salu_x(ALU64, MOD, 0, 2)], regs(&[(0, min), (2, 0)]), &[]);
    // 32-bit: on the low halves, zero-extended.
    check(
        &[salu_x(ALU, DIV, 0, 2)],
        regs(&[(0, 0xffff_ffff_8000_0000), (2, 0xffff_ffff)]),
        &[(0, 0x8000_0000)],
    );
    check(
        &[salu_x(ALU, MOD, 0, 2)],
        regs(&[(0, 0x1234_5678_ffff_fff9), (2, 2)]),
        &[(0, 0xffff_ffff)],
    );
    check(
        &[salu_x(ALU, MOD, 0, 2)],
        regs(&[(0, 0x1234_5678_ffff_fff9), (2, 0)]),
        &[(0, 0xffff_fff9)],
    );
}

#[test]
fn mov32_zero_extends() {
    need_kernel!("mov32_zero_extends");
    check(
        &[alu_x(ALU, MOV, 0, 1)],
        regs(&[(0, u64::MAX), (1, 0xffff_ffff_8000_0001)]),
        &[(0, 0x8000_0001)],
    );
    // mov32 with a negative immediate: the low half only.
    check(&[alu_k(ALU, MOV, 0, -1)], base(), &[(0, 0xffff_ffff)]);
    // mov64 with a negative immediate sign-extends it.
    check(&[mov64(0, -1)], base(), &[(0, u64::MAX)]);
    // w0 = w0 clears the upper half (the kernel does not treat it as a nop).
    check(
        &[alu_x(ALU, MOV, 0, 0)],
        regs(&[(0, 0xffff_ffff_1234_5678)]),
        &[(0, 0x1234_5678)],
    );
}

#[test]
fn movsx_sign_extends() {
    need_kernel!("movsx_sign_extends");
    let v = 0x1234_5678_9abc_de80;
    check(
        &[movsx(ALU64, 0, 1, 8)],
        regs(&[(1, v)]),
        &[(0, 0xffff_ffff_ffff_ff80)],
    );
    check(
        &[movsx(ALU64, 0, 1, 16)],
        regs(&[(1, v)]),
        &[(0, 0xffff_ffff_ffff_de80)],
    );
    check(
        &[movsx(ALU64, 0, 1, 32)],
        regs(&[(1, v)]),
        &[(0, 0xffff_ffff_9abc_de80)],
    );
    // 32-bit movsx sign-extends into the low half, then zero-extends.
    check(&[movsx(ALU, 0, 1, 8)], regs(&[(1, v)]), &[(0, 0xffff_ff80)]);
    check(
        &[movsx(ALU, 0, 1, 16)],
        regs(&[(1, v)]),
        &[(0, 0xffff_de80)],
    );
}

#[test]
fn byte_swaps() {
    need_kernel!("byte_swaps");
    let v = 0x1122_3344_5566_7788;
    let r = regs(&[(0, v)]);
    // `le` on a little-endian machine: truncate (zero-extend) only.
    check(&[alu_k(ALU, END | TO_LE, 0, 16)], r, &[(0, 0x7788)]);
    check(&[alu_k(ALU, END | TO_LE, 0, 32)], r, &[(0, 0x5566_7788)]);
    check(&[alu_k(ALU, END | TO_LE, 0, 64)], r, &[]);
    // `be`: swap the low 16/32/64 bits, zero the rest.
    check(&[alu_k(ALU, END | TO_BE, 0, 16)], r, &[(0, 0x8877)]);
    check(&[alu_k(ALU, END | TO_BE, 0, 32)], r, &[(0, 0x8877_6655)]);
    check(
        &[alu_k(ALU, END | TO_BE, 0, 64)],
        r,
        &[(0, 0x8877_6655_4433_2211)],
    );
    // cpu v4 unconditional bswap (class ALU64): swaps whatever the host.
    check(&[alu_k(ALU64, END, 0, 16)], r, &[(0, 0x8877)]);
    check(&[alu_k(ALU64, END, 0, 32)], r, &[(0, 0x8877_6655)]);
    check(
        &[alu_k(ALU64, END, 0, 64)],
        r,
        &[(0, 0x8877_6655_4433_2211)],
    );
}

#[test]
fn arithmetic_shift_right() {
    need_kernel!("arithmetic_shift_right");
    let min = 0x8000_0000_0000_0000;
    check(
        &[alu_k(ALU64, ARSH, 0, 63)],
        regs(&[(0, min)]),
        &[(0, u64::MAX)],
    );
    check(
        &[alu_k(ALU64, ARSH, 0, 4)],
        regs(&[(0, min | 0x10)]),
        &[(0, 0xf800_0000_0000_0001)],
    );
    // 32-bit: the sign is bit 31, the upper half of the input is ignored
    // and the result zero-extended.
    check(
        &[alu_k(ALU, ARSH, 0, 4)],
        regs(&[(0, 0x0000_0001_8000_0000)]),
        &[(0, 0xf800_0000)],
    );
    check(
        &[alu_k(ALU, ARSH, 0, 4)],
        regs(&[(0, 0xffff_ffff_7000_0000)]),
        &[(0, 0x0700_0000)],
    );
    // By register: the amount is masked (63 for 64-bit, 31 for 32-bit).
    check(
        &[alu_x(ALU64, ARSH, 0, 2)],
        regs(&[(0, min), (2, 64 + 60)]),
        &[(0, 0xffff_ffff_ffff_fff8)],
    );
    check(
        &[alu_x(ALU, ARSH, 0, 2)],
        regs(&[(0, 0x8000_0000), (2, 32 + 28)]),
        &[(0, 0xffff_fff8)],
    );
}

#[test]
fn shift_by_register_masks_the_amount() {
    need_kernel!("shift_by_register_masks_the_amount");
    check(
        &[alu_x(ALU64, LSH, 0, 2)],
        regs(&[(0, 1), (2, 65)]),
        &[(0, 2)],
    );
    check(
        &[alu_x(ALU64, LSH, 0, 2)],
        regs(&[(0, 3), (2, 64)]),
        &[(0, 3)],
    );
    check(
        &[alu_x(ALU64, RSH, 0, 2)],
        regs(&[(0, 0x8000_0000_0000_0000), (2, u64::MAX)]),
        &[(0, 1)],
    );
    // 32-bit: masked by 31, only the low half of r0 shifted, zero-extended.
    check(
        &[alu_x(ALU, LSH, 0, 2)],
        regs(&[(0, 0xffff_ffff_0000_0001), (2, 33)]),
        &[(0, 2)],
    );
    check(
        &[alu_x(ALU, RSH, 0, 2)],
        regs(&[(0, 0xffff_ffff_8000_0000), (2, 32 + 31)]),
        &[(0, 1)],
    );
}

#[test]
fn neg() {
    need_kernel!("neg");
    check(
        &[alu_k(ALU, NEG, 0, 0)],
        regs(&[(0, 1)]),
        &[(0, 0xffff_ffff)],
    );
    check(
        &[alu_k(ALU, NEG, 0, 0)],
        regs(&[(0, 0xffff_ffff_0000_0000)]),
        &[(0, 0)],
    );
    check(
        &[alu_k(ALU64, NEG, 0, 0)],
        regs(&[(0, 1)]),
        &[(0, u64::MAX)],
    );
    // -INT_MIN wraps to INT_MIN.
    let min = 0x8000_0000_0000_0000;
    check(&[alu_k(ALU64, NEG, 0, 0)], regs(&[(0, min)]), &[]);
}

#[test]
fn alu32_wraps_and_zero_extends() {
    need_kernel!("alu32_wraps_and_zero_extends");
    check(
        &[alu_x(ALU, ADD, 0, 1)],
        regs(&[(0, 0xffff_ffff_ffff_ffff), (1, 0x1234_5678_0000_0002)]),
        &[(0, 1)],
    );
    // add64 with a negative immediate sign-extends it.
    check(
        &[alu_k(ALU64, ADD, 0, -1)],
        regs(&[(0, 0)]),
        &[(0, u64::MAX)],
    );
}

/// `if r1 <op> <operand> goto taken`: r0 = 1 when the branch is taken, 2
/// when not; the body ends with a jump to `body.len()` ("exit").
fn branch(cond: Insn) -> [Insn; 4] {
    [cond, mov64(0, 2), ja(1), mov64(0, 1)]
}

fn taken(cond: Insn, input: [u64; 10]) -> bool {
    let out = run(&branch(cond), input);
    match out[0] {
        1 => true,
        2 => false,
        v => panic!("r0 = {v:#x}: neither branch ran"),
    }
}

// The conditional jump in `branch` skips two instructions.
const TAKEN_OFF: i16 = 2;

#[test]
fn jeq_sign_extends_a_negative_immediate() {
    need_kernel!("jeq_sign_extends_a_negative_immediate");
    let jeq = jmp_k(JMP, JEQ, 1, -1, TAKEN_OFF);
    assert!(taken(jeq, regs(&[(1, u64::MAX)])));
    assert!(!taken(jeq, regs(&[(1, 0xffff_ffff)])));
    // Unsigned compares see the sign-extended immediate too.
    let jgt = jmp_k(JMP, JGT, 1, -2, TAKEN_OFF);
    assert!(taken(jgt, regs(&[(1, u64::MAX)])));
    assert!(!taken(jgt, regs(&[(1, 0xffff_ffff)])));
    // jmp32: the immediate is 32 bits, only the low half of r1 compared.
    let jeq32 = jmp_k(JMP32, JEQ, 1, -1, TAKEN_OFF);
    assert!(taken(jeq32, regs(&[(1, 0xffff_ffff)])));
    assert!(taken(jeq32, regs(&[(1, 0x1234_5678_ffff_ffff)])));
}

#[test]
fn jmp32_compares_the_low_halves() {
    need_kernel!("jmp32_compares_the_low_halves");
    let input = regs(&[(1, 1 << 32), (2, 1)]);
    assert!(taken(jmp_x(JMP, JGT, 1, 2, TAKEN_OFF), input));
    assert!(!taken(jmp_x(JMP32, JGT, 1, 2, TAKEN_OFF), input));
    // Signed 32-bit: 0x0000_0000_8000_0000 is negative as a w-reg only.
    let input = regs(&[(1, 0x8000_0000), (2, 0)]);
    assert!(!taken(jmp_x(JMP, JSLT, 1, 2, TAKEN_OFF), input));
    assert!(taken(jmp_x(JMP32, JSLT, 1, 2, TAKEN_OFF), input));
    assert!(taken(jmp_k(JMP32, JSLT, 1, 0, TAKEN_OFF), input));
}

#[test]
fn exit_in_the_body_reports_the_registers() {
    need_kernel!("exit_in_the_body_reports_the_registers");
    let body = [
        mov64(3, 33),
        jmp_k(JMP, JEQ, 1, 0, 2),
        mov64(4, 44),
        i(JMP | EXIT, 0, 0, 0, 0),
        mov64(5, 55),
    ];
    check(&body, regs(&[(1, 1)]), &[(3, 33), (4, 44)]);
    check(&body, regs(&[(1, 0)]), &[(3, 33), (5, 55)]);
}

#[test]
fn lddw_takes_two_slots() {
    need_kernel!("lddw_takes_two_slots");
    let v: u64 = 0x0123_4567_89ab_cdef;
    let body = [
        jmp_k(JMP, JEQ, 1, 0, 2),
        i(0x18, 0, 0, 0, v as u32 as i32),
        i(0, 0, 0, 0, (v >> 32) as u32 as i32),
        ja(0),
    ];
    check(&body, regs(&[(1, 1)]), &[(0, v)]);
    check(&body, regs(&[(1, 0)]), &[]);
}

#[test]
fn long_bodies_exit_through_gotol() {
    need_kernel!("long_bodies_exit_through_gotol");
    // An `exit` more than i16::MAX slots before the end is rewritten into a
    // `gotol` (cpu v4 JMP32 | JA, 32-bit offset in imm).
    let mut body = vec![jmp_k(JMP, JEQ, 1, 0, 1), i(JMP | EXIT, 0, 0, 0, 0)];
    body.extend((0..40_000).map(|n| mov64(3, n)));
    check(&body, regs(&[(1, 1)]), &[]);
    check(&body, regs(&[(1, 0)]), &[(3, 39_999)]);
}

#[test]
fn backward_jumps_and_bounded_loops() {
    need_kernel!("backward_jumps_and_bounded_loops");
    // r0 = 0; do { r0 += 3 } while (r0 < 30): the kernel's verifier walks
    // bounded loops (ringside's does not accept them).
    let body = [
        mov64(0, 0),
        alu_k(ALU64, ADD, 0, 3),
        jmp_k(JMP, 0xa0, 0, 30, -2), // jlt
    ];
    check(&body, base(), &[(0, 30)]);
}

#[test]
fn the_body_may_use_the_stack_above_the_harness_slot() {
    need_kernel!("the_body_may_use_the_stack_above_the_harness_slot");
    let stx = |off: i16, src: u8| i(0x7b, 10, src, off, 0);
    let ldx = |dst: u8, off: i16| i(0x79, dst, 10, off, 0);
    let body = [stx(-8, 1), stx(-504, 2), ldx(0, -8), ldx(3, -504)];
    let input = base();
    check(&body, input, &[(0, input[1]), (3, input[2])]);
    // Overwriting the spilled ctx pointer can't give wrong results: the
    // epilogue would dereference a number, and the verifier says no.
    rejected(&[stx(-512, 1)]);
}

#[test]
fn the_verifier_refuses_what_it_refuses() {
    need_kernel!("the_verifier_refuses_what_it_refuses");
    let (einval, eacces) = (libc::EINVAL, libc::EACCES);
    // Log lines number the wrapped program: body insn N is N + BODY_START.
    let at0 = format!("{}: ", oracle::BODY_START);
    for (body, errno, says) in [
        (vec![alu_k(ALU64, LSH, 0, 64)], einval, "invalid shift 64"),
        (vec![alu_k(ALU, LSH, 0, 32)], einval, "invalid shift 32"),
        (vec![alu_k(ALU64, DIV, 0, 0)], einval, "div by zero"),
        (vec![alu_k(ALU, MOD, 0, 0)], einval, "div by zero"),
        (vec![mov64(10, 0)], eacces, "frame pointer is read only"),
        (vec![i(0xff, 0, 0, 0, 0)], einval, "unknown opcode ff"),
    ] {
        let (log, got) = rejected(&body);
        assert!(log.contains(says), "{body:02x?}: wanted {says:?} in\n{log}");
        assert_eq!(got, errno, "{body:02x?}: errno; log:\n{log}");
        if errno == eacces {
            assert!(log.contains(&at0), "{body:02x?}: wanted {at0:?} in\n{log}");
        }
    }
    // Dead code is an error, not an optimisation opportunity.
    let (log, _) = rejected(&[ja(1), mov64(0, 1)]);
    assert!(
        log.contains(&format!("unreachable insn {}", oracle::BODY_START + 1)),
        "{log}"
    );
    // A body that never finishes leaves the epilogue unreachable.
    let (log, _) = rejected(&[ja(-1)]);
    assert!(
        log.contains(&format!("unreachable insn {}", oracle::BODY_START + 1)),
        "{log}"
    );
}

/// A privileged program may read stack it never wrote (the verifier allows
/// it for CAP_PERFMON), and gets whatever the kernel left there, often a
/// kernel address. ringside rejects such reads; a differential test must
/// not compare their values.
#[test]
fn privileged_programs_may_read_uninitialised_stack() {
    need_kernel!("privileged_programs_may_read_uninitialised_stack");
    let out = run(&[i(0x79, 0, 10, -8, 0)], base());
    assert_eq!(out[1..], base()[1..]);
}

#[test]
fn the_harness_refuses_what_it_cannot_report() {
    need_kernel!("the_harness_refuses_what_it_cannot_report");
    for body in [
        vec![ja(1)],                      // past "exit"
        vec![ja(-2)],                     // into the prologue
        vec![jmp_k(JMP, JEQ, 0, 0, 5)],   // conditional, past the end
        vec![i(JMP | CALL, 0, 0, 0, 5)],  // helper call (ktime_get_ns)
        vec![i(0x18, 0, 0, 0, 1)],        // lddw without its second half
        vec![i(JMP32 | JA, 0, 0, 0, 10)], // gotol past the end
    ] {
        match run_in_kernel(&body, base()) {
            Err(OracleError::InvalidBody(_)) => {}
            other => panic!("{body:02x?}: expected InvalidBody, got {other:?}"),
        }
    }
}

#[test]
fn a_loaded_program_runs_many_times() {
    need_kernel!("a_loaded_program_runs_many_times");
    let prog = KernelProgram::load(&[alu_x(ALU64, MOD, 0, 2)]).unwrap();
    for (a, b) in [(10u64, 3u64), (u64::MAX, 7), (5, 0), (0, 5)] {
        let want = if b == 0 { a } else { a % b };
        assert_eq!(prog.run(regs(&[(0, a), (2, b)])).unwrap()[0], want);
    }
}

/// Thousands of programs per CI run must be affordable: load+run rate of
/// `run_many`, and the run-only rate of a loaded program, printed (not
/// asserted: shared CI machines vary). Every result is checked.
#[test]
fn run_many_throughput() {
    need_kernel!("run_many_throughput");
    const N: usize = 2000;
    let ops = [ADD, 0x10, 0x20, DIV, 0x40, 0x50, LSH, RSH, MOD, 0xa0, ARSH];
    let bodies: Vec<[Insn; 2]> = (0..N)
        .map(|n| {
            let op = ops[n % ops.len()];
            let class = if n % 2 == 0 { ALU64 } else { ALU };
            [alu_k(ALU64, ADD, 0, n as i32), alu_x(class, op, 0, 2)]
        })
        .collect();
    let inputs: Vec<[u64; 10]> = (0..N)
        .map(|n| regs(&[(0, 0xfedc_ba98_7654_3210), (2, (n as u64 * 7919) % 131)]))
        .collect();

    let t = Instant::now();
    let results = run_many(bodies.iter().zip(&inputs).map(|(b, r)| (&b[..], *r)));
    let load_run = t.elapsed();

    for (n, res) in results.iter().enumerate() {
        let out = res.as_ref().unwrap_or_else(|e| panic!("case {n}: {e}"));
        let (a, b) = (inputs[n][0].wrapping_add(n as u64), inputs[n][2]);
        let op = ops[n % ops.len()];
        let want = if n % 2 == 0 {
            alu64(op, a, b)
        } else {
            alu32(op, a, b)
        };
        assert_eq!(out[0], want, "case {n}: op {op:#x} on {a:#x}, {b:#x}");
        assert_eq!(out[1..], inputs[n][1..], "case {n}");
    }

    let prog = KernelProgram::load(&bodies[0]).unwrap();
    let t = Instant::now();
    for r in &inputs {
        prog.run(*r).unwrap();
    }
    let run_only = t.elapsed();

    // Straight to fd 2 (libtest captures eprintln!), so the rate shows in
    // every run's log.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "kernel_oracle: run_many loaded+ran {N} programs in {load_run:?} ({:.0} programs/s); \
         one loaded program ran {N} times in {run_only:?} ({:.0} runs/s)\n",
            N as f64 / load_run.as_secs_f64(),
            N as f64 / run_only.as_secs_f64(),
        )
        .as_bytes(),
    );
}

/// The kernel's 64-bit ALU, as RFC 9669 specifies it, for the ops above.
fn alu64(op: u8, a: u64, b: u64) -> u64 {
    match op {
        ADD => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        DIV => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        LSH => a << (b & 63),
        RSH => a >> (b & 63),
        MOD => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        ARSH => ((a as i64) >> (b & 63)) as u64,
        _ => unreachable!(),
    }
}

/// The 32-bit ALU: low halves in, result zero-extended.
fn alu32(op: u8, a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    u64::from(match op {
        ADD => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        DIV => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        LSH => a << (b & 31),
        RSH => a >> (b & 31),
        MOD => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        ARSH => ((a as i32) >> (b & 31)) as u32,
        _ => unreachable!(),
    })
}
