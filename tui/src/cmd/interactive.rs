//! Live modes: demo and run.

use crate::cli::LiveOpts;
use crate::cmd::attach::{attach_options, check_rings};
use crate::cmd::headless;
use crate::cmd::stop_flag;
use anyhow::Context;
use ringside_engine::event::Overflow;
use ringside_workload::{self as workload, PrepareOptions, Prepared};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// `ringside demo`
pub fn demo(opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    if !opts.headless {
        return ui_workload(None, opts);
    }
    let stop = stop_flag()?;
    let prepared = workload::prepare_demo(&PrepareOptions {
        interpreter: opts.interpreter,
        backend: opts.backend.into(),
    })?;
    drive(prepared, opts, stop)
}

/// `ringside run SPEC`
pub fn run(spec: &Path, opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    let text = workload::read_spec(spec)?;
    let base = spec.parent().unwrap_or(Path::new("."));
    if !opts.headless {
        // Check the spec before taking over the terminal (creating nothing:
        // setup itself runs in the UI's engine thread, and may wait there).
        workload::check_text(
            &spec.display().to_string(),
            &text,
            base,
            &workload::CheckOptions {
                interpreter: opts.interpreter,
                ..Default::default()
            },
        )?;
        return ui_workload(
            Some((spec.display().to_string(), text.clone(), base.to_path_buf())),
            opts,
        );
    }
    // Before setup: it may wait (for a FIFO's writer), and Ctrl-C ends that too.
    let stop = stop_flag()?;
    let prepared = workload::prepare_text_until(
        &spec.display().to_string(),
        &text,
        base,
        &PrepareOptions {
            interpreter: opts.interpreter,
            backend: opts.backend.into(),
        },
        &stop,
    )?;
    drive(prepared, opts, stop)
}

