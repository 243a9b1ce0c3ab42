//! Deterministic replay: a tampered input fails `check` at exactly that
//! decision; traces agree with the recording; seeking; the recorder's queue.

mod common;

use ringside_engine::event::{Event, EventRecord, Overflow};
use ringside_recordings::reader::{ReadOptions, read_all};
use ringside_recordings::{
    Header, Item, Reader, Recorder, RecorderOptions, Replay, check, trace_decision,
};
use ringside_workload::{self as workload, PrepareOptions};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn check_items(items: &[Item]) -> ringside_recordings::CheckReport {
    let bytes = common::record(items);
    check::check_reader(Reader::new(&bytes[..], "t", ReadOptions::default()).unwrap())
}

fn decisions(items: &[Item]) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, it)| matches!(it, Item::Engine(r) if matches!(r.event, Event::Decision(_))))
        .map(|(i, _)| i)
        .collect()
}

fn edit_decision(
    items: &mut [Item],
    i: usize,
    f: impl FnOnce(&mut ringside_engine::decision::DecisionRecord),
) -> u64 {
    let Item::Engine(r) = &items[i] else {
        unreachable!()
    };
    let mut rec: EventRecord = (**r).clone();
    let Event::Decision(d) = &mut rec.event else {
        unreachable!()
    };
    f(d);
    let seq = d.seq;
    items[i] = Item::Engine(Arc::new(rec));
    seq
}

#[test]
fn tampered_decision_inputs_fail_check_at_exactly_that_decision() {
    let items = common::demo_items();
    let ds = decisions(&items);
    assert!(ds.len() > 50);

    // The CQE result a decision saw.
    let mut t = items.clone();
    let i = ds[ds.len() / 2];
    let seq = edit_decision(&mut t, i, |d| d.ctx.res = d.ctx.res.wrapping_add(1));
    let r = check_items(&t);
    let d = r.divergence.clone().expect("tampered ctx.res passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");
    assert_eq!(r.exit_code(), 1);
    assert_eq!(r.decisions as usize, ds.iter().filter(|&&k| k < i).count());

    // A map value a decision read (first decision that saw one).
    let mut t = items.clone();
    let i = *ds
        .iter()
        .find(|&&k| matches!(&t[k], Item::Engine(r) if matches!(&r.event, Event::Decision(d) if d.touched.iter().any(|x| x.before.is_some()))))
        .expect("a decision that read a map value");
    let seq = edit_decision(&mut t, i, |d| {
        let b = d
            .touched
            .iter_mut()
            .find_map(|x| x.before.as_mut())
            .unwrap();
        b[0] ^= 0x40;
    });
    let d = check_items(&t)
        .divergence
        .expect("tampered map input passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");

    // An output: the recorded return value, pinned to the exit instruction.
    let mut t = items.clone();
    let i = ds[3];
    let seq = edit_decision(&mut t, i, |d| d.ret ^= 1);
    let d = check_items(&t)
        .divergence
        .expect("tampered ret passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");
    assert!(d.pc.is_some() && d.insn.as_deref() == Some("exit"), "{d}");

    // A helper call's recorded result, pinned to its call instruction.
    let mut t = items.clone();
    let i = *ds
        .iter()
        .find(|&&k| matches!(&t[k], Item::Engine(r) if matches!(&r.event, Event::Decision(d) if !d.calls.is_empty())))
        .unwrap();
    let seq = edit_decision(&mut t, i, |d| d.calls[0].ret += 7);
    let d = check_items(&t)
        .divergence
        .expect("tampered call passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");
    assert!(d.what.contains("helper call #0"), "{d}");
    assert!(
        d.insn.as_deref().is_some_and(|s| s.starts_with("call")),
        "{d}"
    );
}

