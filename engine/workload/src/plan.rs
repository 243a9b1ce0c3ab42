//! Checking a spec: every name resolved, every size within its limit
//! ([`super::limits`]), every sum computed with checked arithmetic, and
//! nothing created. What comes out is a [`Plan`], which setup then follows.

use super::check::Check;
use super::content::Content;
use super::error::{FieldError, Figure, SpecError, SpecProblem, TotalExceeded};
use super::files::{self, FileKind};
use super::limits;
use super::spec::{Locator, MapEntrySpec, Spec, StepSpecToml};
use super::{WorkloadError, resolve};
use ringside_engine::abi::{NO_BUF, OP_BPF, RsSqe, op};
use ringside_engine::chain::{ChainSpec, StepSpec};
use ringside_engine::decision::Budgets;
use ringside_engine::engine::KernelLinkProblem;
use ringside_engine::event::{LinkMode, Notify, StepKind};
use ringside_engine::program::elf::{self, ElfObject};
use ringside_engine::program::maps::MapDef;
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, ProgId, Registry};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// What [`super::check_text`] may do beyond reading the text.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Look at the filesystem: the kind of each `[[file]] path`, and program
    /// objects named by path (read, bounded, and parsed). Without it (the
    /// fuzz target) such a program counts as an object with no maps, named
    /// by its `name` (or its path), and paths are not looked at.
    pub filesystem: bool,
    /// Verify each program as loading it would.
    pub verify: bool,
    /// Every program will run under the interpreter (not compiled).
    pub interpreter: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            filesystem: true,
            verify: true,
            interpreter: false,
        }
    }
}

pub(super) enum FileSource {
    /// A temporary file of this content (its length: `content.len(size)`).
    Temp { content: Content, size: u64 },
    /// An existing file.
    Existing {
        path: PathBuf,
        kind: FileKind,
        writable: bool,
        at: usize,
    },
}

pub(super) struct PlannedFile {
    pub name: String,
    pub source: FileSource,
}

pub(super) struct PlannedWriter {
    pub content: Content,
    pub total: u64,
    pub chunks: Vec<u64>,
    pub interval: Duration,
    pub delay: Duration,
    pub close: bool,
}

pub(super) struct PlannedStream {
    pub name: String,
    pub socket: bool,
    pub nonblocking: bool,
    pub sink: bool,
    pub writer: Option<PlannedWriter>,
}

pub(super) struct PlannedProgram {
    pub label: String,
    /// The object (None only when checked without the filesystem).
    pub bytes: Option<Vec<u8>>,
    pub section: String,
    pub name: String,
    pub at: usize,
    pub name_at: usize,
    pub opts: LoadOptions,
}

pub(super) struct PlannedMap {
    pub prog: usize,
    pub map: String,
    pub map_at: usize,
    /// (key, value, offset of the key in the spec)
    pub entries: Vec<(Vec<u8>, Vec<u8>, usize)>,
}

/// A step of a chain template; `program` indexes the plan's programs.
#[derive(Clone)]
pub(super) struct StepTemplate {
    pub kind: StepKind,
    pub sqe: RsSqe,
    pub program: Option<usize>,
    /// user_data follows the repetition (the step did not set its own).
    pub default_ud: bool,
}

/// A `[[chain]]`: its repetitions are made as they are submitted.
#[derive(Clone)]
pub(super) struct ChainTemplate {
    pub steps: Vec<StepTemplate>,
    pub program: Option<usize>,
    pub notify: Notify,
    pub link: LinkMode,
    pub drain: bool,
    pub repeat: u64,
    pub off_stride: u64,
    pub buf_stride: u64,
    pub user_data: u64,
}

impl ChainTemplate {
    /// Repetition `r`, with program indices turned into ids. None when an
    /// offset overflows, which checking ruled out for every `r < repeat`.
    pub fn copy(&self, r: u64, progs: &[ProgId]) -> Option<ChainSpec> {
        let user_data = self.user_data.checked_add(r)?;
        let mut steps = Vec::with_capacity(self.steps.len());
        for s in &self.steps {
            let mut sqe = s.sqe;
            sqe.off = sqe.off.checked_add(self.off_stride.checked_mul(r)?)?;
            if sqe.buf_index != NO_BUF {
                sqe.buf_off = sqe.buf_off.checked_add(self.buf_stride.checked_mul(r)?)?;
            }
            if s.default_ud {
                sqe.user_data = user_data;
            }
            steps.push(StepSpec {
                kind: s.kind,
                sqe,
                program: s.program.map(|p| progs[p]),
            });
        }
        Some(ChainSpec {
            user_data,
            steps,
            program: self.program.map(|p| progs[p]),
            notify: self.notify,
            drain: self.drain,
            link: self.link,
        })
    }
}

