//! Running a recorded decision again from its record alone: its inputs
//! (context, ktime values, rs_read_buf bytes, the map entries it touched)
//! under the interpreter, with the same helpers. What the step debugger
//! traces and `ringside check` compares.

use super::budget::{insn_limit, insn_violation};
use super::helpers::Env;
use super::helpers::InputSource;
use crate::program::LoadedProgram;
use crate::program::interp::{self, InterpError, TraceStep};
use crate::program::maps::{Map, MapDef, MapKind};
use crate::program::mem::{Region, RegionKind};
use ringside_schema::decision::*;

/// Inputs replayed from a recorded decision: ktime values and buffer bytes, in call order.
struct Recorded<'a> {
    calls: &'a [HelperCall],
    ktime_at: usize,
    read_at: usize,
    mismatch: Option<InputMismatch>,
}

impl InputSource for Recorded<'_> {
    fn ktime_ns(&mut self) -> u64 {
        let found = self.calls[self.ktime_at.min(self.calls.len())..]
            .iter()
            .position(|c| matches!(c.detail, CallDetail::Ktime { .. }));
        match found {
            Some(p) => {
                let i = self.ktime_at + p;
                self.ktime_at = i + 1;
                match self.calls[i].detail {
                    CallDetail::Ktime { ns } => ns,
                    _ => unreachable!(),
                }
            }
            None => {
                self.mismatch.get_or_insert(InputMismatch::MoreKtime);
                0
            }
        }
    }

    fn read_buf(&mut self, buf: u16, off: u64, dst: &mut [u8]) {
        let found = self.calls[self.read_at.min(self.calls.len())..]
            .iter()
            .position(|c| matches!(c.detail, CallDetail::ReadBuf { .. }) && c.ret >= 0);
        match found {
            Some(p) => {
                let i = self.read_at + p;
                self.read_at = i + 1;
                if let CallDetail::ReadBuf {
                    buf_index,
                    off: o,
                    data,
                } = &self.calls[i].detail
                {
                    if *buf_index != buf || *o != off || data.len() != dst.len() {
                        self.mismatch.get_or_insert(InputMismatch::ReadBuf {
                            buf,
                            off,
                            len: dst.len(),
                            recorded_buf: *buf_index,
                            recorded_off: *o,
                            recorded_len: data.len(),
                        });
                    }
                    let n = data.len().min(dst.len());
                    dst[..n].copy_from_slice(&data[..n]);
                }
            }
            None => {
                self.mismatch.get_or_insert(InputMismatch::MoreReadBytes);
            }
        }
    }
}

/// Result of re-executing a recorded decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reexecution {
    /// r0.
    pub ret: u64,
    /// Instructions executed.
    pub insns: u64,
    /// Helper calls made.
    pub calls: Vec<HelperCall>,
    /// Map writes.
    pub map_writes: Vec<MapWrite>,
    /// Actions.
    pub actions: Vec<Action>,
    /// Budget broken, if any.
    pub violation: Option<BudgetViolation>,
    /// An input the recording did not have.
    pub input_mismatch: Option<InputMismatch>,
}

/// An input the re-run asked for that the recording does not have (the
/// first one; the re-run goes on with zeroes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputMismatch {
    /// More `rs_ktime` calls than recorded values.
    #[error("the program asked for more ktime values than were recorded")]
    MoreKtime,
    /// An `rs_read_buf` call other than the recorded one.
    #[error(
        "rs_read_buf({buf}, {off}, {len}) where the recording has ({recorded_buf}, {recorded_off}, {recorded_len})"
    )]
    ReadBuf {
        /// Buffer asked for.
        buf: u16,
        /// Offset asked for.
        off: u64,
        /// Bytes asked for.
        len: usize,
        /// The recorded call's buffer.
        recorded_buf: u16,
        /// Its offset.
        recorded_off: u64,
        /// Its bytes.
        recorded_len: usize,
    },
    /// More successful `rs_read_buf` calls than recorded.
    #[error("the program read more buffer bytes than were recorded")]
    MoreReadBytes,
}

/// Why a recorded decision could not be re-executed to its end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReexecError {
    /// The interpreter stopped the program (out of bounds, an instruction
    /// it does not run, past the end; the instruction limit when the
    /// decision had no budget).
    #[error("{0}")]
    Interp(InterpError),
}

