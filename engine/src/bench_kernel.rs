//! `ringside bench engine`, part two: the engine against the kernel's own
//! numbers (a chain of NOPs with a program deciding every step, as the
//! upstream io_uring BPF loop was measured) and XRP's B+tree lookups.

use crate::abi::{RsCtx, RsSqe, op};
use crate::bench::enter_and_reap;
use crate::chain::{ChainSpec, StepSpec};
use crate::decision::Budgets;
use crate::engine::{Engine, EngineConfig};
use crate::event::{LinkMode, Notify};
use crate::program::mem::AddrSpace;
use crate::program::vm::{ExecMode, HelperHost};
use crate::program::{LoadOptions, ProgId, Registry};
use crate::workload::content;
use io_uring::{IoUring, opcode, squeue, types};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// One row of the NOP table.
struct NopRow {
    name: String,
    steps: u64,
    secs: f64,
    enters: u64,
    decision_ns: Option<u64>,
}

fn ring(entries: u32) -> std::io::Result<IoUring> {
    IoUring::builder().setup_cqsize(entries * 4).build(entries)
}

fn entries_for(chains: usize) -> u32 {
    ((chains * 2).next_power_of_two() as u32).max(256)
}

/// An engine for the NOP-chain rows: a ring sized for `chains`, no step
/// budget, nop_chain loaded for `exec`.
pub fn nop_engine(chains: usize, exec: ExecMode) -> std::io::Result<(Engine, ProgId)> {
    let config = EngineConfig {
        entries: entries_for(chains),
        budgets: Budgets {
            steps_per_chain: u32::MAX,
            ..Budgets::default()
        },
        ..Default::default()
    };
    crate::bench::bench_engine(config, "nop_chain", exec)
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
    let (mut e, prog) = nop_engine(chains, exec)?;
    // A listener like the UI: a bounded queue, drained by another thread,
    // that drops rather than slow the engine.
    let listener = listen.then(|| {
        let sub = e.subscribe(1 << 16, crate::event::Overflow::Drop);
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
    let exec = if exec == ExecMode::Compiled {
        "JIT"
    } else {
        "interpreter"
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
    let push_pair = |ring: &mut IoUring, slot: usize| {
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
/// `program`, nop_chain itself decides each step under rbpf's JIT, its
/// helpers doing nothing: the floor of any engine built on rbpf.
fn hand_written_nops(n: u64, chains: usize, program: bool) -> std::io::Result<NopRow> {
    let mut registry = Registry::new();
    let prog = if program {
        let bytes = crate::progs::builtin("nop_chain").expect("built in");
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
            "floor: the hand-written loop, nop_chain deciding each step under rbpf's JIT, helpers doing nothing".into()
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

struct LookupRow {
    name: String,
    lookups: u64,
    secs: f64,
    lat_ns: Vec<u64>,
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn keys(n: u64, nkeys: u64) -> Vec<u64> {
    // A fixed pseudo-random sequence of existing keys.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            content::btree_key(x % nkeys)
        })
        .collect()
}

fn tree_file(keys: u64, fanout: usize) -> std::io::Result<(tempfile::TempDir, OwnedFd, Vec<u8>)> {
    let tree = content::btree(keys, fanout).map_err(std::io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("tree");
    std::fs::write(&p, &tree)?;
    let f = std::fs::File::open(&p)?;
    Ok((dir, f.into(), tree))
}

fn engine_lookups(
    file: &OwnedFd,
    lookups: &[u64],
    c: usize,
    exec: ExecMode,
) -> std::io::Result<LookupRow> {
    let config = EngineConfig {
        entries: entries_for(c),
        files: vec![(file.as_raw_fd(), "tree".into())],
        buffers: vec![512 * c],
        ..Default::default()
    };
    let (mut e, prog) = crate::bench::bench_engine(config, "btree_lookup", exec)?;
    let chain = |slot: usize, key: u64| ChainSpec {
        user_data: slot as u64,
        steps: vec![StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: 0,
            buf_index: 0,
            buf_off: 512 * slot as u64,
            len: 512,
            user_data: key,
            ..Default::default()
        })],
        program: Some(prog),
        notify: Notify::None,
        drain: false,
        link: LinkMode::Engine,
    };
    let mut started: HashMap<u64, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(lookups.len());
    let mut next = 0;
    let start = Instant::now();
    for slot in 0..c.min(lookups.len()) {
        let id = e
            .submit_chain(chain(slot, lookups[next]))
            .map_err(std::io::Error::other)?;
        started.insert(id, Instant::now());
        next += 1;
    }
    while lat.len() < lookups.len() {
        e.run(true).map_err(std::io::Error::other)?;
        for end in e.take_finished() {
            lat.push(
                started
                    .remove(&end.chain)
                    .map(|t| t.elapsed().as_nanos() as u64)
                    .unwrap_or(0),
            );
            if next < lookups.len() {
                let id = e
                    .submit_chain(chain(end.user_data as usize, lookups[next]))
                    .map_err(std::io::Error::other)?;
                started.insert(id, Instant::now());
                next += 1;
            }
        }
        e.take_completions();
    }
    Ok(LookupRow {
        name: format!(
            "engine + btree_lookup ({})",
            if exec == ExecMode::Compiled {
                "JIT"
            } else {
                "interpreter"
            }
        ),
        lookups: lookups.len() as u64,
        secs: start.elapsed().as_secs_f64(),
        lat_ns: lat,
    })
}

fn node_child(node: &[u8], key: u64) -> Option<u64> {
    let leaf = u16::from_le_bytes([node[4], node[5]]) != 0;
    let n = u16::from_le_bytes([node[6], node[7]]) as usize;
    let mut idx = 0;
    for j in 0..n.min(content::BT_MAX) {
        if u64::from_le_bytes(node[8 + 8 * j..16 + 8 * j].try_into().expect("8")) <= key {
            idx = j;
        }
    }
    if leaf {
        return None;
    }
    let o = 8 + 8 * content::BT_MAX + 8 * idx;
    Some(u64::from_le_bytes(node[o..o + 8].try_into().expect("8")))
}

fn pread_lookups(file: &OwnedFd, lookups: &[u64]) -> std::io::Result<LookupRow> {
    let mut node = [0u8; 512];
    let mut lat = Vec::with_capacity(lookups.len());
    let start = Instant::now();
    for &k in lookups {
        let t = Instant::now();
        let mut off = 0u64;
        loop {
            // SAFETY: valid buffer.
            let r = unsafe {
                libc::pread(
                    file.as_raw_fd(),
                    node.as_mut_ptr() as *mut _,
                    512,
                    off as i64,
                )
            };
            if r != 512 {
                return Err(std::io::Error::other("short node read"));
            }
            match node_child(&node, k) {
                Some(c) => off = c,
                None => break,
            }
        }
        lat.push(t.elapsed().as_nanos() as u64);
    }
    Ok(LookupRow {
        name: "pread per level (one thread)".into(),
        lookups: lookups.len() as u64,
        secs: start.elapsed().as_secs_f64(),
        lat_ns: lat,
    })
}

fn uring_lookups(file: &OwnedFd, lookups: &[u64], c: usize) -> std::io::Result<LookupRow> {
    let mut ring = ring(entries_for(c))?;
    ring.submitter().register_files(&[file.as_raw_fd()])?;
    let mut bufs = vec![0u8; 512 * c];
    let mut key = vec![0u64; c];
    let mut t0 = vec![Instant::now(); c];
    let mut lat = Vec::with_capacity(lookups.len());
    let mut next = 0;
    let read = |ring: &mut IoUring, bufs: &mut [u8], slot: usize, off: u64| {
        let e = opcode::Read::new(types::Fixed(0), bufs[512 * slot..].as_mut_ptr(), 512)
            .offset(off)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffers outlive every request (all are reaped before returning).
        unsafe { ring.submission().push(&e) }.expect("sq space");
    };
    let start = Instant::now();
    for slot in 0..c.min(lookups.len()) {
        key[slot] = lookups[next];
        t0[slot] = Instant::now();
        read(&mut ring, &mut bufs, slot, 0);
        next += 1;
    }
    let mut cqes = Vec::with_capacity(256);
    while lat.len() < lookups.len() {
        enter_and_reap(&mut ring, &mut cqes)?;
        for (slot, res) in cqes.drain(..) {
            if res != 512 {
                return Err(std::io::Error::other(format!("node read returned {res}")));
            }
            match node_child(&bufs[512 * slot..512 * slot + 512], key[slot]) {
                Some(child) => read(&mut ring, &mut bufs, slot, child),
                None => {
                    lat.push(t0[slot].elapsed().as_nanos() as u64);
                    if next < lookups.len() {
                        key[slot] = lookups[next];
                        t0[slot] = Instant::now();
                        read(&mut ring, &mut bufs, slot, 0);
                        next += 1;
                    }
                }
            }
        }
    }
    Ok(LookupRow {
        name: "io_uring loop without the engine".into(),
        lookups: lookups.len() as u64,
        secs: start.elapsed().as_secs_f64(),
        lat_ns: lat,
    })
}

/// B+tree lookups (XRP's workload) at depth 3 and 6.
pub fn btree_table(out: &mut dyn Write, n: u64, c: usize) -> std::io::Result<()> {
    for (nkeys, fanout) in [(29_791u64, 31usize), (4096, 4)] {
        let depth = content::btree_depth(nkeys, fanout);
        let (_dir, file, _tree) = tree_file(nkeys, fanout)?;
        let lookups = keys(n, nkeys);
        writeln!(
            out,
            "B+tree lookups, depth {depth} ({nkeys} keys, {fanout} per node, file in the page cache), {c} in flight, {n} lookups"
        )?;
        writeln!(out)?;
        let mut rows = [
            engine_lookups(&file, &lookups, c, ExecMode::Interpreter)?,
            engine_lookups(&file, &lookups, c, ExecMode::Compiled)?,
            uring_lookups(&file, &lookups, c)?,
            pread_lookups(&file, &lookups)?,
        ];
        writeln!(out, "| variant | lookups/s | p50 latency | p99 latency |")?;
        writeln!(out, "|---|---:|---:|---:|")?;
        for r in rows.iter_mut() {
            let (p50, p99) = (
                percentile(&mut r.lat_ns, 0.5),
                percentile(&mut r.lat_ns, 0.99),
            );
            writeln!(
                out,
                "| {} | {:.0} | {:.1} us | {:.1} us |",
                r.name,
                r.lookups as f64 / r.secs,
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
