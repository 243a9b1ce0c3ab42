//! Compiled code against isa.rs and the interpreter.
use super::*;
use crate::program::interp;
use crate::program::mem::AddrSpace;
use crate::program::vm::HelperHost;
use std::collections::BTreeSet;

// ---- building programs ------------------------------------------------

/// Size bits of an 8-byte load or store.
const DW: u8 = 0x18;

fn ins(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        opc,
        dst,
        src,
        off,
        imm,
    }
}

const EXIT: Insn = Insn {
    opc: isa::EXIT,
    dst: 0,
    src: 0,
    off: 0,
    imm: 0,
};

fn mov(dst: u8, src: u8) -> Insn {
    ins(class::ALU64 | alu::MOV | isa::SRC_X, dst, src, 0, 0)
}

fn mov_imm(dst: u8, imm: i32) -> Insn {
    ins(class::ALU64 | alu::MOV, dst, 0, 0, imm)
}

fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(class::LDX | isa::MODE_MEM | size, dst, src, off, 0)
}

fn stx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    ins(class::STX | isa::MODE_MEM | size, dst, src, off, 0)
}

fn lddw(dst: u8, v: u64) -> [Insn; 2] {
    [
        ins(isa::LDDW, dst, 0, 0, v as u32 as i32),
        ins(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}

fn code(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.encode()).collect()
}

fn compile(code: &[u8]) -> Compiled {
    Compiled::new(code, &|_| None).unwrap_or_else(|e| panic!("refused: {e}"))
}

/// Edge operands: zero, one, all ones, the sign bits, shift counts
/// around both widths, a 64-bit value whose low half is zero (a 32-bit
/// division by zero), and a few ordinary ones.
const VALS: [u64; 22] = [
    0,
    1,
    2,
    7,
    31,
    32,
    33,
    63,
    64,
    65,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x1234_5678_9abc_def0,
    0x00ff_ff00_8765_4321,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
    u64::MAX - 1,
    0xffff_ffff_8000_0000,
    0x8000_0000_0000_0001,
];

/// Edge immediates (sign-extended for 64-bit operations and jumps).
const IMMS: [i32; 12] = [
    0,
    1,
    -1,
    2,
    7,
    31,
    32,
    63,
    i32::MIN,
    i32::MAX,
    0x1234_5678,
    -0x8000,
];

struct NoHelpers;
impl HelperHost for NoHelpers {
    fn call(&mut self, id: u32, _: [u64; 5], _: &AddrSpace<'_>) -> u64 {
        panic!("unexpected helper call {id}")
    }
}

/// r0 of compiled code over `ctx`, with a fresh stack and no helpers.
fn run_native(c: &Compiled, ctx: &[u8; 64]) -> u64 {
    let mut stack = [0u8; 512];
    // SAFETY: the test programs are built to touch only the 64 ctx
    // bytes and the 512 stack bytes below its top (the interpreter, which
    // checks every access, runs each of them too), and call no helper,
    // so the null frame is never used.
    unsafe {
        c.run(
            ctx.as_ptr(),
            stack.as_mut_ptr().add(stack.len()),
            std::ptr::null_mut(),
        )
    }
}

fn run_interp(code: &[u8], ctx: &[u8; 64]) -> u64 {
    let mut cx = *ctx;
    interp::run(code, &mut cx, &[], &mut NoHelpers, Some(100_000), None)
        .unwrap_or_else(|e| panic!("interpreter: {e}"))
        .ret
}

fn ctx_with(a: u64, b: u64) -> [u8; 64] {
    let mut c = [0u8; 64];
    for (i, x) in c.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    c[..8].copy_from_slice(&a.to_le_bytes());
    c[8..16].copy_from_slice(&b.to_le_bytes());
    c
}

/// Compiled code, the interpreter and `expected` agree on r0 for every
/// (a, b) loaded from the context.
#[track_caller]
fn agree(prog: &[Insn], pairs: &[(u64, u64)], expected: impl Fn(u64, u64) -> u64) {
    let code = code(prog);
    let c = compile(&code);
    for &(a, b) in pairs {
        let ctx = ctx_with(a, b);
        let want = expected(a, b);
        let native = run_native(&c, &ctx);
        let reference = run_interp(&code, &ctx);
        assert_eq!(
            (native, reference),
            (want, want),
            "(compiled, interpreter) for a={a:#x} b={b:#x}: {prog:?}"
        );
    }
}

fn all_pairs() -> Vec<(u64, u64)> {
    VALS.iter()
        .flat_map(|&a| VALS.iter().map(move |&b| (a, b)))
        .collect()
}

fn singles() -> Vec<(u64, u64)> {
    VALS.iter().map(|&a| (a, 0)).collect()
}

#[track_caller]
fn accepted(i: &Insn) -> bool {
    isa::check_encoding(i, Some(&ins(0, 0, 0, 0, 0))).is_ok()
}

// ---- (d) every encoding check_encoding accepts --------------------------

/// Every opcode byte check_encoding accepts with some fields.
fn accepted_opcodes() -> BTreeSet<u8> {
    let mut set = BTreeSet::new();
    for opc in 0..=255u8 {
        'found: for dst in 0..=10 {
            for src in 0..=10 {
                for off in [0i16, 1, -1] {
                    for imm in [0, 1, 16, 32, 64, -1] {
                        if accepted(&ins(opc, dst, src, off, imm)) {
                            set.insert(opc);
                            break 'found;
                        }
                    }
                }
            }
        }
    }
    set
}

