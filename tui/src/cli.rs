//! The command line.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringside_probes::KindSet;
use std::path::PathBuf;

/// `--events` / `--no-events` values: comma-separated kind names.
fn parse_kinds(s: &str) -> Result<KindSet, ringside_probes::kinds::UnknownKind> {
    s.parse()
}

/// ringside: an interactive debugger for io_uring link chains and the BPF
/// programs that steer them.
#[derive(Debug, Parser)]
#[command(name = "ringside", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: demo).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How a live session is shown: every live mode takes these.
#[derive(Debug, Args, Clone)]
pub struct ViewOpts {
    /// Print events as JSON Lines on stdout instead of drawing the UI.
    #[arg(long)]
    pub headless: bool,
    /// Events of history the UI keeps (totals are kept beyond it).
    #[arg(long, default_value_t = 200_000)]
    pub history: usize,
    /// UI: capacity of the queue from the sources to the UI (items beyond
    /// it are dropped and counted, never waited for).
    #[arg(long, default_value_t = 1 << 16)]
    pub queue: usize,
    /// UI: frames per second at most.
    #[arg(long, default_value_t = 20)]
    pub fps: u32,
}

/// How the engine runs a workload: `demo` and `run` take these.
#[derive(Debug, Args, Clone)]
pub struct EngineOpts {
    /// Run every program under the interpreter (by default verified
    /// programs run as native code compiled from them).
    #[arg(long)]
    pub interpreter: bool,
    /// Accepted for scripts written when ringside had a JIT: compiled code
    /// is the default now.
    #[arg(long, hide = true)]
    pub jit: bool,
    /// UI: run the workload this many times (demo: until you quit; run: 1).
    #[arg(long)]
    pub rounds: Option<u64>,
    /// UI: pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub round_gap_ms: u64,
    /// UI: no kernel probes on the engine's own rings, even as root.
    #[arg(long)]
    pub no_probes: bool,
    /// Where programs decide: `user` (in this process, every kernel) or
    /// `kernel` (inside io_uring_enter, Linux 7.1+'s io_uring BPF loop;
    /// docs/kernel-backend.md).
    #[arg(long, value_enum, default_value_t = BackendArg::User)]
    pub backend: BackendArg,
}

/// What the kernel probes deliver: every mode that runs them takes these.
#[derive(Debug, Args, Clone)]
pub struct ProbeOpts {
    /// Keep kernel pointers (ring, request) as the kernel reports them in
    /// `--headless` output and recordings; by default each becomes a small
    /// stable id (`0x1`, `0x2`, ...), since such files are often shared.
    #[arg(long)]
    pub keep_kernel_pointers: bool,
    /// Kernel probe events to deliver, by kind (comma-separated, named as
    /// the events' "kind"): create, submit_req, complete, link, fail_link,
    /// req_failed, cqe_overflow, short_write, poll_arm, queue_async_work,
    /// task_work_run, new_task, ring (each ring's setup, made by ringside
    /// from /proc), task_work_run_idle (a task_work_run with
    /// count 0: an SQPOLL thread fires it all the time while it idles), or
    /// all.
    ///
    /// Default: every kind except task_work_run_idle. Kinds left out are
    /// filtered in the kernel (never copied to ringside); the per-ring
    /// counters still count them. Repeatable: the kinds add up.
    #[arg(long, value_name = "KIND,...", value_parser = parse_kinds)]
    pub events: Vec<KindSet>,
    /// Kernel probe event kinds to leave out (of `--events`, or of the
    /// default set), e.g. `--no-events task_work_run,poll_arm`.
    #[arg(long, value_name = "KIND,...", value_parser = parse_kinds)]
    pub no_events: Vec<KindSet>,
}

/// The options of a workload command (`demo`, `run`).
#[derive(Debug, Args, Clone)]
pub struct WorkloadOpts {
    /// Showing.
    #[command(flatten)]
    pub view: ViewOpts,
    /// The engine.
    #[command(flatten)]
    pub engine: EngineOpts,
    /// The probes on the engine's rings.
    #[command(flatten)]
    pub probes: ProbeOpts,
}

impl WorkloadOpts {
    /// As one set of live options.
    pub fn live(&self) -> LiveOpts {
        LiveOpts::from_parts(&self.view, Some(&self.engine), &self.probes)
    }
}

