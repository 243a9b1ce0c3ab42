//! Watching by inputs: a listener that asks for `Detail::Inputs` gets
//! decisions holding only what a re-run cannot recompute, and
//! `decision::complete` recomputes the rest, to exactly what a full record
//! holds: every helper call with its arguments, the map writes (direct ones
//! through looked-up pointers too), the instruction count, the name.

mod common;

use common::*;
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::decision::{self, DecisionRecord, Detail};
use ringside_engine::event::{Event, LinkMode, Notify, Overflow};
use ringside_engine::program::ProgId;
use ringside_engine::program::vm::ExecMode;
use ringside_engine::{ChainSpec, Engine, EngineConfig, StepSpec, progs};
use ringside_workload::{PrepareOptions, prepare_demo};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;

/// What an inputs-only record of the decision `full` holds (the contract
/// `Detail::Inputs` documents).
fn inputs_of(full: &DecisionRecord) -> DecisionRecord {
    let mut d = full.clone();
    d.calls.retain(|c| Detail::Inputs.keeps_call(c.helper));
    d.map_writes.clear();
    d.prog_name.clear();
    // The interpreter counts as it runs, so its count stays (it is free);
    // compiled code's is left to the re-run.
    if d.exec != ExecMode::Interpreter {
        d.insns = None;
    }
    d.detail = Detail::Inputs;
    d
}

fn decisions(evs: &[std::sync::Arc<ringside_engine::EventRecord>]) -> Vec<DecisionRecord> {
    evs.iter()
        .filter_map(|r| match &r.event {
            Event::Decision(d) => Some((**d).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_demo_decision_completes_from_its_inputs_to_its_full_record() {
    let mut p = prepare_demo(&PrepareOptions::default()).unwrap();
    let sub = p.engine().subscribe(1 << 20, Overflow::Block);
    let stop = AtomicBool::new(false);
    let (_report, engine) = p.run(&stop).unwrap();
    let evs: Vec<_> = sub.try_iter().collect();
    let full = decisions(&evs);
    assert!(full.len() > 50, "only {} decisions", full.len());
    let mut per_program: BTreeMap<String, usize> = BTreeMap::new();
    for d in &full {
        assert_eq!(d.detail, Detail::Full);
        let prog = engine.registry().program(ProgId(d.prog)).unwrap();
        let mut whole = inputs_of(d);
        decision::complete(prog, &mut whole, engine.registrations(), engine.budgets())
            .unwrap_or_else(|e| panic!("{e}"));
        // The live record counted its instructions (a full listener): the
        // completed one must say the same, as must everything else.
        assert_eq!(&whole, d, "decision #{} of {}", d.seq, d.prog_name);
        *per_program.entry(d.prog_name.clone()).or_default() += 1;
    }
    for name in [
        "read_exact",
        "read_to_eof",
        "copy",
        "header_body",
        "btree_lookup",
        "retry_eagain",
    ] {
        assert!(
            per_program.get(name).copied().unwrap_or(0) > 0,
            "no decision of {name}: {per_program:?}"
        );
    }
}

/// Two runs of one deterministic workload: NOP chains, and a read_exact
/// chain over a pipe holding fewer bytes than asked (a short read, then
/// end of file).
fn deterministic_run(detail: Detail) -> Vec<DecisionRecord> {
    let (r, w) = pipe();
    write_all(w.as_raw_fd(), &pattern(3000, 1));
    drop(w);
    let mut e = Engine::new(EngineConfig {
        files: vec![(r.as_raw_fd(), "pipe".into())],
        buffers: vec![8192],
        ..Default::default()
    })
    .unwrap();
    let load = |e: &mut Engine, name: &str| {
        e.load_object(
            &format!("{name}.o"),
            progs::builtin(name).unwrap(),
            &load_options(),
        )
        .unwrap()
        .programs[0]
            .1
    };
    let nop = load(&mut e, "nop_chain");
    let exact = load(&mut e, "read_exact");
    let sub = e.subscribe_with(1 << 20, Overflow::Block, detail);
    for c in 0..3 {
        e.submit_chain(ChainSpec {
            user_data: c,
            steps: vec![StepSpec::nop(20)],
            program: Some(nop),
            notify: Notify::Final,
            drain: false,
            link: LinkMode::Engine,
        })
        .unwrap();
    }
    e.submit_chain(ChainSpec {
        user_data: 9,
        steps: vec![StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: 0,
            len: 4096,
            ..Default::default()
        })],
        program: Some(exact),
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Engine,
    })
    .unwrap();
    e.run_until_idle().unwrap();
    drop(e);
    decisions(&sub.try_iter().collect::<Vec<_>>())
}

#[test]
fn a_watched_engine_records_the_inputs_and_nothing_more() {
    let full = deterministic_run(Detail::Full);
    let inputs = deterministic_run(Detail::Inputs);
    assert!(full.len() > 10, "{} decisions", full.len());
    assert_eq!(full.len(), inputs.len());
    for (f, i) in full.iter().zip(&inputs) {
        let mut expect = inputs_of(f);
        // Wall time differs run to run.
        expect.duration_ns = i.duration_ns;
        assert_eq!(i, &expect, "decision #{}", f.seq);
    }
}
