//! Random access to a recording: items by index and time, the programs it
//! loaded (re-loaded here), and decisions re-executed and traced
//! instruction by instruction. What the replay UI is built on.

use crate::check::{self, CheckReport, Checker, InputsError, LoadRecordedError, Setup};
use crate::error::{IoAction, IoCause, ReadProblem};
use crate::format::Header;
use crate::item::Item;
use crate::reader::{Entry, ReadError, ReadOptions, Reader, Stop, SyncPoint};
use crate::session::Clock;
use ringside_engine::decision::{DecisionRecord, ReexecError, Reexecution, reexecute};
use ringside_engine::event::{Event, ProgramInfo};
use ringside_engine::program::LoadedProgram;
use ringside_engine::program::interp::TraceStep;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An opened recording: an index over the file (sync points, item times,
/// decisions) and the programs it loaded. Items are decoded on demand, so
/// memory is about 16 bytes per item.
pub struct Replay {
    path: PathBuf,
    name: String,
    header: Header,
    syncs: Vec<SyncPoint>,
    len: u64,
    stop: Stop,
    errors: Vec<ReadError>,
    times: Vec<u64>,
    tmax: Vec<u64>,
    decisions: Vec<(u64, u64)>,
    setup: Setup,
    clock: Option<u64>,
    opts: ReadOptions,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("file", &self.name)
            .field("items", &self.len)
            .field("decisions", &self.decisions.len())
            .finish()
    }
}

/// A decision re-executed under the tracing interpreter.
#[derive(Debug, Clone)]
pub struct DecisionTrace {
    /// Item index of the decision event.
    pub index: u64,
    /// The recorded decision.
    pub record: DecisionRecord,
    /// pc, instruction, registers and memory touched after each instruction.
    pub steps: Vec<TraceStep>,
    /// What the re-execution did (or why it stopped).
    pub reexecution: Result<Reexecution, ReexecError>,
}

/// Why a decision could not be traced ([`Replay::trace_at`],
/// [`trace_decision`]).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The recording could not be read there.
    #[error("{0}")]
    Read(ReadError),
    /// No item at this index.
    #[error("{file}: no item {index}")]
    NoItem {
        /// The recording.
        file: String,
        /// The item index.
        index: u64,
    },
    /// The item is a probe event or a loss record.
    #[error("{file}: item {index} is not an engine event")]
    NotEngine {
        /// The recording.
        file: String,
        /// The item index.
        index: u64,
    },
    /// The item is another engine event.
    #[error("{file}: item {index} is not a decision")]
    NotDecision {
        /// The recording.
        file: String,
        /// The item index.
        index: u64,
    },
    /// No decision with this number.
    #[error("no decision {seq} in {}", path.display())]
    NoDecision {
        /// The decision number.
        seq: u64,
        /// The recording.
        path: PathBuf,
    },
    /// The decision's program was not loaded in its epoch.
    #[error("decision {decision}: program {prog} was never loaded")]
    NeverLoaded {
        /// The decision number.
        decision: u64,
        /// The recorded program id.
        prog: u32,
    },
    /// The decision's program may not run here.
    #[error("{0}")]
    Refused(LoadRecordedError),
    /// The decision's program did not load (and no reason was kept).
    #[error("program {prog} did not load")]
    NotLoaded {
        /// The recorded program id.
        prog: u32,
    },
    /// The decision's recorded inputs do not fit its program.
    #[error("decision {decision}: {error}")]
    Inputs {
        /// The decision number.
        decision: u64,
        /// What does not fit.
        error: InputsError,
    },
    /// The re-execution stopped the program.
    #[error("decision {decision}: {error}")]
    Reexec {
        /// The decision number.
        decision: u64,
        /// Why it stopped.
        error: ReexecError,
    },
}

/// Why a recording is refused whole ([`Replay::refusal`]): the first
/// program that may not run here, and how many more there are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{first}{}", if *more > 0 { format!(" (and {more} more programs)") } else { String::new() })]
pub struct Refusal {
    /// The first refused program.
    pub first: LoadRecordedError,
    /// Programs refused after it.
    pub more: usize,
}

impl Replay {
    /// Open and index a recording (stops at the first damage; see
    /// [`Replay::open_with`] to go on past damaged records).
    pub fn open(path: impl AsRef<Path>) -> Result<Replay, ReadError> {
        Replay::open_with(path, ReadOptions::default())
    }

