//! `ringside record`: the engine or kernel probes into a recording file,
//! headless (the interactive recording shares the UI's loop:
//! `interactive::record_ui`). The work is in ringside-recordings; this is
//! the glue to the engine, the probes and the terminal.

use anyhow::Context;
use ringside_engine::event::{Detail, Overflow};
use ringside_probes::{AttachOptions, ProbeError, Probes};
use ringside_recordings::writer::spawn_engine_forwarder;
use ringside_recordings::{Header, Item, Recorder, RecorderHandle};
use ringside_workload::{self as workload, PrepareOptions, Prepared};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What `record` records.
#[derive(Debug, Clone, Copy)]
pub enum RecordSource<'a> {
    /// The built-in demo (engine, plus kernel probes on this process as root).
    Demo,
    /// A workload file.
    Run(&'a Path),
    /// Another process's rings, through kernel probes.
    Attach {
        /// Process.
        pid: u32,
        /// Its arguments (`--duration`, `--wait-for-rings`,
        /// `--no-follow-forks`).
        args: &'a crate::cli::AttachArgs,
    },
}

fn print_line(v: serde_json::Value) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = serde_json::to_writer(&mut out, &v);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// `ringside record -o FILE <demo|run SPEC|attach --pid PID> --headless`:
/// write the recording, print one JSON line when recording starts and one
/// with the totals at the end (events go to the file; `ringside replay
/// FILE --headless` prints them).
pub fn record(
    output: &Path,
    source: RecordSource<'_>,
    opts: &crate::cli::LiveOpts,
    probes: bool,
) -> anyhow::Result<ExitCode> {
    let interpreter = opts.interpreter;
    let backend = opts.backend.into();
    let keep = opts.keep_kernel_pointers;
    let kinds = opts.kinds();
    let prepare = |stop: &AtomicBool| -> anyhow::Result<Prepared> {
        Ok(match source {
            RecordSource::Run(spec) => {
                let text = workload::read_spec(spec)?;
                let base = spec.parent().unwrap_or(Path::new("."));
                workload::prepare_text_until(
                    &spec.display().to_string(),
                    &text,
                    base,
                    &PrepareOptions {
                        interpreter,
                        backend,
                    },
                    stop,
                )?
            }
            _ => workload::prepare_demo(&PrepareOptions {
                interpreter,
                backend,
            })?,
        })
    };
    match source {
        RecordSource::Demo => record_engine(
            output,
            prepare,
            header("demo".into(), keep, kinds),
            probes,
            kinds,
        ),
        RecordSource::Run(spec) => record_engine(
            output,
            prepare,
            header(format!("run {}", spec.display()), keep, kinds),
            probes,
            kinds,
        ),
        RecordSource::Attach { pid, args } => record_attach(
            output,
            pid,
            args,
            crate::cmd::attach::attach_options(args, pid, opts),
            header(format!("attach --pid {pid}"), keep, kinds),
        ),
    }
}

/// What the probe pump returns: the session, events, events lost.
type PumpResult = Result<(Probes, u64, u64), ProbeError>;

/// Poll probes into a recorder until `stop`; returns (events, lost).
fn spawn_probe_pump(
    mut probes: Probes,
    rec: RecorderHandle,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<PumpResult>> {
    std::thread::Builder::new()
        .name("record probes".into())
        .spawn(move || {
            let mut n = 0u64;
            let mut lost_seen = 0u64;
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                let timeout = if stopping {
                    Duration::ZERO
                } else {
                    Duration::from_millis(50)
                };
                // Waiting for the writer leaves the events in the kernel's
                // ring buffer, the larger queue: what it cannot hold is
                // counted there and recorded as lost below.
                let got = probes.poll(timeout, |ev| {
                    n += 1;
                    rec.push_blocking(Item::Probe(ev));
                })?;
                let lost = probes.lost().unwrap_or(lost_seen);
                if lost > lost_seen {
                    rec.push_blocking(Item::Lost {
                        queue: "probes".into(),
                        count: lost - lost_seen,
                    });
                    lost_seen = lost;
                }
                if stopping && got == 0 {
                    return Ok((probes, n, lost_seen));
                }
            }
        })
}

/// A recording's header: kernel pointers as ids unless `keep`; a note
/// when `--events` / `--no-events` chose other kernel probe kinds than the
/// default.
pub fn header(source: String, keep: bool, kinds: ringside_probes::KindSet) -> Header {
    let mut h = Header::new(source);
    if keep {
        h.kernel_pointers = ringside_recordings::format::KernelPointers::Kept;
    }
    if kinds != ringside_probes::KindSet::default() {
        h.notes.push(format!(
            "kernel probe events recorded, by kind (--events/--no-events): {}",
            if kinds == ringside_probes::KindSet::none() {
                "none".to_string()
            } else {
                kinds.to_string()
            }
        ));
    }
    h
}

