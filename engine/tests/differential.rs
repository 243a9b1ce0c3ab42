//! The interpreter, compiled code and the tracing interpreter (the re-run
//! from a decision's record alone) agree on every decision: over the pattern
//! programs on many contexts, and over generated programs with helper calls
//! and stack traffic. (tests/oracle_differential.rs checks single
//! instructions against the kernel itself.)

use proptest::prelude::*;
use ringside_engine::abi::{RsCtx, op};
use ringside_engine::decision::{
    self, Budgets, ChainView, DecisionRecord, DecisionRequest, Detail, InputSource, Registrations,
};
use ringside_engine::program::elf::{ElfObject, ProgramImage};
use ringside_engine::program::vm::ExecMode;
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
        let off = off as usize;
        for (i, d) in dst.iter_mut().enumerate() {
            *d = self.buffer.get(off + i).copied().unwrap_or(0xee);
        }
    }
}

fn regs() -> Registrations {
    Registrations {
        files: 2,
        buffers: vec![8192],
    }
}

fn run(reg: &mut Registry, prog: ProgId, ctx: RsCtx, buffer: &[u8]) -> DecisionRecord {
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
        count_insns: true,
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

/// What must be identical between two executions of the same decision.
fn essence(r: &DecisionRecord) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &r.calls,
        &r.actions,
        &r.map_writes,
        r.ret,
        &r.result,
        r.insns,
    )
}