    /// Open with reader options (`resync: true` skips damaged records).
    pub fn open_with(path: impl AsRef<Path>, opts: ReadOptions) -> Result<Replay, ReadError> {
        let path = path.as_ref().to_path_buf();
        let opts = ReadOptions {
            collect_syncs: true,
            ..opts
        };
        let mut reader = Reader::open_with(&path, opts)?;
        let header = reader.header().clone();
        let mut setup = Setup::default();
        let mut decisions = Vec::new();
        // One pass: each item is stamped with the clock records read
        // before it (each engine's comes before its first event).
        let mut clock = Clock::anchored(header.mono_start_ns);
        let mut origin = None;
        let mut times: Vec<u64> = Vec::new();
        let mut tmax: Vec<u64> = Vec::new();
        while let Some(e) = reader.next() {
            let Ok(e) = e else { continue };
            if reader.clock() != origin {
                origin = reader.clock();
                if let Some(o) = origin {
                    clock.engine_origin(o);
                }
            }
            // Items lost to damage take the time of the one before.
            while (times.len() as u64) < e.index {
                times.push(clock.now());
                tmax.push(clock.now());
            }
            if let Item::Engine(r) = &e.item {
                match &r.event {
                    Event::RingSetup(info) => setup.rings.push((e.index, (**info).clone())),
                    Event::ProgramLoaded(info) => {
                        let _ = setup.load(info);
                    }
                    Event::Decision(d) => decisions.push((d.seq, e.index)),
                    _ => {}
                }
            }
            times.push(clock.stamp(&e.item));
            tmax.push(clock.now());
        }
        let clock = reader.clock();
        let stop = reader.stop().cloned().unwrap_or(Stop::Error(ReadError {
            file: reader.file().to_string(),
            offset: 0,
            problem: ReadProblem::StoppedEarly,
        }));
        Ok(Replay {
            name: reader.file().to_string(),
            path,
            header,
            syncs: reader.syncs().to_vec(),
            len: times.len() as u64,
            stop,
            errors: reader.errors().to_vec(),
            times,
            tmax,
            decisions,
            setup,
            clock,
            opts,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Items (the highest index + 1).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// No items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the file ended (`Stop::End` for a complete file).
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Every read error (more than one only with resync).
    pub fn errors(&self) -> &[ReadError] {
        &self.errors
    }

    /// Time of an item: ns since the recording started (engine and probe
    /// clocks aligned through the recording's clock record).
    pub fn time_of(&self, index: u64) -> Option<u64> {
        self.times.get(index as usize).copied()
    }

    /// The first item at or after `t_ns` (ns since the recording started);
    /// `len()` when none.
    pub fn index_at_time(&self, t_ns: u64) -> u64 {
        self.tmax.partition_point(|&t| t < t_ns) as u64
    }

    /// Duration covered, ns.
    pub fn duration_ns(&self) -> u64 {
        self.tmax.last().copied().unwrap_or(0)
    }

    /// CLOCK_MONOTONIC ns of the engine's time 0, when recorded.
    pub fn engine_clock(&self) -> Option<u64> {
        self.clock
    }

    /// (decision seq, item index) of every decision, in file order.
    pub fn decisions(&self) -> &[(u64, u64)] {
        &self.decisions
    }

    /// Item index of decision `seq`.
    pub fn decision_index(&self, seq: u64) -> Option<u64> {
        self.decisions
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|&(_, i)| i)
    }

    /// Programs the recording loaded: what it says, and the program re-loaded
    /// here (None with the reason when it does not load).
    pub fn programs(
        &self,
    ) -> Vec<(
        &ProgramInfo,
        Option<&LoadedProgram>,
        Option<&LoadRecordedError>,
    )> {
        let mut v: Vec<_> = self
            .setup
            .programs
            .iter()
            .map(|(k, s)| {
                (
                    *k,
                    (
                        &s.info,
                        self.setup.programs.get(k.0, k.1).and_then(|(_, p)| p),
                        s.error.as_ref(),
                    ),
                )
            })
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v.into_iter().map(|(_, x)| x).collect()
    }

    /// Why the first program that may not run here was refused (see
    /// [`crate::session::load_recorded`]): replay and export refuse such a
    /// recording whole.
    pub fn refusal(&self) -> Option<Refusal> {
        let refused: Vec<&LoadRecordedError> = self
            .programs()
            .into_iter()
            .filter_map(|(_, _, e)| e)
            .collect();
        let first = (*refused.first()?).clone();
        Some(Refusal {
            first,
            more: refused.len() - 1,
        })
    }

    /// `rec`, the decision at item `index`, made whole when it is
    /// inputs-only ([`Setup::complete`]).
    pub fn complete_at(
        &self,
        index: u64,
        rec: &mut DecisionRecord,
    ) -> Result<(), crate::session::CompleteFailure> {
        self.setup.complete(index, rec)
    }

    /// The re-loaded program a decision at item `index` ran.
    pub fn program_at(&self, index: u64, prog: u32) -> Option<&LoadedProgram> {
        self.setup.program(self.setup.epoch_at(index), prog)?.1
    }

    /// Items from `index` on (seeks to the nearest sync point before it).
    pub fn iter_from(&self, index: u64) -> Result<Items, ReadError> {
        let k = self.syncs.partition_point(|s| s.index <= index);
        let point = if k == 0 {
            self.syncs.first().copied().unwrap_or(SyncPoint {
                offset: 0,
                index: 0,
            })
        } else {
            self.syncs[k - 1]
        };
        let io = |e: std::io::Error| ReadError {
            file: self.name.clone(),
            offset: point.offset,
            problem: ReadProblem::Io {
                action: IoAction::Reopen,
                cause: IoCause::from(&e),
            },
        };
        let mut f = File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(point.offset)).map_err(io)?;
        let reader = Reader::resume(
            BufReader::with_capacity(1 << 16, f),
            &self.name,
            self.header.clone(),
            point,
            ReadOptions {
                resync: self.opts.resync,
                collect_syncs: false,
            },
        );
        Ok(Items {
            reader,
            from: index,
        })
    }

    /// Every item, in order.
    pub fn iter(&self) -> Result<Items, ReadError> {
        self.iter_from(0)
    }

    /// One item.
    pub fn get(&self, index: u64) -> Result<Option<Entry>, ReadError> {
        match self.iter_from(index)?.next() {
            Some(Ok(e)) if e.index == index => Ok(Some(e)),
            Some(Ok(_)) | None => Ok(None),
            Some(Err(e)) => Err(e),
        }
    }

    /// The decision at item `index`, re-executed and traced.
    pub fn trace_at(&self, index: u64) -> Result<DecisionTrace, TraceError> {
        let file = || self.name.clone();
        let e = self
            .get(index)
            .map_err(TraceError::Read)?
            .ok_or_else(|| TraceError::NoItem {
                file: file(),
                index,
            })?;
        let Item::Engine(r) = &e.item else {
            return Err(TraceError::NotEngine {
                file: file(),
                index,
            });
        };
        let Event::Decision(d) = &r.event else {
            return Err(TraceError::NotDecision {
                file: file(),
                index,
            });
        };
        let epoch = self.setup.epoch_at(index);
        let (slot, prog) = self
            .setup
            .program(epoch, d.prog)
            .ok_or(TraceError::NeverLoaded {
                decision: d.seq,
                prog: d.prog,
            })?;
        let prog = prog.ok_or_else(|| match &slot.error {
            Some(e) => TraceError::Refused(e.clone()),
            None => TraceError::NotLoaded { prog: d.prog },
        })?;
        check::validate_inputs(prog, d).map_err(|error| TraceError::Inputs {
            decision: d.seq,
            error,
        })?;
        let (regs, budgets) = self.setup.config(epoch);
        let mut steps = Vec::new();
        let reexecution = {
            let mut f = |s: &TraceStep| steps.push(s.clone());
            reexecute(prog, d, &regs, &budgets, Some(&mut f))
        };
        Ok(DecisionTrace {
            index,
            record: (**d).clone(),
            steps,
            reexecution,
        })
    }

    /// Re-execute every decision and compare (what `ringside check` does).
    pub fn check(&self) -> Result<CheckReport, ReadError> {
        check::check_file(&self.path)
    }

    /// A checker primed with this recording's setup is built by feeding
    /// entries; exposed for UIs that verify as they step.
    pub fn checker() -> Checker {
        Checker::new()
    }
}

/// Items of a [`Replay`] from some index on.
pub struct Items {
    reader: Reader<BufReader<File>>,
    from: u64,
}

impl std::fmt::Debug for Items {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Items").field("from", &self.from).finish()
    }
}

impl Items {
    /// How reading ended, once it has.
    pub fn stop(&self) -> Option<&Stop> {
        self.reader.stop()
    }
}

impl Iterator for Items {
    type Item = Result<Entry, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.reader.next()? {
                Ok(e) if e.index < self.from => continue,
                other => return Some(other),
            }
        }
    }
}

/// The instruction-level trace of decision `seq` (pc, instruction,
/// registers and memory touched after each instruction), re-executed from
/// the recording with the engine's own helper semantics.
pub fn trace_decision(replay: &Replay, seq: u64) -> Result<Vec<TraceStep>, TraceError> {
    let index = replay
        .decision_index(seq)
        .ok_or_else(|| TraceError::NoDecision {
            seq,
            path: replay.path.clone(),
        })?;
    let t = replay.trace_at(index)?;
    t.reexecution.map_err(|error| TraceError::Reexec {
        decision: seq,
        error,
    })?;
    Ok(t.steps)
}