/// A checked spec: what setup will create, with every limit respected.
pub struct Plan {
    pub(super) entries: u32,
    pub(super) entries_at: usize,
    pub(super) budgets: Budgets,
    pub(super) files: Vec<PlannedFile>,
    pub(super) streams: Vec<PlannedStream>,
    pub(super) buffers: Vec<u64>,
    pub(super) programs: Vec<PlannedProgram>,
    pub(super) ring_program: Option<usize>,
    pub(super) maps: Vec<PlannedMap>,
    pub(super) chains: Vec<ChainTemplate>,
    pub(super) concurrency: u32,
    pub(super) timeout: Option<Duration>,
}

impl Plan {
    /// Chains the run will submit, every repetition counted.
    pub fn chain_count(&self) -> u64 {
        self.chains.iter().map(|c| c.repeat).sum()
    }

    /// Steps the run will submit, every repetition counted.
    pub fn step_count(&self) -> u64 {
        self.chains
            .iter()
            .map(|c| c.repeat * c.steps.len() as u64)
            .sum()
    }

    /// Bytes of temporary files setup will write.
    pub fn temp_file_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match &f.source {
                FileSource::Temp { content, size } => content.len(*size),
                FileSource::Existing { .. } => 0,
            })
            .sum()
    }
}

/// A running total that must stay within `max`; the error is at the value
/// that crosses it.
struct Total {
    sum: u64,
    max: u64,
    what: &'static str,
}

impl Total {
    fn new(max: u64, what: &'static str) -> Total {
        Total { sum: 0, max, what }
    }

    /// Add `n` (its maximum worded as `figure`); the error when the total
    /// is crossed.
    fn add(&mut self, n: u64, figure: Figure) -> Result<(), TotalExceeded> {
        match self.sum.checked_add(n) {
            Some(s) if s <= self.max => {
                self.sum = s;
                Ok(())
            }
            _ => Err(TotalExceeded {
                what: self.what,
                max: self.max,
                figure,
            }),
        }
    }
}

fn at<T>(v: &Spanned<T>) -> usize {
    v.span().start
}

fn value<T: Copy>(v: &Option<Spanned<T>>, default: T) -> T {
    v.as_ref().map_or(default, |v| *v.get_ref())
}