fn record_engine(
    output: &Path,
    prepare: impl FnOnce(&AtomicBool) -> anyhow::Result<Prepared>,
    mut header: Header,
    want_probes: bool,
    kinds: ringside_probes::KindSet,
) -> anyhow::Result<ExitCode> {
    let stop = crate::cmd::stop_flag()?;
    let source = header.source.clone();
    // Probes on this process, so the engine's own ring shows at the kernel level too.
    let probes = if !want_probes {
        header.notes.push("kernel probes off (--no-probes)".into());
        None
    } else {
        match ringside_probes::session::check_privileges().and_then(|_| {
            Probes::attach(AttachOptions {
                pids: vec![std::process::id()],
                kinds,
                ..AttachOptions::default()
            })
        }) {
            Ok(p) => Some(p),
            Err(e) => {
                let note = format!("recorded without kernel probes: {e}");
                eprintln!("ringside: {note}");
                header.notes.push(note);
                None
            }
        }
    };
    let with_probes = probes.is_some();
    // After the probes, so the engine ring's creation is recorded too.
    let mut prepared = prepare(&stop)?;
    let recorder = Recorder::create(output, header)
        .with_context(|| format!("creating the recording {}", output.display()))?;
    // A recording keeps every engine event: the engine waits for the
    // recorder rather than drop (the forwarder waits for the writer).
    let sub = prepared
        .engine()
        .subscribe_with(1 << 18, Overflow::Block, Detail::Inputs);
    let fwd = spawn_engine_forwarder(sub, recorder.handle())?;
    let probe_stop = Arc::new(AtomicBool::new(false));
    let pump = match probes {
        Some(p) => Some(spawn_probe_pump(p, recorder.handle(), probe_stop.clone())?),
        None => None,
    };
    print_line(
        serde_json::json!({"kind": "recording", "file": output.display().to_string(),
        "source": source, "probes": with_probes}),
    );
    let result = prepared.run(&stop);
    let (report, engine) = match result {
        Ok(x) => x,
        Err(e) => {
            probe_stop.store(true, Ordering::Relaxed);
            let _ = recorder.finish();
            return Err(e.into());
        }
    };
    drop(engine); // closes the event stream
    let engine_events = fwd
        .join()
        .map_err(|_| anyhow::anyhow!("the engine forwarder panicked"))?;
    let (probe_events, probe_lost) = match pump {
        Some(t) => {
            // The last completions' tracepoints are already in the buffer.
            std::thread::sleep(Duration::from_millis(20));
            probe_stop.store(true, Ordering::Relaxed);
            match t.join() {
                Ok(Ok((p, n, lost))) => {
                    drop(p);
                    (n, lost)
                }
                Ok(Err(e)) => {
                    eprintln!("ringside: kernel probes stopped early: {e}");
                    (0, 0)
                }
                Err(_) => anyhow::bail!("the probe thread panicked"),
            }
        }
        None => (0, 0),
    };
    let stats = recorder
        .finish()
        .with_context(|| format!("writing {}", output.display()))?;
    finish_line(
        output,
        &stats,
        engine_events,
        probe_events,
        probe_lost,
        Some(&report),
    );
    Ok(ExitCode::SUCCESS)
}

fn finish_line(
    output: &Path,
    stats: &ringside_recordings::RecordStats,
    engine_events: u64,
    probe_events: u64,
    probe_lost: u64,
    report: Option<&ringside_workload::RunReport>,
) {
    print_line(
        serde_json::json!({"kind": "recorded", "file": output.display().to_string(),
        "items": stats.items, "bytes": stats.bytes, "engine_events": engine_events,
        "probe_events": probe_events, "probe_lost": probe_lost,
        "recorder_dropped": stats.dropped, "report": report}),
    );
    if stats.dropped > 0 || probe_lost > 0 {
        eprintln!(
            "ringside: the recording lost events ({} in the recorder's queue, {probe_lost} in the kernel probes' buffer); the file says where",
            stats.dropped
        );
    }
}

