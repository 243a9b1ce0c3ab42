//! Inputs-only decisions made whole where they are shown: the engine, when
//! watched, records only what a re-run cannot recompute
//! ([`Detail::Inputs`]); a consumer that shows helper calls, map writes or
//! instruction counts runs each decision again from those inputs, with the
//! program the session loaded (re-loaded here through the same gate as
//! replay and check) and the ring's registrations and budgets.

use super::programs::{LoadRecordedError, Programs};
use ringside_engine::decision::{
    self, Budgets, CompleteError, DecisionRecord, Detail, Registrations,
};
use ringside_engine::event::{ProgramInfo, RingInfo};

/// Why a decision stays inputs-only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompleteFailure {
    /// Its program was never seen loading.
    #[error("decision #{seq}: program {prog} was not seen loading")]
    UnknownProgram {
        /// Decision number.
        seq: u64,
        /// Program id.
        prog: u32,
    },
    /// Its engine's ring setup (registrations, budgets) was not seen.
    #[error("decision #{seq}: the ring setup of its engine was not seen")]
    NoRingSetup {
        /// Decision number.
        seq: u64,
    },
    /// Its program does not load here.
    #[error("decision #{seq}: {error}")]
    NotLoaded {
        /// Decision number.
        seq: u64,
        /// Why.
        error: LoadRecordedError,
    },
    /// Running it again failed, or decided otherwise.
    #[error(transparent)]
    Rerun(#[from] CompleteError),
}

/// The programs that inputs-only decisions ran, loaded here at their
/// first such decision (a session of full records verifies nothing). The
/// caller keeps what the session declared (program infos, ring setups) and
/// passes it in: this holds only the loaded programs.
#[derive(Debug, Default)]
pub struct Completer {
    programs: Programs,
}

/// Programs kept loaded: a live session that runs engine after engine (the
/// demo's rounds) does not grow without bound (a registry does not unload,
/// so past this the cache starts afresh and loads again what is asked for).
const PROGRAMS_KEPT: usize = 64;

impl Completer {
    /// Complete `rec`, a decision of engine instance `epoch` whose program
    /// the session declared as `info` and whose ring as `ring` (a full
    /// record is left alone).
    pub fn complete(
        &mut self,
        epoch: u32,
        info: Option<&ProgramInfo>,
        ring: Option<&RingInfo>,
        rec: &mut DecisionRecord,
    ) -> Result<(), CompleteFailure> {
        if rec.detail == Detail::Full {
            return Ok(());
        }
        let (seq, prog) = (rec.seq, rec.prog);
        let info = info.ok_or(CompleteFailure::UnknownProgram { seq, prog })?;
        let ring = ring.ok_or(CompleteFailure::NoRingSetup { seq })?;
        if self.programs.get(epoch, prog).is_none() {
            if self.programs.len() >= PROGRAMS_KEPT {
                self.programs = Programs::default();
            }
            // A refusal is kept in the slot and said at each decision.
            let _ = self.programs.load(epoch, info);
        }
        complete_with(&self.programs, epoch, rec, &ring.regs, &ring.budgets)
    }
}

/// Complete `rec`, a decision of `epoch`, with its program as loaded in
/// `programs` (the one way both the UI's [`Completer`] and a recording's
/// setup do it).
pub(crate) fn complete_with(
    programs: &Programs,
    epoch: u32,
    rec: &mut DecisionRecord,
    regs: &Registrations,
    budgets: &Budgets,
) -> Result<(), CompleteFailure> {
    let (seq, prog) = (rec.seq, rec.prog);
    let (slot, loaded) = programs
        .get(epoch, prog)
        .ok_or(CompleteFailure::UnknownProgram { seq, prog })?;
    let p = loaded.ok_or_else(|| CompleteFailure::NotLoaded {
        seq,
        error: slot.error.clone().unwrap_or(LoadRecordedError::Missing {
            name: slot.info.name.clone(),
        }),
    })?;
    decision::complete(p, rec, regs, budgets)?;
    Ok(())
}
