//! `ringside bench engine`: what a decision costs, and what the engine's
//! chains cost next to a hand-written io_uring loop and the naive way.
//!
//! Everything runs side by side in one process and one run, and prints a
//! table with ratios. Nothing here is a test: no numbers are asserted.

use crate::abi::{RsCtx, RsSqe, op};
use crate::chain::{ChainSpec, StepSpec};
use crate::decision::{self, Budgets, ChainView, DecisionRequest, InputSource, Registrations};
use crate::engine::{Engine, EngineConfig};
use crate::event::{LinkMode, Notify};
use crate::program::vm::ExecMode;
use crate::program::{LoadOptions, Registry};
use crate::workload::content;
use io_uring::{IoUring, opcode, types};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Options.
#[derive(Clone, Debug)]
pub struct Options {
    /// NOPs per row of the NOP tables (0: skip them).
    pub nops: u64,
    /// Lookups per row of the B+tree tables (0: skip them).
    pub lookups: u64,
    /// Decisions per program for the decision-cost table.
    pub decisions: u64,
    /// Chains per variant for the read_exact table.
    pub chains: u64,
    /// Chains in flight at once (each on its own pipe) in the concurrent rows.
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nops: 10_000_000,
            lookups: 200_000,
            decisions: 200_000,
            chains: 20_000,
            concurrency: 64,
        }
    }
}

/// Read size and pipe size of a chain table: pipes hold half a read, so every
/// read comes back short at least once (the forced short read of every chain).
#[derive(Clone, Copy, Debug)]
struct Shape {
    read: u32,
}

