//! Deterministic replay check: re-execute every recorded decision with the
//! engine's own decision code ([`ringside_engine::decision::reexecute`]) and
//! compare every helper call, argument, result, map write, action and
//! return value; cross-check each decision's map inputs against the map
//! state the recording's earlier events imply, and its CQE against the
//! recorded completion. Stops at the first divergence.

use crate::item::Item;
use crate::reader::{Entry, ReadError, ReadOptions, Reader, Stop};
use crate::session::CompleteFailure;
pub use crate::session::{LoadRecordedError, ProgSlot, Programs, load_recorded};
use ringside_engine::abi::{Verdict, helper_id};
use ringside_engine::decision::{
    Action, BudgetKind, BudgetViolation, Budgets, CallDetail, DecisionRecord, DecisionResult,
    Detail, HelperCall, Reexecution, Registrations, reexecute,
};
use ringside_engine::event::{Event, ProgramInfo, RingInfo};
use ringside_engine::program::LoadedProgram;
use ringside_engine::program::interp::TraceStep;
use ringside_engine::program::maps::{BPF_ANY, Map};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The first difference between a recording and its replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// Item index of the event.
    pub index: u64,
    /// Byte offset of its record.
    pub offset: u64,
    /// Decision number, for decisions.
    pub decision: Option<u64>,
    /// Program (name and recorded id).
    pub program: Option<String>,
    /// Instruction (index into the program as run), where known.
    pub pc: Option<usize>,
    /// That instruction, disassembled.
    pub insn: Option<String>,
    /// What differs.
    pub what: String,
    /// The recorded value.
    pub recorded: String,
    /// The replayed value.
    pub replayed: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "divergence at event {} (offset {})",
            self.index, self.offset
        )?;
        if let Some(d) = self.decision {
            write!(f, ", decision {d}")?;
        }
        if let Some(p) = &self.program {
            write!(f, ", program {p}")?;
        }
        if let Some(pc) = self.pc {
            write!(f, ", instruction {pc}")?;
            if let Some(i) = &self.insn {
                write!(f, " ({i})")?;
            }
        }
        write!(
            f,
            "\n  {}\n  recorded: {}\n  replayed: {}",
            self.what, self.recorded, self.replayed
        )
    }
}

/// Engine setup seen so far: rings (epochs) and programs, re-loaded.
#[derive(Debug, Default)]
pub struct Setup {
    /// (item index, ring) of each ring setup; epoch n is `rings[n-1]`.
    pub rings: Vec<(u64, RingInfo)>,
    /// Programs by (epoch, recorded id), re-loaded.
    pub programs: Programs,
}

impl Setup {
    /// The epoch of events after the last ring setup seen.
    pub fn epoch(&self) -> u32 {
        self.rings.len() as u32
    }

    /// The epoch of item `index`.
    pub fn epoch_at(&self, index: u64) -> u32 {
        self.rings.partition_point(|(i, _)| *i < index) as u32
    }

    /// Registrations and budgets of an epoch.
    pub fn config(&self, epoch: u32) -> (Registrations, Budgets) {
        match epoch
            .checked_sub(1)
            .and_then(|e| self.rings.get(e as usize))
        {
            Some((_, r)) => (r.regs.clone(), r.budgets),
            None => (Registrations::default(), Budgets::default()),
        }
    }

    /// A loaded program of an epoch.
    pub fn program(&self, epoch: u32, prog: u32) -> Option<(&ProgSlot, Option<&LoadedProgram>)> {
        self.programs.get(epoch, prog)
    }

    /// Re-load a recorded program (of the epoch of the last ring setup);
    /// the error says why it cannot be replayed.
    pub fn load(&mut self, info: &ProgramInfo) -> Result<(), LoadRecordedError> {
        self.programs
            .load(self.rings.len() as u32, info)
            .map(|_| ())
    }

    /// `rec`, a decision at item `index`, made whole when it is
    /// inputs-only: run again from its inputs with its re-loaded program
    /// and its ring's registrations and budgets (a full record is left
    /// alone). What an export writes, so a script reads the same fields
    /// from any recording.
    pub fn complete(&self, index: u64, rec: &mut DecisionRecord) -> Result<(), CompleteFailure> {
        if rec.detail == Detail::Full {
            return Ok(());
        }
        let epoch = self.epoch_at(index);
        let (regs, budgets) = self.config(epoch);
        crate::session::complete_with(&self.programs, epoch, rec, &regs, &budgets)
    }
}