/// Check a parsed spec; `base` resolves relative paths.
pub fn check(
    spec: &Spec,
    loc: &Locator,
    base: &Path,
    copts: &CheckOptions,
) -> Result<Plan, WorkloadError> {
    let err = |offset: usize, c: Check| -> WorkloadError { loc.error(offset, c).into() };
    let fail = |offset: usize, p: SpecProblem| -> WorkloadError { loc.error(offset, p).into() };
    let mut names: HashMap<String, u32> = HashMap::new();
    let mut add_name = |n: &Spanned<String>| -> Result<(), WorkloadError> {
        if names.len() >= limits::MAX_FILES {
            return Err(err(
                at(n),
                Check::TooManyNames {
                    max: limits::MAX_FILES,
                },
            ));
        }
        let idx = names.len() as u32;
        if names.insert(n.get_ref().clone(), idx).is_some() {
            let name = n.get_ref().clone();
            return Err(err(at(n), Check::DefinedTwice { name }));
        }
        Ok(())
    };

    // Files.
    let mut temp_total = Total::new(limits::MAX_TOTAL_FILE_SIZE, "temporary files");
    let mut files = Vec::new();
    for f in &spec.files {
        add_name(&f.name)?;
        let kind = match &f.kind {
            None => FileKind::Regular,
            Some(k) => FileKind::parse(k.get_ref()).ok_or_else(|| {
                err(
                    at(k),
                    Check::FileKind {
                        kind: k.get_ref().clone(),
                    },
                )
            })?,
        };
        let source = match (&f.path, &f.size) {
            (Some(p), None) => {
                if let Some(c) = &f.content {
                    return Err(err(at(c), Check::ContentOfExisting));
                }
                let path = resolve(base, p.get_ref());
                if copts.filesystem {
                    let meta = std::fs::metadata(&path).map_err(|error| {
                        let path = path.clone();
                        err(at(p), Check::CannotOpen { path, error })
                    })?;
                    files::check_kind(&meta, kind).map_err(|problem| {
                        let suggest = FileKind::of(meta.file_type())
                            .ok()
                            .filter(|_| matches!(problem, files::FileProblem::NotRegular { .. }));
                        let path = path.clone();
                        err(
                            at(p),
                            Check::File {
                                path,
                                problem: Box::new(problem),
                                suggest,
                            },
                        )
                    })?;
                }
                FileSource::Existing {
                    path,
                    kind,
                    writable: f.writable,
                    at: at(p),
                }
            }
            (None, Some(size)) => {
                if let Some(k) = &f.kind {
                    return Err(err(at(k), Check::KindOfNew));
                }
                let content_at = f.content.as_ref().map_or(at(size), at);
                let content = Content::parse(f.content.as_ref().map_or("pattern", |c| c.get_ref()))
                    .map_err(|m| fail(content_at, m.into()))?;
                let n = *size.get_ref();
                let len = content.len(n);
                if len > limits::MAX_FILE_SIZE {
                    let where_ = if matches!(content, Content::Btree(_)) {
                        content_at
                    } else {
                        at(size)
                    };
                    return Err(err(
                        where_,
                        Check::FileTooLarge {
                            len,
                            max: limits::MAX_FILE_SIZE,
                        },
                    ));
                }
                temp_total
                    .add(len, Figure::Bytes)
                    .map_err(|m| fail(at(size), m.into()))?;
                FileSource::Temp { content, size: n }
            }
            _ => {
                return Err(err(at(&f.name), Check::PathOrSize));
            }
        };
        files.push(PlannedFile {
            name: f.name.get_ref().clone(),
            source,
        });
    }

    // Pipes and socket pairs.
    let mut written = Total::new(limits::MAX_TOTAL_WRITTEN, "writers' totals");
    let mut streams = Vec::new();
    for (socket, list) in [(false, &spec.pipes), (true, &spec.socketpairs)] {
        for s in list {
            add_name(&s.name)?;
            let writer = match &s.writer {
                None => None,
                Some(w) => {
                    let total = *w.total.get_ref();
                    if total > limits::MAX_WRITER_TOTAL {
                        return Err(err(
                            at(&w.total),
                            Check::WriterTotal {
                                total,
                                max: limits::MAX_WRITER_TOTAL,
                            },
                        ));
                    }
                    written
                        .add(total, Figure::Bytes)
                        .map_err(|m| fail(at(&w.total), m.into()))?;
                    let content_at = w.content.as_ref().map_or(at(&w.total), at);
                    let content =
                        Content::parse(w.content.as_ref().map_or("pattern", |c| c.get_ref()))
                            .map_err(|m| fail(content_at, m.into()))?;
                    if content.len(total) > total {
                        // A btree decides its own size.
                        return Err(err(
                            content_at,
                            Check::ContentOverTotal {
                                len: content.len(total),
                                total,
                            },
                        ));
                    }
                    let pause = |v: &Option<Spanned<u64>>| -> Result<Duration, WorkloadError> {
                        let ms = value(v, 0);
                        if ms > limits::MAX_WRITER_PAUSE_MS {
                            return Err(err(
                                v.as_ref().map_or(0, at),
                                Check::WriterPause {
                                    ms,
                                    max: limits::MAX_WRITER_PAUSE_MS,
                                },
                            ));
                        }
                        Ok(Duration::from_millis(ms))
                    };
                    Some(PlannedWriter {
                        content,
                        total,
                        chunks: w.chunks.clone(),
                        interval: pause(&w.interval_ms)?,
                        delay: pause(&w.delay_ms)?,
                        close: w.close,
                    })
                }
            };
            streams.push(PlannedStream {
                name: s.name.get_ref().clone(),
                socket,
                nonblocking: s.nonblocking,
                sink: s.sink,
                writer,
            });
        }
    }

    // Buffers.
    let mut buffers = Vec::new();
    let mut buffer_names: HashMap<String, (u16, u64)> = HashMap::new();
    let mut buffer_total = Total::new(limits::MAX_TOTAL_BUFFER_SIZE, "buffers");
    for b in &spec.buffers {
        let size = *b.size.get_ref();
        if buffers.len() >= limits::MAX_BUFFERS {
            return Err(err(
                at(&b.name),
                Check::TooManyBuffers {
                    max: limits::MAX_BUFFERS,
                },
            ));
        }
        if size == 0 || size > limits::MAX_BUFFER_SIZE {
            return Err(err(
                at(&b.size),
                Check::BufferSize {
                    size,
                    max: limits::MAX_BUFFER_SIZE,
                },
            ));
        }
        buffer_total
            .add(size, Figure::Bytes)
            .map_err(|m| fail(at(&b.size), m.into()))?;
        if buffer_names
            .insert(b.name.get_ref().clone(), (buffers.len() as u16, size))
            .is_some()
        {
            let name = b.name.get_ref().clone();
            return Err(err(at(&b.name), Check::BufferTwice { name }));
        }
        buffers.push(size);
    }

    // Budgets and the ring.
    let budgets = check_budgets(spec, &err)?;
    let entries = *spec.ring.entries.get_ref();
    let entries_at = at(&spec.ring.entries);
    if entries == 0 || !entries.is_power_of_two() || entries > 32768 {
        return Err(err(entries_at, Check::Entries { entries }));
    }

    // Programs.
    let (programs, objects) = check_programs(spec, base, copts, &err, &fail)?;
    let prog_names: HashMap<&str, usize> = programs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let prog = |n: &Spanned<String>| -> Result<usize, WorkloadError> {
        prog_names
            .get(n.get_ref().as_str())
            .copied()
            .ok_or_else(|| {
                let mut have: Vec<String> = prog_names.keys().map(|k| k.to_string()).collect();
                have.sort();
                let name = n.get_ref().clone();
                err(at(n), Check::NoProgram { name, have })
            })
    };
    let ring_program = spec.ring.program.as_ref().map(prog).transpose()?;

    // Map pre-loads.
    let mut maps = Vec::new();
    let mut preloads = 0usize;
    for m in &spec.maps {
        let p = prog(&m.program)?;
        preloads = preloads.saturating_add(m.entries.len());
        if preloads > limits::MAX_MAP_ENTRIES {
            return Err(err(
                at(&m.map),
                Check::TooManyPreloads {
                    max: limits::MAX_MAP_ENTRIES,
                },
            ));
        }
        let mut entries = Vec::new();
        // Checked without the filesystem, a program named by path has no
        // known maps: its entries are checked at setup.
        if let Some(obj) = &objects[p] {
            let Some(def) = obj.maps.iter().find(|d| d.name == *m.map.get_ref()) else {
                return Err(err(
                    at(&m.map),
                    Check::NoMap {
                        program: m.program.get_ref().clone(),
                        map: m.map.get_ref().clone(),
                    },
                ));
            };
            for e in &m.entries {
                entries.push(encode_entry(loc, e, def, &names)?);
            }
        }
        maps.push(PlannedMap {
            prog: p,
            map: m.map.get_ref().clone(),
            map_at: at(&m.map),
            entries,
        });
    }

    // Chains.
    let mut chains_total = Total::new(limits::MAX_CHAINS, "chains (every repetition counted)");
    let mut steps_total = Total::new(limits::MAX_TOTAL_STEPS, "steps (every repetition counted)");
    let steps_limit = budgets.steps_per_chain.min(limits::MAX_STEPS_PER_CHAIN);
    let mut chains = Vec::new();
    for c in &spec.chains {
        let steps_at = at(&c.steps);
        let nsteps = c.steps.get_ref().len() as u64;
        if nsteps == 0 {
            return Err(err(steps_at, Check::NoSteps));
        }
        if nsteps > steps_limit as u64 {
            return Err(err(
                steps_at,
                Check::TooManySteps {
                    steps: nsteps,
                    limit: steps_limit,
                    max: limits::MAX_STEPS_PER_CHAIN,
                },
            ));
        }
        let repeat_at = c.repeat.as_ref().map_or(steps_at, at);
        let repeat = value(&c.repeat, 1);
        if repeat == 0 {
            return Err(err(repeat_at, Check::RepeatZero));
        }
        if repeat > limits::MAX_REPEAT {
            return Err(err(
                repeat_at,
                Check::TooManyCopies {
                    repeat,
                    max: limits::MAX_REPEAT,
                },
            ));
        }
        chains_total
            .add(repeat, Figure::Count)
            .map_err(|m| fail(repeat_at, m.into()))?;
        steps_total
            .add(nsteps * repeat, Figure::Count)
            .map_err(|m| fail(repeat_at, m.into()))?;
        let last = repeat - 1;
        let user_data = value(&c.user_data, 0);
        if user_data.checked_add(last).is_none() {
            return Err(err(
                c.user_data.as_ref().map_or(repeat_at, at),
                Check::UserDataOverflow { user_data, last },
            ));
        }
        let off_stride = value(&c.repeat_off_stride, 0);
        let buf_stride = value(&c.repeat_buf_stride, 0);
        let notify = match c.notify.as_ref().map(|n| n.get_ref().as_str()) {
            None | Some("final") => Notify::Final,
            Some("all") => Notify::All,
            Some("none") => Notify::None,
            Some(other) => {
                return Err(err(
                    c.notify.as_ref().map_or(0, at),
                    Check::Notify {
                        notify: other.to_string(),
                    },
                ));
            }
        };
        let link = match c.link.as_ref().map(|n| n.get_ref().as_str()) {
            None | Some("auto") => LinkMode::Auto,
            Some("engine") => LinkMode::Engine,
            Some("kernel") => LinkMode::Kernel,
            Some("kernel-hard") => LinkMode::KernelHard,
            Some(other) => {
                return Err(err(
                    c.link.as_ref().map_or(0, at),
                    Check::Link {
                        link: other.to_string(),
                    },
                ));
            }
        };
        let chain_prog = c.program.as_ref().map(prog).transpose()?;
        let mut steps = Vec::new();
        for s in c.steps.get_ref() {
            steps.push(check_step(
                s,
                &StepContext {
                    loc,
                    names: &names,
                    buffers: &buffer_names,
                    last,
                    off_stride: c.repeat_off_stride.as_ref(),
                    buf_stride: c.repeat_buf_stride.as_ref(),
                    default_ud: user_data,
                },
                &prog,
            )?);
        }
        // What the engine would refuse at submission, said here with a place.
        let has_programs = chain_prog.is_some() || steps.iter().any(|s| s.program.is_some());
        let kernel = match link {
            LinkMode::Engine => false,
            LinkMode::Auto => !has_programs && ring_program.is_none(),
            LinkMode::Kernel | LinkMode::KernelHard => true,
        };
        if kernel {
            let link_at = c.link.as_ref().map_or(steps_at, at);
            if has_programs {
                let problem = KernelLinkProblem::Programs;
                return Err(err(link_at, Check::KernelLink(problem)));
            }
            if steps.iter().any(|s| s.kind == StepKind::Bpf) {
                let problem = KernelLinkProblem::BpfSteps;
                return Err(err(link_at, Check::KernelLink(problem)));
            }
            if nsteps > entries as u64 {
                let problem = KernelLinkProblem::TooLong {
                    steps: nsteps as usize,
                    entries,
                };
                return Err(err(steps_at, Check::KernelLink(problem)));
            }
        }
        chains.push(ChainTemplate {
            steps,
            program: chain_prog,
            notify,
            link,
            drain: c.drain,
            repeat,
            off_stride,
            buf_stride,
            user_data,
        });
    }

    let timeout = match &spec.run.timeout_s {
        None => None,
        Some(t) => {
            let s = *t.get_ref();
            if !(0.0..=limits::MAX_TIMEOUT_S).contains(&s) {
                return Err(err(
                    at(t),
                    Check::Timeout {
                        seconds: s,
                        max: limits::MAX_TIMEOUT_S,
                    },
                ));
            }
            (s > 0.0).then(|| Duration::from_secs_f64(s))
        }
    };
    Ok(Plan {
        entries,
        entries_at,
        budgets,
        files,
        streams,
        buffers,
        programs,
        ring_program,
        maps,
        chains,
        concurrency: spec.run.concurrency,
        timeout,
    })
}

