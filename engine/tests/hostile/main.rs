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

#[path = "../common/mod.rs"]
mod common;
mod control;
mod encoding;
mod engine;
mod memory;
mod pointers;
mod ranges;
mod registers;
mod semantics;

use ringside_engine::abi::RsCtx;
use ringside_engine::decision::{
    self, Budgets, ChainView, DecisionRecord, DecisionRequest, DecisionResult, Detail, InputSource,
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
    [
        semantics::cases(),
        ranges::cases(),
        pointers::cases(),
        memory::cases(),
        registers::cases(),
        control::cases(),
        encoding::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
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
            record: Some(Detail::Full),
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
                if !ok_insn || !e.reason.to_string().contains(reason) {
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