/// Disassembly of the instruction at `pc`.
pub fn disasm(code: &[u8], pc: usize) -> Option<String> {
    ringside_engine::program::disasm::insn_text(code, pc)
}

fn js<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<{e}>"))
}

fn helper_name(id: u32) -> String {
    helper_id::name(id)
        .map(str::to_string)
        .unwrap_or_else(|| format!("helper {id:#x}"))
}

/// What a replay's outcome would be recorded as (mirrors the engine).
fn replayed_result(rec: &DecisionRecord, r: &Reexecution, budgets: &Budgets) -> DecisionResult {
    if let Some(violation) = r.violation {
        return DecisionResult::Budget { violation };
    }
    if rec.insns.is_some() && r.insns > budgets.insns_per_decision {
        return DecisionResult::Budget {
            violation: BudgetViolation {
                kind: BudgetKind::Instructions,
                limit: budgets.insns_per_decision,
                value: r.insns,
            },
        };
    }
    match Verdict::from_ret(r.ret) {
        Some(verdict) => DecisionResult::Verdict { verdict },
        None => DecisionResult::BadReturn { ret: r.ret },
    }
}

/// Where in the program a difference shows.
enum At {
    Call(usize),
    Action(usize),
    MapWrite(usize),
    Exit,
    Unknown,
}

fn locate(
    prog: &LoadedProgram,
    rec: &DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
    at: At,
    r: &Reexecution,
) -> Option<usize> {
    let mut steps: Vec<(usize, Option<u32>, bool)> = Vec::new();
    {
        let mut f = |s: &TraceStep| {
            let map_store = s.mem.as_ref().is_some_and(|m| m.write && m.region == "map");
            steps.push((s.pc, s.helper, map_store));
        };
        let _ = reexecute(prog, rec, regs, budgets, Some(&mut f));
    }
    let call_pc = |k: usize| steps.iter().filter(|s| s.1.is_some()).nth(k).map(|s| s.0);
    match at {
        At::Call(k) => call_pc(k),
        At::Exit => steps.last().map(|s| s.0),
        At::Action(k) => {
            // The k-th call that produced an action.
            let produced: Vec<usize> = r
                .calls
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.ret >= 0
                        && matches!(
                            c.detail,
                            CallDetail::Submit { .. }
                                | CallDetail::Drop { .. }
                                | CallDetail::Unlink { .. }
                                | CallDetail::Emit { .. }
                                | CallDetail::SetRes { .. }
                        )
                })
                .map(|(i, _)| i)
                .collect();
            produced.get(k).and_then(|&i| call_pc(i))
        }
        At::MapWrite(k) => {
            let w = r.map_writes.get(k).or_else(|| rec.map_writes.get(k));
            let by_call = w.and_then(|w| {
                r.calls.iter().position(|c| match &c.detail {
                    CallDetail::MapUpdate { map, key, .. } | CallDetail::MapDelete { map, key } => {
                        *map == w.map && *key == w.key
                    }
                    _ => false,
                })
            });
            match by_call {
                Some(i) => call_pc(i),
                None => steps.iter().rev().find(|s| s.2).map(|s| s.0),
            }
        }
        At::Unknown => None,
    }
}

/// Why a decision's recorded map inputs do not fit its program's maps
/// ([`validate_inputs`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputsError {
    /// A map the program does not have.
    #[error("touched map {map} but the program has {maps} maps")]
    NoSuchMap {
        /// The recorded map number.
        map: u32,
        /// Maps the program has.
        maps: usize,
    },
    /// A key of the wrong size.
    #[error("map `{map}`: recorded key of {len} bytes, its keys have {key_size}")]
    KeySize {
        /// The map.
        map: String,
        /// Recorded bytes.
        len: usize,
        /// The map's key size.
        key_size: u32,
    },
    /// A value of the wrong size.
    #[error("map `{map}`: recorded value of {len} bytes, its values have {value_size}")]
    ValueSize {
        /// The map.
        map: String,
        /// Recorded bytes.
        len: usize,
        /// The map's value size.
        value_size: u32,
    },
    /// More entries than the map holds.
    #[error("map `{map}`: {entries} entries recorded, it holds at most {max_entries}")]
    Entries {
        /// The map.
        map: String,
        /// Recorded entries.
        entries: u32,
        /// The map's capacity.
        max_entries: u32,
    },
}