fn check_budgets(
    spec: &Spec,
    err: &impl Fn(usize, Check) -> WorkloadError,
) -> Result<Budgets, WorkloadError> {
    let mut budgets = Budgets::default();
    let Some(b) = &spec.budgets else {
        return Ok(budgets);
    };
    fn capped<T: Copy + PartialOrd + Into<u64>>(
        v: &Spanned<T>,
        max: T,
        key: &'static str,
        err: &impl Fn(usize, Check) -> WorkloadError,
    ) -> Result<T, WorkloadError> {
        let n = *v.get_ref();
        if n > max {
            let (value, max) = (n.into(), max.into());
            return Err(err(at(v), Check::Budget { key, value, max }));
        }
        Ok(n)
    }
    if let Some(v) = &b.insns_per_decision {
        budgets.insns_per_decision =
            capped(v, limits::MAX_INSNS_PER_DECISION, "insns_per_decision", err)?;
    }
    if let Some(v) = &b.submits_per_decision {
        budgets.submits_per_decision = capped(
            v,
            limits::MAX_SUBMITS_PER_DECISION,
            "submits_per_decision",
            err,
        )?;
    }
    if let Some(v) = &b.steps_per_chain {
        budgets.steps_per_chain = capped(v, limits::MAX_STEPS_PER_CHAIN, "steps_per_chain", err)?;
    }
    if let Some(v) = &b.attempts_per_step {
        budgets.attempts_per_step = *v.get_ref();
    }
    Ok(budgets)
}