impl Shape {
    fn pipe_size(self) -> i32 {
        (self.read / 2) as i32
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---- decision cost -------------------------------------------------------------

struct BenchSource {
    node: Vec<u8>,
}

impl InputSource for BenchSource {
    fn ktime_ns(&mut self) -> u64 {
        1
    }
    fn read_buf(&mut self, _buf: u16, off: u64, dst: &mut [u8]) {
        let off = off as usize % self.node.len();
        let n = dst.len().min(self.node.len() - off);
        dst[..n].copy_from_slice(&self.node[off..off + n]);
    }
}

/// A representative decision for each program: the path that does the most.
fn bench_ctx(name: &str) -> RsCtx {
    let base = RsCtx {
        user_data: 7,
        chain_id: 1,
        nsteps: 1,
        attempt: 1,
        fd: 0,
        buf_index: 0,
        ..Default::default()
    };
    match name {
        "read_exact" => RsCtx {
            opcode: op::READ,
            res: 1000,
            len: 4096,
            ..base
        },
        "read_to_eof" => RsCtx {
            opcode: op::READ,
            res: 4096,
            len: 4096,
            ..base
        },
        "copy" => RsCtx {
            opcode: op::READ,
            res: 4096,
            len: 4096,
            ..base
        },
        "header_body" => RsCtx {
            opcode: op::RECV,
            res: 4,
            len: 4,
            ..base
        },
        "btree_lookup" => RsCtx {
            opcode: op::READ,
            res: 512,
            len: 512,
            user_data: 1000,
            ..base
        },
        _ => RsCtx {
            opcode: op::RECV,
            res: -11,
            len: 100,
            ..base
        },
    }
}

/// The same logic as each pattern program, written in Rust against plain
/// collections: what the program would cost with no VM and no engine checks.
struct RustPatterns {
    maps: HashMap<u64, u64>,
    actions: Vec<RsSqe>,
    node: Vec<u8>,
}

impl RustPatterns {
    fn decide(&mut self, name: &str, c: &RsCtx) -> u64 {
        let again = |c: &RsCtx, done: u32| RsSqe {
            opcode: c.opcode,
            buf_index: c.buf_index,
            fd: c.fd,
            off: c.off + done as u64,
            buf_off: c.buf_off + done as u64,
            len: c.len - done,
            user_data: c.user_data,
            ..Default::default()
        };
        match name {
            "read_exact" => {
                if c.res < 0 {
                    self.maps.remove(&c.chain_id);
                    return 2;
                }
                if (c.res as u32) < c.len {
                    self.actions.push(again(c, c.res as u32));
                    *self.maps.entry(c.chain_id).or_default() += c.res as u64;
                }
                0
            }
            "read_to_eof" | "copy" => {
                *self.maps.entry(c.chain_id).or_default() += c.res as u64;
                self.actions.push(again(c, 0));
                0
            }
            "header_body" => {
                let len = u32::from_le_bytes(self.node[..4].try_into().expect("4"));
                self.actions.push(RsSqe { len, ..again(c, 0) });
                0
            }
            "nop_chain" => {
                if (c.step as u64) + 1 >= c.user_data {
                    return 1;
                }
                self.actions.push(RsSqe {
                    opcode: op::NOP,
                    fd: -1,
                    buf_index: 0xffff,
                    user_data: c.user_data,
                    ..Default::default()
                });
                0
            }
            "btree_lookup" => {
                let n = u16::from_le_bytes([self.node[6], self.node[7]]) as usize;
                let mut idx = 0;
                for j in 0..n.min(31) {
                    let k =
                        u64::from_le_bytes(self.node[8 + 8 * j..16 + 8 * j].try_into().expect("8"));
                    if k <= c.user_data {
                        idx = j;
                    }
                }
                let o = 8 + 8 * 31 + 8 * idx;
                let child = u64::from_le_bytes(self.node[o..o + 8].try_into().expect("8"));
                self.actions.push(RsSqe {
                    off: child,
                    ..again(c, 0)
                });
                0
            }
            _ => {
                let max = self.maps.get(&0).copied().unwrap_or(8);
                if (c.attempt as u64) < max {
                    self.actions.push(again(c, 0));
                    self.actions.push(RsSqe {
                        opcode: op::TIMEOUT,
                        ..Default::default()
                    });
                }
                0
            }
        }
    }
}

fn decision_costs(out: &mut dyn Write, n: u64) -> std::io::Result<()> {
    let tree = content::btree(4096, 4).unwrap_or_default();
    // btree_lookup reads the tree's root node; the others read a 100-byte
    // length header (header_body) at the start of their buffer.
    let root = tree[..512].to_vec();
    let mut node = vec![0u8; 512];
    node[..4].copy_from_slice(&100u32.to_le_bytes());
    writeln!(
        out,
        "Decision cost (ns per decision nobody records, as the engine runs it; the path of each program that does the most work)"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| program | interpreter | compiled | interpreter / compiled | Rust | interpreter / Rust | compiled / Rust | instructions |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let regs = Registrations {
        files: 2,
        buffers: vec![1 << 20],
    };
    let budgets = Budgets {
        steps_per_chain: u32::MAX,
        ..Budgets::default()
    };
    for (name, bytes) in crate::progs::ALL {
        let ctx = bench_ctx(name);
        let src_node = if name == "btree_lookup" {
            root.clone()
        } else {
            node.clone()
        };
        let mut per_mode = Vec::new();
        let mut insns = 0;
        for exec in [ExecMode::Interpreter, ExecMode::Compiled] {
            let mut reg = Registry::new();
            let obj = reg
                .load_object(
                    name,
                    bytes,
                    &LoadOptions {
                        exec,
                        ..Default::default()
                    },
                )
                .expect("built-in program loads");
            let id = obj.programs[0].1;
            // A program the compiler refused would make the compiled row a
            // second interpreter row: say so rather than print it as one.
            if let Some(note) = reg.program(id).and_then(|p| p.exec_note.clone()) {
                writeln!(out, "({name}: {note})")?;
            }
            let mut source = BenchSource {
                node: src_node.clone(),
            };
            let view = ChainView {
                chain: 1,
                step: 0,
                nsteps: 1,
                opcode: ctx.opcode,
                fd: 0,
                attempt: 1,
                pending: vec![],
            };
            // One counted run for the instruction count.
            {
                let (p, maps) = reg.program_and_maps(id).expect("loaded");
                let req = DecisionRequest {
                    seq: 0,
                    ctx,
                    view: view.clone(),
                    regs: &regs,
                    budgets: &budgets,
                    record: true,
                    count_insns: true,
                };
                insns = decision::execute(p, maps, req, &mut source)
                    .insns
                    .unwrap_or(0);
            }
            // Then as the engine runs a decision nobody records: no record,
            // buffers reused, the view refilled for each decision.
            let mut scratch = decision::Scratch::default();
            let start = Instant::now();
            for _ in 0..n {
                let (p, maps) = reg.program_and_maps(id).expect("loaded");
                scratch.view.clone_from(&view);
                std::hint::black_box(decision::execute_unrecorded(
                    p,
                    maps,
                    &ctx,
                    &regs,
                    &budgets,
                    &mut source,
                    &mut scratch,
                    false,
                ));
            }
            per_mode.push(start.elapsed().as_nanos() as f64 / n as f64);
        }
        let mut rust = RustPatterns {
            maps: HashMap::new(),
            actions: Vec::new(),
            node: src_node.clone(),
        };
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rust.decide(name, std::hint::black_box(&ctx)));
            rust.actions.clear();
        }
        let rust_ns = (start.elapsed().as_nanos() as f64 / n as f64).max(0.1);
        writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.1}x | {:.1} | {:.0}x | {:.0}x | {insns} |",
            per_mode[0],
            per_mode[1],
            per_mode[0] / per_mode[1],
            rust_ns,
            per_mode[0] / rust_ns,
            per_mode[1] / rust_ns
        )?;
    }
    writeln!(out)
}

