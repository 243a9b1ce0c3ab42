//! Replay of the small recording committed under tests/data/demo.rsrec,
//! through the same path as a live session: the replay collector thread
//! feeds the bounded queue, the app folds messages, the views draw.
//! Seek, step back, breakpoints and tracing a decision are exercised.

use crossbeam_channel::Receiver;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ringside_engine::debug::{Breakpoint, Command};
use ringside_tui::app::{App, Mode, View};
use ringside_tui::model::Model;
use ringside_tui::source::{Ctl, Feed, Msg, Status};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const RECORDING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/demo.rsrec");

struct Session {
    app: App,
    rx: Receiver<Msg>,
    stop: Arc<AtomicBool>,
    total: usize,
}

fn open() -> Session {
    let (items, notes) = ringside_tui::source::replay::load(std::path::Path::new(RECORDING))
        .expect("the committed recording loads");
    assert!(notes.is_empty(), "{notes:?}");
    let total = items.len();
    let (feed, rx, dropped) = Feed::new(1 << 12);
    let stop = Arc::new(AtomicBool::new(false));
    // The file read on demand through the recordings index, as `ringside
    // replay` does.
    let tape = ringside_tui::source::replay::open(std::path::Path::new(RECORDING), &feed)
        .expect("the recording opens");
    let (ctl, _h) = ringside_tui::source::replay::spawn_tape(tape, feed, stop.clone(), true);
    let mut app = App::new(
        Model::new(100_000),
        Mode {
            title: "replay demo.rsrec".into(),
        },
        Box::new(ctl),
    );
    app.ui_dropped = dropped;
    Session {
        app,
        rx,
        stop,
        total,
    }
}

impl Session {
    fn send(&mut self, c: Ctl) {
        self.app.controller.send(c).unwrap();
    }

    /// Fold messages until `done` holds (or fail after a while).
    fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.app) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            if let Ok(m) = self.rx.recv_timeout(Duration::from_millis(50)) {
                self.app.handle_msg(m);
                while let Ok(m) = self.rx.try_recv() {
                    self.app.handle_msg(m);
                }
            }
        }
        self.app.tick();
    }

    fn at(&mut self, pos: u64) {
        self.until(&format!("position {pos}"), |a| {
            a.replay
                .as_ref()
                .is_some_and(|r| r.pos == pos && a.state.totals.items == pos)
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn replay_seeks_steps_back_and_stops_at_breakpoints() {
    let mut s = open();
    assert!(s.total > 100, "the recording has {} items", s.total);
    // Paused at 0.
    s.until("the first position", |a| a.replay.is_some());
    assert_eq!(s.app.state.totals.items, 0);

    // Seek forward to the end: everything folded, as a live session would.
    s.send(Ctl::SeekItem(s.total as u64));
    s.at(s.total as u64);
    // One clock: the UI's newest time is the recording's duration as the
    // recordings crate (and so export and `:seek`) counts it.
    let replay = ringside_recordings::Replay::open(RECORDING).unwrap();
    assert_eq!(s.app.state.now_ns, replay.duration_ns());
    let decisions = s.app.state.totals.decisions;
    let chains = s.app.state.totals.chains;
    assert!(
        decisions > 50 && chains > 20,
        "{decisions} decisions, {chains} chains"
    );
    s.app.view = View::Chains;
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| {
        s.app.prepare(f.area());
        ringside_tui::ui::draw(f, &s.app)
    })
    .unwrap();
    insta::assert_snapshot!("replay_end_chains", t.backend().to_string());

    // Seek back to the middle: the model is rebuilt from the start.
    let mid = (s.total / 2) as u64;
    s.send(Ctl::SeekItem(mid));
    s.at(mid);
    assert!(s.app.state.totals.decisions < decisions);

    // By time: everything up to 20 ms of session time (before the middle).
    assert!(s.app.state.now_ns > 20_000_000);
    s.send(Ctl::SeekTime(20_000_000));
    s.until("the time seek", |a| {
        a.replay
            .as_ref()
            .is_some_and(|r| r.pos < mid && r.pos == a.state.totals.items)
    });
    assert!(s.app.state.now_ns <= 20_000_000, "{}", s.app.state.now_ns);
    assert!(s.app.state.totals.items > 0);
    s.send(Ctl::SeekItem(mid));
    s.at(mid);

    // One event back, one forward.
    s.send(Ctl::StepBack);
    s.at(mid - 1);
    s.send(Ctl::StepItem);
    s.at(mid);

    // Back to the previous decision: stopped there, traced in the debugger.
    let at_mid = s.app.state.decisions.back().unwrap().decision().seq;
    s.send(Ctl::PrevDecision);
    s.until("a stop", |a| a.state.paused.is_some());
    s.app.follow_pause();
    assert_eq!(s.app.view, View::Debug);
    // It is the decision before the last one applied at `mid`, and now the
    // newest one applied.
    let p = s.app.state.paused.clone().unwrap();
    assert_eq!(p.decision, Some(at_mid - 1));
    let last = s.app.state.decisions.back().unwrap().decision().seq;
    assert_eq!(last, at_mid - 1);
    let tr = s.app.trace.as_ref().expect("traced");
    assert!(tr.problem.is_none(), "{:?}", tr.problem);
    assert!(!tr.steps.is_empty());

    // From the start with a breakpoint on short reads: it stops at one.
    s.send(Ctl::SeekItem(0));
    s.at(0);
    s.send(Ctl::Debug(Command::SetBreakpoints {
        breakpoints: vec![Breakpoint::ShortResult],
    }));
    s.app.state.paused = None;
    s.send(Ctl::Speed(10)); // as fast as possible
    s.send(Ctl::Debug(Command::Continue));
    s.until("the breakpoint", |a| a.state.paused.is_some());
    let p = s.app.state.paused.clone().unwrap();
    assert!(p.reason.contains("res < len"), "{}", p.reason);
    let i = s
        .app
        .state
        .find_decision(p.epoch, p.decision.unwrap())
        .expect("the stopped decision is in the model");
    let d = s.app.state.decisions[i].decision();
    assert!(d.ctx.res >= 0 && (d.ctx.res as u32) < d.ctx.len);

    // Step over: on to the next decision.
    let before = p.decision.unwrap();
    s.app.state.paused = None;
    s.send(Ctl::Debug(Command::Step));
    s.until("the next decision", |a| {
        a.state.paused.as_ref().and_then(|p| p.decision) == Some(before + 1)
    });
}

#[test]
fn replay_status_is_reported() {
    let mut s = open();
    s.until("the first status", |a| a.replay.is_some());
    let r = s.app.replay.clone().unwrap();
    assert_eq!(r.total as usize, s.total);
    assert!(!r.playing);
    s.send(Ctl::Speed(1));
    s.until("the speed change", |a| {
        a.replay.as_ref().is_some_and(|r| r.speed == 2.0)
    });
    let _ = Status::Reset;
}
