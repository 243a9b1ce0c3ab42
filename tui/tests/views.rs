//! Snapshot tests of every view, drawn with ratatui's TestBackend from a
//! fixed event sequence: one round of the built-in demo as `ringside demo
//! --headless` printed it (tests/fixtures/demo.jsonl), plus a kernel link
//! chain as the probes report one (a short read cancels the rest).
//!
//! Text snapshots show what a reader sees; the colour snapshot of the Chains
//! view shows that nodes are coloured by state.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ringside_engine::debug::{Breakpoint, Debugger};
use ringside_engine::event::{Event, EventRecord};
use ringside_probes::event::sqe_flags;
use ringside_probes::{Header, ProbeEvent, Ptr};
use ringside_recordings::Item;
use ringside_tui::app::{App, Mode, View};
use ringside_tui::model::{Model, RowKey};
use ringside_tui::source::{EngineControl, Msg, Status};
use std::sync::Arc;

const FIXTURE: &[u8] = include_bytes!("fixtures/demo.jsonl");

fn engine_items() -> Vec<Item> {
    ringside_tui::source::replay::load_jsonl(FIXTURE, "demo.jsonl").expect("fixture parses")
}

fn hdr(ts: u64) -> Header {
    Header {
        ts_ns: ts,
        cpu: 0,
        tgid: 4242,
        tid: 4242,
    }
}

/// A kernel link chain of three reads: the second comes back short, so the
/// kernel cancels the third.
fn probe_items() -> Vec<Item> {
    let ring = Ptr(0xffff_8881_0000_1000);
    let (a, b, c) = (Ptr(0xa000), Ptr(0xb000), Ptr(0xc000));
    let link = (sqe_flags::IO_LINK | sqe_flags::FIXED_FILE) as u64;
    let t0 = 5_000_000_000u64;
    let evs = vec![
        ProbeEvent::Create {
            hdr: hdr(t0),
            ring,
            fd: 7,
            sq_entries: 8,
            cq_entries: 16,
            flags: 0,
            generation: 1,
        },
        ProbeEvent::SubmitReq {
            hdr: hdr(t0 + 1000),
            ring,
            req: a,
            user_data: 1,
            opcode: 22,
            flags: link,
            sq_thread: false,
        },
        ProbeEvent::SubmitReq {
            hdr: hdr(t0 + 2000),
            ring,
            req: b,
            user_data: 2,
            opcode: 22,
            flags: link,
            sq_thread: false,
        },
        ProbeEvent::Link {
            hdr: hdr(t0 + 2100),
            ring,
            req: b,
            target: a,
        },
        ProbeEvent::SubmitReq {
            hdr: hdr(t0 + 3000),
            ring,
            req: c,
            user_data: 3,
            opcode: 22,
            flags: sqe_flags::FIXED_FILE as u64,
            sq_thread: false,
        },
        ProbeEvent::Link {
            hdr: hdr(t0 + 3100),
            ring,
            req: c,
            target: b,
        },
        ProbeEvent::Complete {
            hdr: hdr(t0 + 50_000),
            ring,
            req: a,
            user_data: 1,
            res: 4096,
            cflags: 0,
            extra1: 0,
            extra2: 0,
        },
        ProbeEvent::Complete {
            hdr: hdr(t0 + 90_000),
            ring,
            req: b,
            user_data: 2,
            res: 100,
            cflags: 0,
            extra1: 0,
            extra2: 0,
        },
        ProbeEvent::FailLink {
            hdr: hdr(t0 + 91_000),
            ring,
            req: b,
            user_data: 2,
            opcode: 22,
            link: c,
        },
        ProbeEvent::Complete {
            hdr: hdr(t0 + 92_000),
            ring,
            req: c,
            user_data: 3,
            res: -125,
            cflags: 0,
            extra1: 0,
            extra2: 0,
        },
    ];
    evs.into_iter().map(Item::Probe).collect()
}

/// An app with nothing in it yet.
fn empty_app(history: usize, title: &str) -> App {
    App::new(
        Model::new(history),
        Mode {
            title: title.into(),
        },
        Box::new(EngineControl(Debugger::new())),
    )
}

