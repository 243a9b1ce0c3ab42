//! End-to-end: `ringside record`, `check`, `export`, `replay --headless` on
//! real recordings, tampered and damaged ones, and the committed
//! tests/data/demo.rsrec (regenerate it with
//! `cargo run -p ringside -- record -o tests/data/demo.rsrec demo --headless`,
//! as root so it holds kernel probe events too).

use ringside_engine::decision::Detail;
use ringside_engine::event::{Event, EventRecord};
use ringside_recordings::{Header, Item, Writer, read_file};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ringside_tests::{is_root, run, skip, stdout};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn record_demo(dir: &Path) -> PathBuf {
    let f = dir.join("demo.rsrec");
    let o = run(&["record", "-o", f.to_str().unwrap(), "demo", "--headless"]);
    assert!(o.status.success(), "record failed");
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["kind"], "recording");
    let done = lines.last().unwrap();
    assert_eq!(done["kind"], "recorded");
    assert!(done["items"].as_u64().unwrap() > 500, "{done}");
    assert_eq!(done["recorder_dropped"], 0);
    assert_eq!(
        done["bytes"].as_u64().unwrap(),
        std::fs::metadata(&f).unwrap().len()
    );
    f
}

/// True when `ts` on (pid, tid) falls inside an X slice there.
fn inside(slices: &HashMap<(u64, u64), Vec<(f64, f64)>>, pid: u64, tid: u64, ts: f64) -> bool {
    slices
        .get(&(pid, tid))
        .is_some_and(|v| v.iter().any(|&(a, d)| a <= ts && ts <= a + d))
}

