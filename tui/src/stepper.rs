//! Inside a decision: disassembly, and instruction-by-instruction traces.
//!
//! The trace comes from the engine library itself: the program's object
//! (from its `ProgramLoaded` event) is loaded again in this process
//! ([`Programs`]) and the recorded decision is re-executed under the engine's
//! tracing interpreter ([`reexecute`]). Nothing here decides anything.

use crate::model::Model;
use ringside_engine::decision::reexecute;
use ringside_engine::event::ProgramInfo;
use ringside_engine::program::disasm;
use ringside_engine::program::interp::TraceStep;
use ringside_recordings::session::{LoadRecordedError, ProgSlot, Programs};
use std::collections::HashMap;
use std::sync::Arc;

/// One line of disassembly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisLine {
    /// Instruction slot (what a trace's `pc` counts).
    pub slot: usize,
    /// The instruction.
    pub text: String,
    /// Annotation: helper name, map name, jump target.
    pub note: Option<String>,
    /// It calls a helper.
    pub is_call: bool,
}

/// A program's disassembly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disasm {
    /// Lines.
    pub lines: Vec<DisLine>,
    /// Slot -> line.
    pub slot_line: Vec<usize>,
}

impl Disasm {
    /// Line showing slot `pc`.
    pub fn line_of(&self, pc: usize) -> usize {
        self.slot_line.get(pc).copied().unwrap_or(0)
    }
}

/// A program's listing (the engine's disassembler), as the Debug view
/// shows it.
pub fn disassemble(info: &ProgramInfo) -> Disasm {
    let maps: Vec<String> = info.maps.iter().map(|m| m.name.clone()).collect();
    let mut slot_line = Vec::with_capacity(info.code.len() / 8);
    let lines = disasm::disassemble(&info.code, &maps)
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            slot_line.extend(std::iter::repeat_n(i, l.width));
            DisLine {
                slot: l.slot,
                text: l.text,
                note: l.note,
                is_call: l.is_call,
            }
        })
        .collect();
    Disasm { lines, slot_line }
}

/// A decision, instruction by instruction.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Engine instance.
    pub epoch: u32,
    /// Decision number.
    pub decision: u64,
    /// Program.
    pub program: String,
    /// Steps.
    pub steps: Vec<TraceStep>,
    /// Disassembly.
    pub disasm: Arc<Disasm>,
    /// Return value of the re-execution.
    pub ret: Option<u64>,
    /// Why re-execution failed or differed.
    pub problem: Option<String>,
    /// Current step (index into `steps`).
    pub pos: usize,
}

impl Trace {
    /// The stack (512 bytes below r10) as of the current step, and which
    /// 8-byte slots (offsets from r10) were touched.
    pub fn stack(&self) -> (Vec<u8>, Vec<i64>) {
        let mut stack = vec![0u8; 512];
        let mut touched: Vec<i64> = Vec::new();
        for s in self.steps.iter().take(self.pos + 1) {
            if let Some(m) = &s.mem
                && m.region == "stack"
            {
                let at = 512 + m.offset;
                if at >= 0 && (at as usize) + m.bytes.len() <= 512 {
                    if m.write {
                        stack[at as usize..at as usize + m.bytes.len()].copy_from_slice(&m.bytes);
                    }
                    let slot = m.offset.div_euclid(8) * 8;
                    if !touched.contains(&slot) {
                        touched.push(slot);
                    }
                }
            }
        }
        touched.sort();
        (stack, touched)
    }
}

/// Why a decision cannot be traced (the Debug view says it instead).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// The model's history has moved past it.
    #[error("decision #{seq} is no longer in the history")]
    Gone {
        /// Decision number.
        seq: u64,
    },
    /// Its program's `ProgramLoaded` event was not seen (dropped, or
    /// before a live view attached).
    #[error("program {prog} was not seen loading")]
    ProgramNotSeen {
        /// Program id in its engine.
        prog: u32,
    },
    /// The engine's `RingSetup` (registers, budgets) was not seen.
    #[error("the ring setup of this engine was not seen")]
    NoRingSetup,
    /// The program may not run here (hash, verifier).
    #[error(transparent)]
    Refused(#[from] LoadRecordedError),
    /// Loaded without a refusal and yet not in the registry.
    #[error("program did not load")]
    NotLoaded,
}

/// Loads programs into this process (once per program, through the
/// recordings crate's [`Programs`], the gate replay and check use) and
/// traces decisions with them.
#[derive(Default)]
pub struct Tracer {
    /// Programs loaded for traces, by (engine instance, program id).
    programs: Programs,
    disasm: HashMap<(u32, u32), Arc<Disasm>>,
}

impl Tracer {
    /// Disassembly of program `prog` of instance `epoch`.
    pub fn disasm(&mut self, state: &Model, epoch: u32, prog: u32) -> Option<Arc<Disasm>> {
        if let Some(d) = self.disasm.get(&(epoch, prog)) {
            return Some(d.clone());
        }
        let info = state.programs.get(&(epoch, prog))?;
        let d = Arc::new(disassemble(info));
        if self.disasm.len() > 64 {
            self.disasm.clear();
        }
        self.disasm.insert((epoch, prog), d.clone());
        Some(d)
    }

    /// Re-execute decision `seq` of instance `epoch`, recording every step.
    pub fn trace(&mut self, state: &Model, epoch: u32, seq: u64) -> Result<Trace, TraceError> {
        let idx = state
            .find_decision(epoch, seq)
            .ok_or(TraceError::Gone { seq })?;
        let entry = &state.decisions[idx];
        let rec = entry.decision();
        let info = state
            .programs
            .get(&(epoch, rec.prog))
            .ok_or(TraceError::ProgramNotSeen { prog: rec.prog })?
            .clone();
        let ring = state.ring_info.get(&epoch).ok_or(TraceError::NoRingSetup)?;
        let disasm = self
            .disasm(state, epoch, rec.prog)
            .unwrap_or_else(|| Arc::new(Disasm::default()));
        // Live sessions run for hours: keep the programs of a few recent
        // traces, not of every engine ever seen.
        if self.programs.len() > 64 {
            self.programs = Programs::default();
        }
        // Verified here whatever the event says (it may come from a file):
        // the same gate as replay, check and export.
        if self.programs.get(epoch, rec.prog).is_none() {
            // A refusal is kept in its slot, and said below.
            let _ = self.programs.load(epoch, &info);
        }
        let prog = match self.programs.get(epoch, rec.prog) {
            Some((_, Some(p))) => p,
            Some((ProgSlot { error: Some(e), .. }, None)) => return Err(e.clone().into()),
            _ => return Err(TraceError::NotLoaded),
        };
        let mut steps = Vec::new();
        let r = reexecute(
            prog,
            rec,
            &ring.regs,
            &ring.budgets,
            Some(&mut |s: &TraceStep| steps.push(s.clone())),
        );
        let (ret, problem) = match r {
            Ok(x) => {
                let mut p = x.input_mismatch.as_ref().map(ToString::to_string);
                if x.ret != rec.ret {
                    p = Some(format!(
                        "re-execution returned {} but the engine's run returned {}",
                        x.ret, rec.ret
                    ));
                }
                (Some(x.ret), p)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Trace {
            epoch,
            decision: seq,
            program: info.name.clone(),
            steps,
            disasm,
            ret,
            problem,
            pos: 0,
        })
    }
}