/// Check that a decision's recorded map inputs fit the program's maps
/// (re-execution rebuilds the maps from them).
pub fn validate_inputs(prog: &LoadedProgram, rec: &DecisionRecord) -> Result<(), InputsError> {
    for t in &rec.touched {
        let Some(def) = prog.map_defs.get(t.map as usize) else {
            return Err(InputsError::NoSuchMap {
                map: t.map,
                maps: prog.map_defs.len(),
            });
        };
        if t.key.len() != def.key_size as usize {
            return Err(InputsError::KeySize {
                map: def.name.clone(),
                len: t.key.len(),
                key_size: def.key_size,
            });
        }
        if let Some(v) = t
            .before
            .as_ref()
            .filter(|v| v.len() != def.value_size as usize)
        {
            return Err(InputsError::ValueSize {
                map: def.name.clone(),
                len: v.len(),
                value_size: def.value_size,
            });
        }
        if t.len_before > def.max_entries {
            return Err(InputsError::Entries {
                map: def.name.clone(),
                entries: t.len_before,
                max_entries: def.max_entries,
            });
        }
    }
    Ok(())
}

/// How a decision's re-execution differs from its record ([`compare_decision`]);
/// the checker places it in the recording as a [`Divergence`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: recorded {recorded}, replayed {replayed}")]
pub struct Mismatch {
    /// What differs.
    pub what: String,
    /// The recorded value.
    pub recorded: String,
    /// The replayed value.
    pub replayed: String,
    /// The instruction where it shows, when known.
    pub pc: Option<usize>,
}

/// Compare one recorded decision with its re-execution.
pub fn compare_decision(
    prog: &LoadedProgram,
    rec: &DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
) -> Result<Reexecution, Mismatch> {
    if let Err(e) = validate_inputs(prog, rec) {
        return Err(Mismatch {
            what: "malformed decision inputs".into(),
            recorded: "(the recorded map entries)".into(),
            replayed: e.to_string(),
            pc: None,
        });
    }
    let r = match reexecute(prog, rec, regs, budgets, None) {
        Ok(r) => r,
        Err(e) => {
            if matches!(rec.result, DecisionResult::VmError { .. }) {
                // Both stopped the program (messages differ between rbpf and
                // the tracing interpreter).
                return Ok(Reexecution {
                    ret: rec.ret,
                    insns: 0,
                    calls: rec.calls.clone(),
                    map_writes: rec.map_writes.clone(),
                    actions: rec.actions.clone(),
                    violation: None,
                    input_mismatch: None,
                });
            }
            return Err(Mismatch {
                what: "re-execution stopped the program".into(),
                recorded: js(&rec.result),
                replayed: e.to_string(),
                pc: e.pc(),
            });
        }
    };
    let diff = |what: String, recorded: String, replayed: String, at: At| {
        let pc = locate(prog, rec, regs, budgets, at, &r);
        Err(Mismatch {
            what,
            recorded,
            replayed,
            pc,
        })
    };
    if let Some(m) = &r.input_mismatch {
        return diff(
            "the recorded inputs do not match what the program asks for".into(),
            "(the recorded ktime values and buffer bytes)".into(),
            m.to_string(),
            At::Unknown,
        );
    }
    // An inputs-only record holds only the calls whose results are inputs:
    // compare those with the re-run's calls of the same helpers.
    let inputs_only = rec.detail == Detail::Inputs;
    let replayed: Vec<(usize, &HelperCall)> = r
        .calls
        .iter()
        .enumerate()
        .filter(|(_, c)| rec.detail.keeps_call(c.helper))
        .collect();
    for i in 0..rec.calls.len().max(replayed.len()) {
        // The re-run's own numbering, where the program's calls are counted.
        let at = replayed.get(i).map_or(r.calls.len(), |c| c.0);
        match (rec.calls.get(i), replayed.get(i).map(|c| c.1)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                let name = helper_name(a.helper);
                let (field, x, y) = if a.helper != b.helper {
                    ("helper", helper_name(a.helper), helper_name(b.helper))
                } else if a.args != b.args {
                    ("arguments", js(&a.args), js(&b.args))
                } else if a.ret != b.ret {
                    ("return value", a.ret.to_string(), b.ret.to_string())
                } else if a.detail != b.detail {
                    ("detail", js(&a.detail), js(&b.detail))
                } else {
                    ("error", js(&a.error), js(&b.error))
                };
                return diff(
                    format!("helper call #{at} ({name}): {field}"),
                    x,
                    y,
                    At::Call(at),
                );
            }
            (Some(a), None) => {
                return diff(
                    format!("helper call #{at}: recorded, not made in the replay"),
                    js(a),
                    "(no call)".into(),
                    At::Exit,
                );
            }
            (None, Some(b)) => {
                return diff(
                    format!("helper call #{at}: made in the replay, not recorded"),
                    "(no call)".into(),
                    js(b),
                    At::Call(at),
                );
            }
            (None, None) => {}
        }
    }
    // An inputs-only record has no map writes: the re-run's are the writes.
    let writes = if inputs_only {
        0
    } else {
        rec.map_writes.len().max(r.map_writes.len())
    };
    for i in 0..writes {
        let (a, b) = (rec.map_writes.get(i), r.map_writes.get(i));
        if a != b {
            return diff(
                format!("map write #{i}"),
                a.map(js).unwrap_or_else(|| "(none)".into()),
                b.map(js).unwrap_or_else(|| "(none)".into()),
                At::MapWrite(i),
            );
        }
    }
    for i in 0..rec.actions.len().max(r.actions.len()) {
        let (a, b): (Option<&Action>, Option<&Action>) = (rec.actions.get(i), r.actions.get(i));
        if a != b {
            return diff(
                format!("action #{i}"),
                a.map(js).unwrap_or_else(|| "(none)".into()),
                b.map(js).unwrap_or_else(|| "(none)".into()),
                At::Action(i),
            );
        }
    }
    if !matches!(rec.result, DecisionResult::VmError { .. }) {
        if rec.ret != r.ret {
            return diff(
                "return value (r0)".into(),
                rec.ret.to_string(),
                r.ret.to_string(),
                At::Exit,
            );
        }
        let result = replayed_result(rec, &r, budgets);
        if result != rec.result {
            return diff("result".into(), js(&rec.result), js(&result), At::Exit);
        }
        if let Some(n) = rec.insns
            && n != r.insns
        {
            return diff(
                "instructions executed".into(),
                n.to_string(),
                r.insns.to_string(),
                At::Exit,
            );
        }
    }
    Ok(r)
}