// ---- read_exact chains -------------------------------------------------------------

struct Feed {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `n` pipes of PIPE_SIZE bytes; one writer thread keeps them full.
fn pipes(n: usize, shape: Shape) -> std::io::Result<(Vec<OwnedFd>, Feed)> {
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..n {
        let mut fds = [0; 2];
        // SAFETY: valid out-array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fresh fds.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our fds.
        unsafe {
            libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, shape.pipe_size());
            let fl = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        readers.push(r);
        writers.push(w);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        // The ring thread has CPU 0 (see `chain_table`); the feeder the next.
        pin_to(1);
        let data = vec![0x5au8; shape.read as usize];
        let mut pfds: Vec<libc::pollfd> = writers
            .iter()
            .map(|w| libc::pollfd {
                fd: w.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        while !s.load(Ordering::Relaxed) {
            // SAFETY: valid pollfd array.
            unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
            for p in pfds.iter_mut() {
                if p.revents & libc::POLLOUT != 0 {
                    // SAFETY: valid buffer; non-blocking write.
                    unsafe { libc::write(p.fd, data.as_ptr() as *const _, data.len()) };
                }
            }
        }
    });
    Ok((
        readers,
        Feed {
            stop,
            thread: Some(thread),
        },
    ))
}

/// Pin the calling thread to `cpu` (when the machine has it); returns the
/// affinity it had, for [`unpin`].
fn pin_to(cpu: usize) -> Option<libc::cpu_set_t> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || cpu >= cpus {
        return None;
    }
    // SAFETY: cpu_set_t is plain data; the calls get valid pointers and sizes.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut old) != 0 {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        (libc::sched_setaffinity(0, size, &set) == 0).then_some(old)
    }
}