#[test]
fn an_inputs_only_recording_checks_and_a_tampered_input_or_outcome_diverges() {
    use ringside_engine::decision::Detail;
    let items = common::demo_items_inputs_only();
    let ds = decisions(&items);
    assert!(ds.len() > 50);
    let inputs_only = |it: &Item| matches!(it, Item::Engine(r) if matches!(&r.event, Event::Decision(d) if d.detail == Detail::Inputs && d.map_writes.is_empty() && d.insns.is_none()));
    assert!(ds.iter().all(|&i| inputs_only(&items[i])));
    // It survives the file (the format's detail bit), and checks.
    let bytes = common::record(&items);
    let (back, _) = read_all(&bytes[..], ReadOptions::default());
    assert_eq!(
        back.iter().filter(|e| inputs_only(&e.item)).count(),
        ds.len()
    );
    let r = check_items(&items);
    assert_eq!(r.divergence, None, "{r:?}");
    assert_eq!(r.decisions as usize, ds.len());
    // An export writes every decision whole, as from a full recording.
    let mut out = Vec::new();
    let mut reader = Reader::new(&bytes[..], "t", ReadOptions::default()).unwrap();
    ringside_recordings::export::jsonl(&mut reader, &mut out, &Default::default())
        .unwrap()
        .unwrap();
    let exported: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "decision")
        .collect();
    assert_eq!(exported.len(), ds.len());
    for v in &exported {
        assert!(v.get("detail").is_none(), "{v}");
        assert!(v["insns"].is_u64() && v["prog_name"] != "", "{v}");
    }

    // An input: the CQE result a decision saw.
    let mut t = items.clone();
    let i = ds[ds.len() / 2];
    let seq = edit_decision(&mut t, i, |d| d.ctx.res = d.ctx.res.wrapping_add(1));
    let d = check_items(&t)
        .divergence
        .expect("tampered ctx.res passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");

    // An outcome: an action, which an inputs-only record keeps.
    let mut t = items.clone();
    let i = *ds
        .iter()
        .find(|&&k| matches!(&t[k], Item::Engine(r) if matches!(&r.event, Event::Decision(d) if !d.actions.is_empty())))
        .unwrap();
    let seq = edit_decision(&mut t, i, |d| d.actions.clear());
    let d = check_items(&t)
        .divergence
        .expect("dropped action passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");
    assert!(d.what.starts_with("action #0"), "{d}");

    // A recorded ktime value or buffer bytes: the inputs the record keeps.
    let mut t = items.clone();
    let i = *ds
        .iter()
        .find(|&&k| matches!(&t[k], Item::Engine(r) if matches!(&r.event, Event::Decision(d) if !d.calls.is_empty())))
        .expect("a decision with a recorded input call");
    let seq = edit_decision(&mut t, i, |d| d.calls.clear());
    let d = check_items(&t)
        .divergence
        .expect("dropped input passed check");
    assert_eq!((d.index, d.decision), (i as u64, Some(seq)), "{d}");
}

#[test]
fn compiled_decisions_replay_identically_under_the_tracing_interpreter() {
    let mut p = workload::prepare_demo(&PrepareOptions::default()).unwrap();
    let sub = p.engine().subscribe(1 << 20, Overflow::Block);
    let (_, engine) = p.run(&AtomicBool::new(false)).unwrap();
    drop(engine);
    let items: Vec<Item> = sub.try_iter().map(Item::Engine).collect();
    let compiled = items
        .iter()
        .filter(|it| matches!(it, Item::Engine(r) if matches!(&r.event, Event::Decision(d) if d.exec == ringside_engine::program::vm::ExecMode::Compiled)))
        .count();
    assert!(compiled > 50, "{compiled} compiled decisions");
    let r = check_items(&items);
    assert_eq!(r.divergence, None);
    assert_eq!(r.exit_code(), 0, "{r:?}");
}

#[test]
fn replay_seeks_and_traces_decisions() {
    let items = common::demo_items();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.rsrec");
    // Small sync interval via explicit syncs so seeking has points to use.
    let mut w = ringside_recordings::Writer::new(
        std::fs::File::create(&path).unwrap(),
        &Header::keeping_pointers("t"),
    )
    .unwrap();
    for (i, it) in items.iter().enumerate() {
        w.write_item(it).unwrap();
        if i % 100 == 99 {
            w.sync().unwrap();
        }
    }
    w.finish(0).unwrap();
    drop(w);

    let replay = Replay::open(&path).unwrap();
    assert_eq!(replay.len(), items.len() as u64);
    assert!(replay.stop().is_clean());
    for k in [0u64, 1, 99, 100, 101, 457, items.len() as u64 - 1] {
        let e = replay.get(k).unwrap().unwrap();
        assert_eq!(e.index, k);
        assert_eq!(e.item, items[k as usize]);
        let mut it = replay.iter_from(k).unwrap();
        assert_eq!(it.next().unwrap().unwrap().index, k);
    }
    assert!(replay.get(items.len() as u64).unwrap().is_none());
    // Time: non-decreasing seek, the last item at or before the end.
    let mut prev = 0;
    for t in (0..replay.duration_ns()).step_by(1 + replay.duration_ns() as usize / 50) {
        let i = replay.index_at_time(t);
        assert!(i >= prev);
        prev = i;
    }
    assert_eq!(replay.index_at_time(0), 0);

    // Every decision's trace agrees with what rbpf recorded.
    assert_eq!(replay.decisions().len(), decisions(&items).len());
    for &(seq, index) in replay.decisions() {
        let t = replay.trace_at(index).unwrap();
        let steps = trace_decision(&replay, seq).unwrap();
        assert_eq!(steps.len(), t.steps.len());
        let last = steps.last().unwrap();
        assert_eq!(last.insn[0], 0x95, "decision {seq} does not end at exit");
        assert_eq!(last.regs[0], t.record.ret, "decision {seq}: r0");
        if let Some(n) = t.record.insns {
            assert_eq!(steps.len() as u64, n, "decision {seq}: instruction count");
        }
        let calls = steps.iter().filter(|s| s.helper.is_some()).count();
        assert_eq!(calls, t.record.calls.len(), "decision {seq}: helper calls");
    }
    assert!(trace_decision(&replay, 1 << 40).is_err());
    assert_eq!(replay.programs().len(), 6);
    assert!(
        replay
            .programs()
            .iter()
            .all(|(_, p, e)| p.is_some() && e.is_none())
    );
}