fn app(history: usize) -> App {
    let mut app = empty_app(history, "demo (fixture)");
    app.handle_msg(Msg::Status(Status::Source("demo: round 1".into())));
    for it in engine_items().into_iter().chain(probe_items()) {
        app.handle_msg(Msg::Item(it));
    }
    app
}

fn draw(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| {
        app.prepare(f.area());
        ringside_tui::ui::draw(f, app)
    })
    .unwrap();
    t
}

fn key(app: &mut App, c: KeyCode) {
    app.handle_key(KeyEvent::new(c, KeyModifiers::NONE));
}

fn view(v: View, w: u16, h: u16) -> String {
    let mut a = app(100_000);
    a.view = v;
    draw(&mut a, w, h).backend().to_string()
}

#[test]
fn rings_80x24() {
    insta::assert_snapshot!(view(View::Rings, 80, 24));
}

#[test]
fn chains_80x24() {
    insta::assert_snapshot!(view(View::Chains, 80, 24));
}

#[test]
fn chains_120x40() {
    insta::assert_snapshot!(view(View::Chains, 120, 40));
}

#[test]
fn cancels_80x24() {
    insta::assert_snapshot!(view(View::Cancels, 80, 24));
}

/// A recv guarded by a LINK_TIMEOUT that expires before data arrives.
fn timeout_items() -> Vec<Item> {
    let ring = Ptr(0xffff_8881_0000_1000);
    let (r, t) = (Ptr(0xd000), Ptr(0xe000));
    let t0 = 6_000_000_000u64;
    let submit = |ts, req, user_data, opcode, flags: u8| ProbeEvent::SubmitReq {
        hdr: hdr(ts),
        ring,
        req,
        user_data,
        opcode,
        flags: flags as u64,
        sq_thread: false,
    };
    let complete = |ts, req, user_data, res| ProbeEvent::Complete {
        hdr: hdr(ts),
        ring,
        req,
        user_data,
        res,
        cflags: 0,
        extra1: 0,
        extra2: 0,
    };
    let evs = vec![
        submit(t0, r, 40, 27, sqe_flags::IO_LINK),
        submit(t0 + 100, t, 41, 15, 0),
        ProbeEvent::Link {
            hdr: hdr(t0 + 150),
            ring,
            req: t,
            target: r,
        },
        // The kernel's order: the timer's task work completes the timeout
        // (-ETIME) and then the cancelled read.
        complete(t0 + 1_000_000, t, 41, -62),
        complete(t0 + 1_000_100, r, 40, -125),
    ];
    evs.into_iter().map(Item::Probe).collect()
}

/// Kernel cancellations name the request that broke the link, by id,
/// opcode and user_data, and how it ended: a short read's result, a
/// LINK_TIMEOUT that expired.
#[test]
fn kernel_causes_name_the_breaking_request() {
    let mut a = app(100_000);
    for it in timeout_items() {
        a.handle_msg(Msg::Item(it));
    }
    a.view = View::Cancels;
    let mut shots = Vec::new();
    for group in ["kernel: link_short", "kernel: link_timeout"] {
        a.cancel_group = a
            .state
            .cancels
            .keys()
            .position(|k| k == group)
            .expect(group);
        shots.push(draw(&mut a, 80, 12).backend().to_string());
    }
    insta::assert_snapshot!(shots.join("\n"));
}

#[test]
fn decisions_80x24() {
    insta::assert_snapshot!(view(View::Decisions, 80, 24));
}

#[test]
fn decisions_120x40() {
    insta::assert_snapshot!(view(View::Decisions, 120, 40));
}

#[test]
fn maps_80x24() {
    insta::assert_snapshot!(view(View::Maps, 80, 24));
}

#[test]
fn stats_80x24() {
    insta::assert_snapshot!(view(View::Stats, 80, 24));
}

/// At a larger size: the latency axis still starts where the data does,
/// and the per-opcode and per-program tables show every row.
#[test]
fn stats_120x40() {
    insta::assert_snapshot!(view(View::Stats, 120, 40));
}