/// Register pairs (dst, src): distinct, r0 as dst, and the same register.
const PAIRS: [(u8, u8); 3] = [(2, 3), (0, 9), (7, 7)];

fn check_alu(opc: u8) {
    let op = opc & 0xf0;
    let is64 = opc & 0x07 == class::ALU64;
    for (dst, src) in PAIRS {
        if op == alu::END {
            for width in [16, 32, 64] {
                let i = ins(opc, dst, 0, 0, width);
                assert!(accepted(&i), "{i:?}");
                agree(
                    &[ldx(DW, dst, 1, 0), i, mov(0, dst), EXIT],
                    &singles(),
                    |a, _| isa::eval_end(opc, width, a),
                );
            }
        } else if op == alu::NEG {
            let i = ins(opc, dst, 0, 0, 0);
            assert!(accepted(&i), "{i:?}");
            agree(
                &[ldx(DW, dst, 1, 0), i, mov(0, dst), EXIT],
                &singles(),
                |a, _| isa::eval_alu(op, is64, a, 0),
            );
        } else if opc & isa::SRC_X != 0 {
            let i = ins(opc, dst, src, 0, 0);
            assert!(accepted(&i), "{i:?}");
            agree(
                &[ldx(DW, src, 1, 8), ldx(DW, dst, 1, 0), i, mov(0, dst), EXIT],
                &all_pairs(),
                |a, b| isa::eval_alu(op, is64, a, if dst == src { a } else { b }),
            );
        } else if dst != src {
            for imm in IMMS {
                let i = ins(opc, dst, 0, 0, imm);
                if !accepted(&i) {
                    // Division by a constant 0, shifts out of range.
                    continue;
                }
                agree(
                    &[ldx(DW, dst, 1, 0), i, mov(0, dst), EXIT],
                    &singles(),
                    |a, _| isa::eval_alu(op, is64, a, imm as i64 as u64),
                );
            }
        }
    }
}

fn check_cond_jump(opc: u8) {
    for (dst, src) in PAIRS {
        let program = |j: Insn| {
            vec![
                ldx(DW, src, 1, 8),
                ldx(DW, dst, 1, 0),
                j,
                mov_imm(0, 0),
                EXIT,
                mov_imm(0, 1),
                EXIT,
            ]
        };
        if opc & isa::SRC_X != 0 {
            let j = ins(opc, dst, src, 2, 0);
            assert!(accepted(&j), "{j:?}");
            agree(&program(j), &all_pairs(), |a, b| {
                let b = if dst == src { a } else { b };
                isa::jump_taken(&j, a, b).expect("a conditional jump") as u64
            });
        } else if dst != src {
            for imm in IMMS {
                let j = ins(opc, dst, 0, 2, imm);
                assert!(accepted(&j), "{j:?}");
                agree(&program(j), &singles(), |a, _| {
                    isa::jump_taken(&j, a, 0).expect("a conditional jump") as u64
                });
            }
        }
    }
    // A jump to the next instruction goes there either way.
    let j = ins(opc, 2, if opc & isa::SRC_X != 0 { 3 } else { 0 }, 0, 0);
    agree(
        &[ldx(DW, 2, 1, 0), ldx(DW, 3, 1, 8), j, mov_imm(0, 5), EXIT],
        &all_pairs(),
        |_, _| 5,
    );
}