type Programs = (Vec<PlannedProgram>, Vec<Option<ElfObject>>);

fn check_programs(
    spec: &Spec,
    base: &Path,
    copts: &CheckOptions,
    err: &impl Fn(usize, Check) -> WorkloadError,
    fail: &impl Fn(usize, SpecProblem) -> WorkloadError,
) -> Result<Programs, WorkloadError> {
    let mut programs: Vec<PlannedProgram> = Vec::new();
    let mut objects = Vec::new();
    let mut object_total = Total::new(limits::MAX_TOTAL_PROGRAM_BYTES, "program objects");
    let mut map_total = Total::new(limits::MAX_TOTAL_MAP_BYTES, "the programs' maps");
    for p in &spec.programs {
        let obj_at = at(&p.object);
        if programs.len() >= limits::MAX_PROGRAMS {
            return Err(err(
                obj_at,
                Check::TooManyPrograms {
                    max: limits::MAX_PROGRAMS,
                },
            ));
        }
        let (label, bytes): (String, Option<Vec<u8>>) =
            match ringside_engine::progs::builtin(p.object.get_ref()) {
                Some(b) => (format!("{}.o", p.object.get_ref()), Some(b.to_vec())),
                None if !copts.filesystem => (p.object.get_ref().clone(), None),
                None => {
                    let path = resolve(base, p.object.get_ref());
                    let bytes = files::read_bounded(&path, limits::MAX_PROGRAM_OBJECT).map_err(
                        |e| match e {
                            files::FileProblem::Io(error) => err(
                                obj_at,
                                Check::NoObject {
                                    object: p.object.get_ref().clone(),
                                    error,
                                },
                            ),
                            problem => err(
                                obj_at,
                                Check::ObjectFile {
                                    path: path.clone(),
                                    problem: Box::new(problem),
                                },
                            ),
                        },
                    )?;
                    (path.display().to_string(), Some(bytes))
                }
            };
        if let Some(b) = &bytes {
            object_total
                .add(b.len() as u64, Figure::Bytes)
                .map_err(|m| fail(obj_at, m.into()))?;
        }
        let parsed = match &bytes {
            Some(b) => Some(elf::parse(&label, b).map_err(|e| fail(obj_at, e.into()))?),
            None => None,
        };
        let section = match (&p.section, &parsed) {
            (Some(s), Some(parsed)) => {
                parsed
                    .program(s.get_ref())
                    .map_err(|e| fail(at(s), e.into()))?;
                s.get_ref().clone()
            }
            (Some(s), None) => s.get_ref().clone(),
            (None, Some(parsed)) if parsed.programs.len() == 1 => parsed.programs[0].name.clone(),
            (None, Some(parsed)) => {
                let have = parsed.programs.iter().map(|p| p.name.clone()).collect();
                return Err(err(obj_at, Check::SeveralPrograms { have }));
            }
            (None, None) => p.object.get_ref().clone(),
        };
        if let Some(parsed) = &parsed {
            let arenas = parsed
                .maps
                .iter()
                .fold(0u64, |s, m: &MapDef| s.saturating_add(m.arena_bytes()));
            map_total
                .add(arenas, Figure::Bytes)
                .map_err(|m| fail(obj_at, m.into()))?;
        }
        let exec = match &p.exec {
            None => ExecMode::Compiled,
            Some(e) => match e.get_ref().as_str() {
                "compiled" => ExecMode::Compiled,
                "interpreter" => ExecMode::Interpreter,
                other => {
                    return Err(err(
                        at(e),
                        Check::Exec {
                            exec: other.to_string(),
                        },
                    ));
                }
            },
        };
        let opts = LoadOptions {
            trusted: p.trusted,
            exec: if copts.interpreter {
                ExecMode::Interpreter
            } else {
                exec
            },
            ..Default::default()
        };
        if copts.verify
            && let Some(b) = &bytes
        {
            Registry::new()
                .load_programs(&label, b, &[&section], &opts)
                .map_err(|e| fail(obj_at, e.into()))?;
        }
        let name = p
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or(section.clone());
        let name_at = p.name.as_ref().map_or(obj_at, at);
        if programs.iter().any(|q| q.name == name) {
            return Err(err(name_at, Check::ProgramTwice { name }));
        }
        programs.push(PlannedProgram {
            label,
            bytes,
            section,
            name,
            at: obj_at,
            name_at,
            opts,
        });
        objects.push(parsed);
    }
    Ok((programs, objects))
}

