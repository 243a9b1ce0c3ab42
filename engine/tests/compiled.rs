//! Compiled code against the interpreter, through the loader and the
//! decision machinery the engine uses: the pattern programs on many
//! contexts, generated programs over every ALU and jump operation with edge
//! operands, and programs at the instruction limit. Every comparison is of a
//! whole decision record (helper calls with their arguments, actions, map
//! writes, r0, result), less what only says how it ran (instruction count,
//! duration, backend).

use proptest::prelude::*;
use ringside_engine::abi::{RsCtx, helper_id, op};
use ringside_engine::decision::{
    self, Budgets, ChainView, DecisionRecord, DecisionRequest, Detail, InputSource, Registrations,
};
use ringside_engine::program::compiled::{Compiled, MAX_INSNS};
use ringside_engine::program::elf::{ElfObject, ProgramImage};
use ringside_engine::program::verifier::Limits;
use ringside_engine::program::vm::{ExecMode, helper_entry};
use ringside_engine::program::{LoadOptions, ProgId, Registry};
use ringside_workload::content;

/// Deterministic inputs: a clock that ticks by 1000, a buffer's bytes.
struct Fixed {
    now: u64,
    buffer: Vec<u8>,
}

impl InputSource for Fixed {
    fn ktime_ns(&mut self) -> u64 {
        self.now += 1000;
        self.now
    }
    fn read_buf(&mut self, _buf: u16, off: u64, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = self.buffer.get(off as usize + i).copied().unwrap_or(0xee);
        }
    }
}

/// One object loaded twice: under the interpreter and compiled.
struct Pair {
    interp: Registry,
    compiled: Registry,
    progs: Vec<(String, ProgId, ProgId)>,
}

