//! Recording benchmark (not a test): write and read throughput, bytes per
//! event by kind, replay decisions/s.
//!
//! `cargo bench -p ringside-recordings --bench recording` prints the table
//! of docs/recording-format.md. The workload is the committed demo
//! recording (tests/data/demo.rsrec: engine and kernel probe events of
//! `ringside demo`) repeated with shifted sequence numbers and times. Under
//! `cargo test` (no `--bench`) it runs a small smoke version.

use ringside_engine::event::{Event, EventRecord};
use ringside_recordings::check::{Checker, compare_decision};
use ringside_recordings::format::rtype;
use ringside_recordings::reader::ReadOptions;
use ringside_recordings::{Header, Item, Reader, Recorder, RecorderOptions, Writer, read_file};
use std::collections::BTreeMap;
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Instant;

fn shift(item: &Item, round: u64, seqs: u64, span: u64) -> Item {
    match item {
        Item::Engine(r) => Item::Engine(Arc::new(EventRecord {
            seq: r.seq + round * seqs,
            t_ns: r.t_ns + round * span,
            event: r.event.clone(),
        })),
        Item::Probe(p) => {
            let mut p = p.clone();
            let h = p.header_mut();
            h.ts_ns += round * span;
            Item::Probe(p)
        }
        other => other.clone(),
    }
}

