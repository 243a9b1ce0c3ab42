//! The kernel as the oracle for ringside's backends: generated instruction
//! sequences (every ALU32/ALU64 operation with immediates and registers,
//! byte swaps, conditional jumps of both widths, on edge operands: 0, -1,
//! INT_MIN, shift counts at and past the width, division and modulo by zero)
//! run in the host kernel (BPF_PROG_TEST_RUN, see tests/oracle) and in
//! ringside's interpreter and compiled code, from the same registers; every
//! register must come out the same.
//!
//! In ringside the body is wrapped in a prologue that loads r0..r9 with
//! `lddw` and an epilogue that stores them into a map value, which the test
//! reads back; so the body also goes through ringside's verifier, as any
//! program does. Without kernel BPF the kernel side prints a SKIP line (see
//! tests/oracle) and only the two ringside backends are compared.
//!
//! `RINGSIDE_ORACLE_CASES` sets how many sequences a run tries (default
//! 3000; the fuzz-style long run uses more).

mod oracle;

use oracle::Insn as Raw;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use ringside_engine::abi::RsCtx;
use ringside_engine::decision::{
    self, Budgets, ChainView, DecisionRequest, DecisionResult, InputSource, Registrations,
};
use ringside_engine::program::elf::{ElfObject, ProgramImage, Reloc, RelocTarget};
use ringside_engine::program::isa::{self, Insn};
use ringside_engine::program::maps::{MAP_TYPE_ARRAY, MapDef};
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, Registry};

/// Operands that break implementations.
const EDGES: [u64; 16] = [
    0,
    1,
    2,
    7,
    31,
    32,
    63,
    64,
    0xffff_ffff,
    0x8000_0000,
    0x1_0000_0000,
    0x7fff_ffff,
    u64::MAX,
    i64::MIN as u64,
    i64::MAX as u64,
    0xdead_beef_0bad_f00d,
];

fn edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(EDGES.to_vec()),
        1 => any::<u64>(),
    ]
}

fn imm() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => prop::sample::select(vec![0, 1, -1, 7, 31, 32, 63, i32::MIN, i32::MAX, 0x7fff, -0x8000, 16]),
        1 => any::<i32>(),
    ]
}

/// One generated body instruction; jumps carry how far they skip.
#[derive(Clone, Debug)]
enum Op {
    Alu {
        opc: u8,
        dst: u8,
        src: u8,
        imm: i32,
    },
    End {
        be: bool,
        dst: u8,
        width: i32,
    },
    Jump {
        opc: u8,
        dst: u8,
        src: u8,
        imm: i32,
        skip: i16,
    },
}

fn reg() -> impl Strategy<Value = u8> {
    0u8..10
}

fn op() -> impl Strategy<Value = Op> {
    let alu = (
        prop::sample::select(vec![
            0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0,
        ]),
        any::<bool>(),
        any::<bool>(),
        reg(),
        reg(),
        imm(),
    )
        .prop_map(|(op, wide, x, dst, src, imm)| {
            let class = if wide { 0x07 } else { 0x04 };
            let width = if wide { 64 } else { 32 };
            if op == 0x80 {
                return Op::Alu {
                    opc: class | op,
                    dst,
                    src: 0,
                    imm: 0,
                };
            }
            if x {
                return Op::Alu {
                    opc: class | op | isa::SRC_X,
                    dst,
                    src,
                    imm: 0,
                };
            }
            // Encodings both verifiers refuse are not worth a kernel call:
            // constant divisors of 0, constant shifts out of range.
            let imm = match op {
                0x30 | 0x90 if imm == 0 => 3,
                0x60 | 0x70 | 0xc0 => imm.rem_euclid(width),
                _ => imm,
            };
            Op::Alu {
                opc: class | op,
                dst,
                src: 0,
                imm,
            }
        });
    let end = (any::<bool>(), reg(), prop::sample::select(vec![16, 32, 64]))
        .prop_map(|(be, dst, width)| Op::End { be, dst, width });
    let jump = (
        prop::sample::select(vec![
            0x10u8, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
        ]),
        any::<bool>(),
        any::<bool>(),
        reg(),
        reg(),
        imm(),
        1i16..4,
    )
        .prop_map(|(op, wide, x, dst, src, imm, skip)| {
            let class = if wide { 0x05 } else { 0x06 };
            if x {
                Op::Jump {
                    opc: class | op | isa::SRC_X,
                    dst,
                    src,
                    imm: 0,
                    skip,
                }
            } else {
                Op::Jump {
                    opc: class | op,
                    dst,
                    src: 0,
                    imm,
                    skip,
                }
            }
        });
    prop_oneof![6 => alu, 1 => end, 2 => jump]
}

