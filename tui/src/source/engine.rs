//! The engine in this process as a source: a workload run in rounds, its
//! events forwarded to the feed.

use super::*;

/// Forward an engine subscription to the feed until it closes. Engine-side
/// drops (its queue to us was full) become `Item::Lost { queue: "engine" }`.
pub fn forward_subscription(sub: ringside_engine::event::Subscription, feed: &Feed) {
    let mut reported = 0u64;
    loop {
        let closed = match sub.recv_timeout(Duration::from_millis(100)) {
            Ok(rec) => {
                if !feed.item(Item::Engine(rec)) {
                    return;
                }
                false
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => false,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => true,
        };
        if let Some(count) = sub.newly_dropped(&mut reported) {
            feed.item(Item::Lost {
                queue: "engine".into(),
                count,
            });
        }
        if closed {
            return;
        }
    }
}

/// A workload the UI runs in this process.
#[derive(Clone, Debug)]
pub struct WorkloadSource {
    /// None: the built-in demo; Some: (display name, TOML text, base dir).
    pub spec: Option<(String, String, PathBuf)>,
    /// Every program under the interpreter.
    pub interpreter: bool,
    /// Where decisions run.
    pub backend: ringside_engine::Backend,
    /// Rounds to run (None: until stopped).
    pub rounds: Option<u64>,
    /// Pause between rounds.
    pub gap: Duration,
    /// Engine subscription queue capacity.
    pub queue: usize,
}

impl WorkloadSource {
    /// Set up; setup that waits (a FIFO's writer) ends when `stop` is set.
    fn prepare(&self, stop: &AtomicBool) -> anyhow::Result<Prepared> {
        let opts = PrepareOptions {
            interpreter: self.interpreter,
            backend: self.backend,
        };
        Ok(match &self.spec {
            None => workload::prepare_demo(&opts)?,
            Some((name, text, base)) => {
                workload::prepare_text_until(name, text, base, &opts, stop)?
            }
        })
    }
}

/// Run a workload in rounds on its own thread, each round a fresh engine
/// with `debugger` attached, its events forwarded to `feed`.
pub fn spawn_workload(
    src: WorkloadSource,
    feed: Feed,
    debugger: Debugger,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            let mut round = 0u64;
            let what = src
                .spec
                .as_ref()
                .map_or("demo".to_string(), |s| s.0.clone());
            loop {
                round += 1;
                let mut prepared = match src.prepare(&stop) {
                    Ok(p) => p,
                    Err(e) => {
                        feed.status(Status::Ended(format!("{what}: {e:#}")));
                        return;
                    }
                };
                let sub = prepared
                    .engine()
                    .subscribe_with(src.queue, Overflow::Drop, ringside_engine::event::Detail::Inputs);
                prepared.engine().set_debugger(Some(debugger.clone()));
                let f2 = feed.clone();
                let fwd = std::thread::Builder::new()
                    .name("engine events".into())
                    .spawn(move || forward_subscription(sub, &f2))
                    .expect("spawning a thread");
                let label = match src.rounds {
                    Some(1) => what.clone(),
                    _ => format!("{what}: round {round}"),
                };
                feed.status(Status::Source(label));
                let result = prepared.run(&stop);
                match result {
                    Ok((report, engine)) => {
                        drop(engine);
                        let _ = fwd.join();
                        feed.status(Status::Notice(format!(
                            "round {round}: {} chains: {} completed, {} stopped, {} failed, {} cancelled in {:.3} s",
                            report.chains,
                            report.completed,
                            report.stopped,
                            report.failed,
                            report.cancelled,
                            report.elapsed_s
                        )));
                    }
                    Err(e) => {
                        let _ = fwd.join();
                        feed.status(Status::Ended(format!("{what}: {e:#}")));
                        return;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if src.rounds.is_some_and(|n| round >= n) {
                    feed.status(Status::Ended(format!(
                        "{what} finished after {round} round(s); the history stays: q quits"
                    )));
                    return;
                }
                let until = Instant::now() + src.gap;
                while Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
        .expect("spawning the engine thread")
}