#[test]
fn record_check_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let f = record_demo(dir.path());
    let fs = f.to_str().unwrap();

    // Identical.
    let o = run(&["check", fs]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("identical"), "{}", stdout(&o));

    // Chrome trace JSON, opened with a JSON parser.
    let json = dir.path().join("demo.json");
    let o = run(&[
        "export",
        fs,
        "--format",
        "chrome",
        "-o",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let evs = doc["traceEvents"].as_array().unwrap();
    let ph = |p: &'static str| evs.iter().filter(move |e| e["ph"] == p);
    let mut slices: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in ph("X") {
        assert_eq!(e["cat"], "request");
        assert!(e["dur"].as_f64().unwrap() >= 0.0);
        slices
            .entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .or_default()
            .push((e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap()));
    }
    let nslices: usize = slices.values().map(Vec::len).sum();
    assert!(nslices > 150, "{nslices} request slices");
    // A lane never holds overlapping slices (Perfetto needs proper nesting).
    for v in slices.values_mut() {
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        for w in v.windows(2) {
            assert!(
                w[0].0 + w[0].1 <= w[1].0,
                "overlapping slices on one lane: {w:?}"
            );
        }
    }
    // Flow arrows along link chains: each start and finish binds to a slice.
    let starts: HashMap<u64, &Value> = ph("s").map(|e| (e["id"].as_u64().unwrap(), e)).collect();
    let finishes: HashMap<u64, &Value> = ph("f").map(|e| (e["id"].as_u64().unwrap(), e)).collect();
    assert!(starts.len() > 20, "{} flows", starts.len());
    assert_eq!(
        starts.keys().collect::<HashSet<_>>(),
        finishes.keys().collect::<HashSet<_>>()
    );
    for (id, s) in &starts {
        let f = finishes[id];
        assert_eq!(f["bp"], "e");
        for e in [s, &f] {
            let (pid, tid, ts) = (
                e["pid"].as_u64().unwrap(),
                e["tid"].as_u64().unwrap(),
                e["ts"].as_f64().unwrap(),
            );
            assert!(
                inside(&slices, pid, tid, ts),
                "flow {id} binds to no slice: {e}"
            );
        }
    }
    // Decisions and cancellations with details, an inflight counter, named tracks.
    let instants: Vec<&Value> = ph("i").collect();
    let decisions = instants.iter().filter(|e| e["cat"] == "decision").count();
    assert!(decisions > 100, "{decisions} decision instants");
    assert!(
        instants
            .iter()
            .any(|e| e["cat"] == "decision" && e["args"]["calls"].is_array())
    );
    assert!(
        instants
            .iter()
            .any(|e| e["cat"] == "cancellation" && e["args"]["cause"].is_object())
    );
    assert!(ph("C").any(|e| e["name"] == "inflight" && e["args"]["requests"].as_i64().is_some()));
    let procs: Vec<String> = ph("M")
        .filter(|e| e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        procs.iter().any(|p| p.starts_with("engine ring")),
        "{procs:?}"
    );
    if is_root() {
        assert!(
            procs.iter().any(|p| p.starts_with("kernel ring")),
            "{procs:?}"
        );
    } else {
        skip(
            "record_check_export_round_trip (kernel ring track)",
            "not root: the demo records without kernel probes",
        );
    }

    // JSON Lines: the --headless schema, identical to replay --headless.
    // `record` watches the engine by its inputs; the export writes each
    // such decision whole, completed from those inputs as the library
    // does it (the re-run `check` does), and every other record as stored.
    let o = run(&["export", fs, "--format", "jsonl"]);
    assert!(o.status.success());
    let jsonl = stdout(&o);
    let (entries, stop) = read_file(&f).unwrap();
    assert!(stop.is_clean());
    assert_eq!(jsonl.lines().count(), entries.len());
    let replay = ringside_recordings::Replay::open(&f).unwrap();
    let mut completed = 0;
    for (line, e) in jsonl.lines().zip(&entries) {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Item::Engine(r) = &e.item {
            let mut want = (**r).clone();
            if let Event::Decision(d) = &mut want.event
                && d.detail == Detail::Inputs
            {
                replay.complete_at(e.index, d).unwrap();
                assert!(v.get("detail").is_none(), "{v}");
                completed += 1;
            }
            assert_eq!(v, want.to_json());
        }
    }
    assert!(
        completed > 0,
        "the demo recording holds no inputs-only decision"
    );
    let o = run(&["replay", fs, "--headless"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), jsonl);
}

fn tamper(src: &Path, dst: &Path, which: usize) -> (u64, u64) {
    let (entries, stop) = read_file(src).unwrap();
    assert!(stop.is_clean());
    let header = ringside_recordings::Reader::open(src)
        .unwrap()
        .header()
        .clone();
    let mut w = Writer::new(std::fs::File::create(dst).unwrap(), &Header { ..header }).unwrap();
    let mut n = 0;
    let mut hit = None;
    for e in &entries {
        let mut item = e.item.clone();
        if let Item::Engine(r) = &e.item
            && let Event::Decision(d) = &r.event
        {
            if n == which {
                let mut rec: EventRecord = (**r).clone();
                let Event::Decision(d2) = &mut rec.event else {
                    unreachable!()
                };
                d2.ctx.res = d2.ctx.res.wrapping_sub(17);
                hit = Some((e.index, d.seq));
                item = Item::Engine(Arc::new(rec));
            }
            n += 1;
        }
        w.write_item(&item).unwrap();
    }
    w.finish(0).unwrap();
    hit.unwrap()
}

#[test]
fn tampered_and_damaged_recordings_fail_check() {
    let dir = tempfile::tempdir().unwrap();
    let f = record_demo(dir.path());

    // One decision's input changed: exit 1 at exactly that decision.
    let t = dir.path().join("tampered.rsrec");
    let (index, seq) = tamper(&f, &t, 40);
    let o = run(&["check", t.to_str().unwrap()]);
    let text = stdout(&o);
    eprintln!("{text}");
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("divergence at event {index} "))
            && text.contains(&format!("decision {seq},")),
        "{text}"
    );
    assert!(
        text.contains("recorded:") && text.contains("replayed:"),
        "{text}"
    );

    // Cut short: exit 2, says where and why.
    let bytes = std::fs::read(&f).unwrap();
    let cut = dir.path().join("cut.rsrec");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = run(&["check", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("damaged") && stdout(&o).contains("offset"),
        "{}",
        stdout(&o)
    );
    // Still replays every complete record before the cut.
    let o = run(&["replay", cut.to_str().unwrap(), "--headless"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).lines().count() > 100);
    assert!(String::from_utf8_lossy(&o.stderr).contains("offset"));

    // A flipped bit: found by its checksum, with the offset.
    let mut b = bytes.clone();
    let at = bytes.len() / 2;
    b[at] ^= 0x04;
    let bad = dir.path().join("flipped.rsrec");
    std::fs::write(&bad, &b).unwrap();
    let o = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("checksum mismatch"), "{}", stdout(&o));

    // Not a recording at all.
    let junk = dir.path().join("junk.rsrec");
    std::fs::write(&junk, b"hello").unwrap();
    let o = run(&["check", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a ringside recording"));
    let o = run(&["check", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn committed_demo_recording_checks_identical() {
    let f = data("demo.rsrec");
    let o = run(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let (entries, stop) = read_file(&f).unwrap();
    assert!(stop.is_clean());
    assert!(
        entries
            .iter()
            .any(|e| matches!(&e.item, Item::Engine(r) if matches!(r.event, Event::Decision(_))))
    );
    let o = run(&["replay", f.to_str().unwrap(), "--headless"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).lines().count(), entries.len());
}

#[test]
fn record_a_workload_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/workload/src/demo.toml");
    let f = dir.path().join("run.rsrec");
    let o = run(&[
        "record",
        "-o",
        f.to_str().unwrap(),
        "run",
        spec.to_str().unwrap(),
        "--headless",
    ]);
    assert!(o.status.success());
    let o = run(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let header = ringside_recordings::Reader::open(&f)
        .unwrap()
        .header()
        .clone();
    assert!(header.source.starts_with("run "), "{}", header.source);
    assert!(header.command_line.iter().any(|a| a == "record"));
    assert!(!header.kernel.release.is_empty());
}

#[test]
fn record_attach_to_another_process() {
    if !is_root() {
        return skip(
            "record_attach_to_another_process",
            "needs root for kernel probes",
        );
    }
    let Ok(fio) = which("fio") else {
        return skip("record_attach_to_another_process", "fio is not installed");
    };
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fio.dat");
    let mut child = Command::new(fio)
        .args([
            "--name=rec",
            "--ioengine=io_uring",
            "--rw=randread",
            "--bs=4k",
            "--size=4m",
            "--iodepth=4",
            "--time_based",
            "--runtime=4",
            "--thread",
            &format!("--filename={}", target.display()),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until fio (one process: --thread) has a ring.
    let pid = child.id();
    for _ in 0..200 {
        if ringside_probes::discover(pid).is_ok_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let f = dir.path().join("attach.rsrec");
    let o = run(&[
        "record",
        "-o",
        f.to_str().unwrap(),
        "attach",
        "--pid",
        &pid.to_string(),
        "--duration",
        "1",
        "--headless",
    ]);
    let ok = o.status.success();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "record attach never succeeded");
    let (entries, stop) = read_file(&f).unwrap();
    assert!(stop.is_clean());
    let probes = entries
        .iter()
        .filter(|e| matches!(e.item, Item::Probe(_)))
        .count();
    assert!(probes > 10, "{probes} probe events recorded from fio");
    let o = run(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let json = dir.path().join("attach.json");
    let o = run(&[
        "export",
        f.to_str().unwrap(),
        "--format",
        "chrome",
        "-o",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        doc["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ph"] == "X")
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or(())
}

/// A recording of a program that ran as trusted (it does not pass the
/// verifier) is refused by everything that would run it from the file.
#[test]
fn a_trusted_program_in_a_recording_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let obj = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/bpf/unproven.bpf.o");
    let spec = dir.path().join("trusted.toml");
    std::fs::write(
        &spec,
        format!(
            r#"
[[file]]
name = "data"
size = 4096

[[buffer]]
name = "buf"
size = 4096

[[program]]
object = "{}"
trusted = true

[[chain]]
program = "unproven"
step = [{{ op = "read", file = "data", buffer = "buf", len = 16 }}]
"#,
            obj.display()
        ),
    )
    .unwrap();
    let f = dir.path().join("trusted.rsrec");
    let fs = f.to_str().unwrap();
    let o = run(&[
        "record",
        "-o",
        fs,
        "run",
        spec.to_str().unwrap(),
        "--headless",
    ]);
    assert!(o.status.success(), "{}", ringside_tests::stderr(&o));
    // The live run was fine: the trusted program ran under the interpreter.
    assert!(stdout(&o).contains("\"completed\":1"), "{}", stdout(&o));
    let refused = |args: &[&str]| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = ringside_tests::stderr(&o);
        assert!(
            err.contains("was loaded as trusted and does not pass the verifier"),
            "{args:?}: {err}"
        );
    };
    refused(&["export", fs, "--format", "jsonl"]);
    refused(&["export", fs, "--format", "chrome"]);
    refused(&["replay", fs, "--headless"]);
    refused(&["replay", fs]);
    let o = run(&["check", fs]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("was loaded as trusted and does not pass the verifier"),
        "{}",
        stdout(&o)
    );
}

/// Kernel pointers in probe events: small stable ids in recordings and
/// exports unless the user asks to keep them.
#[test]
fn kernel_pointers_are_ids_unless_kept() {
    if !is_root() {
        skip(
            "kernel_pointers_are_ids_unless_kept",
            "needs root for the kernel probes",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pointers = |file: &Path, keep_on_export: bool| -> Vec<u64> {
        let mut args = vec!["export", file.to_str().unwrap(), "--format", "jsonl"];
        if keep_on_export {
            args.push("--keep-kernel-pointers");
        }
        let o = run(&args);
        assert!(o.status.success());
        let mut v = Vec::new();
        for line in stdout(&o).lines() {
            let j: Value = serde_json::from_str(line).unwrap();
            for k in ["ring", "req"] {
                if let Some(s) = j.get(k).and_then(Value::as_str) {
                    v.push(u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap());
                }
            }
        }
        assert!(!v.is_empty(), "no probe events with pointers");
        v
    };
    let ids = dir.path().join("ids.rsrec");
    let o = run(&["record", "-o", ids.to_str().unwrap(), "demo", "--headless"]);
    assert!(o.status.success());
    let p = pointers(&ids, false);
    assert!(
        p.iter().all(|&x| x < 1 << 20),
        "not ids: {:x?}",
        &p[..p.len().min(8)]
    );
    assert_eq!(p, pointers(&ids, true), "a file of ids exports its ids");
    let kept = dir.path().join("kept.rsrec");
    let o = run(&[
        "record",
        "-o",
        kept.to_str().unwrap(),
        "demo",
        "--headless",
        "--keep-kernel-pointers",
    ]);
    assert!(o.status.success());
    let real = pointers(&kept, true);
    assert!(
        real.iter().any(|&x| x >= 0xffff_0000_0000_0000),
        "kernel pointers were not kept: {:x?}",
        &real[..real.len().min(8)]
    );
    let shared = pointers(&kept, false);
    assert!(
        shared.iter().all(|&x| x < 1 << 20),
        "export did not replace them"
    );
}