/// Everything a live session was asked for, whichever command asked
/// (options a command does not take have their defaults).
#[derive(Debug, Clone)]
pub struct LiveOpts {
    /// `--headless`.
    pub headless: bool,
    /// `--interpreter`.
    pub interpreter: bool,
    /// `--jit` (accepted, ignored).
    pub jit: bool,
    /// `--history`.
    pub history: usize,
    /// `--rounds`.
    pub rounds: Option<u64>,
    /// `--round-gap-ms`.
    pub round_gap_ms: u64,
    /// `--queue`.
    pub queue: usize,
    /// `--fps`.
    pub fps: u32,
    /// `--no-probes`.
    pub no_probes: bool,
    /// `--keep-kernel-pointers`.
    pub keep_kernel_pointers: bool,
    /// `--events`.
    pub events: Vec<KindSet>,
    /// `--no-events`.
    pub no_events: Vec<KindSet>,
    /// `--backend`.
    pub backend: BackendArg,
    /// Also record to this file (set by `ringside record -o FILE ...`).
    pub record: Option<PathBuf>,
}

impl LiveOpts {
    /// From a command's option groups (no engine options: their defaults).
    pub fn from_parts(
        view: &ViewOpts,
        engine: Option<&EngineOpts>,
        probes: &ProbeOpts,
    ) -> LiveOpts {
        let d = LiveOpts::default();
        LiveOpts {
            headless: view.headless,
            history: view.history,
            queue: view.queue,
            fps: view.fps,
            interpreter: engine.map_or(d.interpreter, |e| e.interpreter),
            jit: engine.map_or(d.jit, |e| e.jit),
            rounds: engine.map_or(d.rounds, |e| e.rounds),
            round_gap_ms: engine.map_or(d.round_gap_ms, |e| e.round_gap_ms),
            no_probes: engine.map_or(d.no_probes, |e| e.no_probes),
            backend: engine.map_or(d.backend, |e| e.backend),
            keep_kernel_pointers: probes.keep_kernel_pointers,
            events: probes.events.clone(),
            no_events: probes.no_events.clone(),
            record: None,
        }
    }

    /// The kernel probe event kinds `--events` / `--no-events` choose.
    pub fn kinds(&self) -> KindSet {
        KindSet::select(&self.events, &self.no_events)
    }
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
            events: Vec::new(),
            no_events: Vec::new(),
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
    /// --pid: a process without rings yet (nor children with rings) is not
    /// an error; its rings (and its children's) are traced from their
    /// creation. Without it such a pid is refused. In the UI, --headless
    /// and `record attach`.
    #[arg(long)]
    pub wait_for_rings: bool,
    /// --pid: trace only that process, not its children. By default
    /// children are traced too, those that exist at attach time and those
    /// forked later (fio runs each job in a child of the pid you name).
    #[arg(long)]
    pub no_follow_forks: bool,
    /// Showing.
    #[command(flatten)]
    pub view: ViewOpts,
    /// The probes.
    #[command(flatten)]
    pub probes: ProbeOpts,
}