/// Give the calling thread back the affinity [`pin_to`] returned.
fn unpin(old: Option<libc::cpu_set_t>) {
    if let Some(old) = old {
        // SAFETY: as in pin_to.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    }
}

struct ChainRow {
    name: &'static str,
    chains: u64,
    secs: f64,
    enters: u64,
    cpu_ns: u64,
    reads: u64,
}

impl ChainRow {
    fn rate(&self) -> f64 {
        self.chains as f64 / self.secs
    }
}

/// Rounds of each read_exact chain table (see `chain_table`).
const ROUNDS: usize = 3;

/// One io_uring_enter that waits for a completion, then every completion
/// as (user_data, res): the inner loop of the hand-written baselines.
pub(crate) fn enter_and_reap(
    ring: &mut IoUring,
    out: &mut Vec<(usize, i32)>,
) -> std::io::Result<()> {
    ring.submit_and_wait(1)?;
    out.extend(
        ring.completion()
            .map(|c| (c.user_data() as usize, c.result())),
    );
    Ok(())
}

/// An engine for a benchmark row, with one built-in program loaded.
pub(crate) fn bench_engine(
    config: EngineConfig,
    prog: &str,
    exec: ExecMode,
) -> std::io::Result<(Engine, crate::program::ProgId)> {
    let mut e = Engine::new(config).map_err(std::io::Error::other)?;
    let bytes = crate::progs::builtin(prog)
        .ok_or_else(|| std::io::Error::other(format!("no program {prog}")))?;
    let loaded = e
        .load_object(
            &format!("{prog}.o"),
            bytes,
            &LoadOptions {
                exec,
                ..Default::default()
            },
        )
        .map_err(std::io::Error::other)?;
    Ok((e, loaded.programs[0].1))
}

fn engine_chains(n: u64, c: usize, exec: ExecMode, shape: Shape) -> std::io::Result<ChainRow> {
    let (readers, _feed) = pipes(c, shape)?;
    let read = shape.read;
    let config = EngineConfig {
        entries: 256,
        files: readers
            .iter()
            .map(|r| (r.as_raw_fd(), "pipe".to_string()))
            .collect(),
        buffers: vec![read as usize * c],
        budgets: Budgets {
            steps_per_chain: u32::MAX,
            ..Budgets::default()
        },
    };
    let (mut e, prog) = bench_engine(config, "read_exact", exec)?;
    let chain = |slot: usize| ChainSpec {
        user_data: slot as u64,
        steps: vec![StepSpec::io(RsSqe {
            opcode: op::READ,
            fd: slot as i32,
            buf_index: 0,
            buf_off: slot as u64 * read as u64,
            len: read,
            user_data: slot as u64,
            ..Default::default()
        })],
        program: Some(prog),
        notify: Notify::Final,
        drain: false,
        link: LinkMode::Engine,
    };
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut submitted = 0;
    let mut done = 0;
    for slot in 0..c {
        e.submit_chain(chain(slot)).map_err(std::io::Error::other)?;
        submitted += 1;
    }
    while done < n {
        e.run(true).map_err(std::io::Error::other)?;
        for end in e.take_finished() {
            done += 1;
            if submitted < n {
                e.submit_chain(chain(end.user_data as usize))
                    .map_err(std::io::Error::other)?;
                submitted += 1;
            }
        }
        e.take_completions();
    }
    let s = e.stats();
    Ok(ChainRow {
        name: if exec == ExecMode::Compiled {
            "engine + read_exact (JIT)"
        } else {
            "engine + read_exact (interpreter)"
        },
        chains: n,
        secs: start.elapsed().as_secs_f64(),
        enters: s.enter_calls,
        cpu_ns: thread_cpu_ns() - cpu0,
        reads: s.completed,
    })
}

fn hand_written(n: u64, c: usize, shape: Shape) -> std::io::Result<ChainRow> {
    let (readers, _feed) = pipes(c, shape)?;
    let read = shape.read;
    let mut ring = IoUring::new(256)?;
    let fds: Vec<RawFd> = readers.iter().map(|r| r.as_raw_fd()).collect();
    ring.submitter().register_files(&fds)?;
    let mut bufs = vec![0u8; read as usize * c];
    let mut got = vec![0u32; c];
    let mut enters = 0u64;
    let mut reads = 0u64;
    let push = |ring: &mut IoUring, bufs: &mut [u8], slot: usize, got: u32| {
        let p = bufs[slot * read as usize + got as usize..].as_mut_ptr();
        let e = opcode::Read::new(types::Fixed(slot as u32), p, read - got)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer outlives the request (we reap all before returning).
        while unsafe { ring.submission().push(&e) }.is_err() {
            ring.submit().expect("submit");
        }
    };
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let (mut started, mut done) = (0u64, 0u64);
    for slot in 0..c {
        push(&mut ring, &mut bufs, slot, 0);
        started += 1;
    }
    let mut cqes = Vec::with_capacity(256);
    while done < n {
        enter_and_reap(&mut ring, &mut cqes)?;
        enters += 1;
        for (slot, res) in cqes.drain(..) {
            reads += 1;
            if res <= 0 {
                return Err(std::io::Error::other(format!("read failed: {res}")));
            }
            got[slot] += res as u32;
            if got[slot] < read {
                push(&mut ring, &mut bufs, slot, got[slot]); // the same recovery as read_exact
                continue;
            }
            done += 1;
            got[slot] = 0;
            if started < n {
                push(&mut ring, &mut bufs, slot, 0);
                started += 1;
            }
        }
    }
    // Reap what is still in flight before the buffers go.
    let left = started - done;
    let mut reaped = 0;
    drop(_feed);
    while reaped < left {
        let _ = enter_and_reap(&mut ring, &mut cqes);
        for (slot, res) in cqes.drain(..) {
            if res > 0 {
                got[slot] += res as u32;
            }
            if res <= 0 || got[slot] >= read {
                reaped += 1;
            } else {
                push(&mut ring, &mut bufs, slot, got[slot]);
            }
        }
    }
    Ok(ChainRow {
        name: "hand-written io_uring loop",
        chains: n,
        secs: start.elapsed().as_secs_f64(),
        enters,
        cpu_ns: thread_cpu_ns() - cpu0,
        reads,
    })
}

fn naive(n: u64, c: usize, shape: Shape) -> std::io::Result<ChainRow> {
    let (readers, _feed) = pipes(c, shape)?;
    let read = shape.read;
    let mut ring = IoUring::new(8)?;
    let mut buf = vec![0u8; read as usize];
    let (mut enters, mut reads) = (0u64, 0u64);
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    for i in 0..n {
        let fd = readers[i as usize % c].as_raw_fd();
        let mut got = 0u32;
        while got < read {
            let e = opcode::Read::new(types::Fd(fd), buf[got as usize..].as_mut_ptr(), read - got)
                .build();
            // SAFETY: buf outlives the request: we wait for it right here.
            unsafe { ring.submission().push(&e) }.map_err(std::io::Error::other)?;
            ring.submit_and_wait(1)?;
            enters += 1;
            let res = ring.completion().next().map(|c| c.result()).unwrap_or(-1);
            reads += 1;
            if res <= 0 {
                return Err(std::io::Error::other(format!("read failed: {res}")));
            }
            got += res as u32;
        }
    }
    Ok(ChainRow {
        name: "naive: submit, wait, inspect, resubmit",
        chains: n,
        secs: start.elapsed().as_secs_f64(),
        enters,
        cpu_ns: thread_cpu_ns() - cpu0,
        reads,
    })
}

fn chain_table(out: &mut dyn Write, n: u64, c: usize, shape: Shape) -> std::io::Result<()> {
    writeln!(
        out,
        "read_exact chains: one {} KiB read per chain from a pipe that holds {} KiB (a short read in every chain), {c} in flight, {n} chains per row, the median of {ROUNDS} interleaved rounds",
        shape.read / 1024,
        shape.pipe_size() / 1024
    )?;
    writeln!(out)?;
    // A feeder thread fills the pipes. Left to the scheduler, it and the
    // ring thread sometimes share a CPU and a row falls to 0.4x of its usual
    // rate; pinned to CPUs of their own, rounds of every variant in turn,
    // and each variant's median round.
    let pinned = pin_to(0);
    let mut rounds: [Vec<ChainRow>; 4] = Default::default();
    let result = (|| {
        for _ in 0..ROUNDS {
            rounds[0].push(engine_chains(n, c, ExecMode::Interpreter, shape)?);
            rounds[1].push(engine_chains(n, c, ExecMode::Compiled, shape)?);
            rounds[2].push(hand_written(n, c, shape)?);
            rounds[3].push(naive(n, c, shape)?);
        }
        Ok::<(), std::io::Error>(())
    })();
    unpin(pinned);
    result?;
    let rows = rounds.map(|mut v| {
        v.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        v.swap_remove(v.len() / 2)
    });
    let hand = rows[2].rate();
    let hand_cpu = rows[2].cpu_ns as f64 / rows[2].chains as f64;
    writeln!(
        out,
        "| variant | chains/s | reads/chain | io_uring_enter/chain | CPU us/chain (ring thread) | chains/s vs hand-written | CPU vs hand-written |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for r in &rows {
        let rate = r.rate();
        let cpu = r.cpu_ns as f64 / r.chains as f64;
        writeln!(
            out,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2}x | {:.2}x |",
            r.name,
            rate,
            r.reads as f64 / r.chains as f64,
            r.enters as f64 / r.chains as f64,
            cpu / 1000.0,
            rate / hand,
            cpu / hand_cpu
        )?;
    }
    writeln!(out)
}

/// Print both tables.
pub fn run(opts: &Options, out: &mut dyn Write) -> std::io::Result<()> {
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::uname(&mut uts) };
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    writeln!(
        out,
        "ringside bench engine: kernel {release}, {cpus} CPUs, {} build",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    )?;
    writeln!(out)?;
    decision_costs(out, opts.decisions)?;
    // The shape (64 KiB reads: copying dominates), then small reads,
    // where per-request overhead (and so the naive way's) shows.
    if opts.chains > 0 {
        for c in [1, opts.concurrency] {
            chain_table(out, opts.chains, c, Shape { read: 64 * 1024 })?;
        }
        chain_table(
            out,
            opts.chains * 4,
            opts.concurrency,
            Shape { read: 8 * 1024 },
        )?;
    }
    if opts.nops > 0 {
        for chains in [1, 64] {
            crate::bench_kernel::nop_table(out, opts.nops, chains)?;
        }
    }
    if opts.lookups > 0 {
        for c in [1, 32] {
            crate::bench_kernel::btree_table(out, opts.lookups, c)?;
        }
    }
    Ok(())
}