/// The bytes of the test context (`ctx_with`) at `off`, `size` long,
/// zero-extended.
fn ctx_bytes(ctx: &[u8; 64], off: usize, size: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..size].copy_from_slice(&ctx[off..off + size]);
    u64::from_le_bytes(b)
}

fn check_load(opc: u8) {
    let size = Insn::decode(&[opc, 0, 0, 0, 0, 0, 0, 0], 0).size();
    let sz = opc & 0x18;
    let ctx = ctx_with(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
    // From r1 itself (a context load at a constant offset), into r1 too.
    for (dst, off) in [
        (0u8, 0i16),
        (2, 1),
        (3, 3),
        (4, 7),
        (1, 13),
        (5, 64 - size as i16),
    ] {
        let i = ldx(sz, dst, 1, off);
        assert!(accepted(&i), "{i:?}");
        let prog = code(&[i, mov(0, dst), EXIT]);
        let c = compile(&prog);
        let want = ctx_bytes(&ctx, off as usize, size);
        assert_eq!(run_native(&c, &ctx), want, "{i:?}");
        assert_eq!(run_interp(&prog, &ctx), want, "{i:?}");
    }
    // From another register, with negative offsets.
    for off in [-32i16, -17, -(size as i16)] {
        let i = ldx(sz, 7, 6, off);
        let prog = code(&[
            mov(6, 1),
            ins(class::ALU64 | alu::ADD, 6, 0, 0, 32),
            i,
            mov(0, 7),
            EXIT,
        ]);
        let c = compile(&prog);
        let want = ctx_bytes(&ctx, (32 + off) as usize, size);
        assert_eq!(run_native(&c, &ctx), want, "{i:?}");
        assert_eq!(run_interp(&prog, &ctx), want, "{i:?}");
    }
}

/// A store of `size` bytes of `v` at `off` from r10 (or from r6 = r10),
/// over 16 stack bytes holding a pattern; both words read back.
fn check_store_with(store: impl Fn(u8, i16) -> Insn, size: usize, v: u64) {
    const PAT: u64 = 0xa5a5_5a5a_c3c3_3c3c;
    for base in [10u8, 6] {
        for off in [-16i16, -15, -11, -9, -8, -(size as i16)] {
            let mut want = [0u8; 16];
            want[..8].copy_from_slice(&PAT.to_le_bytes());
            want[8..].copy_from_slice(&PAT.to_le_bytes());
            let at = (16 + off) as usize;
            want[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
            for word in 0..2 {
                let mut p = Vec::new();
                p.extend(lddw(2, PAT));
                p.extend([
                    stx(DW, 10, 2, -16),
                    stx(DW, 10, 2, -8),
                    ldx(DW, 3, 1, 0),
                    mov(6, 10),
                    store(base, off),
                    ldx(DW, 0, 10, -16 + 8 * word),
                    EXIT,
                ]);
                let ctx = ctx_with(v, 0);
                let prog = code(&p);
                let c = compile(&prog);
                let w = word as usize * 8;
                let expect = u64::from_le_bytes(want[w..w + 8].try_into().expect("8"));
                assert_eq!(run_native(&c, &ctx), expect, "{:?}", store(base, off));
                assert_eq!(run_interp(&prog, &ctx), expect, "{:?}", store(base, off));
            }
        }
    }
}

fn check_store(opc: u8) {
    let size = Insn::decode(&[opc, 0, 0, 0, 0, 0, 0, 0], 0).size();
    if opc & 0x07 == class::STX {
        for v in [0x0102_0304_0506_0708u64, u64::MAX, 0x80] {
            check_store_with(
                |base, off| {
                    let i = ins(opc, base, 3, off, 0);
                    assert!(accepted(&i), "{i:?}");
                    i
                },
                size,
                v,
            );
        }
    } else {
        for imm in [0i32, -1, 0x1234_5678, i32::MIN, 0x80] {
            check_store_with(
                |base, off| {
                    let i = ins(opc, base, 0, off, imm);
                    assert!(accepted(&i), "{i:?}");
                    i
                },
                size,
                imm as i64 as u64,
            );
        }
    }
}

#[test]
fn every_accepted_encoding_means_what_isa_says() {
    let mut exercised = BTreeSet::new();
    for opc in accepted_opcodes() {
        match opc & 0x07 {
            class::ALU | class::ALU64 => check_alu(opc),
            class::LDX => check_load(opc),
            class::ST | class::STX => check_store(opc),
            class::LD => {
                for dst in [0u8, 5] {
                    let mut p = lddw(dst, 0).to_vec();
                    p.extend([mov(0, dst), EXIT]);
                    for v in VALS {
                        let [lo, hi] = lddw(dst, v);
                        p[0] = lo;
                        p[1] = hi;
                        agree(&p, &[(0, 0)], |_, _| v);
                    }
                }
            }
            _ => match opc {
                isa::JA => {
                    // Forward, and backward into a shared tail.
                    agree(
                        &[mov_imm(0, 1), ins(isa::JA, 0, 0, 1, 0), mov_imm(0, 2), EXIT],
                        &[(0, 0)],
                        |_, _| 1,
                    );
                    agree(
                        &[
                            ins(isa::JA, 0, 0, 2, 0),
                            mov_imm(0, 3),
                            EXIT,
                            ins(isa::JA, 0, 0, -3, 0),
                        ],
                        &[(0, 0)],
                        |_, _| 3,
                    );
                }
                isa::EXIT => agree(&[mov_imm(0, -7), EXIT], &[(0, 0)], |_, _| -7i64 as u64),
                // See helpers_get_the_frame_and_r1_to_r5.
                isa::CALL => {}
                _ => check_cond_jump(opc),
            },
        }
        exercised.insert(opc);
    }
    // Sanity: the set is the instruction set ringside runs (not empty
    // because of a mistake in the enumeration): ALU 27 (13 ops with an
    // immediate, 12 with a register, le, be), ALU64 25, JMP 25 (ja,
    // 11 compares twice, call, exit), JMP32 22, LDX/ST/STX 4 sizes each,
    // lddw.
    assert_eq!(exercised.len(), 112, "{exercised:x?}");
}

// ---- helpers ------------------------------------------------------------

thread_local! {
    static CALLS: std::cell::RefCell<Vec<(usize, [u64; 5], usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A helper entry that records its frame, its arguments and the
/// alignment of its stack, and returns a mix of them. (`unsafe` only to
/// have the [`HelperEntry`] type: it dereferences nothing.)
unsafe extern "C" fn recording(
    frame: *mut HostFrame<'_, '_>,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> u64 {
    // A 16-aligned local: rustc addresses it from the stack pointer
    // without realigning, so a misaligned call shows here.
    #[repr(align(16))]
    struct Aligned(#[allow(dead_code)] [u8; 16]);
    let local = std::hint::black_box(Aligned([0; 16]));
    let misalign = std::hint::black_box(&local) as *const Aligned as usize % 16;
    CALLS.with(|c| {
        c.borrow_mut()
            .push((frame as usize, [a1, a2, a3, a4, a5], misalign))
    });
    a1.wrapping_mul(3) ^ a5.rotate_left(7)
}

#[test]
fn helpers_get_the_frame_and_r1_to_r5() {
    let args: [u64; 5] = [
        0x1111_2222_3333_4444,
        u64::MAX,
        0,
        0x8000_0000,
        i64::MIN as u64,
    ];
    let mut p = Vec::new();
    // r6..r9 survive the calls: they are callee-saved in BPF.
    p.extend(lddw(6, 0x6666));
    p.extend(lddw(9, 0x9999_0000_0000));
    for (r, v) in args.iter().enumerate() {
        p.extend(lddw(r as u8 + 1, *v));
    }
    p.push(ins(isa::CALL, 0, 0, 0, 1));
    p.push(mov(7, 0));
    for (r, v) in args.iter().rev().enumerate() {
        p.extend(lddw(r as u8 + 1, *v));
    }
    p.push(ins(isa::CALL, 0, 0, 0, 0x1005));
    // r0 = second + first + r6 + r9
    p.push(ins(class::ALU64 | alu::ADD | isa::SRC_X, 0, 7, 0, 0));
    p.push(ins(class::ALU64 | alu::ADD | isa::SRC_X, 0, 6, 0, 0));
    p.push(ins(class::ALU64 | alu::ADD | isa::SRC_X, 0, 9, 0, 0));
    p.push(EXIT);
    let helpers = |id: u32| matches!(id, 1 | 0x1005).then_some(recording as HelperEntry);
    let c = Compiled::new(&code(&p), &helpers).unwrap();
    let frame = 0x5a5a_0000usize as *mut HostFrame<'_, '_>;
    let ctx = [0u8; 64];
    let mut stack = [0u8; 512];
    CALLS.with(|c| c.borrow_mut().clear());
    // SAFETY: the program touches no memory; its helper entry never
    // dereferences the (fake) frame, it only records it.
    let r0 = unsafe { c.run(ctx.as_ptr(), stack.as_mut_ptr().add(512), frame) };
    let f = |a: &[u64; 5]| a[0].wrapping_mul(3) ^ a[4].rotate_left(7);
    let mut rev = args;
    rev.reverse();
    assert_eq!(
        r0,
        f(&args)
            .wrapping_add(f(&rev))
            .wrapping_add(0x6666)
            .wrapping_add(0x9999_0000_0000)
    );
    let calls = CALLS.with(|c| c.borrow().clone());
    assert_eq!(calls, vec![(0x5a5a_0000, args, 0), (0x5a5a_0000, rev, 0)]);
}

// ---- refusals -----------------------------------------------------------

#[track_caller]
fn refused(prog: &[u8], insn: usize, reason: &str) {
    let helpers = |id: u32| (id == 1).then_some(recording as HelperEntry);
    match Compiled::new(prog, &helpers) {
        Ok(_) => panic!("compiled, expected a refusal at insn {insn} for `{reason}`"),
        Err(e) => {
            assert_eq!(e.insn, insn, "wrong insn for `{}`", e.reason);
            assert!(
                e.reason.to_string().contains(reason),
                "reason `{}` does not contain `{reason}`",
                e.reason
            );
            assert_eq!(e.to_string(), format!("insn {insn}: {}", e.reason));
        }
    }
}

#[test]
fn refuses_what_it_does_not_translate() {
    refused(&[], 0, "empty program");
    refused(&[0x95, 0, 0, 0], 0, "not a whole number");
    refused(
        &code(&[mov_imm(0, 0), ins(0xff, 0, 0, 0, 0), EXIT]),
        1,
        "opcode 0xff",
    );
    refused(&code(&[ins(0x20, 0, 0, 0, 0), EXIT]), 0, "LD_ABS");
    refused(
        &code(&[ins(0xd7, 0, 0, 0, 16), EXIT]),
        0,
        "unconditional byte swap",
    );
    refused(&code(&[ins(0xc3, 10, 1, -8, 0), EXIT]), 0, "atomic");
    refused(
        &code(&[ins(0x37, 1, 0, 0, 0), EXIT]),
        0,
        "division by the constant zero",
    );
    refused(&code(&[ins(0x67, 1, 0, 0, 64), EXIT]), 0, "out of range");
    refused(&code(&[mov_imm(11, 0), EXIT]), 0, "bad register number");
    refused(&code(&[mov_imm(10, 0), EXIT]), 0, "r10");
    refused(&code(&[ldx(DW, 10, 1, 0), EXIT]), 0, "r10");
    refused(
        &code(&[ins(isa::JA, 0, 0, 5, 0), EXIT]),
        0,
        "outside the program",
    );
    refused(
        &code(&[ins(0x15, 1, 0, -3, 0), EXIT]),
        0,
        "outside the program",
    );
    let mut p = vec![ins(isa::JA, 0, 0, 1, 0)];
    p.extend(lddw(0, 1));
    p.push(EXIT);
    refused(&code(&p), 0, "middle of the lddw at insn 1");
    refused(
        &code(&[ins(isa::CALL, 0, 0, 0, 77), EXIT]),
        0,
        "unknown helper 77",
    );
    refused(&code(&[ins(isa::CALL, 0, 1, 0, 1), EXIT]), 0, "bpf-to-bpf");
    refused(&code(&[ins(isa::CALL, 0, 2, 0, 1), EXIT]), 0, "src 2");
    refused(&code(&[mov_imm(0, 0)]), 0, "past the end");
    refused(
        &code(&[ins(isa::JA, 0, 0, 1, 0), EXIT, ins(0x15, 1, 0, -2, 0)]),
        2,
        "past the end",
    );
    refused(&code(&lddw(0, 1)), 0, "past the end");
    refused(&code(&[lddw(0, 1)[0]]), 0, "missing its second half");
    refused(
        &code(&[mov_imm(0, 0), ins(isa::JA, 0, 0, -2, 0)]),
        1,
        "loop",
    );
    refused(
        &code(&[ldx(DW, 2, 1, 0), ins(0x15, 2, 0, -2, 0), EXIT]),
        1,
        "loop",
    );
    // Dead code after exit is not translated, whatever it is, as long as
    // it is encoded correctly; nor is falling off the end from there.
    compile(&code(&[mov_imm(0, 0), EXIT, mov_imm(0, 1)]));
    // Size: the limit is accepted, one more is refused.
    let mut p = vec![mov_imm(0, 1); MAX_INSNS - 1];
    p.push(EXIT);
    compile(&code(&p));
    p.insert(0, mov_imm(0, 1));
    refused(&code(&p), MAX_INSNS, "at most 4096");
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_arbitrary_code() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opcodes: Vec<u8> = accepted_opcodes().into_iter().collect();
    let helpers = |id: u32| (id < 8).then_some(recording as HelperEntry);
    for round in 0..3000 {
        let n = 1 + rng.below(12);
        let mut bytes: Vec<u8> = (0..n * 8).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 {
            // Mostly valid opcodes with small fields, so that more than
            // the first check gets exercised.
            for i in 0..n {
                bytes[i * 8] = opcodes[rng.below(opcodes.len())];
                bytes[i * 8 + 1] &= 0x77;
                bytes[i * 8 + 2] = (rng.below(2 * n) as i16 - n as i16) as u8;
                bytes[i * 8 + 3] = if bytes[i * 8 + 2] & 0x80 != 0 {
                    0xff
                } else {
                    0
                };
                if rng.below(2) == 0 {
                    bytes[i * 8 + 4..i * 8 + 8].fill(0);
                }
            }
            bytes[(n - 1) * 8..].copy_from_slice(&EXIT.encode());
        }
        // Whatever it is: a refusal or code, never a panic (nor one the
        // backstop in Compiled::new caught, nor another internal error).
        if let Err(e) = Compiled::new(&bytes, &helpers) {
            assert!(
                !e.reason.to_string().contains("internal error"),
                "{e}: {bytes:02x?}"
            );
        }
    }
}

/// Random straight-line and forward-jump programs over the registers
/// that hold no address (r0, r2..r9), every ALU and jump operation, with
/// edge constants: compiled code and the interpreter agree on r0 and on
/// every register (folded into r0 at the end). No verifier here: every
/// such program is memory-safe by construction.
#[test]
fn random_alu_and_jump_programs_agree_with_the_interpreter() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    const REGS: [u8; 9] = [0, 2, 3, 4, 5, 6, 7, 8, 9];
    let alu_ops = [
        alu::ADD,
        alu::SUB,
        alu::MUL,
        alu::DIV,
        alu::OR,
        alu::AND,
        alu::LSH,
        alu::RSH,
        alu::NEG,
        alu::MOD,
        alu::XOR,
        alu::MOV,
        alu::ARSH,
        alu::END,
    ];
    let jmp_ops = [
        jmp::JEQ,
        jmp::JGT,
        jmp::JGE,
        jmp::JSET,
        jmp::JNE,
        jmp::JSGT,
        jmp::JSGE,
        jmp::JLT,
        jmp::JLE,
        jmp::JSLT,
        jmp::JSLE,
    ];
    for _ in 0..400 {
        let mut p: Vec<Insn> = Vec::new();
        for &r in &REGS {
            p.extend(lddw(r, VALS[rng.below(VALS.len())]));
        }
        let body = 10 + rng.below(40);
        let mut jumps = Vec::new();
        for _ in 0..body {
            let r = |rng: &mut Rng| REGS[rng.below(REGS.len())];
            let imm = if rng.below(2) == 0 {
                IMMS[rng.below(IMMS.len())]
            } else {
                VALS[rng.below(VALS.len())] as i32
            };
            let i = if rng.below(4) == 0 {
                let class = if rng.below(2) == 0 {
                    class::JMP
                } else {
                    class::JMP32
                };
                let op = jmp_ops[rng.below(jmp_ops.len())];
                jumps.push(p.len());
                if rng.below(2) == 0 {
                    ins(class | op | isa::SRC_X, r(&mut rng), r(&mut rng), 0, 0)
                } else {
                    ins(class | op, r(&mut rng), 0, 0, imm)
                }
            } else {
                let wide = rng.below(2) == 0;
                let class = if wide { class::ALU64 } else { class::ALU };
                let op = alu_ops[rng.below(alu_ops.len())];
                let candidates = [
                    ins(class | op | isa::SRC_X, r(&mut rng), r(&mut rng), 0, 0),
                    ins(class | op, r(&mut rng), 0, 0, imm),
                    ins(
                        class | op,
                        r(&mut rng),
                        0,
                        0,
                        imm & if wide { 63 } else { 31 },
                    ),
                    ins(isa::END_LE, r(&mut rng), 0, 0, [16, 32, 64][rng.below(3)]),
                    ins(isa::END_BE, r(&mut rng), 0, 0, [16, 32, 64][rng.below(3)]),
                    ins(class | op, r(&mut rng), 0, 0, 0),
                ];
                match candidates.into_iter().find(accepted) {
                    Some(i) => i,
                    None => continue,
                }
            };
            p.push(i);
        }
        // Forward jumps to anywhere up to the final fold.
        let end = p.len();
        for &j in &jumps {
            let off = 1 + rng.below(end - j);
            p[j].off = (off - 1) as i16;
        }
        // Fold every register into r0: r0 = ((r0 * K) ^ r) ...
        for &r in &REGS[1..] {
            p.push(ins(class::ALU64 | alu::MUL, 0, 0, 0, 0x3b9a_ca07));
            p.push(ins(class::ALU64 | alu::XOR | isa::SRC_X, 0, r, 0, 0));
            p.push(ins(class::ALU64 | alu::LSH, r, 0, 0, 1));
        }
        p.push(EXIT);
        let prog = code(&p);
        let c = compile(&prog);
        let ctx = [0u8; 64];
        assert_eq!(run_native(&c, &ctx), run_interp(&prog, &ctx), "{p:?}");
    }
}

// ---- resources ----------------------------------------------------------

/// Whether `addr` is inside an executable mapping of this process.
fn executable(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("procfs");
    maps.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            return false;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let lo = usize::from_str_radix(lo, 16).unwrap_or(usize::MAX);
        let hi = usize::from_str_radix(hi, 16).unwrap_or(0);
        perms.contains('x') && (lo..hi).contains(&addr)
    })
}

#[test]
fn dropping_frees_the_code() {
    for _ in 0..3 {
        let c = compile(&code(&[mov_imm(0, 1), EXIT]));
        let at = c.entry as usize;
        assert!(executable(at));
        drop(c);
        assert!(!executable(at), "code at {at:#x} still mapped after drop");
    }
}

#[test]
fn compiled_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Compiled>();
    check::<crate::program::vm::Vm>();
}