fn record_attach(
    output: &Path,
    pid: u32,
    args: &crate::cli::AttachArgs,
    attach: AttachOptions,
    mut header: Header,
) -> anyhow::Result<ExitCode> {
    let duration = args.duration;
    let run = || -> Result<ExitCode, anyhow::Error> {
        ringside_probes::session::check_privileges()?;
        ringside_probes::session::check_io_uring_enabled()?;
        let stop = crate::cmd::stop_flag()?;
        crate::cmd::attach::check_rings(args, pid)?;
        let tree = ringside_probes::discover::discover_tree(pid, attach.follow_forks)?;
        let fds: Vec<_> = tree.into_iter().flat_map(|(_, f)| f).collect();
        if fds.is_empty() {
            header.notes.push(format!(
                "process {pid} had no io_uring rings when recording began"
            ));
        }
        let probes = Probes::attach(attach)?;
        let recorder = Recorder::create(output, header)
            .with_context(|| format!("creating the recording {}", output.display()))?;
        print_line(
            serde_json::json!({"kind": "recording", "file": output.display().to_string(),
            "source": format!("attach --pid {pid}"), "rings": fds.len()}),
        );
        let probe_stop = Arc::new(AtomicBool::new(false));
        let mut probes = probes;
        let start = Instant::now();
        let mut last_check = Instant::now();
        // Poll here (not in a thread) so exits are noticed. Waiting for the
        // writer leaves events in the kernel's ring buffer, the larger
        // queue; what it cannot hold is counted there, recorded as lost.
        let h = recorder.handle();
        let mut n = 0u64;
        let mut lost_seen = 0u64;
        loop {
            probes.poll(Duration::from_millis(50), |ev| {
                n += 1;
                h.push_blocking(Item::Probe(ev));
            })?;
            let lost = probes.lost().unwrap_or(lost_seen);
            if lost > lost_seen {
                h.push_blocking(Item::Lost {
                    queue: "probes".into(),
                    count: lost - lost_seen,
                });
                lost_seen = lost;
            }
            if stop.load(Ordering::Relaxed) || probe_stop.load(Ordering::Relaxed) {
                break;
            }
            if duration.is_some_and(|d| start.elapsed().as_secs_f64() >= d) {
                break;
            }
            if last_check.elapsed() >= Duration::from_millis(100) {
                last_check = Instant::now();
                probes.prune_exited()?;
                if probes.pids().is_empty() {
                    // Everything the kernel wrote before the exit (a
                    // consumer behind by a full buffer included), and the
                    // ring teardown completions that come a moment later:
                    // until a quiet 100 ms.
                    let quiet = Instant::now();
                    while quiet.elapsed() < Duration::from_secs(120) {
                        let got = probes.poll(Duration::from_millis(100), |ev| {
                            n += 1;
                            h.push_blocking(Item::Probe(ev));
                        })?;
                        if got == 0 {
                            break;
                        }
                    }
                    break;
                }
            }
        }
        probes.poll(Duration::ZERO, |ev| {
            n += 1;
            h.push_blocking(Item::Probe(ev));
        })?;
        let counters = probes.counters()?;
        drop(probes);
        let stats = recorder
            .finish()
            .with_context(|| format!("writing {}", output.display()))?;
        finish_line(output, &stats, 0, n, lost_seen, None);
        // What the kernel side counted (every event, every kind): to
        // compare with what the file holds. Ring pointers stay out of it.
        let t = &counters.total;
        print_line(serde_json::json!({"kind": "probe_counts",
            "events": t.events(), "submitted": t.submitted(), "completed": t.completed(),
            "finished": t.finished, "in_flight": t.in_flight(), "lost": t.lost,
            "idle_task_work": t.idle_task_work(),
            "rings": counters.rings.iter().filter(|r| r.ring.0 != 0 && r.ring.0 != ringside_probes::counters::OTHER_RINGS).count(),
            "exited": counters.exited_ns.is_some()}));
        Ok(ExitCode::SUCCESS)
    };
    match run() {
        Ok(c) => Ok(c),
        Err(e) => {
            if let Some(pe) = e.downcast_ref::<ProbeError>() {
                eprintln!("ringside: {pe}");
                return Ok(ExitCode::from(pe.exit_code() as u8));
            }
            Err(e)
        }
    }
}

/// `ringside record -o FILE ... --headless` (the interactive recording is
/// the UI's: `live::record_ui`).
pub fn record_command(output: &Path, what: &crate::cli::RecordWhat) -> anyhow::Result<ExitCode> {
    use crate::cli::RecordWhat;
    let source = match what {
        RecordWhat::Demo { .. } => RecordSource::Demo,
        RecordWhat::Run { spec, .. } => RecordSource::Run(spec),
        RecordWhat::Attach(
            args @ crate::cli::AttachArgs {
                pid: Some(pid),
                socket: None,
                ..
            },
        ) => RecordSource::Attach { pid: *pid, args },
        RecordWhat::Attach(_) => anyhow::bail!(
            "record attach needs --pid PID (recording an engine socket is not supported yet)"
        ),
    };
    record(output, source, &what.live(), true)
}