struct StepContext<'a> {
    loc: &'a Locator,
    names: &'a HashMap<String, u32>,
    buffers: &'a HashMap<String, (u16, u64)>,
    /// The last repetition's number.
    last: u64,
    off_stride: Option<&'a Spanned<u64>>,
    buf_stride: Option<&'a Spanned<u64>>,
    default_ud: u64,
}

fn check_step(
    s: &StepSpecToml,
    cx: &StepContext<'_>,
    prog: &impl Fn(&Spanned<String>) -> Result<usize, WorkloadError>,
) -> Result<StepTemplate, WorkloadError> {
    let loc = cx.loc;
    let Some(opcode) = op::from_name(s.op.get_ref()) else {
        return Err(loc
            .at(
                &s.op,
                Check::UnknownOp {
                    op: s.op.get_ref().clone(),
                },
            )
            .into());
    };
    let kind = if opcode == OP_BPF {
        StepKind::Bpf
    } else {
        StepKind::Io
    };
    let fd = match &s.file {
        Some(f) => *cx.names.get(f.get_ref()).ok_or_else(|| {
            loc.at(
                f,
                Check::NoFile {
                    name: f.get_ref().clone(),
                },
            )
        })? as i32,
        None if op::needs_file(opcode) => {
            return Err(loc
                .at(
                    &s.op,
                    Check::NeedsFile {
                        op: s.op.get_ref().clone(),
                    },
                )
                .into());
        }
        None => -1,
    };
    // The last repetition's offsets, each sum checked.
    let stride_of = |stride: Option<&Spanned<u64>>, start: u64| -> Result<u64, SpecError> {
        let Some(st) = stride else {
            return Ok(start);
        };
        st.get_ref()
            .checked_mul(cx.last)
            .and_then(|d| start.checked_add(d))
            .ok_or_else(|| {
                loc.at(
                    st,
                    Check::StrideOverflow {
                        start,
                        stride: *st.get_ref(),
                        last: cx.last,
                    },
                )
            })
    };
    stride_of(cx.off_stride, s.off)?;
    let buf_index = match &s.buffer {
        Some(b) => {
            let (i, size) = *cx.buffers.get(b.get_ref()).ok_or_else(|| {
                let name = b.get_ref().clone();
                loc.at(b, Check::NoBuffer { name })
            })?;
            let last_off = stride_of(cx.buf_stride, s.buf_off)?;
            if last_off
                .checked_add(s.len as u64)
                .is_none_or(|end| end > size)
            {
                return Err(loc
                    .at(
                        b,
                        Check::OutsideBuffer {
                            off: last_off,
                            len: s.len,
                            buffer: b.get_ref().clone(),
                            size,
                            last_repetition: cx.last > 0,
                        },
                    )
                    .into());
            }
            i
        }
        None if op::needs_buffer(opcode) => {
            return Err(loc
                .at(
                    &s.op,
                    Check::NeedsBuffer {
                        op: s.op.get_ref().clone(),
                    },
                )
                .into());
        }
        None => NO_BUF,
    };
    let program = s.program.as_ref().map(prog).transpose()?;
    if kind == StepKind::Bpf && program.is_none() {
        return Err(loc.at(&s.op, Check::BpfNeedsProgram).into());
    }
    Ok(StepTemplate {
        kind,
        sqe: RsSqe {
            opcode: if kind == StepKind::Bpf {
                op::NOP
            } else {
                opcode
            },
            _rsvd: 0,
            buf_index,
            fd,
            off: s.off,
            buf_off: s.buf_off,
            len: s.len,
            op_flags: s.flags,
            user_data: s.user_data.unwrap_or(cx.default_ud),
        },
        program,
        default_ud: s.user_data.is_none(),
    })
}