fn drive(
    mut prepared: Prepared,
    opts: &LiveOpts,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<ExitCode> {
    let sub = prepared.engine().subscribe(1 << 16, Overflow::Block);
    let printer = if opts.headless {
        headless::spawn_printer(sub)
    } else {
        headless::spawn_plain(sub)
    };
    let (report, engine) = prepared.run(&stop)?;
    drop(engine); // closes the event stream
    printer
        .join()
        .map_err(|_| anyhow::anyhow!("printer thread panicked"))??;
    if opts.headless {
        let summary = serde_json::json!({"kind": "summary", "report": report});
        println!("{summary}");
    } else {
        println!(
            "{} chains: {} completed, {} stopped by a program, {} failed, {} cancelled; {} requests, {} decisions, {} io_uring_enter calls in {:.3} s",
            report.chains,
            report.completed,
            report.stopped,
            report.failed,
            report.cancelled,
            report.submitted,
            report.decisions,
            report.enter_calls,
            report.elapsed_s
        );
    }
    Ok(
        if report.failed > 0 && report.completed + report.stopped == 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `ringside attach --pid PID`
pub fn attach_pid(
    a: &crate::cli::AttachArgs,
    pid: u32,
    opts: &LiveOpts,
) -> anyhow::Result<ExitCode> {
    use ringside_probes::trace::{TraceOptions, trace};
    if !opts.headless {
        return ui_probes(a, pid, opts);
    }
    let stop = stop_flag()?;
    let topts = TraceOptions {
        attach: attach_options(a, pid, opts),
        duration: a.duration.map(std::time::Duration::from_secs_f64),
        wait_for_rings: a.wait_for_rings,
        stop: Some(stop),
        keep_kernel_pointers: opts.keep_kernel_pointers,
        ..TraceOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = headless::JsonLines::new(stdout.lock());
    match trace(&topts, &mut out) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // A probe error has its own exit code and one-line message.
            drop(out);
            eprintln!("ringside: {e}");
            Ok(ExitCode::from(e.exit_code() as u8))
        }
    }
}

// ------------------------------------------------------------------ the UI

use ringside_tui::app::{App, Mode};
use ringside_tui::model::Model;
use ringside_tui::run::Rates;
use ringside_tui::source::{self, Controller, EngineControl, Feed, Status, WorkloadSource};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn rates(opts: &LiveOpts) -> Rates {
    Rates {
        tick: Duration::from_millis(250),
        frame: Duration::from_millis(1000 / opts.fps.clamp(1, 120) as u64),
    }
}

/// How the draw loop runs.
struct LoopOpts {
    history: usize,
    rates: Rates,
    deadline: Option<std::time::Instant>,
    /// The file the session is recorded to, if any.
    recording: Option<String>,
    /// Kernel rows to start with, when not the controller's default
    /// (replay of an attach recording: as the live attach showed them).
    kernel_rows: Option<ringside_tui::app::KernelRows>,
}

impl LoopOpts {
    /// A live session's: `opts`' history and rates, recorded where
    /// `opts` says, until `deadline`.
    fn live(opts: &LiveOpts, deadline: Option<std::time::Instant>) -> LoopOpts {
        LoopOpts {
            history: opts.history,
            rates: rates(opts),
            deadline,
            recording: recording_name(opts),
            kernel_rows: None,
        }
    }
}

/// Run the draw loop until q, Ctrl-C, SIGTERM or the end of a timed session.
fn ui_loop(
    mode: Mode,
    controller: Box<dyn Controller>,
    rx: crossbeam_channel::Receiver<source::Msg>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    lo: LoopOpts,
) -> anyhow::Result<App> {
    let history = if lo.history == 0 { 200_000 } else { lo.history };
    let mut app = App::new(Model::new(history), mode, controller);
    app.ui_dropped = dropped;
    app.recording = lo.recording;
    if let Some(k) = lo.kernel_rows {
        app.kernel_rows = k;
    }
    let mut guard = ringside_tui::term::enter()?;
    let deadline = lo.deadline;
    let mut input = |t: Duration| {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        ringside_tui::term::read_event(t)
    };
    let r = ringside_tui::run::run(
        &mut guard.terminal,
        &mut app,
        &rx,
        &mut input,
        &stop,
        lo.rates,
    );
    drop(guard);
    r?;
    Ok(app)
}

fn ui_workload(
    spec: Option<(String, String, std::path::PathBuf)>,
    opts: &LiveOpts,
) -> anyhow::Result<ExitCode> {
    let stop = stop_flag()?;
    let (mut feed, rx, dropped) = Feed::new(opts.queue);
    let debugger = ringside_engine::debug::Debugger::new();
    let title = spec
        .as_ref()
        .map_or("demo".to_string(), |s| format!("run {}", s.0));
    let recorder = start_recording(opts, &title, &mut feed)?;
    let rounds = opts.rounds.or(if spec.is_some() { Some(1) } else { None });
    // Kernel probes on ourselves, when we may.
    let me = std::process::id();
    let mut probes = None;
    if opts.no_probes {
        feed.status(Status::Notice("kernel probes off (--no-probes)".into()));
    } else {
        let attach = ringside_probes::AttachOptions {
            pids: vec![me],
            kinds: opts.kinds(),
            ..Default::default()
        };
        match source::spawn_probes(attach, feed.clone(), stop.clone()) {
            Ok(h) => {
                feed.status(Status::Notice(
                    "kernel probes on: the engine's rings as the kernel sees them (k: kernel rows)"
                        .into(),
                ));
                probes = Some(h);
            }
            Err(e) => {
                feed.status(Status::ProbesOff(e.to_string()));
            }
        }
    }
    // The engine's queue to us: as large as ours; it drops, never waits.
    let engine = source::spawn_workload(
        WorkloadSource {
            spec,
            interpreter: opts.interpreter,
            backend: opts.backend.into(),
            rounds,
            gap: Duration::from_millis(opts.round_gap_ms),
            queue: opts.queue,
        },
        feed.clone(),
        debugger.clone(),
        stop.clone(),
    );
    let fill = if probes.is_none() {
        Some(source::spawn_fill_poller(me, feed.clone(), stop.clone()))
    } else {
        None
    };
    drop(feed);
    let res = ui_loop(
        Mode { title },
        Box::new(EngineControl(debugger.clone())),
        rx,
        dropped,
        stop.clone(),
        LoopOpts::live(opts, None),
    );
    // Let a stopped engine go, then shut everything down.
    stop.store(true, Ordering::Relaxed);
    debugger.command(ringside_engine::debug::Command::Detach);
    let _ = engine.join();
    if let Some(p) = probes {
        let _ = p.join();
    }
    if let Some(f) = fill {
        let _ = f.join();
    }
    finish_recording(recorder, opts);
    res?;
    Ok(ExitCode::SUCCESS)
}

fn ui_probes(a: &crate::cli::AttachArgs, pid: u32, opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    use ringside_probes::ProbeError;
    let duration = a.duration;
    if !ringside_probes::discover::pid_alive(pid) {
        let e = ProbeError::NoSuchPid { pid };
        eprintln!("ringside: {e}");
        return Ok(ExitCode::from(e.exit_code() as u8));
    }
    if let Err(e) = check_rings(a, pid) {
        eprintln!("ringside: {e}");
        return Ok(ExitCode::from(e.exit_code() as u8));
    }
    let stop = stop_flag()?;
    let (mut feed, rx, dropped) = Feed::new(opts.queue);
    let recorder = start_recording(opts, &format!("attach --pid {pid}"), &mut feed)?;
    let attach = attach_options(a, pid, opts);
    let probes = match source::spawn_probes(attach, feed.clone(), stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ringside: {e}");
            return Ok(ExitCode::from(e.exit_code() as u8));
        }
    };
    feed.status(Status::Source(format!("attach pid {pid} (kernel probes)")));
    drop(feed);
    let deadline = duration.map(|d| std::time::Instant::now() + Duration::from_secs_f64(d));
    let res = ui_loop(
        Mode {
            title: format!("attach {pid}"),
        },
        Box::new(source::WatchOnly),
        rx,
        dropped,
        stop.clone(),
        LoopOpts::live(opts, deadline),
    );
    stop.store(true, Ordering::Relaxed);
    let _ = probes.join();
    finish_recording(recorder, opts);
    res?;
    Ok(ExitCode::SUCCESS)
}

/// `ringside attach --socket PATH`
pub fn attach_socket(
    path: &Path,
    duration: Option<f64>,
    opts: &LiveOpts,
) -> anyhow::Result<ExitCode> {
    let stop = stop_flag()?;
    if opts.headless {
        if let Some(d) = duration {
            let s = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(d));
                s.store(true, Ordering::Relaxed);
            });
        }
        ringside_tui::source::remote::headless(path, &stop)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (mut feed, rx, dropped) = Feed::new(opts.queue);
    let recorder = start_recording(
        opts,
        &format!("attach --socket {}", path.display()),
        &mut feed,
    )?;
    let (ctl, h) = ringside_tui::source::remote::spawn(
        path.to_path_buf(),
        feed.clone(),
        stop.clone(),
        Duration::from_secs(5),
    );
    drop(feed);
    let deadline = duration.map(|d| std::time::Instant::now() + Duration::from_secs_f64(d));
    let mut ctl2 = ctl.clone();
    let res = ui_loop(
        Mode {
            title: format!("attach {}", path.display()),
        },
        Box::new(ctl),
        rx,
        dropped,
        stop.clone(),
        LoopOpts::live(opts, deadline),
    );
    // Leave the application running freely.
    let _ = ctl2.send(source::Ctl::Debug(ringside_engine::debug::Command::Detach));
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    finish_recording(recorder, opts);
    res?;
    Ok(ExitCode::SUCCESS)
}