impl Pair {
    fn load(obj: &ElfObject) -> Pair {
        let mut interp = Registry::new();
        let mut compiled = Registry::new();
        let a = interp
            .load_parsed(
                obj,
                &LoadOptions {
                    exec: ExecMode::Interpreter,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let b = compiled
            .load_parsed(
                obj,
                &LoadOptions {
                    exec: ExecMode::Compiled,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let progs: Vec<_> = a
            .programs
            .iter()
            .zip(&b.programs)
            .map(|((name, ia), (_, ib))| (name.clone(), *ia, *ib))
            .collect();
        for (name, ia, ib) in &progs {
            assert_eq!(
                interp.program(*ia).unwrap().exec_mode(),
                ExecMode::Interpreter
            );
            // Otherwise the comparison would be of the interpreter with itself.
            let p = compiled.program(*ib).unwrap();
            assert_eq!(
                p.exec_mode(),
                ExecMode::Compiled,
                "{name}: {:?}",
                p.exec_note
            );
            assert_eq!(p.exec_note, None, "{name}");
        }
        Pair {
            interp,
            compiled,
            progs,
        }
    }

    /// Run decision `ctx` on both (their maps evolve side by side) and
    /// check the records agree.
    fn agree(&mut self, ctx: RsCtx, buffer: &[u8]) {
        for (name, ia, ib) in self.progs.clone() {
            let a = decide(&mut self.interp, ia, ctx, buffer);
            let b = decide(&mut self.compiled, ib, ctx, buffer);
            assert_eq!(a.exec, ExecMode::Interpreter);
            assert_eq!(b.exec, ExecMode::Compiled);
            assert_eq!(
                essence(a),
                essence(b),
                "interpreter vs compiled, program {name}, ctx {ctx:?}"
            );
        }
    }
}

fn regs() -> Registrations {
    Registrations {
        files: 2,
        buffers: vec![8192],
    }
}

fn decide(reg: &mut Registry, prog: ProgId, ctx: RsCtx, buffer: &[u8]) -> DecisionRecord {
    let regs = regs();
    let budgets = Budgets::default();
    let (p, maps) = reg.program_and_maps(prog).unwrap();
    let req = DecisionRequest {
        seq: 0,
        ctx,
        view: ChainView {
            chain: ctx.chain_id,
            step: ctx.step,
            nsteps: ctx.nsteps,
            opcode: ctx.opcode,
            fd: ctx.fd,
            attempt: ctx.attempt,
            pending: vec![],
        },
        regs: &regs,
        budgets: &budgets,
        record: Some(Detail::Full),
        // A count would re-run the compiled decision under the interpreter.
        count_insns: false,
    };
    decision::execute(
        p,
        maps,
        req,
        &mut Fixed {
            now: 1_000_000,
            buffer: buffer.to_vec(),
        },
    )
}

/// The record less how it ran.
fn essence(mut r: DecisionRecord) -> DecisionRecord {
    r.insns = None;
    r.duration_ns = 0;
    r.exec = ExecMode::Interpreter;
    r
}

fn contexts(opcodes: &[u8], lens: &[u32]) -> Vec<RsCtx> {
    let mut v = Vec::new();
    let mut k = 0u64;
    for &opcode in opcodes {
        for &len in lens {
            for res in [-11, -4, -62, -5, 0, 1, (len / 2) as i32, len as i32] {
                for attempt in [1u8, 3, 9, 40] {
                    k += 1;
                    v.push(RsCtx {
                        user_data: if k.is_multiple_of(7) {
                            1000 + k
                        } else {
                            8 + k % 40
                        },
                        res,
                        cqe_flags: (k % 3) as u32,
                        chain_id: k % 5,
                        step: (k % 3) as u32,
                        nsteps: 3,
                        opcode,
                        attempt,
                        ctx_flags: (k % 2) as u16,
                        fd: (k % 2) as i32,
                        off: k * 512 % 4096,
                        len,
                        buf_index: 0,
                        _pad: 0,
                        buf_off: if k.is_multiple_of(2) { 0 } else { 512 },
                    });
                }
            }
        }
    }
    v
}

// ---- (a) the pattern programs ------------------------------------------------

#[test]
fn pattern_programs_decide_the_same_compiled() {
    let tree = content::btree(4096, 4).unwrap();
    let mut buffer = vec![0u8; 8192];
    buffer[..512].copy_from_slice(&tree[..512]);
    buffer[512..1024].copy_from_slice(&tree[tree.len() - 512..]);
    buffer[..4].copy_from_slice(&100u32.to_le_bytes()); // header_body sees a length
    let ctxs = contexts(
        &[op::READ, op::WRITE, op::RECV, op::TIMEOUT, op::NOP],
        &[4, 100, 512, 4096],
    );
    let mut names = Vec::new();
    for (name, bytes) in ringside_engine::progs::PATTERNS
        .iter()
        .chain([&("nop_chain", ringside_engine::progs::NOP_CHAIN)])
    {
        let obj = ringside_engine::program::elf::parse(name, bytes).unwrap();
        let mut pair = Pair::load(&obj);
        for ctx in &ctxs {
            pair.agree(*ctx, &buffer);
        }
        names.push(*name);
    }
    assert_eq!(names.len(), 7);
}

// ---- (b) generated programs --------------------------------------------------

/// Registers a generated program computes in (r1 = ctx is kept in r6, r10 is
/// the frame; nothing else ever holds an address).
const REGS: [u8; 8] = [0, 2, 3, 4, 5, 7, 8, 9];

/// Edge values, loaded into registers with lddw: zero divisors, shift counts
/// at and past both widths, sign bits, a value whose low half is zero.
const EDGES: [u64; 16] = [
    0,
    1,
    u64::MAX,
    i32::MIN as u32 as u64,
    i32::MIN as i64 as u64,
    i64::MIN as u64,
    i64::MAX as u64,
    u32::MAX as u64,
    31,
    32,
    63,
    64,
    65,
    0x1_0000_0000,
    0x1234_5678_9abc_def0,
    0x8000_0000_0000_0001,
];

#[derive(Clone, Debug)]
enum Op {
    AluImm {
        opc: u8,
        dst: u8,
        imm: i32,
    },
    AluReg {
        opc: u8,
        dst: u8,
        src: u8,
    },
    Edge {
        dst: u8,
        value: u64,
    },
    Swap {
        be: bool,
        width: i32,
        dst: u8,
    },
    LoadCtx {
        size: u8,
        dst: u8,
        off: i16,
    },
    StoreStack {
        size: u8,
        src: u8,
        off: i16,
    },
    StoreImm {
        size: u8,
        imm: i32,
        off: i16,
    },
    LoadStack {
        size: u8,
        dst: u8,
        off: i16,
    },
    Call {
        helper: u32,
    },
    Jump {
        opc: u8,
        dst: u8,
        imm: i32,
        src: Option<u8>,
        skip: usize,
    },
}

fn insn(opc: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = opc;
    b[1] = (src << 4) | dst;
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

fn lddw(dst: u8, v: u64) -> [[u8; 8]; 2] {
    [
        insn(0x18, dst, 0, 0, v as u32 as i32),
        insn(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}

/// Stack bytes the body works in: 64 below r10, written at the start.
const WORK: i16 = 64;

fn encode(op: &Op) -> Vec<[u8; 8]> {
    match *op {
        Op::AluImm { opc, dst, imm } => vec![insn(opc, dst, 0, 0, imm)],
        Op::AluReg { opc, dst, src } => vec![insn(opc, dst, src, 0, 0)],
        Op::Edge { dst, value } => lddw(dst, value).to_vec(),
        Op::Swap { be, width, dst } => {
            vec![insn(if be { 0xdc } else { 0xd4 }, dst, 0, 0, width)]
        }
        Op::LoadCtx { size, dst, off } => vec![insn(0x61 | size, dst, 6, off, 0)],
        Op::StoreStack { size, src, off } => vec![insn(0x63 | size, 10, src, off, 0)],
        Op::StoreImm { size, imm, off } => vec![insn(0x62 | size, 10, 0, off, imm)],
        Op::LoadStack { size, dst, off } => vec![insn(0x61 | size, dst, 10, off, 0)],
        Op::Call { helper } => {
            // r1 = ctx, arguments from r7/r8/r9; r2..r5 are set again after
            // (the call leaves them unreadable).
            let mut v = vec![
                insn(0xbf, 1, 6, 0, 0),
                insn(0xbf, 2, 7, 0, 0),
                insn(0xbf, 3, 8, 0, 0),
                insn(0xbf, 4, 9, 0, 0),
            ];
            v.push(insn(0x85, 0, 0, 0, helper as i32));
            for r in 2..=5 {
                v.push(insn(0xb7, r, 0, 0, r as i32 * 11));
            }
            v
        }
        Op::Jump {
            opc, dst, imm, src, ..
        } => vec![insn(
            opc | if src.is_some() { 0x08 } else { 0 },
            dst,
            src.unwrap_or(0),
            0,
            if src.is_some() { 0 } else { imm },
        )],
    }
}

fn reg() -> impl Strategy<Value = u8> {
    prop::sample::select(REGS.to_vec())
}

fn imm() -> impl Strategy<Value = i32> {
    prop_oneof![
        prop::sample::select(vec![0i32, 1, -1, 2, 31, 32, 63, i32::MIN, i32::MAX, -62]),
        any::<i32>(),
    ]
}

/// Every ALU operation but END, 32- and 64-bit.
fn alu_opc() -> impl Strategy<Value = u8> {
    (
        prop::sample::select(vec![
            0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0,
        ]),
        any::<bool>(),
    )
        .prop_map(|(op, wide)| op | if wide { 0x07 } else { 0x04 })
}

fn size() -> impl Strategy<Value = u8> + Clone {
    prop::sample::select(vec![0x10u8, 0x08, 0x00, 0x18])
}

fn size_bytes(size: u8) -> i16 {
    match size {
        0x10 => 1,
        0x08 => 2,
        0x00 => 4,
        _ => 8,
    }
}

fn gen_op() -> impl Strategy<Value = Op> {
    let ctx_field = prop::sample::select(
        ringside_engine::abi::CTX_FIELDS
            .iter()
            .map(|&(_, off, size)| (off as i16, size as u8))
            .collect::<Vec<_>>(),
    );
    // Any offset the access fits at, unaligned ones included.
    let stack_off = || {
        (size(), 1i16..=WORK).prop_map(|(size, back)| {
            let back = back.max(size_bytes(size));
            (size, -back)
        })
    };
    prop_oneof![
        5 => (alu_opc(), reg(), imm()).prop_map(|(opc, dst, imm)| {
            let op = opc & 0xf0;
            let wide = opc & 0x07 == 0x07;
            let imm = match op {
                // The verifier refuses a division by the constant zero...
                0x30 | 0x90 if imm == 0 => 7,
                // ... and constant shifts out of range.
                0x60 | 0x70 | 0xc0 => imm & if wide { 63 } else { 31 },
                // neg takes no operand.
                0x80 => 0,
                _ => imm,
            };
            Op::AluImm { opc, dst, imm }
        }),
        5 => (alu_opc().prop_filter("neg has no register form", |o| o & 0xf0 != 0x80), reg(), reg())
            .prop_map(|(opc, dst, src)| Op::AluReg { opc: opc | 0x08, dst, src }),
        2 => (reg(), prop::sample::select(EDGES.to_vec())).prop_map(|(dst, value)| Op::Edge { dst, value }),
        1 => (any::<bool>(), prop::sample::select(vec![16, 32, 64]), reg())
            .prop_map(|(be, width, dst)| Op::Swap { be, width, dst }),
        1 => (ctx_field, reg()).prop_map(|((off, size), dst)| {
            let sz = match size { 1 => 0x10, 2 => 0x08, 4 => 0x00, _ => 0x18 };
            Op::LoadCtx { size: sz, dst, off }
        }),
        1 => (stack_off(), reg()).prop_map(|((size, off), src)| Op::StoreStack { size, src, off }),
        1 => (stack_off(), imm()).prop_map(|((size, off), imm)| Op::StoreImm { size, imm, off }),
        1 => (stack_off(), reg()).prop_map(|((size, off), dst)| Op::LoadStack { size, dst, off }),
        1 => prop::sample::select(vec![helper_id::KTIME_GET_NS, helper_id::RS_EMIT, helper_id::RS_SET_RES])
            .prop_map(|helper| Op::Call { helper }),
        3 => (
            prop::sample::select(vec![
                0x15u8, 0x25, 0x35, 0x45, 0x55, 0x65, 0x75, 0xa5, 0xb5, 0xc5, 0xd5,
                0x16, 0x26, 0x36, 0x46, 0x56, 0x66, 0x76, 0xa6, 0xb6, 0xc6, 0xd6,
            ]),
            reg(),
            imm(),
            prop::option::of(reg()),
            1usize..6,
        )
            .prop_map(|(opc, dst, imm, src, skip)| Op::Jump { opc, dst, imm, src, skip }),
    ]
}

/// The program: r6 = ctx, the registers and the working stack seeded, the
/// body, then every register and every working stack word handed to
/// `rs_emit` (three at a time: the calls' arguments are in the record) and
/// the first register returned.
fn build(ops: &[Op], seeds: &[u64; 8]) -> Vec<u8> {
    let mut code: Vec<[u8; 8]> = vec![insn(0xbf, 6, 1, 0, 0)];
    for (i, r) in REGS.iter().enumerate() {
        code.extend(lddw(*r, seeds[i]));
    }
    for s in 1..=WORK / 8 {
        code.push(insn(0x7b, 10, REGS[s as usize % 8], -8 * s, 0));
    }
    let sizes: Vec<usize> = ops.iter().map(|o| encode(o).len()).collect();
    for (i, o) in ops.iter().enumerate() {
        let mut e = encode(o);
        if let Op::Jump { skip, .. } = o {
            let skip = (*skip).min(ops.len() - i - 1);
            let off: usize = sizes[i + 1..i + 1 + skip].iter().sum();
            e[0][2..4].copy_from_slice(&(off as i16).to_le_bytes());
        }
        code.extend(e);
    }
    // Registers to the stack below the working area, then out.
    let dump = |k: usize| -(WORK + 8 * (k as i16 + 1));
    for (k, r) in REGS.iter().enumerate() {
        code.push(insn(0x7b, 10, *r, dump(k), 0));
    }
    let words: Vec<i16> = (0..REGS.len())
        .map(dump)
        .chain((1..=WORK / 8).map(|s| -8 * s))
        .collect();
    for group in words.chunks(3) {
        code.push(insn(0xbf, 1, 6, 0, 0));
        for (j, off) in group.iter().enumerate() {
            code.push(insn(0x79, 2 + j as u8, 10, *off, 0));
        }
        for j in group.len()..3 {
            code.push(insn(0xb7, 2 + j as u8, 0, 0, 0));
        }
        code.push(insn(0x85, 0, 0, 0, helper_id::RS_EMIT as i32));
    }
    code.push(insn(0x79, 0, 10, dump(0), 0));
    code.push(insn(0x95, 0, 0, 0, 0));
    code.concat()
}

fn object(name: &str, code: Vec<u8>) -> ElfObject {
    ElfObject {
        file: name.into(),
        programs: vec![ProgramImage {
            name: name.into(),
            section: format!("ringside/{name}"),
            code,
            relocs: vec![],
            file_offset: 0,
        }],
        maps: vec![],
        rodata: vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_decide_the_same_compiled(
        ops in prop::collection::vec(gen_op(), 1..60),
        seeds in prop::array::uniform8(prop_oneof![prop::sample::select(EDGES.to_vec()), any::<u64>()]),
        res in any::<i32>(),
        len in any::<u32>(),
        user_data in any::<u64>(),
    ) {
        let obj = object("g", build(&ops, &seeds));
        let mut pair = Pair::load(&obj);
        let ctx = RsCtx { user_data, res, len, opcode: op::READ, attempt: 1, nsteps: 1, off: !user_data, ..Default::default() };
        pair.agree(ctx, &[]);
    }
}

// ---- (c) at the instruction limit ----------------------------------------------

/// Load `code` both ways, check it compiled, run a few contexts on both.
fn limit_program(name: &str, code: Vec<u8>) {
    assert_eq!(code.len() / 8, MAX_INSNS, "{name} is at the limit");
    let start = std::time::Instant::now();
    let c = Compiled::new(&code, &helper_entry).unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!(
        "{name}: {} instructions -> {} bytes of machine code in {:?}",
        code.len() / 8,
        c.code_len(),
        start.elapsed()
    );
    let mut pair = Pair::load(&object(name, code));
    for (user_data, res, len) in [
        (0u64, 0i32, 0u32),
        (1, 1, 1),
        (u64::MAX, -1, u32::MAX),
        (0x1_0000_0000, i32::MIN, 32),
        (0x1234_5678_9abc_def0, 0x7fff_ffff, 64),
    ] {
        let ctx = RsCtx {
            user_data,
            res,
            len,
            off: user_data.rotate_left(13),
            ..Default::default()
        };
        pair.agree(ctx, &[]);
    }
}

/// Registers loaded from the context: r0 = user_data, r2 = res, r3 = len,
/// r4 = off, r5 = user_data >> 32 (zero in some contexts); r7..r9 constants.
fn prologue() -> Vec<[u8; 8]> {
    vec![
        insn(0xb7, 7, 0, 0, 7),
        insn(0xb7, 8, 0, 0, -8),
        insn(0xb7, 9, 0, 0, i32::MIN),
        insn(0x79, 0, 1, 0, 0),
        insn(0x61, 2, 1, 8, 0),
        insn(0x61, 3, 1, 48, 0),
        insn(0x79, 4, 1, 40, 0),
        insn(0xbf, 5, 0, 0, 0),
        insn(0x77, 5, 0, 0, 32),
    ]
}

#[test]
fn a_program_of_4096_moves_compiles_and_runs() {
    let mut code = prologue();
    let mut k = 0usize;
    while code.len() < MAX_INSNS - 1 {
        // Register-to-register moves, 64- and 32-bit, mixing the context's
        // values; every fourth instruction adds one into r0, so that the
        // moves stay live (Cranelift would fold a program that overwrites
        // its values with constants down to its last moves), and now and
        // then a constant comes in.
        let dst = [2u8, 3, 4, 5, 7, 8, 9][k % 7];
        let src = [3u8, 0, 9, 2, 8, 4, 5, 7][k % 8];
        code.push(match k % 4 {
            _ if k.is_multiple_of(97) => {
                insn(0xb7, dst, 0, 0, (k as i32).wrapping_mul(0x0101_0101))
            }
            0 | 3 => insn(0xbf, dst, src, 0, 0),
            1 => insn(0xbc, dst, src, 0, 0),
            _ => insn(0x0f, 0, dst, 0, 0),
        });
        k += 1;
    }
    code.push(insn(0x95, 0, 0, 0, 0));
    limit_program("moves", code.concat());
}

#[test]
fn a_program_of_600_divisions_compiles_and_runs() {
    let mut code = prologue();
    let mut divisions = 0;
    let mut k = 0usize;
    while code.len() < MAX_INSNS - 1 {
        let (dst, src) = [(0u8, 2u8), (3, 5), (4, 0), (2, 3), (5, 4), (0, 5)][k % 6];
        // div/mod, 64/32-bit, by a register or a constant.
        let opc = [0x3f, 0x9f, 0x3c, 0x9c, 0x37, 0x97, 0x34, 0x94][k % 8];
        code.push(if opc & 0x08 != 0 {
            insn(opc, dst, src, 0, 0)
        } else {
            insn(opc, dst, 0, 0, [7, -1, 3][k % 3])
        });
        divisions += 1;
        // Between divisions: the divisor reloaded from the context (res or
        // len: zero in some contexts), the values kept moving.
        // Every quotient and remainder flows into r8, returned (else
        // Cranelift drops the dead ones).
        let fill = [
            insn(0xaf, 8, dst, 0, 0),
            insn(0x61, src, 1, [8, 48][k % 2], 0),
            insn(0x07, dst, 0, 0, 0x1357),
            insn(0xaf, dst, 4, 0, 0),
            insn(0xbf, 4, dst, 0, 0),
            insn(0x27, 4, 0, 0, -3),
        ];
        let room = MAX_INSNS - 1 - code.len();
        code.extend(fill.into_iter().take(room));
        k += 1;
    }
    code.pop();
    code.push(insn(0xbf, 0, 8, 0, 0));
    code.push(insn(0x95, 0, 0, 0, 0));
    assert!(divisions >= 580, "{divisions} divisions");
    limit_program("divisions", code.concat());
}

#[test]
fn a_program_of_2000_branches_compiles_and_runs() {
    let mut code = prologue();
    let mut k = 0i32;
    while code.len() < MAX_INSNS - 1 {
        if code.len() + 2 > MAX_INSNS - 1 {
            code.push(insn(0x07, 0, 0, 0, 1));
            continue;
        }
        // if (r2 <= k * 977) r0 += k, with 64- and 32-bit compares.
        let opc = if k % 2 == 0 { 0x25 } else { 0x26 };
        code.push(insn(opc, 2, 0, 1, k * 977));
        code.push(insn(0x07, 0, 0, 0, k));
        k += 1;
    }
    code.push(insn(0x95, 0, 0, 0, 0));
    limit_program("branches", code.concat());
}

#[test]
fn a_program_over_the_limit_runs_under_the_interpreter() {
    let mut code = vec![insn(0xb7, 0, 0, 0, 1); MAX_INSNS];
    code.push(insn(0x95, 0, 0, 0, 0));
    let mut reg = Registry::new();
    let loaded = reg
        .load_parsed(
            &object("long", code.concat()),
            &LoadOptions {
                exec: ExecMode::Compiled,
                limits: Limits {
                    max_insns: 2 * MAX_INSNS,
                },
                ..Default::default()
            },
        )
        .unwrap();
    let p = reg.program(loaded.programs[0].1).unwrap();
    assert_eq!(p.exec_mode(), ExecMode::Interpreter);
    let note = p.exec_note.as_deref().unwrap_or_default();
    assert!(note.contains("at most 4096"), "{note}");
}
