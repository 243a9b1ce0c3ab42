//! Export: Chrome trace-event JSON (opens in Perfetto and chrome://tracing)
//! and JSON Lines (the `--headless` event schema).
//!
//! Chrome layout: a process per ring (the engine's ring, and each kernel
//! ring the probes saw); in it, request lanes (threads) holding one slice
//! per request from submission to completion (a lane never holds two
//! overlapping slices), a `decisions` thread with an instant per decision,
//! a `cancellations` thread with an instant per cancellation, flow arrows
//! from each request to the next one of its link chain, and an `inflight`
//! counter.

use crate::check::Setup;
use crate::item::Item;
use crate::reader::{Entry, ReadError, Reader};
use crate::replay::Replay;
use ringside_engine::decision::{DecisionRecord, Detail};
use ringside_engine::event::{Event, EventRecord};
use ringside_probes::ProbeEvent;
use ringside_probes::event::opcode_name;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// One item as a JSON Lines object (the `--headless` schema).
pub fn item_json(item: &Item) -> Value {
    match item {
        Item::Engine(r) => r.to_json(),
        Item::Probe(p) => serde_json::to_value(p).unwrap_or(Value::Null),
        Item::Lost { queue, count } => json!({"kind": "lost", "queue": queue, "events": count}),
    }
}

/// How to export.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions {
    /// Write kernel pointers as the file holds them. By default a file that
    /// kept them (`record --keep-kernel-pointers`, or made before ids
    /// existed) is exported with ids instead, as `record` writes them.
    pub keep_kernel_pointers: bool,
}

impl ExportOptions {
    /// The pointer ids to apply to a file with this header, if any.
    fn ids(&self, header: &crate::Header) -> Option<ringside_probes::event::PtrIds> {
        (!self.keep_kernel_pointers
            && header.kernel_pointers == crate::format::KernelPointers::Kept)
            .then(ringside_probes::event::PtrIds::new)
    }
}

/// Why an export stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file is damaged.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A program in it may not run here (see [`crate::session::load_recorded`]).
    #[error("refused: {0}")]
    Refused(crate::replay::Refusal),
}

/// `rec`, its decision made whole by `complete` when it is inputs-only (an
/// export shows every field, whatever the recording kept); as it is when
/// that fails (the record then says `"detail":"inputs"`).
fn whole(
    rec: &Arc<EventRecord>,
    complete: impl FnOnce(&mut DecisionRecord) -> Result<(), crate::session::CompleteFailure>,
) -> Arc<EventRecord> {
    match &rec.event {
        Event::Decision(d) if d.detail == Detail::Inputs => {
            let mut d = d.clone();
            match complete(&mut d) {
                Ok(()) => Arc::new(EventRecord {
                    seq: rec.seq,
                    t_ns: rec.t_ns,
                    event: Event::Decision(d),
                }),
                Err(_) => rec.clone(),
            }
        }
        _ => rec.clone(),
    }
}

/// Write every item as one JSON object per line; stops at the first read
/// error, or at a program that does not verify (returned after the lines
/// before it were written).
pub fn jsonl<R: Read>(
    reader: &mut Reader<R>,
    out: &mut dyn Write,
    opts: &ExportOptions,
) -> io::Result<Result<u64, ExportError>> {
    let mut n = 0u64;
    let mut ids = opts.ids(reader.header());
    let mut setup = Setup::default();
    for e in reader.by_ref() {
        match e {
            Ok(mut e) => {
                if let Item::Engine(r) = &e.item {
                    match &r.event {
                        Event::RingSetup(info) => setup.rings.push((e.index, (**info).clone())),
                        Event::ProgramLoaded(info) => {
                            if let Err(why) = setup.load(info) {
                                out.flush()?;
                                return Ok(Err(ExportError::Refused(crate::replay::Refusal {
                                    first: why,
                                    more: 0,
                                })));
                            }
                        }
                        _ => {}
                    }
                    e.item = Item::Engine(whole(r, |d| setup.complete(e.index, d)));
                }
                let json = match (&mut ids, &e.item) {
                    (Some(ids), Item::Probe(p)) => {
                        let mut p = p.clone();
                        ids.apply(&mut p);
                        item_json(&Item::Probe(p))
                    }
                    _ => item_json(&e.item),
                };
                serde_json::to_writer(&mut *out, &json)?;
                out.write_all(b"\n")?;
                n += 1;
            }
            Err(err) => {
                out.flush()?;
                return Ok(Err(err.into()));
            }
        }
    }
    out.flush()?;
    Ok(Ok(n))
}

