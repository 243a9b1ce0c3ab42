//! A chain of NOPs with a program deciding every step (the upstream
//! io_uring BPF loop's benchmark): the engine against kernel links, one NOP
//! per enter and a hand-written loop.

use crate::common::*;
use io_uring::{opcode, squeue};
use ringside_engine::Backend;
use ringside_engine::abi::{RsCtx, op};
use ringside_engine::chain::{ChainSpec, StepSpec};
use ringside_engine::decision::Budgets;
use ringside_engine::engine::{Engine, EngineConfig};
use ringside_engine::event::{Detail, LinkMode, Notify, Overflow};
use ringside_engine::program::mem::AddrSpace;
use ringside_engine::program::vm::{ExecMode, HelperHost};
use ringside_engine::program::{LoadOptions, ProgId, Registry};
use std::io::Write;
use std::time::Instant;

/// One row of the NOP table.
struct NopRow {
    name: String,
    steps: u64,
    secs: f64,
    enters: u64,
    decision_ns: Option<u64>,
}

/// An engine for the NOP-chain rows: a ring sized for `chains`, no step
/// budget, nop_chain loaded for `exec`.
pub fn nop_engine(chains: usize, exec: ExecMode) -> std::io::Result<(Engine, ProgId)> {
    nop_engine_on(chains, exec, Backend::User)
}

/// [`nop_engine`] with decisions where `backend` says.
pub fn nop_engine_on(
    chains: usize,
    exec: ExecMode,
    backend: Backend,
) -> std::io::Result<(Engine, ProgId)> {
    let config = EngineConfig {
        backend,
        entries: entries_for(chains),
        budgets: Budgets {
            steps_per_chain: u32::MAX,
            ..Budgets::default()
        },
        ..Default::default()
    };
    bench_engine(config, "nop_chain", exec)
}

/// Run `n` NOPs as `chains` concurrent chains, nop_chain deciding every step.
pub fn run_nop_chains(e: &mut Engine, prog: ProgId, n: u64, chains: usize) -> std::io::Result<()> {
    let per = n / chains as u64;
    for _ in 0..chains {
        e.submit_chain(ChainSpec {
            user_data: per,
            steps: vec![StepSpec::nop(per)],
            program: Some(prog),
            notify: Notify::None,
            drain: false,
            link: LinkMode::Engine,
        })
        .map_err(std::io::Error::other)?;
    }
    e.run_until_idle().map_err(std::io::Error::other)
}

fn engine_nops(n: u64, chains: usize, exec: ExecMode, listen: bool) -> std::io::Result<NopRow> {
    engine_nops_on(n, chains, exec, listen, Backend::User)
}

fn engine_nops_on(
    n: u64,
    chains: usize,
    exec: ExecMode,
    listen: bool,
    backend: Backend,
) -> std::io::Result<NopRow> {
    let (mut e, prog) = nop_engine_on(chains, exec, backend)?;
    // A listener like the UI: a bounded queue, drained by another thread,
    // that drops rather than slow the engine.
    let listener = listen.then(|| {
        let sub = e.subscribe_with(1 << 16, Overflow::Drop, Detail::Inputs);
        let dropped = sub.dropped.clone();
        (
            std::thread::spawn(move || sub.iter().count() as u64),
            dropped,
        )
    });
    let start = Instant::now();
    run_nop_chains(&mut e, prog, n, chains)?;
    let secs = start.elapsed().as_secs_f64();
    let s = e.stats();
    let heard = listener.map(|(t, dropped)| {
        drop(e);
        let seen = t.join().unwrap_or(0);
        format!(
            ", with a UI-like listener: {seen} events, {} dropped",
            dropped.load(std::sync::atomic::Ordering::Relaxed)
        )
    });
    let exec = match (backend, exec) {
        (Backend::Kernel, _) => "--backend kernel: inside io_uring_enter, the kernel's JIT",
        (_, ExecMode::Compiled) => "compiled",
        _ => "interpreter",
    };
    Ok(NopRow {
        name: format!(
            "engine, nop_chain decides every step ({exec}{})",
            heard.unwrap_or_default()
        ),
        steps: s.completed,
        secs,
        enters: s.enter_calls,
        decision_ns: Some(s.decision_ns),
    })
}