/// Kernel probes alone (`ringside attach`): no engine, so no decisions,
/// and the decision panel says so instead of charting zeros.
#[test]
fn stats_without_decisions_says_none_were_seen() {
    let mut a = empty_app(1000, "attach (fixture)");
    for it in probe_items() {
        a.handle_msg(Msg::Item(it));
    }
    a.view = View::Stats;
    let screen = draw(&mut a, 120, 40).backend().to_string();
    assert!(screen.contains("decision insns · none yet"), "{screen}");
    assert!(screen.contains("no decisions yet"), "{screen}");
    assert!(!screen.contains("decision insns p50"), "{screen}");
    // The kernel's completions are still charted.
    assert!(screen.contains("kernel completions"), "{screen}");
    // With decisions (the demo fixture), the histogram is back.
    assert!(view(View::Stats, 120, 40).contains("decision insns p50 100"));
}

/// Decisions whose records carry no instruction count (compiled code
/// counts nothing): the panel says so, and still gives their time.
#[test]
fn stats_of_uncounted_decisions_says_they_were_not_counted() {
    let mut a = empty_app(1000, "run (fixture)");
    let mut decisions = 0;
    for it in engine_items() {
        let it = match it {
            Item::Engine(r) => match &r.event {
                Event::Decision(d) => {
                    decisions += 1;
                    let mut d = d.clone();
                    d.insns = None;
                    Item::Engine(Arc::new(EventRecord {
                        event: Event::Decision(d),
                        ..(*r).clone()
                    }))
                }
                _ => Item::Engine(r),
            },
            other => other,
        };
        a.handle_msg(Msg::Item(it));
    }
    assert!(decisions > 0);
    a.view = View::Stats;
    let screen = draw(&mut a, 120, 40).backend().to_string();
    assert!(
        screen.contains("decision insns · not counted · time p50"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!(
            "{decisions} decisions, none with an instruction count"
        )),
        "{screen}"
    );
    assert!(!screen.contains("decision insns p50"), "{screen}");
}

#[test]
fn debug_idle_80x24() {
    insta::assert_snapshot!(view(View::Debug, 80, 24));
}

/// A bg-colour map of the screen: one letter per cell.
fn colour_map(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let c = match buf[(x, y)].bg {
                Color::DarkGray => 'q',
                Color::Blue => 'i',
                Color::Green => 'd',
                Color::Yellow => 's',
                Color::Red => 'f',
                Color::Magenta => 'c',
                Color::Cyan => 'x',
                Color::Reset => '.',
                _ => '*',
            };
            out.push(c);
        }
        out.push('\n');
    }
    out
}

#[test]
fn chains_colours_by_state() {
    let mut a = app(100_000);
    a.view = View::Chains;
    let t = draw(&mut a, 100, 30);
    let map = colour_map(&t);
    // Every state that occurs in the fixture has its colour on screen:
    // done, short, cancelled (kernel link), in the legend and in nodes.
    for (c, what) in [('d', "done"), ('s', "short"), ('c', "cancelled")] {
        let in_rows = map.lines().skip(2).any(|l| l.contains(c));
        assert!(in_rows, "no {what} node is drawn:\n{map}");
    }
    insta::assert_snapshot!(map);
}