/// Map state implied by the recording (application updates and decision
/// writes), to cross-check each decision's map inputs.
#[derive(Default)]
struct Shadow {
    maps: HashMap<u32, Map>,
    /// Why the shadow state cannot be trusted any more (events were lost).
    off: Option<String>,
}

/// Streaming checker: feed it every entry in order.
#[derive(Default)]
pub struct Checker {
    /// Programs and configuration.
    pub setup: Setup,
    shadow: Shadow,
    completions: HashMap<(u64, u32), (i32, u32)>,
    next_seq: Option<u64>,
    /// Decisions re-executed and identical.
    pub decisions: u64,
    /// Events reported lost.
    pub lost: u64,
    /// Things the report should mention.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("decisions", &self.decisions)
            .field("lost", &self.lost)
            .finish()
    }
}

impl Checker {
    /// A fresh checker.
    pub fn new() -> Checker {
        Checker::default()
    }

    fn shadow_off(&mut self, index: u64, why: String) {
        if self.shadow.off.is_none() {
            self.notes.push(format!(
                "map inputs are not cross-checked after event {index}: {why}"
            ));
            self.shadow.off = Some(why);
        }
    }

    /// Check one entry.
    pub fn feed(&mut self, e: &Entry) -> Result<(), Box<Divergence>> {
        let rec = match &e.item {
            Item::Engine(r) => r,
            Item::Probe(_) => return Ok(()),
            Item::Lost { queue, count } => {
                self.lost += count;
                self.shadow_off(e.index, format!("{count} events were lost ({queue} queue)"));
                return Ok(());
            }
        };
        let div =
            |decision: Option<u64>, program: Option<String>, what: String, a: String, b: String| {
                Box::new(Divergence {
                    index: e.index,
                    offset: e.offset,
                    decision,
                    program,
                    pc: None,
                    insn: None,
                    what,
                    recorded: a,
                    replayed: b,
                })
            };
        if let Some(n) = self.next_seq
            && rec.seq != n
            && !matches!(rec.event, Event::RingSetup(_))
        {
            if rec.seq > n {
                self.lost += rec.seq - n;
            }
            self.shadow_off(
                e.index,
                format!("engine events {n}..{} are missing", rec.seq),
            );
        }
        self.next_seq = Some(rec.seq + 1);
        match &rec.event {
            Event::RingSetup(info) => {
                self.setup.rings.push((e.index, (**info).clone()));
                self.shadow = Shadow::default();
                self.completions.clear();
            }
            Event::ProgramLoaded(info) => {
                if let Err(m) = self.setup.load(info) {
                    return Err(div(
                        None,
                        Some(format!("{} (id {})", info.name, info.prog)),
                        "program load".into(),
                        "loaded".into(),
                        m.to_string(),
                    ));
                }
                // Shapes from the object itself (validated by the loader),
                // ids from the recording.
                let defs = self
                    .setup
                    .program(self.setup.epoch(), info.prog)
                    .and_then(|(_, p)| p)
                    .map(|p| p.map_defs.clone())
                    .unwrap_or_default();
                for m in &info.maps {
                    let Some(def) = defs.get(m.local as usize) else {
                        return Err(div(
                            None,
                            Some(format!("{} (id {})", info.name, info.prog)),
                            format!("map {} (`{}`)", m.local, m.name),
                            "declared".into(),
                            "the program's object has no such map".into(),
                        ));
                    };
                    if def.key_size != m.key_size
                        || def.value_size != m.value_size
                        || def.max_entries != m.max_entries
                        || def.kind != m.kind
                    {
                        return Err(div(
                            None,
                            Some(format!("{} (id {})", info.name, info.prog)),
                            format!("shape of map `{}`", m.name),
                            js(m),
                            js(def),
                        ));
                    }
                    self.shadow
                        .maps
                        .entry(m.id)
                        .or_insert_with(|| Map::new(def.clone()));
                }
            }
            Event::MapUpdate {
                map,
                key,
                before,
                after,
                ..
            } => {
                if self.shadow.off.is_none()
                    && let Some(m) = self.shadow.maps.get_mut(map)
                {
                    let now = m.get(key).ok().flatten();
                    if now != *before {
                        return Err(div(
                            None,
                            None,
                            format!("application map update of map {map}: value before"),
                            js(before),
                            js(&now),
                        ));
                    }
                    let _ = match after {
                        Some(v) => m.update(key, v, BPF_ANY),
                        None => m.delete(key),
                    };
                }
            }
            Event::Completed {
                chain,
                step,
                res,
                flags,
                ..
            } => {
                self.completions.insert((*chain, *step), (*res, *flags));
            }
            Event::StepAdded { chain, .. } | Event::ChainFinished { chain, .. } => {
                self.completions.retain(|k, _| k.0 != *chain);
            }
            Event::Decision(d) => return self.decision(e, d),
            _ => {}
        }
        Ok(())
    }