fn encode_entry(
    loc: &Locator,
    e: &MapEntrySpec,
    def: &MapDef,
    names: &HashMap<String, u32>,
) -> Result<(Vec<u8>, Vec<u8>, usize), SpecError> {
    let k = encode_value(loc, &e.key, def.key_size, names)?;
    let v = encode_value(loc, &e.value, def.value_size, names)?;
    Ok((k, v, at(&e.key)))
}

fn encode_value(
    loc: &Locator,
    v: &toml::Spanned<toml::Value>,
    size: u32,
    names: &HashMap<String, u32>,
) -> Result<Vec<u8>, SpecError> {
    fn field(s: &str, names: &HashMap<String, u32>) -> Result<Vec<u8>, FieldError> {
        let (ty, val) = s
            .split_once(':')
            .ok_or_else(|| FieldError::Shape(s.to_string()))?;
        let num = |v: &str| -> Result<i128, FieldError> {
            let v = v.trim();
            let r = if let Some(h) = v.strip_prefix("0x") {
                i128::from_str_radix(h, 16)
            } else {
                v.parse::<i128>()
            };
            r.map_err(|_| FieldError::NotNumber(v.to_string()))
        };
        let fit = |n: i128, bytes: usize, signed: bool| -> Result<Vec<u8>, FieldError> {
            let bits = bytes * 8;
            let (lo, hi) = if signed {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, (1i128 << bits) - 1)
            };
            if n < lo || n > hi {
                return Err(FieldError::Fit { value: n, bytes });
            }
            Ok((n as u128).to_le_bytes()[..bytes].to_vec())
        };
        match ty {
            "u8" => fit(num(val)?, 1, false),
            "u16" => fit(num(val)?, 2, false),
            "u32" => fit(num(val)?, 4, false),
            "u64" => fit(num(val)?, 8, false),
            "i32" => fit(num(val)?, 4, true),
            "i64" => fit(num(val)?, 8, true),
            "file" => names
                .get(val)
                .map(|i| i.to_le_bytes().to_vec())
                .ok_or_else(|| FieldError::NoName(val.to_string())),
            // Pairs of ASCII hex digits only: slicing anything else by byte
            // pairs could split a character.
            "hex" if val.len() % 2 != 0 || !val.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Err(FieldError::NotHex(val.to_string()))
            }
            "hex" => (0..val.len() / 2)
                .map(|i| {
                    u8::from_str_radix(&val[2 * i..2 * i + 2], 16)
                        .map_err(|_| FieldError::NotHexByte(val.to_string()))
                })
                .collect(),
            other => Err(FieldError::Type(other.to_string())),
        }
    }
    let bytes = match v.get_ref() {
        toml::Value::Integer(n) => {
            let n = *n as i128;
            if size > 16 || (size < 16 && (n < 0 || n >= 1i128 << (size * 8))) {
                let bytes = size as usize;
                return Err(loc.at(v, FieldError::Fit { value: n, bytes }));
            }
            (n as u128).to_le_bytes()[..size as usize].to_vec()
        }
        toml::Value::String(s) => field(s, names).map_err(|e| loc.at(v, e))?,
        toml::Value::Array(a) => {
            let mut out = Vec::new();
            for f in a {
                let toml::Value::String(s) = f else {
                    return Err(loc.at(v, Check::ArrayItem));
                };
                out.extend(field(s, names).map_err(|e| loc.at(v, e))?);
            }
            out
        }
        _ => {
            return Err(loc.at(v, Check::ValueShape));
        }
    };
    if bytes.len() != size as usize {
        let len = bytes.len();
        return Err(loc.at(v, Check::ValueSize { len, size }));
    }
    Ok(bytes)
}