#[test]
fn chain_detail_shows_sqe_cqe_and_timings() {
    let mut a = app(100_000);
    a.view = View::Chains;
    // The first engine chain: the kernel-link reads.
    key(&mut a, KeyCode::Home);
    let s = draw(&mut a, 100, 30).backend().to_string();
    assert!(s.contains("SQE read fd="), "{s}");
    assert!(s.contains("CQE res="), "{s}");
    assert!(s.contains("latency"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn chains_filter_by_state_and_program() {
    let mut a = app(100_000);
    a.view = View::Chains;
    key(&mut a, KeyCode::Char('/'));
    for c in "state:cancelled".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    // The prompt shows what is typed.
    let s = draw(&mut a, 80, 24).backend().to_string();
    assert!(s.contains("state:cancelled"), "{s}");
    key(&mut a, KeyCode::Enter);
    let rows = a.chain_rows();
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            a.state
                .row_states(*r)
                .contains(&ringside_tui::model::NodeState::Cancelled)
        );
    }
    insta::assert_snapshot!(draw(&mut a, 80, 24).backend().to_string());
    a.command("filter btree_lookup");
    let n = a.chain_rows().len();
    assert_eq!(n, 16, "the demo has 16 btree lookups");
}

#[test]
fn help_overlay_lists_every_key() {
    let mut a = app(100_000);
    key(&mut a, KeyCode::Char('?'));
    let s = draw(&mut a, 100, 34).backend().to_string();
    for (k, _) in ringside_tui::app::HELP {
        assert!(s.contains(k), "help lacks {k}:\n{s}");
    }
    insta::assert_snapshot!(s);
    // At 80x24 too (without the section headings).
    let s = draw(&mut a, 80, 24).backend().to_string();
    for (k, v) in ringside_tui::app::HELP {
        if !v.is_empty() {
            assert!(s.contains(k), "help at 80x24 lacks {k}:\n{s}");
        }
    }
}

#[test]
fn breakpoint_overlay_sets_breakpoints() {
    let mut a = app(100_000);
    a.view = View::Decisions;
    key(&mut a, KeyCode::Char('b'));
    key(&mut a, KeyCode::Char('1'));
    key(&mut a, KeyCode::Char('p'));
    assert!(a.breakpoints.contains(&Breakpoint::ShortResult));
    assert!(
        a.breakpoints
            .iter()
            .any(|b| matches!(b, Breakpoint::Program { .. }))
    );
    insta::assert_snapshot!(draw(&mut a, 80, 24).backend().to_string());
    a.command("break opcode read");
    assert!(a.breakpoints.contains(&Breakpoint::Opcode { opcode: 22 }));
    a.command("clear");
    assert!(a.breakpoints.is_empty());
}

/// The engine stops at a short read (a Paused event after its decision):
/// the UI traces the decision and shows the debugger; stepping moves the pc.
#[test]
fn debugger_steps_through_a_stopped_decision() {
    let mut a = app(100_000);
    // Decision 0 of the fixture: read_exact on a short read (3000 of 8192).
    let last_seq = 100_000;
    a.handle_msg(Msg::Item(Item::Engine(Arc::new(EventRecord {
        seq: last_seq,
        t_ns: 1,
        event: Event::Paused {
            reason: "breakpoint: res < len".into(),
            decision: Some(0),
        },
    }))));
    a.tick();
    assert_eq!(a.view, View::Debug);
    let t = a.trace.as_ref().expect("a trace");
    assert!(t.problem.is_none(), "{:?}", t.problem);
    assert!(t.steps.len() > 10);
    let first = draw(&mut a, 80, 24).backend().to_string();
    assert!(first.contains("STOPPED"), "{first}");
    insta::assert_snapshot!("debugger_at_first_insn", first);
    for _ in 0..12 {
        key(&mut a, KeyCode::Char('s'));
    }
    let t = a.trace.as_ref().unwrap();
    assert_eq!(t.pos, 12);
    let s = draw(&mut a, 100, 34).backend().to_string();
    insta::assert_snapshot!("debugger_after_12_steps", s);
    // Back one, and run to the next helper call.
    key(&mut a, KeyCode::Char('S'));
    assert_eq!(a.trace.as_ref().unwrap().pos, 11);
    key(&mut a, KeyCode::Char('r'));
    let t = a.trace.as_ref().unwrap();
    assert!(t.steps[t.pos].helper.is_some());
    // The step that calls a helper says what the call saw and did.
    let s = draw(&mut a, 100, 34).backend().to_string();
    assert!(s.contains("called "), "{s}");
    insta::assert_snapshot!("debugger_at_a_helper_call", s);
    // The last step shows the exit value, which the engine's run returned.
    key(&mut a, KeyCode::End);
    let s = draw(&mut a, 100, 34).backend().to_string();
    assert!(s.contains("exit: r0 ="), "{s}");
}

/// Stopped under the kernel backend, the Debug view does not claim the
/// decision's actions are held: the kernel applied them before the loop
/// returned; the ring's setup says which backend decided.
#[test]
fn a_kernel_decision_stop_says_its_actions_were_applied() {
    let mut a = app(100_000);
    let epoch = *a.state.ring_info.keys().next_back().expect("a ring setup");
    let stop = |a: &mut App| {
        a.handle_msg(Msg::Item(Item::Engine(Arc::new(EventRecord {
            seq: 100_000,
            t_ns: 1,
            event: Event::Paused {
                reason: "breakpoint: res < len".into(),
                decision: Some(0),
            },
        }))));
        a.tick();
        draw(a, 120, 30).backend().to_string()
    };
    let user = stop(&mut a);
    assert!(user.contains("actions held"), "{user}");
    a.state.ring_info.get_mut(&epoch).unwrap().backend = ringside_engine::Backend::Kernel;
    let kernel = stop(&mut a);
    assert!(!kernel.contains("actions held"), "{kernel}");
    assert!(kernel.contains("applied in the kernel"), "{kernel}");
}

#[test]
fn decision_detail_zoomed() {
    let mut a = app(100_000);
    a.view = View::Decisions;
    key(&mut a, KeyCode::Home);
    key(&mut a, KeyCode::Enter);
    let s = draw(&mut a, 100, 40).backend().to_string();
    assert!(s.contains("context (struct rs_ctx)"), "{s}");
    assert!(s.contains("helper calls"), "{s}");
    assert!(s.contains("rs_submit") || s.contains("call"), "{s}");
    insta::assert_snapshot!(s);
}

/// Lone kernel requests, `n` NOPs each submitted and completed on their own
/// (what the probes see of a ring that links nothing, the engine's own).
fn lone_nops(n: u64) -> Vec<Item> {
    let ring = Ptr(0xffff_8881_0000_2000);
    let t0 = 9_000_000_000u64;
    let mut evs = Vec::new();
    for i in 0..n {
        let req = Ptr(0x10_0000 + i * 0x100);
        evs.push(ProbeEvent::SubmitReq {
            hdr: hdr(t0 + i * 100),
            ring,
            req,
            user_data: i,
            opcode: 0,
            flags: 0,
            sq_thread: false,
        });
        evs.push(ProbeEvent::Complete {
            hdr: hdr(t0 + i * 100 + 50),
            ring,
            req,
            user_data: i,
            res: 0,
            cflags: 0,
            extra1: 0,
            extra2: 0,
        });
    }
    evs.into_iter().map(Item::Probe).collect()
}

#[test]
fn a_flood_of_lone_kernel_requests_keeps_the_engine_chains() {
    let mut a = app(10_000);
    let cap = a.state.caps().0;
    let engine: Vec<RowKey> = a
        .state
        .rows
        .iter()
        .filter(|k| matches!(k, RowKey::Engine { .. }))
        .collect();
    assert!(!engine.is_empty());
    for it in lone_nops(2 * cap as u64 + 7) {
        a.handle_msg(Msg::Item(it));
    }
    let rows: Vec<RowKey> = a.state.rows.iter().collect();
    for k in &engine {
        assert!(rows.contains(k), "{k:?} was pushed out by lone requests");
        if let RowKey::Engine { epoch, chain } = k {
            assert!(a.state.chains.contains_key(&(*epoch, *chain)));
        }
    }
    // Lone requests keep to their own cap, the newest of them.
    assert_eq!(a.state.rows.requests(), cap);
    assert!(
        matches!(rows.last(), Some(RowKey::KernelReq(_))),
        "{:?}",
        rows.last()
    );
    // The Chains view shows the engine's chains by default.
    a.view = View::Chains;
    let s = draw(&mut a, 120, 40).backend().to_string();
    assert!(!s.contains("no chains yet"), "{s}");
    assert!(s.contains("read_exact"), "{s}");
}

#[test]
fn history_is_bounded_and_totals_are_kept() {
    let mut a = App::new(
        Model::new(500),
        Mode { title: "t".into() },
        Box::new(EngineControl(Debugger::new())),
    );
    let items = engine_items();
    let n = items.len() as u64;
    for _ in 0..30 {
        for it in items.clone() {
            a.handle_msg(Msg::Item(it));
        }
    }
    // 30 rounds: 930 chains and 5790 decisions went by; the tables keep
    // their caps, the totals count everything.
    let (rows, decisions) = a.state.caps();
    assert_eq!((rows, decisions), (500, 1000));
    assert_eq!(a.state.rows.len(), rows);
    assert_eq!(
        a.state.chains.len(),
        rows,
        "evicted rows leave no chain behind"
    );
    assert_eq!(a.state.decisions.len(), decisions);
    assert_eq!(a.state.totals.items, 30 * n);
    assert_eq!(a.state.totals.chains, 30 * 31);
    assert_eq!(a.state.totals.epochs, 30, "each RingSetup is a new engine");
}

#[test]
fn lost_items_are_counted_and_shown() {
    let mut a = app(100_000);
    for it in engine_items() {
        a.handle_msg(Msg::Item(it));
    }
    let n = a.state.totals.engine_events;
    a.handle_msg(Msg::Item(Item::Lost {
        queue: "probes".into(),
        count: 17,
    }));
    // The UI's queue dropped a tenth of what the sources sent.
    a.ui_dropped
        .fetch_add(n / 9, std::sync::atomic::Ordering::Relaxed);
    a.tick();
    assert_eq!(a.state.totals.lost.get("probes"), Some(&17));
    assert_eq!(a.state.totals.lost.get("ui"), Some(&(n / 9)));
    let s = draw(&mut a, 120, 24).backend().to_string();
    assert!(s.contains("showing 90% of events"), "{s}");
    assert!(!s.contains("recording is complete"), "{s}");
    assert!(s.contains("LOST 17 before ringside"), "{s}");
    a.recording = Some("fio.rsrec".into());
    let s = draw(&mut a, 120, 24).backend().to_string();
    assert!(
        s.contains("showing 90% of events; the recording is complete"),
        "{s}"
    );
    let s = draw(&mut a, 80, 24).backend().to_string();
    assert!(s.contains("90% shown · recording complete"), "{s}");
    a.view = View::Stats;
    let s = draw(&mut a, 120, 40).backend().to_string();
    assert!(s.contains("probes 17 · ui "), "{s}");
}

#[test]
fn every_view_draws_at_small_and_odd_sizes() {
    let mut a = app(100_000);
    for v in View::ALL {
        a.view = v;
        for (w, h) in [(80, 24), (40, 10), (200, 60), (20, 5)] {
            draw(&mut a, w, h);
        }
    }
}

/// What `attach` sees of a process with two rings: one created before
/// attach (found in /proc: SQPOLL from fdinfo, its other flags unknown),
/// tied to its ctx by a submission of its SQPOLL thread; and one created
/// while attached with SINGLE_ISSUER | DEFER_TASKRUN, registered files (a
/// sparse table) and buffers.
fn ring_setup_items() -> Vec<Item> {
    use ringside_probes::discover::{RegisteredBuffer, RegisteredFile, RingSetup, RingWhen};
    use ringside_probes::event::setup_flags as sf;
    let t0 = 7_000_000_000u64;
    let old = RingSetup {
        hdr: Header {
            ts_ns: t0,
            cpu: 0,
            tgid: 4242,
            tid: 0,
        },
        when: RingWhen::Attach,
        ring: Ptr::NULL,
        fd: Some(5),
        owner_tid: None,
        setup_flags: None,
        sq_entries: Some(32),
        cq_entries: Some(64),
        sq_thread: Some(4250),
        sq_thread_cpu: None,
        file_slots: Some(1),
        files: vec![RegisteredFile {
            index: 0,
            path: "/srv/data.bin".into(),
        }],
        buffer_slots: Some(0),
        buffers: Vec::new(),
        sq_pending: Some(2),
        cq_pending: Some(0),
        cq_overflow: Some(0),
    };
    let ring = Ptr(0xffff_8881_2000_0000);
    let new = RingSetup {
        hdr: Header {
            ts_ns: t0 + 2000,
            ..old.hdr
        },
        when: RingWhen::Changed,
        ring,
        fd: Some(9),
        owner_tid: Some(4243),
        setup_flags: Some(sf::SINGLE_ISSUER | sf::DEFER_TASKRUN),
        sq_entries: Some(128),
        cq_entries: Some(256),
        sq_thread: None,
        file_slots: Some(4),
        files: vec![
            RegisteredFile {
                index: 0,
                path: "/tmp/a".into(),
            },
            RegisteredFile {
                index: 3,
                path: "/tmp/b".into(),
            },
        ],
        buffer_slots: Some(8),
        buffers: (0..8)
            .map(|i| RegisteredBuffer {
                index: i,
                addr: 0x1000 * i as u64,
                len: 4096,
            })
            .collect(),
        sq_pending: Some(0),
        cq_pending: Some(3),
        ..old.clone()
    };
    let evs = vec![
        ProbeEvent::Ring(Box::new(old)),
        // The SQPOLL thread's first submission ties the old ring's ctx.
        ProbeEvent::SubmitReq {
            hdr: Header {
                ts_ns: t0 + 500,
                cpu: 1,
                tgid: 4242,
                tid: 4250,
            },
            ring: Ptr(0xffff_8881_1000_0000),
            req: Ptr(0xd000),
            user_data: 9,
            opcode: 22,
            flags: 0,
            sq_thread: true,
        },
        ProbeEvent::Create {
            hdr: Header {
                ts_ns: t0 + 1000,
                cpu: 0,
                tgid: 4242,
                tid: 4243,
            },
            ring,
            fd: 9,
            sq_entries: 128,
            cq_entries: 256,
            flags: sf::SINGLE_ISSUER | sf::DEFER_TASKRUN,
            generation: 1,
        },
        ProbeEvent::Ring(Box::new(new)),
    ];
    evs.into_iter().map(Item::Probe).collect()
}

fn attach_app() -> App {
    let mut app = App::new(
        Model::new(100_000),
        Mode {
            title: "attach pid 4242".into(),
        },
        Box::new(ringside_tui::source::WatchOnly),
    );
    for it in ring_setup_items() {
        app.handle_msg(Msg::Item(it));
    }
    app.view = View::Rings;
    app
}

#[test]
fn rings_with_setup_flags_and_registered_files() {
    let mut a = attach_app();
    let rows: Vec<_> = a
        .state
        .rings
        .iter()
        .filter(|r| r.source == "probes")
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "the attach record and the tied ctx share one row"
    );
    assert_eq!(rows[0].ctx, Some(0xffff_8881_1000_0000));
    assert_eq!(rows[0].fd, Some(5));
    assert_eq!(rows[0].flag_names(), "SQPOLL +?");
    assert_eq!(rows[1].flag_names(), "SINGLE_ISSUER DEFER_TASKRUN");
    assert_eq!(rows[1].owner_tid, Some(4243));
    insta::assert_snapshot!(draw(&mut a, 100, 16).backend().to_string());
}

