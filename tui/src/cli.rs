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
#[derive(Debug, Args, Clone)]
pub struct LiveOpts {
    /// Print events as JSON Lines on stdout instead of drawing the UI.
    #[arg(long)]
    pub headless: bool,
    /// Run every program under the interpreter (by default verified
    /// programs run as native code compiled from them).
    #[arg(long)]
    pub interpreter: bool,
    /// Accepted for scripts written when ringside had a JIT: compiled code
    /// is the default now.
    #[arg(long, hide = true)]
    pub jit: bool,
    /// Events of history the UI keeps (totals are kept beyond it).
    #[arg(long, default_value_t = 200_000)]
    pub history: usize,
    /// UI: run the workload this many times (demo: until you quit; run: 1).
    #[arg(long)]
    pub rounds: Option<u64>,
    /// UI: pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub round_gap_ms: u64,
    /// UI: capacity of the queue from the sources to the UI (items beyond
    /// it are dropped and counted, never waited for).
    #[arg(long, default_value_t = 1 << 16)]
    pub queue: usize,
    /// UI: frames per second at most.
    #[arg(long, default_value_t = 20)]
    pub fps: u32,
    /// UI: no kernel probes, even as root.
    #[arg(long)]
    pub no_probes: bool,
    /// Keep kernel pointers (ring, request) as the kernel reports them in
    /// `--headless` output and recordings; by default each becomes a small
    /// stable id (`0x1`, `0x2`, ...), since such files are often shared.
    #[arg(long)]
    pub keep_kernel_pointers: bool,
    /// Where programs decide: `user` (in this process, every kernel) or
    /// `kernel` (inside io_uring_enter, Linux 7.1+'s io_uring BPF loop;
    /// docs/kernel-backend.md).
    #[arg(long, value_enum, default_value_t = BackendArg::User)]
    pub backend: BackendArg,
    /// Also record to this file (set by `ringside record -o FILE ...`).
    #[arg(skip)]
    pub record: Option<PathBuf>,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum BackendArg {
    /// Decisions run in this process.
    #[default]
    User,
    /// Decisions run in the kernel (Linux 7.1+).
    Kernel,
}

impl From<BackendArg> for ringside_engine::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::User => ringside_engine::Backend::User,
            BackendArg::Kernel => ringside_engine::Backend::Kernel,
        }
    }
}

impl Default for LiveOpts {
    fn default() -> Self {
        LiveOpts {
            headless: false,
            interpreter: false,
            jit: false,
            history: 200_000,
            rounds: None,
            round_gap_ms: 1000,
            queue: 1 << 16,
            fps: 20,
            no_probes: false,
            keep_kernel_pointers: false,
            backend: BackendArg::User,
            record: None,
        }
    }
}

/// What `attach` (and `record attach`) attaches to.
#[derive(Debug, Args, Clone)]
pub struct AttachArgs {
    /// Process to trace.
    #[arg(long, conflicts_with = "socket")]
    pub pid: Option<u32>,
    /// Unix socket of an engine embedded in another process.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// --pid --headless: a process without rings yet is not an error; its
    /// rings (and its children's) are traced from their creation.
    #[arg(long)]
    pub wait_for_rings: bool,
    /// Live options.
    #[command(flatten)]
    pub live: LiveOpts,
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
    Attach(AttachArgs),
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
        /// Events of history the UI keeps.
        #[arg(long, default_value_t = 200_000)]
        history: usize,
        /// Start paused at the first event (default: play at 1x).
        #[arg(long)]
        paused: bool,
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
        /// Write kernel pointers as the recording holds them (by default
        /// each becomes a small stable id, as `record` writes them).
        #[arg(long)]
        keep_kernel_pointers: bool,
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
    Attach(AttachArgs),
}

impl RecordWhat {
    /// The live options of whatever is recorded.
    pub fn live(&self) -> &LiveOpts {
        match self {
            RecordWhat::Demo { live } | RecordWhat::Run { live, .. } => live,
            RecordWhat::Attach(a) => &a.live,
        }
    }
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
