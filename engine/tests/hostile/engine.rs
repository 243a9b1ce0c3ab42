//! The corpus through the engine, under either backend
//! (`RINGSIDE_TEST_BACKEND`, as engine/tests/patterns.rs; scripts/kernel-checks
//! runs this binary under both in a 7.1+ guest). Each case becomes a real
//! ELF object, loaded by `Engine::load_object` as an application would, and
//! decides real chains on a real ring.
//!
//! - An accepted program must end every chain the same way, with the same
//!   application completions and map contents, under the userspace engine
//!   and inside the kernel's io_uring loop (or be refused there by the
//!   kernel's verifier, with its message).
//! - A refused program, loaded anyway as trusted (structure checked, memory
//!   not proved: the one way past ringside's proof), runs in userspace under
//!   the interpreter, which checks every access, and ends every chain; the
//!   kernel backend refuses it: the kernel's verifier would see its context
//!   as part of the loop's state, so only ringside's proof keeps a program
//!   inside its regions there (a first run of this test found 38 such
//!   programs that the kernel's verifier let through).

use super::*;
use crate::common::{backend, engine_under, load_options};
use object::write::{Object, Relocation, StandardSegment, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};
use ringside_engine::abi::{RsSqe, op};
use ringside_engine::event::{AppCompletion, LinkMode, Notify};
use ringside_engine::kernel::{Backend, KernelError, Unsupported};
use ringside_engine::program::elf::MAP_DEF_SIZE;
use ringside_engine::{ChainSpec, Engine, EngineConfig, EngineError, StepSpec};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// `R_BPF_64_64`, the relocation of an `lddw` of a map.
const R_BPF_64_64: u32 = 1;

/// The case as the ELF object clang would have written: its code in
/// `ringside/h`, the corpus' maps in `maps`, a relocation per map `lddw`.
fn elf(parsed: &ElfObject) -> Vec<u8> {
    let mut o = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let maps = o.add_section(
        o.segment_name(StandardSegment::Data).to_vec(),
        b"maps".to_vec(),
        SectionKind::Data,
    );
    let mut syms = Vec::new();
    for m in &parsed.maps {
        let mut def = Vec::new();
        let kind = match m.kind {
            ringside_engine::program::maps::MapKind::Hash => MAP_TYPE_HASH,
            _ => MAP_TYPE_ARRAY,
        };
        for v in [kind, m.key_size, m.value_size, m.max_entries, m.flags] {
            def.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(def.len() as u64, MAP_DEF_SIZE);
        let at = o.append_section_data(maps, &def, 4);
        syms.push(o.add_symbol(Symbol {
            name: m.name.as_bytes().to_vec(),
            value: at,
            size: MAP_DEF_SIZE,
            kind: SymbolKind::Data,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(maps),
            flags: SymbolFlags::None,
        }));
    }
    let p = &parsed.programs[0];
    let text = o.add_section(vec![], p.section.as_bytes().to_vec(), SectionKind::Text);
    o.append_section_data(text, &p.code, 8);
    for r in &p.relocs {
        let RelocTarget::Map(m) = r.target else {
            unreachable!("the corpus relocates maps only")
        };
        o.add_relocation(
            text,
            Relocation {
                offset: r.insn as u64 * 8,
                symbol: syms[m],
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: R_BPF_64_64,
                },
            },
        )
        .expect("a map relocation");
    }
    o.write().expect("an ELF object")
}

/// What the chains run against: an 8 KiB regular file opened read-only
/// (reads succeed, come back short at its end, writes fail) and /dev/null
/// (reads end at once). Nothing a program can issue against them blocks,
/// except a timeout it asks for.
struct Files {
    data: File,
    null: File,
}

fn files() -> Files {
    let mut f = tempfile::tempfile().expect("a temporary file");
    let bytes: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    f.write_all(&bytes).expect("write the data file");
    // Read-only from here on: a WRITE to it fails with -EBADF.
    let path = format!("/proc/self/fd/{}", f.as_raw_fd());
    Files {
        data: File::open(path).expect("reopen the data file read-only"),
        null: File::open("/dev/null").expect("/dev/null"),
    }
}

fn engine(files: &Files, backend: Backend) -> Engine {
    engine_under(
        backend,
        EngineConfig {
            files: vec![
                (files.data.as_raw_fd(), "data".into()),
                (files.null.as_raw_fd(), "null".into()),
            ],
            buffers: vec![4096],
            ..Default::default()
        },
    )
}

/// Two-step chains whose first completion gives the program a success, a
/// short read, an end of file and an error to decide on.
fn chains(prog: ringside_engine::program::ProgId) -> Vec<ChainSpec> {
    let io = |opcode: u8, fd: i32, off: u64, len: u32, user_data: u64| {
        StepSpec::io(RsSqe {
            opcode,
            fd,
            buf_index: 0,
            buf_off: 0,
            off,
            len,
            user_data,
            ..Default::default()
        })
    };
    [
        StepSpec::nop(10),
        io(op::READ, 0, 0, 64, 20),
        io(op::READ, 0, 8190, 64, 30),
        io(op::READ, 1, 0, 64, 40),
        io(op::WRITE, 0, 0, 64, 50),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, first)| ChainSpec {
        user_data: i as u64 + 1,
        steps: vec![first, StepSpec::nop(100 + i as u64)],
        program: Some(prog),
        notify: Notify::All,
        drain: false,
        link: LinkMode::Auto,
    })
    .collect()
}