    fn decision(&mut self, e: &Entry, d: &DecisionRecord) -> Result<(), Box<Divergence>> {
        let epoch = self.setup.epoch();
        // An inputs-only record leaves the name to the program's load.
        let name = match self.setup.program(epoch, d.prog) {
            Some((slot, _)) if d.prog_name.is_empty() => slot.info.name.as_str(),
            _ => d.prog_name.as_str(),
        };
        let pname = format!("{name} (id {})", d.prog);
        let mk = |what: String, a: String, b: String, pc: Option<usize>, code: Option<&[u8]>| {
            Box::new(Divergence {
                index: e.index,
                offset: e.offset,
                decision: Some(d.seq),
                program: Some(pname.clone()),
                pc,
                insn: pc.and_then(|pc| code.and_then(|c| disasm(c, pc))),
                what,
                recorded: a,
                replayed: b,
            })
        };
        let Some((slot, prog)) = self.setup.program(epoch, d.prog) else {
            return Err(mk(
                "program".into(),
                format!("program id {}", d.prog),
                "the recording never loaded it".into(),
                None,
                None,
            ));
        };
        let Some(prog) = prog else {
            return Err(mk(
                "program".into(),
                "loaded".into(),
                slot.error
                    .as_ref()
                    .map_or_else(|| "not loaded".into(), ToString::to_string),
                None,
                None,
            ));
        };
        if d.detail == Detail::Full && slot.info.name != d.prog_name {
            return Err(mk(
                "program name".into(),
                d.prog_name.clone(),
                slot.info.name.clone(),
                None,
                None,
            ));
        }
        // The CQE the decision saw is the one recorded for its step.
        if let Some(&(res, flags)) = self.completions.get(&(d.ctx.chain_id, d.ctx.step))
            && (res != d.ctx.res || flags != d.ctx.cqe_flags)
        {
            let (what, a, b) = if res != d.ctx.res {
                ("input ctx.res (the CQE result)", d.ctx.res, res as i64)
            } else {
                ("input ctx.cqe_flags", d.ctx.cqe_flags as i32, flags as i64)
            };
            return Err(mk(
                format!(
                    "{what}: the decision saw a value the recorded completion of chain {} step {} does not have",
                    d.ctx.chain_id, d.ctx.step
                ),
                a.to_string(),
                format!("{b} (the completion event)"),
                None,
                None,
            ));
        }
        // Map inputs against the state earlier events imply.
        if self.shadow.off.is_none() {
            for t in &d.touched {
                let Some(mi) = slot.info.maps.iter().find(|m| m.local == t.map) else {
                    continue;
                };
                let Some(m) = self.shadow.maps.get(&mi.id) else {
                    continue;
                };
                let now = m.get(&t.key).ok().flatten();
                if now != t.before {
                    return Err(mk(
                        format!(
                            "input: map `{}` key {} before the decision (from earlier events)",
                            mi.name,
                            js(&t.key)
                        ),
                        js(&t.before),
                        js(&now),
                        None,
                        None,
                    ));
                }
                if m.len() as u32 != t.len_before {
                    return Err(mk(
                        format!("input: entries in map `{}` before the decision", mi.name),
                        t.len_before.to_string(),
                        m.len().to_string(),
                        None,
                        None,
                    ));
                }
            }
        }
        let (regs, budgets) = self.setup.config(epoch);
        let r = match compare_decision(prog, d, &regs, &budgets) {
            Ok(r) => r,
            Err(m) => return Err(mk(m.what, m.recorded, m.replayed, m.pc, Some(prog.code()))),
        };
        // Apply the writes (verified against the record's when it has them).
        if self.shadow.off.is_none() {
            for w in &r.map_writes {
                let Some(mi) = slot.info.maps.iter().find(|m| m.local == w.map) else {
                    continue;
                };
                if let Some(m) = self.shadow.maps.get_mut(&mi.id) {
                    let _ = match &w.after {
                        Some(v) => m.update(&w.key, v, BPF_ANY),
                        None => m.delete(&w.key),
                    };
                }
            }
        }
        self.decisions += 1;
        Ok(())
    }
}