/// Two-request kernel links, resubmitted as each pair completes.
fn kernel_links(n: u64, chains: usize) -> std::io::Result<NopRow> {
    let mut ring = ring(entries_for(chains))?;
    let pairs = n / 2;
    let mut outstanding = vec![0u8; chains];
    let (mut issued, mut done, mut enters) = (0u64, 0u64, 0u64);
    let push_pair = |ring: &mut BenchRing, slot: usize| {
        let a = opcode::Nop::new()
            .build()
            .user_data(slot as u64)
            .flags(squeue::Flags::IO_LINK);
        let b = opcode::Nop::new().build().user_data(slot as u64);
        // SAFETY: NOPs reference no memory.
        unsafe {
            let mut sq = ring.submission();
            sq.push(&a).expect("sq space");
            sq.push(&b).expect("sq space");
        }
    };
    let start = Instant::now();
    for (slot, out) in outstanding.iter_mut().enumerate() {
        push_pair(&mut ring, slot);
        *out = 2;
        issued += 1;
    }
    let mut cqes = Vec::with_capacity(1024);
    while done < pairs {
        enter_and_reap(&mut ring, &mut cqes)?;
        enters += 1;
        for (slot, _) in cqes.drain(..) {
            outstanding[slot] -= 1;
            if outstanding[slot] == 0 {
                done += 1;
                if issued < pairs {
                    push_pair(&mut ring, slot);
                    outstanding[slot] = 2;
                    issued += 1;
                }
            }
        }
    }
    Ok(NopRow {
        name: "kernel two-request links, resubmitted per pair".into(),
        steps: done * 2,
        secs: start.elapsed().as_secs_f64(),
        enters,
        decision_ns: None,
    })
}

/// One NOP per submit-and-wait: no linking, no batching.
fn one_per_enter(n: u64, chains: usize) -> std::io::Result<NopRow> {
    let mut ring = ring(entries_for(chains))?;
    let (mut done, mut enters) = (0u64, 0u64);
    let nop = opcode::Nop::new().build();
    let start = Instant::now();
    // SAFETY: NOPs reference no memory.
    for _ in 0..chains.saturating_sub(1) {
        unsafe { ring.submission().push(&nop) }.expect("sq space");
    }
    let mut issued = chains.saturating_sub(1) as u64;
    while done < n {
        if issued < n {
            // SAFETY: as above.
            unsafe { ring.submission().push(&nop) }.expect("sq space");
            issued += 1;
        }
        ring.submit_and_wait(1)?;
        enters += 1;
        done += ring.completion().count() as u64;
    }
    Ok(NopRow {
        name: "one NOP per submit and wait, no linking".into(),
        steps: done,
        secs: start.elapsed().as_secs_f64(),
        enters,
        decision_ns: None,
    })
}

/// Helpers that do nothing (rs_submit answers index 0): what the floor row
/// pays for a decision is entering the program and calling out of it.
struct NoHelpers;

impl HelperHost for NoHelpers {
    fn call(&mut self, _id: u32, _args: [u64; 5], _mem: &AddrSpace<'_>) -> u64 {
        0
    }
}