fn check_agreement(obj: &ElfObject, ctxs: &[RsCtx], buffer: &[u8]) {
    let mut interp = Registry::new();
    let mut compiled = Registry::new();
    let a = interp
        .load_parsed(obj, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let b = compiled
        .load_parsed(
            obj,
            &LoadOptions {
                exec: ExecMode::Compiled,
                ..Default::default()
            },
        )
        .unwrap();
    for (pa, pb) in a.programs.iter().zip(&b.programs) {
        for ctx in ctxs {
            let ra = run(&mut interp, pa.1, *ctx, buffer);
            let rb = run(&mut compiled, pb.1, *ctx, buffer);
            assert_eq!(
                essence(&ra),
                essence(&rb),
                "interpreter vs compiled, program {}, ctx {ctx:?}",
                pa.0
            );
            // The tracing interpreter, from the record alone.
            let p = interp.program(pa.1).unwrap();
            let rx = decision::reexecute(p, &ra, &regs(), &Budgets::default(), None).unwrap();
            assert_eq!(rx.ret, ra.ret, "trace interpreter return, {}", pa.0);
            assert_eq!(rx.calls, ra.calls, "trace interpreter calls, {}", pa.0);
            assert_eq!(
                rx.actions, ra.actions,
                "trace interpreter actions, {}",
                pa.0
            );
            assert_eq!(Some(rx.insns), ra.insns);
            assert_eq!(rx.input_mismatch, None);
        }
    }
}

fn contexts(opcodes: &[u8], lens: &[u32]) -> Vec<RsCtx> {
    let mut v = Vec::new();
    let mut k = 0u64;
    for &opcode in opcodes {
        for &len in lens {
            for res in [-11, -4, -62, -5, 0, 1, (len / 2) as i32, len as i32] {
                for attempt in [1u8, 3, 9] {
                    k += 1;
                    v.push(RsCtx {
                        user_data: 8 + k % 40,
                        res,
                        cqe_flags: 0,
                        chain_id: k % 5,
                        step: (k % 3) as u32,
                        nsteps: 3,
                        opcode,
                        attempt,
                        ctx_flags: (k % 2) as u16,
                        fd: 0,
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

#[test]
fn pattern_programs_agree_across_executors() {
    let tree = content::btree(4096, 4).unwrap();
    let mut buffer = vec![0u8; 8192];
    buffer[..512].copy_from_slice(&tree[..512]);
    buffer[512..1024].copy_from_slice(&tree[tree.len() - 512..]);
    buffer[..4].copy_from_slice(&100u32.to_le_bytes()); // header_body sees a length
    for (name, bytes) in ringside_engine::progs::ALL {
        let obj = ringside_engine::program::elf::parse(name, bytes).unwrap();
        let ctxs = contexts(
            &[op::READ, op::WRITE, op::RECV, op::TIMEOUT, op::NOP],
            &[4, 512, 4096],
        );
        check_agreement(&obj, &ctxs, &buffer);
    }
}

// ---- generated programs ------------------------------------------------------

/// Registers a generated program may use freely (r1 = ctx is kept in r6, r10 is the frame).
const REGS: [u8; 7] = [0, 2, 3, 4, 5, 7, 8];

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
    LoadCtx {
        size: u8,
        dst: u8,
        off: i16,
    },
    StoreStack {
        size: u8,
        src: u8,
        slot: i16,
    },
    LoadStack {
        size: u8,
        dst: u8,
        slot: i16,
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

fn encode(op: &Op) -> Vec<[u8; 8]> {
    match *op {
        Op::AluImm { opc, dst, imm } => vec![insn(opc, dst, 0, 0, imm)],
        Op::AluReg { opc, dst, src } => vec![insn(opc, dst, src, 0, 0)],
        Op::LoadCtx { size, dst, off } => vec![insn(0x61 | size, dst, 6, off, 0)],
        Op::StoreStack { size, src, slot } => vec![insn(0x63 | size, 10, src, slot, 0)],
        Op::LoadStack { size, dst, slot } => vec![insn(0x61 | size, dst, 10, slot, 0)],
        Op::Call { helper } => {
            // r1 = ctx; arguments from r7/r8; then r2..r5 are re-set (the call clobbers them).
            let mut v = vec![
                insn(0xbf, 1, 6, 0, 0),
                insn(0xbf, 2, 7, 0, 0),
                insn(0xbf, 3, 8, 0, 0),
                insn(0xb7, 4, 0, 0, 0),
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

fn alu_op() -> impl Strategy<Value = u8> {
    // add sub mul div or and lsh rsh neg mod xor mov arsh, 32- and 64-bit.
    (
        prop::sample::select(vec![
            0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0,
        ]),
        any::<bool>(),
    )
        .prop_map(|(op, wide)| op | if wide { 0x07 } else { 0x04 })
}

fn reg() -> impl Strategy<Value = u8> {
    prop::sample::select(REGS.to_vec())
}

fn gen_op() -> impl Strategy<Value = Op> {
    let ctx_field = prop::sample::select(
        ringside_engine::abi::CTX_FIELDS
            .iter()
            .map(|&(_, off, size)| (off as i16, size as u8))
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        4 => (alu_op(), reg(), any::<i32>()).prop_map(|(opc, dst, imm)| {
            // No division by a constant zero, no constant shift out of range,
            // no operand for neg (the verifier refuses those encodings).
            let width = if opc & 0x07 == 0x07 { 64 } else { 32 };
            let imm = match opc & 0xf0 {
                0x30 | 0x90 if imm == 0 => 7,
                0x60 | 0x70 | 0xc0 => imm.rem_euclid(width),
                0x80 => 0,
                _ => imm,
            };
            Op::AluImm { opc, dst, imm }
        }),
        3 => (alu_op().prop_filter("neg has no register form", |o| o & 0xf0 != 0x80), reg(), reg())
            .prop_map(|(opc, dst, src)| Op::AluReg { opc: opc | 0x08, dst, src }),
        2 => (ctx_field, reg()).prop_map(|((off, size), dst)| {
            let sz = match size { 1 => 0x10, 2 => 0x08, 4 => 0x00, _ => 0x18 };
            Op::LoadCtx { size: sz, dst, off }
        }),
        1 => (prop::sample::select(vec![0x10u8, 0x08, 0x00, 0x18]), reg(), 1i16..=8).prop_map(|(size, src, s)| Op::StoreStack { size, src, slot: -8 * s }),
        1 => (prop::sample::select(vec![0x10u8, 0x08, 0x00, 0x18]), reg(), 1i16..=8).prop_map(|(size, dst, s)| Op::LoadStack { size, dst, slot: -8 * s }),
        1 => prop::sample::select(vec![5u32, 0x1003, 0x1005]).prop_map(|helper| Op::Call { helper }),
        2 => (
            prop::sample::select(vec![0x15u8, 0x25, 0x35, 0x45, 0x55, 0x65, 0x75, 0xa5, 0xb5, 0xc5, 0xd5, 0x16, 0x26, 0x56, 0x66, 0xa6, 0xd6]),
            reg(),
            prop::sample::select(vec![0i32, 1, -1, 7, -62, 4096, i32::MAX, i32::MIN]),
            prop::option::of(reg()),
            1usize..4,
        )
            .prop_map(|(opc, dst, imm, src, skip)| Op::Jump { opc, dst, imm, src, skip }),
    ]
}

fn build(ops: &[Op], seeds: &[i32; 8]) -> Vec<u8> {
    let mut code: Vec<[u8; 8]> = vec![insn(0xbf, 6, 1, 0, 0)];
    for (i, r) in REGS.iter().enumerate() {
        code.push(insn(0xb7, *r, 0, 0, seeds[i]));
    }
    for s in 1..=8i16 {
        code.push(insn(0x7a, 10, 0, -8 * s, seeds[s as usize - 1] ^ 0x5555));
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
    code.push(insn(0x95, 0, 0, 0, 0));
    code.concat()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_verify_and_agree(ops in prop::collection::vec(gen_op(), 1..40), seeds in any::<[i32; 8]>(), res in any::<i32>(), len in any::<u32>()) {
        let code = build(&ops, &seeds);
        let obj = ElfObject {
            file: "generated".into(),
            programs: vec![ProgramImage { name: "g".into(), section: "ringside/g".into(), code, relocs: vec![], file_offset: 0 }],
            maps: vec![],
            rodata: vec![],
        };
        let ctx = RsCtx { user_data: 5, res, len, opcode: op::READ, attempt: 1, nsteps: 1, ..Default::default() };
        check_agreement(&obj, &[ctx], &[]);
    }
}
