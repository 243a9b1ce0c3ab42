//! The programs a session loaded, loaded again in this process: through
//! the verifier whatever the recording says (a recording is untrusted
//! input), and only when the object is the one recorded. Replay, check,
//! export and the UI's stepper all load them here.

use ringside_engine::event::ProgramInfo;
use ringside_engine::program::elf::LoadError;
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, LoadedProgram, ProgId, Registry, fnv1a64};
use std::collections::HashMap;

/// A program as the recording declared it, re-loaded here.
#[derive(Debug)]
pub struct ProgSlot {
    /// What the recording says.
    pub info: ProgramInfo,
    /// Its id in the replay registry, when it loaded.
    pub id: Option<ProgId>,
    /// Why it did not load.
    pub error: Option<LoadRecordedError>,
}

/// Why a recorded program may not run here ([`load_recorded`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadRecordedError {
    /// The object is not the one the recording says it is.
    #[error(
        "program {name} (id {prog}): its object image hashes to {hash:#018x}, the recording says {recorded:#018x}"
    )]
    Hash {
        /// Program name.
        name: String,
        /// Recorded id.
        prog: u32,
        /// The image's hash.
        hash: u64,
        /// The recorded hash.
        recorded: u64,
    },
    /// Recorded as trusted (never verified), and the verifier refuses it.
    #[error(
        "program {name} (id {prog}) was loaded as trusted and does not pass the verifier ({error}): programs from a recording run only when verified"
    )]
    Unverified {
        /// Program name.
        name: String,
        /// Recorded id.
        prog: u32,
        /// What the loader says.
        error: Box<LoadError>,
    },
    /// The loader (or the verifier) refuses it.
    #[error("program {name} (id {prog}) does not load here: {error}")]
    Load {
        /// Program name.
        name: String,
        /// Recorded id.
        prog: u32,
        /// What the loader says.
        error: Box<LoadError>,
    },
    /// Its object does not have it.
    #[error("program {name} missing from its object")]
    Missing {
        /// Program name.
        name: String,
    },
    /// It verifies, with other figures than recorded.
    #[error(
        "program {name} (id {prog}) verifies differently here: {insns} instructions, longest path {max_path} (recorded {recorded_insns}, {recorded_max_path}; a recording made before ringside ran programs with the kernel's semantics counts rbpf's rewrites)"
    )]
    VerifiesDifferently {
        /// Program name.
        name: String,
        /// Recorded id.
        prog: u32,
        /// Instruction slots here.
        insns: usize,
        /// Longest path here.
        max_path: u32,
        /// Recorded instruction slots.
        recorded_insns: u32,
        /// Recorded longest path.
        recorded_max_path: u32,
    },
}

/// Load a program a recording (or any other event source) declares into
/// `registry`, as replay, check, export and the step debugger all do: always
/// through the verifier (a recording is untrusted input: `trusted` in it is
/// a fact about how it was recorded, not a permission here), and only if it
/// is the program the recording says it is. The error says why not.
pub fn load_recorded(
    registry: &mut Registry,
    info: &ProgramInfo,
) -> Result<ProgId, LoadRecordedError> {
    let hash = fnv1a64(&info.object);
    if hash != info.object_hash {
        return Err(LoadRecordedError::Hash {
            name: info.name.clone(),
            prog: info.prog,
            hash,
            recorded: info.object_hash,
        });
    }
    let opts = LoadOptions {
        trusted: false,
        exec: ExecMode::Interpreter,
        ..LoadOptions::default()
    };
    let obj = match registry.load_programs(&info.file, &info.object, &[&info.name], &opts) {
        Err(error) if info.trusted => {
            return Err(LoadRecordedError::Unverified {
                name: info.name.clone(),
                prog: info.prog,
                error: Box::new(error),
            });
        }
        Err(error) => {
            return Err(LoadRecordedError::Load {
                name: info.name.clone(),
                prog: info.prog,
                error: Box::new(error),
            });
        }
        Ok(obj) => obj,
    };
    let missing = || LoadRecordedError::Missing {
        name: info.name.clone(),
    };
    let Some(id) = obj.programs.first().map(|p| p.1) else {
        return Err(missing());
    };
    match registry.program(id) {
        Some(p) if p.report.insns as u32 != info.insns || p.report.max_path != info.max_path => {
            Err(LoadRecordedError::VerifiesDifferently {
                name: info.name.clone(),
                prog: info.prog,
                insns: p.report.insns,
                max_path: p.report.max_path,
                recorded_insns: info.insns,
                recorded_max_path: info.max_path,
            })
        }
        Some(_) => Ok(id),
        None => Err(missing()),
    }
}

/// Recorded programs re-loaded, by (epoch, recorded id), in one registry.
#[derive(Debug, Default)]
pub struct Programs {
    slots: HashMap<(u32, u32), ProgSlot>,
    registry: Registry,
}

impl Programs {
    /// Load `info`, a program of engine instance `epoch` (again: a second
    /// load of the same slot replaces the first); the error says why it
    /// cannot run here.
    pub fn load(&mut self, epoch: u32, info: &ProgramInfo) -> Result<ProgId, LoadRecordedError> {
        let r = load_recorded(&mut self.registry, info);
        self.slots.insert(
            (epoch, info.prog),
            ProgSlot {
                info: info.clone(),
                id: r.as_ref().ok().copied(),
                error: r.as_ref().err().cloned(),
            },
        );
        r
    }

    /// Program `prog` of `epoch`: what the recording said, and the program
    /// when it loaded.
    pub fn get(&self, epoch: u32, prog: u32) -> Option<(&ProgSlot, Option<&LoadedProgram>)> {
        let slot = self.slots.get(&(epoch, prog))?;
        Some((slot, slot.id.and_then(|id| self.registry.program(id))))
    }

    /// Every slot, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&(u32, u32), &ProgSlot)> {
        self.slots.iter()
    }

    /// Programs loaded (or refused).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when none was loaded.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
