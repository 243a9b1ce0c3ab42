//! `ringside bench engine`: what a decision costs, and what the engine's
//! chains cost next to a hand-written io_uring loop and the naive way.
//!
//! Everything runs side by side in one process and one run, and prints a
//! table with ratios. Nothing here is a test: no numbers are asserted.

pub mod btree;
mod chains;
mod common;
pub mod decisions;
pub mod nops;

use std::io::Write;

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
    /// Only the tables that have kernel backend rows (`--backend kernel`).
    pub kernel_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nops: 10_000_000,
            lookups: 200_000,
            decisions: 200_000,
            chains: 20_000,
            concurrency: 64,
            kernel_only: false,
        }
    }
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
    writeln!(
        out,
        "Rings, the engine's and the hand-written baselines' alike: {}",
        common::tuning()?.describe()
    )?;
    writeln!(out)?;
    if !opts.kernel_only {
        decisions::decision_costs(out, opts.decisions)?;
    }
    // The shape (64 KiB reads: copying dominates), then small reads,
    // where per-request overhead (and so the naive way's) shows.
    if opts.chains > 0 {
        for c in [1, opts.concurrency] {
            chains::chain_table(out, opts.chains, c, chains::Shape { read: 64 * 1024 })?;
        }
        chains::chain_table(
            out,
            opts.chains * 4,
            opts.concurrency,
            chains::Shape { read: 8 * 1024 },
        )?;
    }
    if opts.nops > 0 {
        for chains in [1, 64] {
            nops::nop_table(out, opts.nops, chains)?;
        }
    }
    if opts.lookups > 0 && !opts.kernel_only {
        for c in [1, 32] {
            btree::btree_table(out, opts.lookups, c)?;
        }
    }
    Ok(())
}