impl AttachArgs {
    /// As one set of live options.
    pub fn live(&self) -> LiveOpts {
        LiveOpts::from_parts(&self.view, None, &self.probes)
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine (and kernel probes, as root) on a built-in workload.
    Demo {
        /// Options.
        #[command(flatten)]
        opts: WorkloadOpts,
    },
    /// Run a chain workload described in a TOML file (docs/workload.md).
    Run {
        /// The workload file.
        spec: PathBuf,
        /// Options.
        #[command(flatten)]
        opts: WorkloadOpts,
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
    /// Print a shell completion script (e.g. `ringside completions bash >
    /// /etc/bash_completion.d/ringside`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; `ringside manpage > ringside.1; man ./ringside.1`).
    Manpage,
}

/// What `record` records.
#[derive(Debug, Subcommand)]
pub enum RecordWhat {
    /// The demo.
    Demo {
        /// Options.
        #[command(flatten)]
        opts: WorkloadOpts,
    },
    /// A workload.
    Run {
        /// The workload file.
        spec: PathBuf,
        /// Options.
        #[command(flatten)]
        opts: WorkloadOpts,
    },
    /// Another process (kernel probes) or an embedded engine.
    Attach(AttachArgs),
}

impl RecordWhat {
    /// The live options of whatever is recorded.
    pub fn live(&self) -> LiveOpts {
        match self {
            RecordWhat::Demo { opts } | RecordWhat::Run { opts, .. } => opts.live(),
            RecordWhat::Attach(a) => a.live(),
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
        /// `kernel`: only the tables with kernel backend rows (NOP chains,
        /// read_exact), next to the userspace engine, kernel links and the
        /// hand-written loop; one sentence and exit 1 on a kernel without
        /// the io_uring BPF loop. Without it every table, with kernel rows
        /// where the kernel has the loop.
        #[arg(long, value_enum)]
        backend: Option<BackendArg>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn attach(args: &[&str]) -> Result<AttachArgs, clap::Error> {
        let mut v = vec!["ringside", "attach", "--pid", "1"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v)?.command {
            Some(Command::Attach(a)) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn events_default_and_choices() {
        let a = attach(&[]).unwrap();
        assert_eq!(a.live().kinds(), KindSet::default());
        assert!(!a.no_follow_forks && !a.wait_for_rings);
        let a = attach(&["--events", "submit_req,complete"]).unwrap();
        assert_eq!(a.live().kinds().names(), ["submit_req", "complete"]);
        let a = attach(&["--events", "complete", "--events", "link"]).unwrap();
        assert_eq!(a.live().kinds().names(), ["complete", "link"]);
        let a = attach(&["--no-events", "task_work_run,poll_arm", "--headless"]).unwrap();
        let k = a.live().kinds();
        assert!(!k.names().contains(&"task_work_run") && !k.names().contains(&"poll_arm"));
        assert!(k.names().contains(&"complete"));
        let a = attach(&["--events", "all", "--no-events", "new_task"]).unwrap();
        assert!(a.live().kinds().names().contains(&"task_work_run_idle"));
        assert!(!a.live().kinds().names().contains(&"new_task"));
        let a = attach(&["--wait-for-rings", "--no-follow-forks", "--headless"]).unwrap();
        assert!(a.wait_for_rings && a.no_follow_forks);
    }

    /// `attach` takes attach's options only: engine options are refused
    /// and absent from its help.
    #[test]
    fn attach_takes_no_engine_options() {
        for engine_only in [
            &["--rounds", "3"][..],
            &["--backend", "kernel"],
            &["--interpreter"],
            &["--no-probes"],
        ] {
            let e = attach(engine_only).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{engine_only:?}"
            );
        }
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("attach")
            .unwrap()
            .render_long_help()
            .to_string();
        for absent in ["--rounds", "--backend", "--interpreter", "--round-gap-ms"] {
            assert!(!help.contains(absent), "{absent} in attach --help:\n{help}");
        }
        for present in [
            "--pid",
            "--events",
            "--history",
            "--headless",
            "--wait-for-rings",
        ] {
            assert!(help.contains(present), "{present} not in attach --help");
        }
        // demo still takes them.
        let c = Cli::try_parse_from(["ringside", "demo", "--rounds", "2", "--backend", "kernel"]);
        let Some(Command::Demo { opts }) = c.unwrap().command else {
            panic!()
        };
        assert_eq!(opts.live().rounds, Some(2));
        assert_eq!(opts.live().backend, BackendArg::Kernel);
    }

    #[test]
    fn unknown_kind_is_a_clear_error() {
        let e = attach(&["--events", "submit,complete"]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("unknown event kind `submit`"), "{m}");
        assert!(
            m.contains("create, submit_req, complete,") && m.contains("task_work_run_idle, all"),
            "{m}"
        );
        assert!(attach(&["--no-events", "bogus"]).is_err());
    }

    #[test]
    fn record_attach_takes_the_attach_options() {
        let c = Cli::try_parse_from([
            "ringside",
            "record",
            "-o",
            "x.rsrec",
            "attach",
            "--pid",
            "1",
            "--headless",
            "--wait-for-rings",
            "--no-follow-forks",
            "--events",
            "submit_req",
        ])
        .unwrap();
        let Some(Command::Record {
            what: RecordWhat::Attach(a),
            ..
        }) = c.command
        else {
            panic!()
        };
        assert!(a.wait_for_rings && a.no_follow_forks);
        assert_eq!(a.live().kinds().names(), ["submit_req"]);
    }
}