/// Counts of what a Chrome export holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChromeStats {
    /// Ring processes.
    pub rings: u64,
    /// Request slices.
    pub slices: u64,
    /// Flow arrows.
    pub flows: u64,
    /// Decision instants.
    pub decisions: u64,
    /// Cancellation instants.
    pub cancellations: u64,
    /// Counter samples.
    pub counters: u64,
}

struct Open {
    start: f64,
    lane: u32,
    name: String,
    args: Value,
}

#[derive(Default)]
struct Ring {
    pid: u32,
    name: String,
    lanes: Vec<f64>, // busy until (µs); f64::INFINITY while a slice is open
    inflight: i64,
}

impl Ring {
    fn lane(&mut self, ts: f64) -> u32 {
        match self.lanes.iter().position(|&b| b < ts) {
            Some(i) => {
                self.lanes[i] = f64::INFINITY;
                i as u32
            }
            None => {
                self.lanes.push(f64::INFINITY);
                self.lanes.len() as u32 - 1
            }
        }
    }
}

const TID_DECISIONS: u32 = 1;
const TID_CANCELS: u32 = 2;
const TID_LANE0: u32 = 10;

struct Chrome<'a> {
    out: &'a mut dyn Write,
    first: bool,
    stats: ChromeStats,
    rings: Vec<Ring>,
    engine_ring: HashMap<u32, usize>, // epoch -> ring
    probe_ring: HashMap<u64, usize>,  // ring ptr -> ring
    engine_open: HashMap<(usize, u64, u32), Open>,
    probe_open: HashMap<(usize, u64), Open>,
    chain_last: HashMap<(usize, u64), (f64, u32)>,
    probe_flow_wait: HashMap<(usize, u64), (f64, u32)>,
    next_flow: u64,
    last_ts: f64,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl Chrome<'_> {
    fn emit(&mut self, v: Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, &v)?;
        Ok(())
    }

    fn ring_engine(&mut self, epoch: u32) -> usize {
        if let Some(&r) = self.engine_ring.get(&epoch) {
            return r;
        }
        let i = self.rings.len();
        self.rings.push(Ring {
            pid: i as u32 + 1,
            name: format!("engine ring {epoch}"),
            ..Ring::default()
        });
        self.engine_ring.insert(epoch, i);
        i
    }

    fn ring_probe(&mut self, ptr: u64) -> usize {
        if let Some(&r) = self.probe_ring.get(&ptr) {
            return r;
        }
        let i = self.rings.len();
        self.rings.push(Ring {
            pid: i as u32 + 1,
            name: format!("kernel ring {ptr:#x}"),
            ..Ring::default()
        });
        self.probe_ring.insert(ptr, i);
        i
    }

    fn counter(&mut self, r: usize, ts: f64, delta: i64) -> io::Result<()> {
        self.rings[r].inflight = (self.rings[r].inflight + delta).max(0);
        let v = json!({"ph": "C", "name": "inflight", "pid": self.rings[r].pid, "ts": ts,
            "args": {"requests": self.rings[r].inflight}});
        self.stats.counters += 1;
        self.emit(v)
    }

    fn instant(
        &mut self,
        r: usize,
        tid: u32,
        ts: f64,
        name: String,
        args: Value,
    ) -> io::Result<()> {
        let v = json!({"ph": "i", "s": "t", "name": name, "cat": if tid == TID_DECISIONS {"decision"} else {"cancellation"},
            "pid": self.rings[r].pid, "tid": tid, "ts": ts, "args": args});
        if tid == TID_DECISIONS {
            self.stats.decisions += 1;
        } else {
            self.stats.cancellations += 1;
        }
        self.emit(v)
    }

    fn flow(&mut self, r: usize, from: (f64, u32), to: (f64, u32), name: &str) -> io::Result<()> {
        let id = self.next_flow;
        self.next_flow += 1;
        let pid = self.rings[r].pid;
        self.emit(
            json!({"ph": "s", "id": id, "name": name, "cat": "link", "pid": pid,
            "tid": TID_LANE0 + from.1, "ts": from.0}),
        )?;
        self.emit(
            json!({"ph": "f", "bp": "e", "id": id, "name": name, "cat": "link", "pid": pid,
            "tid": TID_LANE0 + to.1, "ts": to.0}),
        )?;
        self.stats.flows += 1;
        Ok(())
    }

    fn close(&mut self, r: usize, o: Open, end: f64, extra: Value) -> io::Result<()> {
        let mut args = o.args;
        if let (Value::Object(a), Value::Object(x)) = (&mut args, extra) {
            a.extend(x);
        }
        let dur = (end - o.start).max(0.0);
        self.rings[r].lanes[o.lane as usize] = o.start + dur;
        let v = json!({"ph": "X", "name": o.name, "cat": "request", "pid": self.rings[r].pid,
            "tid": TID_LANE0 + o.lane, "ts": o.start, "dur": dur, "args": args});
        self.stats.slices += 1;
        self.emit(v)?;
        self.counter(r, end, -1)
    }

    fn engine(
        &mut self,
        epoch: u32,
        ts: f64,
        rec: &ringside_engine::EventRecord,
    ) -> io::Result<()> {
        let r = self.ring_engine(epoch);
        match &rec.event {
            Event::RingSetup(info) => {
                self.rings[r].name = format!("engine ring (fd {}, pid {})", info.fd, info.pid);
            }
            Event::Submitted {
                chain,
                step,
                sqe,
                sqe_flags,
                ring_user_data,
                attempt,
            } => {
                let lane = self.rings[r].lane(ts);
                let name = format!("{} chain {chain} step {step}", opcode_name(sqe.opcode));
                let args = json!({"chain": chain, "step": step, "attempt": attempt,
                    "sqe": sqe, "sqe_flags": sqe_flags, "ring_user_data": ring_user_data});
                if let Some(prev) = self.chain_last.insert((r, *chain), (ts, lane)) {
                    self.flow(r, prev, (ts, lane), &format!("chain {chain}"))?;
                }
                if let Some(old) = self.engine_open.insert(
                    (r, *chain, *step),
                    Open {
                        start: ts,
                        lane,
                        name,
                        args,
                    },
                ) {
                    self.close(r, old, ts, json!({"unfinished": "resubmitted"}))?;
                }
                self.counter(r, ts, 1)?;
            }
            Event::Completed {
                chain,
                step,
                res,
                flags,
                latency_ns,
                short,
            } => {
                if let Some(o) = self.engine_open.remove(&(r, *chain, *step)) {
                    self.close(
                        r,
                        o,
                        ts,
                        json!({"res": res, "cqe_flags": flags, "latency_ns": latency_ns, "short": short}),
                    )?;
                }
            }
            Event::Cancelled {
                chain,
                step,
                cause,
                res,
                issued,
                ..
            } => {
                if *issued && let Some(o) = self.engine_open.remove(&(r, *chain, *step)) {
                    self.close(r, o, ts, json!({"res": res, "cancelled": cause.name()}))?;
                }
                let name = format!("cancelled chain {chain} step {step}: {}", cause.name());
                self.instant(r, TID_CANCELS, ts, name, rec.to_json())?;
            }
            Event::Decision(d) => {
                let verdict = match &d.result {
                    ringside_engine::decision::DecisionResult::Verdict { verdict } => {
                        format!("{verdict:?}").to_lowercase()
                    }
                    other => serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.get("result").and_then(|x| x.as_str()).map(str::to_string))
                        .unwrap_or_else(|| "error".into()),
                };
                let name = format!(
                    "decision {}: {} chain {} step {} -> {verdict}",
                    d.seq, d.prog_name, d.chain, d.step
                );
                self.instant(r, TID_DECISIONS, ts, name, rec.to_json())?;
            }
            Event::ChainFinished { chain, .. } => {
                self.chain_last.remove(&(r, *chain));
            }
            _ => {}
        }
        Ok(())
    }

    fn probe(&mut self, ts: f64, p: &ProbeEvent) -> io::Result<()> {
        match p {
            ProbeEvent::Create {
                ring,
                fd,
                hdr,
                sq_entries,
                ..
            } => {
                let r = self.ring_probe(ring.0);
                self.rings[r].name = format!(
                    "kernel ring {:#x} (pid {}, fd {fd}, {sq_entries} entries)",
                    ring.0, hdr.tgid
                );
            }
            // A ring record that knows its ctx names the track in full; one
            // of a ring created before attach (no ctx) has no track to name.
            ProbeEvent::Ring(s) if !s.ring.is_null() => {
                let r = self.ring_probe(s.ring.0);
                let flags = s
                    .setup_flags
                    .map(ringside_probes::event::setup_flags::names)
                    .filter(|f| !f.is_empty())
                    .map_or(String::new(), |f| format!(", {f}"));
                let fd = s.fd.map_or("?".into(), |f| f.to_string());
                let sq = s.sq_entries.map_or("?".into(), |v| v.to_string());
                self.rings[r].name = format!(
                    "kernel ring {:#x} (pid {}, fd {fd}, {sq} entries{flags})",
                    s.ring.0, s.hdr.tgid
                );
            }
            ProbeEvent::SubmitReq {
                ring,
                req,
                user_data,
                opcode,
                flags,
                hdr,
                ..
            } => {
                let r = self.ring_probe(ring.0);
                let lane = self.rings[r].lane(ts);
                let o = Open {
                    start: ts,
                    lane,
                    name: format!("{} user_data {user_data}", opcode_name(*opcode)),
                    args: json!({"user_data": user_data, "req": format!("{:#x}", req.0),
                        "sqe_flags": ringside_probes::event::sqe_flags::names(*flags as u8),
                        "tid": hdr.tid}),
                };
                if let Some(old) = self.probe_open.insert((r, req.0), o) {
                    self.close(r, old, ts, json!({"unfinished": "request reused"}))?;
                }
                self.counter(r, ts, 1)?;
                if let Some(from) = self.probe_flow_wait.remove(&(r, req.0)) {
                    self.flow(r, from, (ts, lane), "link")?;
                }
            }
            ProbeEvent::Link {
                ring, req, target, ..
            } => {
                let r = self.ring_probe(ring.0);
                if let Some(t) = self.probe_open.get(&(r, target.0)) {
                    let from = (t.start, t.lane);
                    match self.probe_open.get(&(r, req.0)) {
                        Some(o) => {
                            let to = (o.start, o.lane);
                            self.flow(r, from, to, "link")?;
                        }
                        None => {
                            self.probe_flow_wait.insert((r, req.0), from);
                        }
                    }
                }
            }
            ProbeEvent::Complete {
                ring,
                req,
                res,
                cflags,
                user_data,
                ..
            } => {
                let r = self.ring_probe(ring.0);
                if let Some(o) = self.probe_open.remove(&(r, req.0)) {
                    self.close(r, o, ts, json!({"res": res, "cflags": cflags}))?;
                }
                if *res == ringside_probes::event::ECANCELED {
                    self.instant(
                        r,
                        TID_CANCELS,
                        ts,
                        format!("cancelled user_data {user_data}"),
                        serde_json::to_value(p).unwrap_or(Value::Null),
                    )?;
                }
            }
            ProbeEvent::FailLink {
                ring, user_data, ..
            } => {
                let r = self.ring_probe(ring.0);
                self.instant(
                    r,
                    TID_CANCELS,
                    ts,
                    format!("link broken by user_data {user_data}"),
                    serde_json::to_value(p).unwrap_or(Value::Null),
                )?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Write a Chrome trace-event JSON document for the whole recording.
pub fn chrome(
    replay: &Replay,
    out: &mut dyn Write,
    opts: &ExportOptions,
) -> io::Result<Result<ChromeStats, ExportError>> {
    let mut ids = opts.ids(replay.header());
    if let Some(why) = replay.refusal() {
        return Ok(Err(ExportError::Refused(why)));
    }
    out.write_all(b"{\"displayTimeUnit\":\"ns\",\"otherData\":")?;
    let h = replay.header();
    serde_json::to_writer(
        &mut *out,
        &json!({"tool": h.tool, "tool_version": h.tool_version, "source": h.source,
            "kernel": h.kernel.release, "wall_time": h.wall_time, "command_line": h.command_line}),
    )?;
    out.write_all(b",\"traceEvents\":[\n")?;
    let mut c = Chrome {
        out,
        first: true,
        stats: ChromeStats::default(),
        rings: Vec::new(),
        engine_ring: HashMap::new(),
        probe_ring: HashMap::new(),
        engine_open: HashMap::new(),
        probe_open: HashMap::new(),
        chain_last: HashMap::new(),
        probe_flow_wait: HashMap::new(),
        next_flow: 1,
        last_ts: 0.0,
    };
    let mut epoch = 0u32;
    let mut failure = None;
    let items = match replay.iter() {
        Ok(i) => i,
        Err(e) => return Ok(Err(e.into())),
    };
    for e in items {
        let e: Entry = match e {
            Ok(e) => e,
            Err(err) => {
                failure = Some(err);
                break;
            }
        };
        let ts = us(replay.time_of(e.index).unwrap_or(0));
        c.last_ts = c.last_ts.max(ts);
        match &e.item {
            Item::Engine(rec) => {
                if matches!(rec.event, Event::RingSetup(_)) {
                    epoch += 1;
                }
                let rec = whole(rec, |d| replay.complete_at(e.index, d));
                c.engine(epoch.max(1), ts, &rec)?;
            }
            Item::Probe(p) => match &mut ids {
                Some(ids) => {
                    let mut p = p.clone();
                    ids.apply(&mut p);
                    c.probe(ts, &p)?
                }
                None => c.probe(ts, p)?,
            },
            Item::Lost { .. } => {}
        }
    }
    // Requests still open at the end.
    let end = c.last_ts;
    let open: Vec<_> = c.engine_open.drain().map(|((r, _, _), o)| (r, o)).collect();
    for (r, o) in open {
        c.close(r, o, end, json!({"unfinished": "no completion recorded"}))?;
    }
    let open: Vec<_> = c.probe_open.drain().map(|((r, _), o)| (r, o)).collect();
    for (r, o) in open {
        c.close(r, o, end, json!({"unfinished": "no completion recorded"}))?;
    }
    // Names.
    for i in 0..c.rings.len() {
        let (pid, name, lanes) = (
            c.rings[i].pid,
            c.rings[i].name.clone(),
            c.rings[i].lanes.len(),
        );
        c.emit(json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}))?;
        c.emit(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": TID_DECISIONS, "args": {"name": "decisions"}}))?;
        c.emit(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": TID_CANCELS, "args": {"name": "cancellations"}}))?;
        for l in 0..lanes as u32 {
            c.emit(
                json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": TID_LANE0 + l,
                "args": {"name": format!("requests {l}")}}),
            )?;
            c.emit(
                json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": TID_LANE0 + l,
                "args": {"sort_index": TID_LANE0 + l}}),
            )?;
        }
    }
    c.stats.rings = c.rings.len() as u64;
    let stats = c.stats.clone();
    c.out.write_all(b"\n]}\n")?;
    c.out.flush()?;
    Ok(match failure {
        Some(e) => Err(e.into()),
        None => Ok(stats),
    })
}