/// The body as instructions; jumps that would land past the end go to the end.
fn body(ops: &[Op]) -> Vec<Insn> {
    let n = ops.len() as i16;
    ops.iter()
        .enumerate()
        .map(|(i, o)| match *o {
            Op::Alu { opc, dst, src, imm } => Insn {
                opc,
                dst,
                src,
                off: 0,
                imm,
            },
            Op::End { be, dst, width } => Insn {
                opc: if be { isa::END_BE } else { isa::END_LE },
                dst,
                src: 0,
                off: 0,
                imm: width,
            },
            Op::Jump {
                opc,
                dst,
                src,
                imm,
                skip,
            } => Insn {
                opc,
                dst,
                src,
                off: skip.min(n - i as i16 - 1),
                imm,
            },
        })
        .collect()
}

/// The body as a ringside program: r0..r9 from `regs`, the body, then every
/// register stored into map 0's value (80 bytes, key 0).
fn program(body: &[Insn], regs: &[u64; 10]) -> ElfObject {
    let ins = |opc, dst, src, off, imm| Insn {
        opc,
        dst,
        src,
        off,
        imm,
    };
    let mut code: Vec<Insn> = Vec::new();
    for (r, v) in regs.iter().enumerate() {
        code.push(ins(isa::LDDW, r as u8, 0, 0, *v as u32 as i32));
        code.push(ins(0, 0, 0, 0, (*v >> 32) as u32 as i32));
    }
    code.extend_from_slice(body);
    // Epilogue: spill r0..r9 below r10, look up key 0, copy them into the value.
    for r in 0..10u8 {
        code.push(ins(0x7b, 10, r, -8 * (r as i16 + 1), 0));
    }
    code.push(ins(0x62, 10, 0, -84, 0)); // *(u32 *)(r10 - 84) = 0
    code.push(ins(0xbf, 2, 10, 0, 0)); // r2 = r10
    code.push(ins(0x07, 2, 0, 0, -84)); // r2 -= 84
    let lddw_map = code.len();
    code.push(ins(isa::LDDW, 1, 1, 0, 0)); // r1 = map 0
    code.push(ins(0, 0, 0, 0, 0));
    code.push(ins(isa::CALL, 0, 0, 0, 1)); // bpf_map_lookup_elem
    code.push(ins(0x15, 0, 0, 21, 0)); // if r0 == 0 goto exit
    for r in 0..10i16 {
        code.push(ins(0x79, 1, 10, -8 * (r + 1), 0)); // r1 = *(u64 *)(r10 - 8(r+1))
        code.push(ins(0x7b, 0, 1, 8 * r, 0)); // *(u64 *)(r0 + 8r) = r1
    }
    code.push(ins(0xb7, 0, 0, 0, 0));
    code.push(ins(isa::EXIT, 0, 0, 0, 0));
    ElfObject {
        file: "oracle.o".into(),
        programs: vec![ProgramImage {
            name: "o".into(),
            section: "ringside/o".into(),
            code: code.iter().flat_map(Insn::encode).collect(),
            relocs: vec![Reloc {
                insn: lddw_map,
                target: RelocTarget::Map(0),
            }],
            file_offset: 0,
        }],
        maps: vec![MapDef::validate("out", MAP_TYPE_ARRAY, 4, 80, 1, 0).expect("valid")],
        rodata: vec![],
    }
}

struct NoInputs;

impl InputSource for NoInputs {
    fn ktime_ns(&mut self) -> u64 {
        0
    }
    fn read_buf(&mut self, _buf: u16, _off: u64, dst: &mut [u8]) {
        dst.fill(0);
    }
}