/// `ringside replay FILE` in the UI.
pub fn replay(file: &Path, history: usize, paused: bool) -> anyhow::Result<ExitCode> {
    let stop = stop_flag()?;
    let (feed, rx, dropped) = Feed::new(1 << 14);
    // Opened (and checked) before the terminal is taken over.
    let tape = ringside_tui::source::replay::open(file, &feed)?;
    let (ctl, h) =
        ringside_tui::source::replay::spawn_tape(tape, feed.clone(), stop.clone(), paused);
    drop(feed);
    let opts = LiveOpts::default();
    let res = ui_loop(
        Mode {
            title: format!("replay {}", file.display()),
        },
        Box::new(ctl),
        rx,
        dropped,
        stop.clone(),
        LoopOpts {
            history,
            rates: rates(&opts),
            deadline: None,
            recording: None,
            kernel_rows: ringside_tui::app::kernel_rows_for(file),
        },
    );
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    res?;
    Ok(ExitCode::SUCCESS)
}

/// Start recording when `ringside record -o FILE` asked for it.
fn recording_name(opts: &LiveOpts) -> Option<String> {
    opts.record.as_ref().map(|p| p.display().to_string())
}

fn start_recording(
    opts: &LiveOpts,
    source: &str,
    feed: &mut Feed,
) -> anyhow::Result<Option<(ringside_recordings::Recorder, std::path::PathBuf)>> {
    let Some(out) = &opts.record else {
        return Ok(None);
    };
    let mut header =
        crate::cmd::record::header(source.to_string(), opts.keep_kernel_pointers, opts.kinds());
    header.notes.push("recorded from the terminal UI".into());
    let rec = ringside_recordings::Recorder::create(out, header)
        .with_context(|| format!("creating the recording {}", out.display()))?;
    feed.record_into(rec.handle());
    feed.status(Status::Notice(format!("recording to {}", out.display())));
    Ok(Some((rec, out.clone())))
}

/// Finish the recording and say what it holds (the terminal is back by now).
fn finish_recording(
    r: Option<(ringside_recordings::Recorder, std::path::PathBuf)>,
    _opts: &LiveOpts,
) {
    let Some((rec, out)) = r else { return };
    match rec.finish() {
        Ok(st) => eprintln!(
            "ringside: recorded {} items ({} bytes) to {}{}",
            st.items,
            st.bytes,
            out.display(),
            if st.dropped > 0 {
                format!("; {} items dropped (marked lost in the file)", st.dropped)
            } else {
                String::new()
            }
        ),
        Err(e) => eprintln!("ringside: writing {}: {e}", out.display()),
    }
}

/// `ringside record -o FILE <demo|run|attach>` with the UI.
pub fn record_ui(output: &Path, what: &crate::cli::RecordWhat) -> anyhow::Result<ExitCode> {
    use crate::cli::RecordWhat;
    let mut o = what.live();
    o.record = Some(output.to_path_buf());
    match what {
        RecordWhat::Demo { .. } => demo(&o),
        RecordWhat::Run { spec, .. } => run(spec, &o),
        RecordWhat::Attach(a) => attach(a, &o),
    }
}

/// `ringside attach`: kernel probes on `--pid`, or an embedded engine's
/// `--socket`, with `opts` for the session (not `a.live`: `record` adds to it).
pub fn attach(a: &crate::cli::AttachArgs, opts: &LiveOpts) -> anyhow::Result<ExitCode> {
    match (a.pid, &a.socket) {
        (Some(pid), None) => attach_pid(a, pid, opts),
        (None, Some(s)) => attach_socket(s, a.duration, opts),
        _ => anyhow::bail!(
            "attach needs --pid PID (kernel probes) or --socket PATH (an embedded engine)"
        ),
    }
}