/// What `check` found.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// File.
    pub file: String,
    /// Items read.
    pub items: u64,
    /// Decisions re-executed and identical.
    pub decisions: u64,
    /// Programs re-loaded.
    pub programs: u64,
    /// Events the recording says were lost.
    pub lost: u64,
    /// The first divergence.
    pub divergence: Option<Divergence>,
    /// Why reading stopped, when not at a clean end.
    pub damage: Option<String>,
    /// Notes.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// 0 identical, 1 divergence, 2 damaged or unreadable.
    pub fn exit_code(&self) -> u8 {
        if self.divergence.is_some() {
            1
        } else if self.damage.is_some() {
            2
        } else {
            0
        }
    }
}

/// Check a recording: re-execute every decision, stop at the first divergence.
pub fn check_file(path: impl AsRef<Path>) -> Result<CheckReport, ReadError> {
    let reader = Reader::open_with(path.as_ref(), ReadOptions::default())?;
    Ok(check_reader(reader))
}

/// [`check_file`] over any reader.
pub fn check_reader<R: std::io::Read>(mut reader: Reader<R>) -> CheckReport {
    let mut c = Checker::new();
    let mut items = 0u64;
    let mut divergence = None;
    for e in reader.by_ref() {
        let Ok(e) = e else { break };
        items += 1;
        if let Err(d) = c.feed(&e) {
            divergence = Some(*d);
            break;
        }
    }
    let damage = if divergence.is_some() {
        None
    } else {
        match reader.stop() {
            Some(Stop::End { .. }) => None,
            Some(Stop::Error(e)) => Some(e.to_string()),
            None => None,
        }
    };
    if let Some(Stop::End { dropped, .. }) = reader.stop()
        && *dropped > 0
    {
        c.notes.push(format!(
            "the recorder dropped {dropped} items (its queue was full)"
        ));
    }
    CheckReport {
        file: reader.file().to_string(),
        items,
        decisions: c.decisions,
        programs: c.setup.programs.len() as u64,
        lost: c.lost,
        divergence,
        damage,
        notes: c.notes,
    }
}