/// The practical userspace ceiling: the same logic as nop_chain in Rust,
/// every completion handled in one pass, one io_uring_enter per batch. With
/// `program`, nop_chain itself decides each step, compiled, its helpers
/// doing nothing: what entering the program and calling out of it costs.
fn hand_written_nops(n: u64, chains: usize, program: bool) -> std::io::Result<NopRow> {
    let mut registry = Registry::new();
    let prog = if program {
        let bytes = ringside_engine::progs::builtin("nop_chain").expect("built in");
        let opts = LoadOptions {
            exec: ExecMode::Compiled,
            ..Default::default()
        };
        let loaded = registry
            .load_object("nop_chain.o", bytes, &opts)
            .map_err(std::io::Error::other)?;
        registry.program(loaded.programs[0].1)
    } else {
        None
    };
    let mut ring = ring(entries_for(chains))?;
    let per = n / chains as u64;
    let mut left = vec![per; chains];
    let (mut done, mut enters) = (0u64, 0u64);
    let start = Instant::now();
    for (slot, l) in left.iter_mut().enumerate() {
        // SAFETY: NOPs reference no memory.
        unsafe {
            ring.submission()
                .push(&opcode::Nop::new().build().user_data(slot as u64))
        }
        .expect("sq space");
        *l -= 1;
    }
    let total = per * chains as u64;
    let mut cqes = Vec::with_capacity(1024);
    while done < total {
        enter_and_reap(&mut ring, &mut cqes)?;
        enters += 1;
        for (slot, res) in cqes.drain(..) {
            done += 1;
            let next = match prog {
                Some(p) => {
                    let ctx = RsCtx {
                        user_data: per,
                        res,
                        step: (per - left[slot] - 1) as u32,
                        opcode: op::NOP,
                        fd: -1,
                        ..Default::default()
                    };
                    let mut bytes = ctx.to_bytes();
                    // RS_NEXT exactly when steps are left (see nop_chain.bpf.c).
                    p.vm()
                        .execute(&mut bytes, p.regions(), &mut NoHelpers, None)
                        .is_ok_and(|r| r.ret == 0)
                        && left[slot] > 0
                }
                None => res >= 0 && left[slot] > 0,
            };
            if next {
                left[slot] -= 1;
                // SAFETY: as above.
                unsafe {
                    ring.submission()
                        .push(&opcode::Nop::new().build().user_data(slot as u64))
                }
                .expect("sq space");
            }
        }
    }
    Ok(NopRow {
        name: if program {
            "floor: the hand-written loop, nop_chain deciding each step (compiled), helpers doing nothing".into()
        } else {
            "hand-written Rust io_uring loop".into()
        },
        steps: done,
        secs: start.elapsed().as_secs_f64(),
        enters,
        decision_ns: None,
    })
}

/// Chains of NOPs at a concurrency, side by side.
pub fn nop_table(out: &mut dyn Write, n: u64, chains: usize) -> std::io::Result<()> {
    writeln!(
        out,
        "{n} NOPs as {chains} concurrent chain(s) of {} steps",
        n / chains as u64
    )?;
    writeln!(out)?;
    // The kernel backend's rows where the kernel has the io_uring BPF loop;
    // elsewhere a line says why they are missing.
    let kernel_rows = match ringside_engine::kernel::probe() {
        Ok(()) => vec![
            engine_nops_on(n, chains, ExecMode::Compiled, false, Backend::Kernel)?,
            engine_nops_on(n, chains, ExecMode::Compiled, true, Backend::Kernel)?,
        ],
        Err(e) => {
            writeln!(out, "No kernel backend rows: {e}")?;
            writeln!(out)?;
            Vec::new()
        }
    };
    let rows = [
        engine_nops(n, chains, ExecMode::Interpreter, false)?,
        engine_nops(n, chains, ExecMode::Compiled, false)?,
        engine_nops(n, chains, ExecMode::Compiled, true)?,
        kernel_links(n, chains)?,
        one_per_enter(n, chains)?,
        hand_written_nops(n, chains, false)?,
        hand_written_nops(n, chains, true)?,
    ];
    let rate = |r: &NopRow| r.steps as f64 / r.secs;
    let (kernel, hand) = (rate(&rows[3]), rate(&rows[5]));
    let rows: Vec<NopRow> = rows.into_iter().chain(kernel_rows).collect();
    writeln!(
        out,
        "| variant | steps/s | ns/step | io_uring_enter/step | decision share | vs kernel links | vs hand-written |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        let share = r
            .decision_ns
            .map(|d| format!("{:.0}%", 100.0 * d as f64 / (r.secs * 1e9)))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "| {} | {:.2}M | {:.0} | {:.3} | {share} | {:.2}x | {:.2}x |",
            r.name,
            rate(r) / 1e6,
            r.secs * 1e9 / r.steps as f64,
            r.enters as f64 / r.steps as f64,
            rate(r) / kernel,
            rate(r) / hand
        )?;
    }
    writeln!(out)
}

// ---- B+tree lookups ---------------------------------------------------------------