/// How a case's chains ended, in a form both backends must agree on.
#[derive(Debug, PartialEq)]
struct Run {
    /// (user_data, outcome, res) per chain, in submission order.
    ends: Vec<(u64, String, i32)>,
    completions: Vec<AppCompletion>,
    /// Each map's entries, sorted.
    maps: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Each chain alone, to its end or for at most 3 s (a program may ask for
/// a long timeout), then shutdown. `Err` is the kernel's refusal.
fn run_case(c: &Case, elf: &[u8], backend: Backend, trusted: bool) -> Result<Run, EngineError> {
    let f = files();
    let mut e = engine(&f, backend);
    let obj = e.load_object(
        "hostile.o",
        elf,
        &LoadOptions {
            trusted,
            ..load_options()
        },
    )?;
    // The kernel's verdict now, before any chain (a no-op in userspace).
    e.link_programs()?;
    let prog = obj.programs[0].1;
    let mut ends = Vec::new();
    let mut completions = Vec::new();
    for spec in chains(prog) {
        let user_data = spec.user_data;
        e.submit_chain(spec)?;
        let deadline = Instant::now() + Duration::from_secs(3);
        while e.active_chains() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            e.run_timeout(true, Some(left))?;
        }
        // Still waiting (on a timeout it asked for): shutdown ends it, and
        // this engine takes no more chains.
        let shut = e.active_chains() > 0;
        if shut {
            e.shutdown()?;
        }
        for end in e.take_finished() {
            ends.push((end.user_data, format!("{:?}", end.outcome), end.res));
        }
        completions.extend(e.take_completions());
        assert!(
            e.active_chains() == 0 && ends.last().map(|x| x.0) == Some(user_data),
            "{} [{}]: chain {user_data} did not end under {backend:?}, not even at shutdown",
            c.name,
            c.class
        );
        if shut {
            break;
        }
    }
    let maps = obj
        .maps
        .iter()
        .map(|&(_, m)| {
            let mut v = e.map_entries(m).expect("the case's map");
            v.sort();
            v
        })
        .collect();
    Ok(Run {
        ends,
        completions,
        maps,
    })
}

fn say(text: &str) {
    // Straight to fd 2: libtest captures what passing tests print.
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn refusal(c: &Case, len: usize, e: &EngineError) -> Option<String> {
    match e {
        EngineError::Kernel(KernelError::Verifier {
            program,
            insn,
            reason,
            message,
        }) => {
            // Where, in ringside's numbering: the case's program, one of
            // its instructions.
            assert!(
                program.as_deref() == Some("h") && insn.is_some_and(|i| i < len),
                "{}: the refusal names {program:?} insn {insn:?} (of {len}):\n{message}",
                c.name
            );
            // And why, in the verifier's words.
            let why = reason
                .as_deref()
                .unwrap_or_else(|| panic!("{}: a refusal without a reason:\n{message}", c.name));
            Some(format!("{} [{}]: {why}", c.name, c.class))
        }
        _ => None,
    }
}

#[test]
fn accepted_programs_end_their_chains_alike_under_both_backends() {
    let accepted: Vec<Case> = corpus()
        .into_iter()
        .filter(|c| matches!(c.verdict, Pass))
        .collect();
    let kernel = backend() == Backend::Kernel;
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for c in &accepted {
        let parsed = object(c);
        let bytes = elf(&parsed);
        let len = parsed.programs[0].code.len() / 8;
        let user = match run_case(c, &bytes, Backend::User, false) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{} [{}]: user backend: {e}", c.name, c.class));
                continue;
            }
        };
        for (ud, outcome, res) in &user.ends {
            // A run-time memory error (the interpreter's checks or the
            // compiled code's) fails the chain with -EFAULT.
            if outcome.contains("ProgramError") && *res == -libc::EFAULT {
                failures.push(format!(
                    "{} [{}]: chain {ud}: the engine stopped an accepted program: {outcome}",
                    c.name, c.class
                ));
            }
        }
        if !kernel {
            continue;
        }
        match run_case(c, &bytes, Backend::Kernel, false) {
            Ok(k) if k == user => {}
            Ok(k) => failures.push(format!(
                "{} [{}]: the backends disagree:\n  user:   {user:?}\n  kernel: {k:?}",
                c.name, c.class
            )),
            Err(e) => match refusal(c, len, &e) {
                Some(r) => refused.push(r),
                None => failures.push(format!("{} [{}]: kernel backend: {e}", c.name, c.class)),
            },
        }
    }
    if kernel {
        say(&format!(
            "\n{} accepted hostile programs under both backends; the kernel's verifier refused {} of them{}\n",
            accepted.len(),
            refused.len(),
            refused
                .iter()
                .map(|r| format!("\n  {r}"))
                .collect::<String>()
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn refused_programs_loaded_as_trusted_never_run_unchecked() {
    let backend = backend();
    let (mut structure, mut unproved, mut ran) = (0, 0, 0);
    let mut failures = Vec::new();
    let refused: Vec<Case> = corpus()
        .into_iter()
        .filter(|c| !matches!(c.verdict, Pass))
        .collect();
    for c in &refused {
        match run_case(c, &elf(&object(c)), backend, true) {
            // Userspace: the interpreter checked every access, and every
            // chain ended (run_case asserts it).
            Ok(_) if backend == Backend::User => ran += 1,
            Ok(r) => failures.push(format!(
                "{} [{}]: the kernel loop ran a program whose memory was not proved: {r:?}",
                c.name, c.class
            )),
            Err(EngineError::Load(_)) => structure += 1,
            Err(EngineError::Kernel(KernelError::Unsupported(Unsupported::Trusted {
                program,
            }))) if program == "h" => unproved += 1,
            Err(e) => failures.push(format!("{} [{}]: {e}", c.name, c.class)),
        }
    }
    say(&format!(
        "\n{} refused hostile programs loaded as trusted under the {backend:?} backend: {structure} refused by ringside's structural checks, {unproved} refused by the kernel backend as unproved, {ran} ran under the interpreter's checks to the end of every chain\n",
        refused.len(),
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