fn kind(item: &Item) -> String {
    match item {
        Item::Engine(r) => match &r.event {
            Event::AppCompletion(a) => {
                format!("engine app_completion ({:?})", a.kind).to_lowercase()
            }
            _ => format!("engine {}", r.to_json()["kind"].as_str().unwrap_or("?")),
        },
        Item::Probe(p) => format!("probe {}", p.kind()),
        Item::Lost { .. } => "lost".into(),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let demo_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/demo.rsrec");
    let (entries, stop) = read_file(demo_path).expect("tests/data/demo.rsrec");
    assert!(stop.is_clean(), "{stop:?}");
    let base: Vec<Item> = entries.into_iter().map(|e| e.item).collect();
    // Setup events once, then the rest repeated.
    let setup = base
        .iter()
        .take_while(|i| {
            matches!(i, Item::Engine(r) if matches!(r.event, Event::RingSetup(_) | Event::ProgramLoaded(_) | Event::MapUpdate { .. } | Event::RingProgram { .. }))
                || matches!(i, Item::Probe(_))
        })
        .count();
    let body = &base[setup..];
    let seqs = body
        .iter()
        .filter_map(|i| match i {
            Item::Engine(r) => Some(r.seq),
            _ => None,
        })
        .max()
        .unwrap_or(0)
        + 1;
    let span = 1_000_000_000;
    let rounds: u64 = if bench { 700 } else { 3 };
    let mut items: Vec<Item> = base[..setup].to_vec();
    for r in 0..rounds {
        items.extend(body.iter().map(|i| shift(i, r, seqs, span)));
    }
    let n = items.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.rsrec");

    // Write: synchronous writer into a file (best of 3: the machine is shared).
    let mut write_s = f64::MAX;
    let mut w = None;
    for _ in 0..3 {
        let t = Instant::now();
        let f = std::fs::File::create(&path).unwrap();
        let mut wr =
            Writer::new(BufWriter::with_capacity(1 << 20, f), &Header::new("bench")).unwrap();
        for it in &items {
            wr.write_item(it).unwrap();
        }
        wr.finish(0).unwrap();
        write_s = write_s.min(t.elapsed().as_secs_f64());
        w = Some(wr);
    }
    let w = w.unwrap();
    let bytes = w.bytes();
    let mut by_type: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
    for rt in 0..=255u8 {
        let s = w.type_stats(rt);
        if s.0 > 0 {
            by_type.insert(rt, s);
        }
    }
    drop(w);

    // Write: the Recorder (queue + writer thread), pushing as fast as it drains.
    let rpath = dir.path().join("recorder.rsrec");
    let t = Instant::now();
    let rec =
        Recorder::create_with(&rpath, Header::new("bench"), RecorderOptions::default()).unwrap();
    let h = rec.handle();
    for it in &items {
        // Wait instead of dropping, to measure the sustained rate.
        h.push_blocking(it.clone());
    }
    let stats = rec.finish().unwrap();
    let rec_s = t.elapsed().as_secs_f64();
    let rec_items = stats.items;
    assert_eq!(stats.dropped, 0);

    // Read (best of 3).
    let mut read_s = f64::MAX;
    let mut decisions = Vec::new();
    for _ in 0..3 {
        decisions.clear();
        let t = Instant::now();
        let mut r = Reader::open(&path).unwrap();
        let mut read = 0u64;
        for e in r.by_ref() {
            let e = e.unwrap();
            read += 1;
            if let Item::Engine(rec) = &e.item
                && matches!(rec.event, Event::Decision(_))
                && decisions.len() < 200_000
            {
                decisions.push(e);
            }
        }
        read_s = read_s.min(t.elapsed().as_secs_f64());
        assert_eq!(read, n);
        assert!(r.stop().unwrap().is_clean());
    }

    // Replay: re-execute and compare every decision (interpreter), in memory.
    let mut checker = Checker::new();
    for e in Reader::open(&path).unwrap().take(setup).map(|e| e.unwrap()) {
        checker.feed(&e).unwrap();
    }
    let (regs, budgets) = checker.setup.config(checker.setup.epoch());
    let progs: Vec<_> = decisions
        .iter()
        .map(|e| match &e.item {
            Item::Engine(r) => match &r.event {
                Event::Decision(d) => (
                    checker
                        .setup
                        .program(1, d.prog)
                        .and_then(|(_, p)| p)
                        .expect("program"),
                    d.as_ref(),
                ),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        })
        .collect();
    let mut replay_s = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for (p, d) in &progs {
            compare_decision(p, d, &regs, &budgets).expect("identical");
        }
        replay_s = replay_s.min(t.elapsed().as_secs_f64());
    }
    let nd = progs.len() as f64;
    if std::env::var_os("RINGSIDE_BENCH_DETAIL").is_some() {
        let t = Instant::now();
        for (p, d) in &progs {
            std::hint::black_box(ringside_engine::decision::maps_for_replay(
                &p.map_defs,
                &d.touched,
            ));
        }
        eprintln!(
            "maps_for_replay alone: {:.0}k/s",
            nd / t.elapsed().as_secs_f64() / 1e3
        );
        let t = Instant::now();
        for (p, d) in &progs {
            std::hint::black_box(
                ringside_engine::decision::reexecute(p, d, &regs, &budgets, None).unwrap(),
            );
        }
        eprintln!(
            "reexecute alone: {:.0}k/s",
            nd / t.elapsed().as_secs_f64() / 1e3
        );
    }

    // Check from the file: read, decode, cross-check, re-execute, compare.
    let t = Instant::now();
    let report = ringside_recordings::check::check_reader(
        Reader::open_with(&path, ReadOptions::default()).unwrap(),
    );
    let check_s = t.elapsed().as_secs_f64();
    assert_eq!(report.exit_code(), 0, "{report:?}");

    // Bytes per kind, and JSON for comparison.
    let mut kinds: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    {
        let mut w = Writer::new(Vec::new(), &Header::new("k")).unwrap();
        let mut last = w.bytes();
        for it in body {
            w.write_item(it).unwrap();
            let k = kinds.entry(kind(it)).or_default();
            k.0 += 1;
            k.1 += w.bytes() - last;
            k.2 += ringside_recordings::export::item_json(it).to_string().len() as u64 + 1;
            last = w.bytes();
        }
    }
    let mb = |b: u64, s: f64| b as f64 / s / 1e6;
    println!(
        "\nringside recordings benchmark: {n} events ({} rounds of the demo recording, {:.1} MB file); {}",
        rounds,
        bytes as f64 / 1e6,
        if bench {
            "release"
        } else {
            "smoke run (cargo bench for real numbers)"
        }
    );
    println!("\n| measurement | events/s | MB/s | target |");
    println!("|---|---:|---:|---|");
    println!(
        "| write: Writer -> file (encode, CRC32, buffered write) | {:.2}M | {:.0} | >= 1M events/s |",
        n as f64 / write_s / 1e6,
        mb(bytes, write_s)
    );
    println!(
        "| write: Recorder (bounded queue + writer thread, flush every 100 ms) | {:.2}M | {:.0} | >= 1M events/s |",
        rec_items as f64 / rec_s / 1e6,
        mb(stats.bytes, rec_s)
    );
    println!(
        "| read: Reader <- file (CRC32, decode) | {:.2}M | {:.0} | |",
        n as f64 / read_s / 1e6,
        mb(bytes, read_s)
    );
    println!("\n| replay | decisions/s | target |");
    println!("|---|---:|---|");
    println!(
        "| re-execute + compare (tracing interpreter, decoded decisions) | {:.0}k | >= 500k |",
        nd / replay_s / 1e3
    );
    println!(
        "| `check` from the file (read, decode, cross-check, re-execute, compare) | {:.0}k | |",
        report.decisions as f64 / check_s / 1e3
    );
    println!(
        "\n| event kind | share | bytes/event (file, framing included) | bytes/event (JSON Lines) |"
    );
    println!("|---|---:|---:|---:|");
    let total: u64 = kinds.values().map(|k| k.0).sum();
    let (mut hot_n, mut hot_b) = (0u64, 0u64);
    for (k, (c, b, j)) in &kinds {
        println!(
            "| {k} | {:.1}% | {:.1} | {:.0} |",
            100.0 * *c as f64 / total as f64,
            *b as f64 / *c as f64,
            *j as f64 / *c as f64
        );
        if k.starts_with("probe") || k == "engine completed" {
            hot_n += c;
            hot_b += b;
        }
    }
    let all_b: u64 = kinds.values().map(|k| k.1).sum();
    println!(
        "| **probe and completion events** | {:.1}% | **{:.1}** (target <= 40) | |",
        100.0 * hot_n as f64 / total as f64,
        hot_b as f64 / hot_n.max(1) as f64
    );
    println!(
        "| all events (setup excluded) | 100% | {:.1} | |",
        all_b as f64 / total as f64
    );
    println!("\nrecord types in the file:");
    for (rt, (c, b)) in by_type {
        println!(
            "  {:#04x} {:<16} {c:>9} records {b:>11} bytes",
            rt,
            rtype::name(rt)
        );
    }
}
