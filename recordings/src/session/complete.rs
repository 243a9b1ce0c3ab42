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
use ringside_engine::event::{Event, ProgramInfo};
use std::collections::HashMap;
use std::sync::Arc;

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

/// Programs and ring configuration of each engine instance (epoch) seen,
/// to complete its inputs-only decisions.
#[derive(Debug, Default)]
pub struct Completer {
    programs: Programs,
    /// Programs seen loading, loaded here at their first inputs-only
    /// decision (a session of full records verifies nothing).
    seen: HashMap<(u32, u32), Arc<ProgramInfo>>,
    config: HashMap<u32, (Registrations, Budgets)>,
}

/// Engine instances whose programs and setups are kept: a live session
/// that runs engine after engine (the demo's rounds) does not grow without
/// bound; decisions of older instances are shown as they came.
const EPOCHS_KEPT: u32 = 16;

impl Completer {
    /// Take in what an event of engine instance `epoch` sets up: its ring's
    /// registrations and budgets, a program it loaded.
    pub fn observe(&mut self, epoch: u32, event: &Event) {
        match event {
            Event::RingSetup(info) => {
                self.config.insert(epoch, (info.regs.clone(), info.budgets));
                let oldest = epoch.saturating_sub(EPOCHS_KEPT);
                if self.config.keys().any(|e| *e < oldest) {
                    self.config.retain(|e, _| *e >= oldest);
                    self.seen.retain(|(e, _), _| *e >= oldest);
                    // A registry does not unload: start afresh, and load
                    // the kept instances' programs again as they are needed.
                    self.programs = Programs::default();
                }
            }
            Event::ProgramLoaded(info) => {
                self.seen.insert((epoch, info.prog), Arc::new(info.clone()));
            }
            _ => {}
        }
    }

    /// Complete `rec`, a decision of `epoch` (a full record is left alone).
    pub fn complete(
        &mut self,
        epoch: u32,
        rec: &mut DecisionRecord,
    ) -> Result<(), CompleteFailure> {
        if rec.detail == Detail::Full {
            return Ok(());
        }
        let (seq, prog) = (rec.seq, rec.prog);
        if self.programs.get(epoch, prog).is_none() {
            let info = self
                .seen
                .get(&(epoch, prog))
                .ok_or(CompleteFailure::UnknownProgram { seq, prog })?;
            // A refusal is kept in the slot and said at each decision.
            let _ = self.programs.load(epoch, &info.clone());
        }
        let (slot, loaded) = self
            .programs
            .get(epoch, prog)
            .ok_or(CompleteFailure::UnknownProgram { seq, prog })?;
        let Some(p) = loaded else {
            let error = slot.error.clone().unwrap_or(LoadRecordedError::Missing {
                name: slot.info.name.clone(),
            });
            return Err(CompleteFailure::NotLoaded { seq, error });
        };
        let default = (Registrations::default(), Budgets::default());
        let (regs, budgets) = self.config.get(&epoch).unwrap_or(&default);
        decision::complete(p, rec, regs, budgets)?;
        Ok(())
    }

    /// The programs loaded, by (epoch, recorded id).
    pub fn programs(&self) -> &Programs {
        &self.programs
    }
}