#[test]
fn rings_with_setup_flags_80x24() {
    let mut a = attach_app();
    insta::assert_snapshot!(draw(&mut a, 80, 24).backend().to_string());
}

/// A replay of an `attach` recording starts in the kernel-rows mode live
/// attach starts in; other recordings keep the default.
#[test]
fn replay_of_an_attach_recording_opens_in_attach_kernel_rows() {
    use ringside_tui::app::KernelRows;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, source: &str| {
        let p = dir.path().join(name);
        let f = std::fs::File::create(&p).unwrap();
        let mut w = ringside_recordings::Writer::new(
            std::io::BufWriter::new(f),
            &ringside_recordings::Header::keeping_pointers(source),
        )
        .unwrap();
        for it in ring_setup_items() {
            w.write_item(&it).unwrap();
        }
        w.finish(0).unwrap();
        p
    };
    let attach = write("a.rsrec", "attach --pid 4242");
    let demo = write("d.rsrec", "demo");
    assert_eq!(
        ringside_tui::app::kernel_rows_for(&attach),
        Some(KernelRows::All)
    );
    assert_eq!(ringside_tui::app::kernel_rows_for(&demo), None);
    // And the replayed items make the same rows as live did.
    let (items, _) = ringside_tui::source::replay::load(&attach).unwrap();
    let mut m = Model::new(100_000);
    for it in items {
        m.apply(it);
    }
    let live = attach_app();
    assert_eq!(m.rings, live.state.rings);
}
