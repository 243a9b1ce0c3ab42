//! XRP's B+tree lookups: one read per level, the engine against an io_uring
//! loop without it and pread.

use crate::common::*;
use io_uring::{opcode, types};
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::chain::{ChainSpec, StepSpec};
use ringside_engine::engine::EngineConfig;
use ringside_engine::event::{LinkMode, Notify};
use ringside_engine::program::vm::ExecMode;
use ringside_workload::content;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

struct LookupRow {
    name: String,
    lookups: u64,
    secs: f64,
    lat_ns: Vec<u64>,
    /// Times the scheduler took the CPU from the row's thread while it
    /// could run: each adds its wait to every lookup then in flight.
    preempted: u64,
}

/// Involuntary context switches of the calling thread so far.
fn preemptions() -> u64 {
    // SAFETY: rusage is plain data and the out-pointer valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_nivcsw as u64
}

/// Lookups whose latency is at least `ms` milliseconds: on a CPU shared
/// with other work, what a preemption of a few ms does to those in flight.
fn over_ms(lat: &[u64], ms: u64) -> usize {
    lat.iter().filter(|&&l| l >= ms * 1_000_000).count()
}

fn p50_of_p99(r: &mut LookupRow) -> (u64, u64) {
    (
        percentile(&mut r.lat_ns, 0.5),
        percentile(&mut r.lat_ns, 0.99),
    )
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
    let (mut e, prog) = bench_engine(config, "btree_lookup", exec)?;
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
    // The same bookkeeping as the loop's: a start time per slot (a chain's
    // user_data is its slot), buffers kept across rounds.
    let mut t0 = vec![Instant::now(); c];
    let (mut ends, mut posted) = (Vec::new(), Vec::new());
    let mut lat = Vec::with_capacity(lookups.len());
    let mut next = 0;
    let pre0 = preemptions();
    let start = Instant::now();
    for (slot, t) in t0.iter_mut().enumerate().take(lookups.len()) {
        e.submit_chain(chain(slot, lookups[next]))
            .map_err(std::io::Error::other)?;
        *t = Instant::now();
        next += 1;
    }
    while lat.len() < lookups.len() {
        e.run(true).map_err(std::io::Error::other)?;
        e.take_finished_into(&mut ends);
        // The program posts each lookup's value (as the loop has it in
        // hand); taken so it does not pile up.
        e.take_completions_into(&mut posted);
        posted.clear();
        for end in &ends {
            if !end.outcome.is_success() {
                return Err(std::io::Error::other(format!(
                    "lookup chain {} ended {:?}",
                    end.chain, end.outcome
                )));
            }
            let slot = end.user_data as usize;
            lat.push(t0[slot].elapsed().as_nanos() as u64);
            if next < lookups.len() {
                e.submit_chain(chain(slot, lookups[next]))
                    .map_err(std::io::Error::other)?;
                t0[slot] = Instant::now();
                next += 1;
            }
        }
    }
    Ok(LookupRow {
        name: format!(
            "engine + btree_lookup ({})",
            if exec == ExecMode::Compiled {
                "compiled"
            } else {
                "interpreter"
            }
        ),
        lookups: lookups.len() as u64,
        secs: start.elapsed().as_secs_f64(),
        lat_ns: lat,
        preempted: preemptions() - pre0,
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
    let pre0 = preemptions();
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
        preempted: preemptions() - pre0,
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
    let pre0 = preemptions();
    let read = |ring: &mut BenchRing, bufs: &mut [u8], slot: usize, off: u64| {
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
        preempted: preemptions() - pre0,
    })
}

/// Which side of the B+tree table [`profile_lookups`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupVariant {
    /// The engine with btree_lookup.
    Engine(ExecMode),
    /// The io_uring loop without the engine.
    Loop,
}

/// One row of the B+tree table alone, for profilers: `n` lookups in the
/// depth-3 tree (or the depth-6 one when `deep`), `c` in flight. Returns
/// the lookups' p50 and p99 latency in ns.
pub fn profile_lookups(
    variant: LookupVariant,
    deep: bool,
    n: u64,
    c: usize,
) -> std::io::Result<(u64, u64)> {
    let (nkeys, fanout) = if deep {
        (4096, 4)
    } else {
        (29_791u64, 31usize)
    };
    let (_dir, file, _tree) = tree_file(nkeys, fanout)?;
    let lookups = keys(n, nkeys);
    let mut row = match variant {
        LookupVariant::Engine(exec) => engine_lookups(&file, &lookups, c, exec)?,
        LookupVariant::Loop => uring_lookups(&file, &lookups, c)?,
    };
    Ok(p50_of_p99(&mut row))
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
        let (loop_p50, loop_p99) = p50_of_p99(&mut rows[2]);
        writeln!(
            out,
            "| variant | lookups/s | p50 latency | p99 latency | p50 / p99 vs the io_uring loop | preempted (involuntary switches) | lookups >= 1 ms |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
        for r in rows.iter_mut() {
            let (p50, p99) = p50_of_p99(r);
            writeln!(
                out,
                "| {} | {:.0} | {:.1} us | {:.1} us | {:.2}x / {:.2}x | {} | {} |",
                r.name,
                r.lookups as f64 / r.secs,
                p50 as f64 / 1e3,
                p99 as f64 / 1e3,
                p50 as f64 / loop_p50.max(1) as f64,
                p99 as f64 / loop_p99.max(1) as f64,
                r.preempted,
                over_ms(&r.lat_ns, 1),
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