#[test]
fn recorder_never_blocks_and_writes_what_it_dropped() {
    let items = common::demo_items();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rsrec");
    let rec = Recorder::create_with(
        &path,
        Header::keeping_pointers("t"),
        RecorderOptions {
            queue: 4,
            ..RecorderOptions::default()
        },
    )
    .unwrap();
    let h = rec.handle();
    let mut pushed = 0;
    for _ in 0..20 {
        for it in &items {
            if h.push(it.clone()) {
                pushed += 1;
            }
        }
    }
    let stats = rec.finish().unwrap();
    assert!(stats.dropped > 0, "a 4-item queue never overflowed");
    let (got, stop) = read_all(&std::fs::read(&path).unwrap(), ReadOptions::default());
    assert!(stop.unwrap().is_clean());
    let lost: u64 = got
        .iter()
        .filter_map(|e| match &e.item {
            Item::Lost { queue, count } if queue == "recorder" => Some(*count),
            _ => None,
        })
        .sum();
    assert_eq!(lost, stats.dropped);
    assert_eq!(pushed + lost, 20 * items.len() as u64);
    assert_eq!(got.len() as u64, stats.items);
}

#[test]
fn recorder_flushes_while_running() {
    let items = common::demo_items();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.rsrec");
    let rec = Recorder::create(&path, Header::keeping_pointers("t")).unwrap();
    for it in &items[..50] {
        assert!(rec.push(it.clone()));
    }
    // Without finish(): the items reach the file by themselves (the
    // recorder flushes every 100 ms); poll, bounded, without timing assertions.
    let mut seen = 0;
    for _ in 0..600 {
        let (got, _) = read_all(&std::fs::read(&path).unwrap(), ReadOptions::default());
        seen = got.len();
        if seen == 50 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(seen, 50, "items never reached the file before finish()");
    // A file read while being written says it has no end record yet.
    let (_, stop) = read_all(&std::fs::read(&path).unwrap(), ReadOptions::default());
    let ringside_recordings::Stop::Error(e) = stop.unwrap() else {
        panic!("complete before finish")
    };
    assert!(
        matches!(
            e.problem,
            ringside_recordings::ReadProblem::NoEndRecord { items: 50, .. }
        ),
        "{e}"
    );
    rec.finish().unwrap();
}

/// Two engines in one file (a UI recording of two demo rounds): each
/// engine's `t_ns` starts at 0, and each has its own clock record. Every
/// item is placed with the clock record before it, so the second engine's
/// events come after the first's, and probe events sit between them where
/// they happened.
#[test]
fn each_engine_is_placed_by_its_own_clock_record() {
    use ringside_probes::{Header as PHeader, ProbeEvent, Ptr};
    let demo = common::demo_items();
    let setup = demo
        .iter()
        .find(|it| matches!(it, Item::Engine(r) if matches!(r.event, Event::RingSetup(_))))
        .cloned()
        .expect("the demo sets up a ring");
    let at = |item: &Item, t_ns: u64| match item {
        Item::Engine(r) => Item::Engine(Arc::new(EventRecord {
            t_ns,
            ..(**r).clone()
        })),
        other => other.clone(),
    };
    let shutdown = Item::Engine(Arc::new(EventRecord {
        seq: 1,
        t_ns: 0,
        event: Event::Shutdown {
            chains: 0,
            inflight: 0,
        },
    }));
    let probe = |ts_ns: u64| {
        Item::Probe(ProbeEvent::TaskWorkRun {
            hdr: PHeader {
                ts_ns,
                ..PHeader::default()
            },
            tctx: Ptr(1),
            count: 1,
        })
    };
    let mut header = Header::keeping_pointers("test");
    let start = 5_000_000_000u64;
    header.mono_start_ns = start;
    let mut w = ringside_recordings::Writer::new(Vec::new(), &header).unwrap();
    w.write_clock(start + 1_000).unwrap();
    w.write_item(&at(&setup, 0)).unwrap();
    w.write_item(&at(&shutdown, 500)).unwrap();
    w.write_item(&probe(start + 4_000)).unwrap();
    w.write_clock(start + 10_000).unwrap();
    w.write_item(&at(&setup, 0)).unwrap();
    w.write_item(&at(&shutdown, 5)).unwrap();
    w.finish(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.rsrec");
    std::fs::write(&path, w.into_inner()).unwrap();
    let replay = Replay::open(&path).unwrap();
    let times: Vec<u64> = (0..replay.len())
        .map(|i| replay.time_of(i).unwrap())
        .collect();
    assert_eq!(times, [1_000, 1_500, 4_000, 10_000, 10_005]);
    assert_eq!(replay.duration_ns(), 10_005);
    assert_eq!(replay.index_at_time(4_001), 3);
}
