//! The command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// ringside: an interactive debugger for io_uring link chains and the BPF
/// programs that steer them.
#[derive(Debug, Parser)]
#[command(name = "ringside", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: demo).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options shared by live modes.
#[derive(Debug, Args, Clone, Default)]
pub struct LiveOpts {
    /// Print events as JSON Lines on stdout instead of drawing the UI.
    #[arg(long)]
    pub headless: bool,
    /// Run programs under rbpf's JIT (only verified programs).
    #[arg(long)]
    pub jit: bool,
    /// Events of history the UI keeps (totals are kept beyond it).
    #[arg(long, default_value_t = 200_000)]
    pub history: usize,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine (and kernel probes, as root) on a built-in workload.
    Demo {
        /// Live options.
        #[command(flatten)]
        live: LiveOpts,
    },
    /// Run a chain workload described in a TOML file (docs/workload.md).
    Run {
        /// The workload file.
        spec: PathBuf,
        /// Live options.
        #[command(flatten)]
        live: LiveOpts,
    },
    /// Watch another process's rings (kernel probes) or an embedded engine (socket).
    Attach {
        /// Process to trace.
        #[arg(long, conflicts_with = "socket")]
        pid: Option<u32>,
        /// Unix socket of an engine embedded in another process.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Live options.
        #[command(flatten)]
        live: LiveOpts,
    },
    /// Record a live session to a file.
    Record {
        /// Output file.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// What to record.
        #[command(subcommand)]
        what: RecordWhat,
    },
    /// Replay a recording in the UI: step, seek, breakpoints.
    Replay {
        /// The recording.
        file: PathBuf,
        /// Print the recorded events as JSON Lines instead.
        #[arg(long)]
        headless: bool,
    },
    /// Re-execute every decision of a recording; exit 0 when identical, 1 at
    /// the first divergence, 2 when the file is damaged or unreadable.
    Check {
        /// The recording.
        file: PathBuf,
    },
    /// Export a recording for Perfetto (chrome) or scripts (jsonl).
    Export {
        /// The recording.
        file: PathBuf,
        /// Format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Output file (default: stdout).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Benchmarks that print tables.
    Bench {
        /// Which.
        #[command(subcommand)]
        what: BenchWhat,
    },
}

/// What `record` records.
#[derive(Debug, Subcommand)]
pub enum RecordWhat {
    /// The demo.
    Demo {
        /// Live options.
        #[command(flatten)]
        live: LiveOpts,
    },
    /// A workload.
    Run {
        /// The workload file.
        spec: PathBuf,
        /// Live options.
        #[command(flatten)]
        live: LiveOpts,
    },
    /// Another process (kernel probes) or an embedded engine.
    Attach {
        /// Process to trace.
        #[arg(long, conflicts_with = "socket")]
        pid: Option<u32>,
        /// Unix socket of an embedded engine.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Live options.
        #[command(flatten)]
        live: LiveOpts,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Chrome trace-event JSON (opens in Perfetto).
    Chrome,
    /// The event stream as JSON Lines.
    Jsonl,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// The engine against kernel links and hand-written loops.
    Engine {
        /// NOPs per row (the engine issue's default is 10M).
        #[arg(long, default_value_t = 10_000_000)]
        nops: u64,
        /// Chains for the read_exact rows.
        #[arg(long, default_value_t = 20_000)]
        chains: u64,
    },
}