impl ReexecError {
    /// The instruction the program stopped at, when there is one.
    pub fn pc(&self) -> Option<usize> {
        match self {
            ReexecError::Interp(e) => e.pc(),
        }
    }
}

/// Build the maps a recorded decision saw: its touched entries (and, for hash
/// maps, filler entries so the entry count matches).
pub fn maps_for_replay(defs: &[MapDef], touched: &[MapTouch]) -> Vec<Map> {
    let mut maps: Vec<Map> = defs.iter().cloned().map(Map::new).collect();
    for t in touched {
        let Some(m) = maps.get_mut(t.map as usize) else {
            continue;
        };
        if let Some(v) = &t.before {
            let _ = m.update(&t.key, v, crate::program::maps::BPF_ANY);
        }
    }
    for (i, m) in maps.iter_mut().enumerate() {
        if m.def().kind != MapKind::Hash {
            continue;
        }
        let want = touched
            .iter()
            .filter(|t| t.map as usize == i)
            .map(|t| t.len_before)
            .max()
            .unwrap_or(0) as usize;
        let ks = m.def().key_size as usize;
        let vs = m.def().value_size as usize;
        let mut n: u64 = 0;
        while m.len() < want {
            // Filler keys that no touched key equals.
            let mut key = vec![0xa5u8; ks];
            for (j, b) in n.to_le_bytes().iter().enumerate().take(ks) {
                key[j] = *b ^ 0x5a;
            }
            n += 1;
            if touched.iter().any(|t| t.map as usize == i && t.key == key) {
                continue;
            }
            if m.update(&key, &vec![0u8; vs], crate::program::maps::BPF_NOEXIST)
                .is_err()
                && n > want as u64 * 4 + 16
            {
                break;
            }
        }
    }
    maps
}

/// Re-execute a recorded decision from its record alone, under the tracing
/// interpreter, with the same helper semantics. `trace` sees every step.
pub fn reexecute(
    prog: &LoadedProgram,
    rec: &DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
    trace: Option<&mut dyn FnMut(&TraceStep)>,
) -> Result<Reexecution, ReexecError> {
    rerun(prog, rec, regs, budgets, trace, true)
}

/// [`reexecute`]; without `record`, the helper calls, map writes and
/// touches of the re-run are not collected (counting needs none of them).
pub(crate) fn rerun(
    prog: &LoadedProgram,
    rec: &DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
    trace: Option<&mut dyn FnMut(&TraceStep)>,
    record: bool,
) -> Result<Reexecution, ReexecError> {
    let defs = &prog.map_defs;
    let mut maps = maps_for_replay(defs, &rec.touched);
    // The program's address space over the rebuilt maps: their arenas in
    // object order, then its rodata (the order of their virtual ids).
    let mut regions: Vec<Region> = maps
        .iter()
        .enumerate()
        .map(|(i, m)| Region::map(i as u32, m))
        .collect();
    regions.extend(
        prog.regions()
            .iter()
            .filter(|r| matches!(r.kind, RegionKind::Rodata(_)))
            .copied(),
    );
    let mut source = Recorded {
        calls: &rec.calls,
        ktime_at: 0,
        read_at: 0,
        mismatch: None,
    };
    let view = rec.view.clone();
    let mut env = Env::new(
        prog,
        &mut maps,
        None,
        regs,
        budgets,
        view,
        &mut source,
        record.then_some(Detail::Full),
    );
    let mut ctx = rec.ctx.to_bytes();
    // The budget's limit, as the live run had it; without one the
    // interpreter must still stop even if the recording lies about the program.
    let budget = insn_limit(prog, budgets);
    let limit = budget.unwrap_or(prog.report.max_path as u64 + 1);
    let run = interp::run(
        prog.code(),
        &mut ctx,
        &regions,
        &mut env,
        Some(limit),
        trace,
    );
    let (r, stopped) = match run {
        Ok(r) => (r, None),
        Err(InterpError::InsnLimit { limit }) if budget.is_some() => (
            interp::RunResult {
                ret: 0,
                insns: limit + 1,
            },
            Some(insn_violation(limit)),
        ),
        Err(e) => return Err(ReexecError::Interp(e)),
    };
    env.collect_direct_writes();
    let Env {
        calls,
        actions,
        writes,
        violation,
        ..
    } = env;
    let violation = stopped.or(violation);
    Ok(Reexecution {
        ret: r.ret,
        insns: r.insns,
        calls,
        map_writes: writes,
        actions,
        violation,
        input_mismatch: source.mismatch,
    })
}