/// Run the body in one ringside backend: Err when its verifier refuses it.
fn run_ringside(body: &[Insn], regs: &[u64; 10], exec: ExecMode) -> Result<[u64; 10], String> {
    let obj = program(body, regs);
    let mut reg = Registry::new();
    let loaded = reg
        .load_parsed(
            &obj,
            &LoadOptions {
                exec,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
    let id = loaded.programs[0].1;
    assert_eq!(
        reg.program(id).unwrap().exec_mode(),
        exec,
        "backend not used: {:?}",
        reg.program(id).unwrap().exec_note
    );
    let map = loaded.maps[0].1;
    let regs_ = Registrations::default();
    let budgets = Budgets::default();
    let (p, maps) = reg.program_and_maps(id).unwrap();
    let rec = decision::execute(
        p,
        maps,
        DecisionRequest {
            seq: 0,
            ctx: RsCtx::default(),
            view: ChainView::default(),
            regs: &regs_,
            budgets: &budgets,
            record: None,
            count_insns: false,
        },
        &mut NoInputs,
    );
    if let DecisionResult::VmError { message } = &rec.result {
        panic!("a verified program hit a VM error: {message}");
    }
    let value = reg
        .map(map)
        .unwrap()
        .get(&0u32.to_le_bytes())
        .unwrap()
        .unwrap();
    Ok(std::array::from_fn(|r| {
        u64::from_le_bytes(value[r * 8..r * 8 + 8].try_into().unwrap())
    }))
}

fn cases() -> u32 {
    std::env::var("RINGSIDE_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

#[test]
fn generated_sequences_run_as_in_the_kernel() {
    let kernel = oracle::skip_unless_available(
        "oracle_differential::generated_sequences_run_as_in_the_kernel",
    );
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(op(), 1..24),
        prop::array::uniform10(edge()),
    );
    // Generate first, then ask the kernel for all of them in one batch.
    let mut batch: Vec<(Vec<Insn>, [u64; 10])> = Vec::new();
    for _ in 0..cases() {
        let tree = strategy.new_tree(&mut runner).expect("generate");
        let (ops, regs) = tree.current();
        batch.push((body(&ops), regs));
    }
    let raws: Vec<Vec<Raw>> = batch
        .iter()
        .map(|(b, _)| b.iter().map(Insn::encode).collect())
        .collect();
    let from_kernel = if kernel {
        oracle::run_many(
            raws.iter()
                .zip(&batch)
                .map(|(r, (_, regs))| (r.as_slice(), *regs)),
        )
    } else {
        Vec::new()
    };
    let (mut compared, mut refused_both, mut failures) = (0, 0, Vec::new());
    for (i, (body, regs)) in batch.iter().enumerate() {
        let interp = run_ringside(body, regs, ExecMode::Interpreter);
        let compiled = run_ringside(body, regs, ExecMode::Compiled);
        if interp != compiled {
            failures.push(format!(
                "interpreter {interp:?} vs compiled {compiled:?}\n  body {body:?}\n  regs {regs:x?}"
            ));
            continue;
        }
        let Some(k) = from_kernel.get(i) else {
            continue;
        };
        match (interp, k) {
            (Ok(ours), Ok(theirs)) => {
                compared += 1;
                if ours != *theirs {
                    failures.push(format!(
                        "ringside {ours:x?}\n  kernel   {theirs:x?}\n  body {body:?}\n  regs {regs:x?}"
                    ));
                }
            }
            (Err(_), Err(_)) => refused_both += 1,
            // ringside's verifier is stricter in places (and the kernel's in
            // others, e.g. unreachable code): neither ran it, nothing to compare.
            (Err(_), Ok(_)) | (Ok(_), Err(_)) => {}
        }
    }
    eprintln!(
        "oracle differential: {} sequences, {compared} compared with the kernel, {refused_both} refused by both",
        batch.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if kernel {
        assert!(
            compared * 2 > batch.len(),
            "too few sequences compared: {compared} of {}",
            batch.len()
        );
    }
}

/// The exploit sequence from the safety issue, against the kernel directly:
/// `r2 = 0; r0 = -1; w0 %= w2; r0 >>= 32` is 0 everywhere.
#[test]
fn the_mod32_sequence_is_zero_everywhere() {
    let ins = |opc, dst, src, off, imm| Insn {
        opc,
        dst,
        src,
        off,
        imm,
    };
    let body = [
        ins(0xb7, 2, 0, 0, 0),
        ins(0xb7, 0, 0, 0, -1),
        ins(0x9c, 0, 2, 0, 0),
        ins(0x77, 0, 0, 0, 32),
    ];
    let regs = [0u64; 10];
    for exec in [ExecMode::Interpreter, ExecMode::Compiled] {
        assert_eq!(run_ringside(&body, &regs, exec).unwrap()[0], 0, "{exec:?}");
    }
    if oracle::skip_unless_available("oracle_differential::the_mod32_sequence_is_zero_everywhere") {
        let raw: Vec<Raw> = body.iter().map(Insn::encode).collect();
        assert_eq!(oracle::run_in_kernel(&raw, regs).unwrap()[0], 0);
    }
}
