//! Kernel probes as a source: the traced processes' rings, and the fill
//! of rings read from /proc.

use super::*;

/// Kernel probes on `pids`, on their own thread. Returns an error (to show
/// on screen) when the probes cannot attach.
///
/// `attach` says what: pids, `follow_forks` (children that exist now and
/// those forked later), `kinds`. The thread ends the session with
/// [`Status::Ended`] when every traced process, followed children included,
/// has exited ([`ringside_probes::Probes::exited`]).
pub fn spawn_probes(
    attach: ringside_probes::AttachOptions,
    feed: Feed,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ringside_probes::ProbeError> {
    use ringside_probes::Probes;
    let mut probes = Probes::attach(attach)?;
    // With follow_forks, the children found at attach time too.
    let pids = probes.pids();
    for &pid in &pids {
        if let Ok(fds) = ringside_probes::discover(pid) {
            feed.status(Status::Discovered { pid, fds });
        }
    }
    let skipped: Vec<String> = probes
        .skipped()
        .iter()
        .map(|s| s.tracepoint.clone())
        .collect();
    if !skipped.is_empty() {
        feed.status(Status::Notice(format!(
            "probes: skipped tracepoints {}",
            skipped.join(", ")
        )));
    }
    Ok(std::thread::Builder::new()
        .name("probes".into())
        .spawn(move || {
            let mut reported = 0u64;
            let mut last_fill = Instant::now() - Duration::from_secs(1);
            let mut last_counters = Instant::now();
            let mut gone = false;
            while !stop.load(Ordering::Relaxed) {
                let mut alive = true;
                let r = probes.poll(Duration::from_millis(100), |ev| {
                    if !feed.item(Item::Probe(ev)) {
                        alive = false;
                    }
                });
                if !alive {
                    return;
                }
                if let Err(e) = r {
                    feed.status(Status::Ended(format!("probes: {e}")));
                    return;
                }
                if let Ok(lost) = probes.lost()
                    && lost > reported
                {
                    feed.item(Item::Lost {
                        queue: "probes".into(),
                        count: lost - reported,
                    });
                    reported = lost;
                }
                if !gone && probes.exited().is_some() {
                    // First what the kernel wrote before the exit (ring
                    // teardown completions come a moment later): until a
                    // quiet 100 ms.
                    let grace = Instant::now();
                    loop {
                        let mut open = true;
                        let n = probes
                            .poll(Duration::from_millis(100), |ev| {
                                if !feed.item(Item::Probe(ev)) {
                                    open = false;
                                }
                            })
                            .unwrap_or(0);
                        if !open {
                            return;
                        }
                        if n == 0 || grace.elapsed() >= Duration::from_secs(120) {
                            break;
                        }
                    }
                    gone = true;
                    if let Ok(c) = probes.counters() {
                        feed.status_must_arrive(Status::Counters(Box::new(c)), &stop);
                    }
                    // Behind a full queue a plain status would be dropped
                    // and the UI would go on saying LIVE.
                    feed.status_must_arrive(
                        Status::Ended(
                            "the traced process exited; the history stays: q quits".into(),
                        ),
                        &stop,
                    );
                }
                if last_counters.elapsed() >= Duration::from_millis(250) {
                    last_counters = Instant::now();
                    if let Ok(c) = probes.counters() {
                        feed.status(Status::Counters(Box::new(c)));
                    }
                }
                if last_fill.elapsed() >= Duration::from_millis(500) {
                    last_fill = Instant::now();
                    let fills = ring_fills(&probes.pids());
                    if !fills.is_empty() {
                        feed.status(Status::Fdinfo(fills));
                    }
                }
            }
        })
        .expect("spawning the probes thread"))
}

/// Ring fill of `pids` from /proc fdinfo.
pub fn ring_fills(pids: &[u32]) -> Vec<RingFill> {
    let mut out = Vec::new();
    for &pid in pids {
        if let Ok(fds) = ringside_probes::discover(pid) {
            for r in fds {
                out.push(RingFill {
                    pid,
                    fd: r.fd,
                    sq_pending: r.info.sq_pending,
                    cq_pending: r.info.cq_pending,
                    cq_overflow: Some(r.info.cq_overflow.len() as u64),
                });
            }
        }
    }
    out
}

/// Poll fdinfo of `pid` every half second (the demo's own rings).
pub fn spawn_fill_poller(pid: u32, feed: Feed, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("fdinfo".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let fills = ring_fills(&[pid]);
                if !feed.status(Status::Fdinfo(fills)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        })
        .expect("spawning the fdinfo thread")
}
