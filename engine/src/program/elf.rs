//! Program loading: ELF objects from `clang -O2 -target bpf`.
//!
//! An object holds programs in sections named `ringside/<name>`, maps in the
//! `maps` section (kernel-style `struct rs_map_def`), and read-only data in
//! `.rodata*`. Map and rodata references are `lddw` instructions with an
//! `R_BPF_64_64` relocation; we record them so the verifier can type the
//! loaded value and the VM can patch in the real address.
//!
//! Anything unexpected is a [`LoadError`] naming the file, section, and the
//! instruction or byte offset, never a panic: objects are untrusted input.

use crate::program::maps::{MapDef, MapDefError};
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
};
use std::fmt;

/// Section name prefix of programs.
pub const PROG_SECTION_PREFIX: &str = "ringside/";
/// Section holding map definitions.
pub const MAPS_SECTION: &str = "maps";
/// Most maps one object may declare (the kernel's limit for one program).
pub const MAX_MAPS: usize = 64;
/// Most bytes of map values one object may declare (each map may take up to
/// [`crate::program::maps::MAX_ARENA_BYTES`]): an object is untrusted input
/// (it may come from a recording), and its maps are allocated when it loads.
pub const MAX_OBJECT_MAP_BYTES: u64 = 512 << 20;
/// Bytes of `struct rs_map_def` (five u32 fields).
pub const MAP_DEF_SIZE: u64 = 20;
pub use crate::program::image::{INSN_SIZE, ProgramImage, Reloc, RelocTarget};
/// `lddw` opcode.
const LD_DW_IMM: u8 = 0x18;
/// `R_BPF_64_64`: 64-bit immediate of an `lddw`.
const R_BPF_64_64: u32 = 1;
/// `R_BPF_64_32`: call to a function.
const R_BPF_64_32: u32 = 10;
/// `R_BPF_64_ABS64` / `R_BPF_64_ABS32` / `R_BPF_64_NODYLD32`: data relocations
/// (debug info, BTF); not expected inside program text.
const EM_BPF: u16 = 247;

/// Where a loading problem is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File name (or label) of the object.
    pub file: String,
    /// Section, when the problem is inside one.
    pub section: Option<String>,
    /// Instruction index inside the section.
    pub insn: Option<usize>,
    /// Byte offset in the file.
    pub offset: Option<u64>,
    /// What is wrong (boxed: errors travel in `Result`s, kept small).
    pub reason: Box<LoadProblem>,
}

/// What is wrong with an object (or a program in it), one variant per
/// cause. Where it is (file, section, instruction, offset) is the
/// [`LoadError`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadProblem {
    /// No ELF magic.
    #[error("not an ELF file (bad magic)")]
    BadMagic,
    /// The ELF parser refuses it (its message).
    #[error("malformed ELF: {0}")]
    Malformed(object::Error),
    /// A 32-bit ELF.
    #[error("not a 64-bit ELF object (build with clang -target bpf)")]
    Not64Bit,
    /// Another machine's object.
    #[error("wrong machine {0} (expected {EM_BPF}, EM_BPF: build with clang -target bpf)")]
    Machine(u16),
    /// A big-endian object.
    #[error("big-endian BPF object (build with -target bpf or bpfel)")]
    BigEndian,
    /// Not a `.o`.
    #[error("not a relocatable object (expected the .o from clang -c)")]
    NotRelocatable,
    /// A section's contents cannot be read (the ELF parser's message).
    #[error("unreadable: {0}")]
    Unreadable(object::Error),
    /// A map definition that does not fit the `maps` section.
    #[error(
        "map `{name}`: definition at byte {at} is {size} bytes, needs {MAP_DEF_SIZE} inside a {section_len}-byte section"
    )]
    MapDefSize {
        /// The map's symbol.
        name: String,
        /// Its byte in the section.
        at: u64,
        /// Its symbol's size.
        size: u64,
        /// The section's size.
        section_len: usize,
    },
    /// A map definition out of range.
    #[error("{0}")]
    MapDef(MapDefError),
    /// More than [`MAX_MAPS`] maps.
    #[error("map `{name}`: more than {MAX_MAPS} maps in one object")]
    TooManyMaps {
        /// The map past the limit.
        name: String,
    },
    /// The object's maps would take more than [`MAX_OBJECT_MAP_BYTES`].
    #[error(
        "map `{name}`: the object's maps would hold {total} bytes of values, more than the {MAX_OBJECT_MAP_BYTES} one object may take"
    )]
    ObjectMapBytes {
        /// The map that crosses the limit.
        name: String,
        /// Bytes of values with it.
        total: u64,
    },
    /// A program section cannot be read (the ELF parser's message).
    #[error("unreadable (truncated file?): {0}")]
    ProgramUnreadable(object::Error),
    /// `ringside/` with nothing after it.
    #[error("program section without a name")]
    Unnamed,
    /// Code that is not whole instructions (or none).
    #[error("{0} bytes is not a whole number of 8-byte instructions")]
    CodeLength(usize),
    /// A relocation between instructions.
    #[error("relocation at byte {0} is not on an instruction")]
    RelocOffset(u64),
    /// A relocation of another format.
    #[error("relocation without an ELF type")]
    RelocNoType,
    /// A relocation against no symbol.
    #[error("relocation without a symbol")]
    RelocNoSymbol,
    /// A relocation against a symbol the object does not have.
    #[error("relocation names a bad symbol: {0}")]
    RelocBadSymbol(object::Error),
    /// A 64-bit relocation not at an `lddw`.
    #[error("relocation against `{symbol}` is not on an lddw instruction")]
    RelocNotLddw {
        /// The symbol.
        symbol: String,
    },
    /// A relocation into `maps` that is no map's start.
    #[error("relocation against `{symbol}`+{addend} names no map definition")]
    RelocNoMap {
        /// The symbol.
        symbol: String,
        /// The addend.
        addend: u64,
    },
    /// A relocation past the end of a rodata section.
    #[error("relocation points past the end of `{section}`")]
    RelocPastRodata {
        /// The section.
        section: String,
    },
    /// A global variable (`.data`, `.bss`).
    #[error("global variable `{symbol}` in `{section}` is not supported: keep state in a map")]
    GlobalVariable {
        /// The variable.
        symbol: String,
        /// Its section.
        section: String,
    },
    /// A relocation against a section the loader does not take.
    #[error("relocation against `{symbol}` in section `{section}` is not supported")]
    RelocSection {
        /// The symbol.
        symbol: String,
        /// Its section.
        section: String,
    },
    /// A call of a function (bpf-to-bpf).
    #[error(
        "call to function `{symbol}`: bpf-to-bpf calls are not supported (make it `static __always_inline`)"
    )]
    FunctionCall {
        /// The function.
        symbol: String,
    },
    /// A relocation type the loader does not know.
    #[error("unknown relocation type {r_type} against `{symbol}`")]
    RelocKind {
        /// `r_type`.
        r_type: u32,
        /// The symbol.
        symbol: String,
    },
    /// No `ringside/<name>` section.
    #[error(
        "no program sections (a program is a function in a section named `{PROG_SECTION_PREFIX}<name>`)"
    )]
    NoPrograms,
    /// The program asked for is not in the object.
    #[error("missing section (the object has: {})", have.join(", "))]
    MissingSection {
        /// The program sections it has.
        have: Vec<String>,
    },
    /// The registry's maps would take more than
    /// [`crate::program::MAX_REGISTRY_MAP_BYTES`].
    #[error(
        "its maps would bring the values of every loaded map to {total} bytes, more than the {} allowed",
        crate::program::MAX_REGISTRY_MAP_BYTES
    )]
    RegistryMapBytes {
        /// Bytes of values with this object's.
        total: u64,
    },
    /// The verifier refuses the program (its reason; the instruction is the
    /// [`LoadError`]'s).
    #[error("{0}")]
    Verify(crate::program::verifier::Rejection),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(s) = &self.section {
            write!(f, ": section `{s}`")?;
        }
        if let Some(i) = self.insn {
            write!(f, ": insn {i}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " (file offset {o:#x})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for LoadError {}

/// A read-only data section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rodata {
    /// Section name.
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// A parsed object file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfObject {
    /// File name (or label) used in errors.
    pub file: String,
    /// Programs in section order.
    pub programs: Vec<ProgramImage>,
    /// Maps in `maps` section order.
    pub maps: Vec<MapDef>,
    /// Read-only data sections.
    pub rodata: Vec<Rodata>,
}

impl ElfObject {
    /// The program named `name` (the part after `ringside/`), or an error
    /// listing the programs the object has.
    pub fn program(&self, name: &str) -> Result<&ProgramImage, LoadError> {
        self.programs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let have = self.programs.iter().map(|p| p.section.clone()).collect();
                LoadError {
                    file: self.file.clone(),
                    section: Some(format!("{PROG_SECTION_PREFIX}{name}")),
                    insn: None,
                    offset: None,
                    reason: Box::new(LoadProblem::MissingSection { have }),
                }
            })
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, reason: LoadProblem) -> LoadError {
        LoadError {
            file: self.file.to_string(),
            section: None,
            insn: None,
            offset: None,
            reason: Box::new(reason),
        }
    }
    fn sec_err(&self, section: &str, offset: Option<u64>, reason: LoadProblem) -> LoadError {
        LoadError {
            section: Some(section.to_string()),
            offset,
            ..self.err(reason)
        }
    }
}

/// Parse an ELF object. `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8]) -> Result<ElfObject, LoadError> {
    let cx = Ctx { file };
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(LoadError {
            offset: Some(0),
            ..cx.err(LoadProblem::BadMagic)
        });
    }
    let obj = object::File::parse(bytes).map_err(|e| cx.err(LoadProblem::Malformed(e)))?;
    let object::File::Elf64(elf) = &obj else {
        return Err(cx.err(LoadProblem::Not64Bit));
    };
    let header = elf.elf_header();
    let endian = elf.endian();
    let machine = header.e_machine.get(endian);
    if machine != EM_BPF {
        return Err(LoadError {
            offset: Some(18),
            ..cx.err(LoadProblem::Machine(machine))
        });
    }
    if !obj.is_little_endian() {
        return Err(cx.err(LoadProblem::BigEndian));
    }
    if obj.kind() != object::ObjectKind::Relocatable {
        return Err(cx.err(LoadProblem::NotRelocatable));
    }

    // Maps: the symbols of the `maps` section, in address order.
    let mut maps = Vec::new();
    let mut map_offsets: Vec<u64> = Vec::new();
    let maps_section = obj.section_by_name(MAPS_SECTION);
    if let Some(sec) = &maps_section {
        let data = sec
            .data()
            .map_err(|e| cx.sec_err(MAPS_SECTION, None, LoadProblem::Unreadable(e)))?;
        let (sec_off, _) = sec.file_range().unwrap_or((0, 0));
        let mut syms: Vec<_> = obj
            .symbols()
            .filter(|s| {
                s.section_index() == Some(sec.index()) && s.kind() != object::SymbolKind::Section
            })
            .collect();
        syms.sort_by_key(|s| s.address());
        for sym in syms {
            let name = sym.name().unwrap_or("?").to_string();
            let at = sym.address();
            let size = if sym.size() == 0 {
                MAP_DEF_SIZE
            } else {
                sym.size()
            };
            if size < MAP_DEF_SIZE
                || at
                    .checked_add(MAP_DEF_SIZE)
                    .is_none_or(|end| end > data.len() as u64)
            {
                return Err(cx.sec_err(
                    MAPS_SECTION,
                    Some(sec_off + at),
                    LoadProblem::MapDefSize {
                        name,
                        at,
                        size,
                        section_len: data.len(),
                    },
                ));
            }
            let f = |i: u64| {
                let o = (at + 4 * i) as usize;
                u32::from_le_bytes(data[o..o + 4].try_into().expect("4 bytes"))
            };
            let def = MapDef::validate(&name, f(0), f(1), f(2), f(3), f(4)).map_err(|e| {
                cx.sec_err(MAPS_SECTION, Some(sec_off + at), LoadProblem::MapDef(e))
            })?;
            if maps.len() == MAX_MAPS {
                return Err(cx.sec_err(
                    MAPS_SECTION,
                    Some(sec_off + at),
                    LoadProblem::TooManyMaps { name },
                ));
            }
            let total: u64 = maps.iter().map(MapDef::arena_bytes).sum::<u64>() + def.arena_bytes();
            if total > MAX_OBJECT_MAP_BYTES {
                return Err(cx.sec_err(
                    MAPS_SECTION,
                    Some(sec_off + at),
                    LoadProblem::ObjectMapBytes { name, total },
                ));
            }
            maps.push(def);
            map_offsets.push(at);
        }
    }

    // Read-only data.
    let mut rodata = Vec::new();
    let mut rodata_index: Vec<(SectionIndex, usize)> = Vec::new();
    for sec in obj.sections() {
        let name = sec.name().unwrap_or("");
        if name == ".rodata" || name.starts_with(".rodata.") {
            let data = sec
                .data()
                .map_err(|e| cx.sec_err(name, None, LoadProblem::Unreadable(e)))?;
            rodata_index.push((sec.index(), rodata.len()));
            rodata.push(Rodata {
                name: name.to_string(),
                bytes: data.to_vec(),
            });
        }
    }

    let mut programs = Vec::new();
    for sec in obj.sections() {
        let Ok(sec_name) = sec.name() else { continue };
        let Some(prog_name) = sec_name.strip_prefix(PROG_SECTION_PREFIX) else {
            continue;
        };
        let (file_offset, _) = sec.file_range().unwrap_or((0, 0));
        let code = sec
            .data()
            .map_err(|e| {
                cx.sec_err(
                    sec_name,
                    Some(file_offset),
                    LoadProblem::ProgramUnreadable(e),
                )
            })?
            .to_vec();
        if prog_name.is_empty() {
            return Err(cx.sec_err(sec_name, Some(file_offset), LoadProblem::Unnamed));
        }
        if code.is_empty() || code.len() % INSN_SIZE != 0 {
            return Err(cx.sec_err(
                sec_name,
                Some(file_offset),
                LoadProblem::CodeLength(code.len()),
            ));
        }
        let mut code = code;
        let mut relocs = Vec::new();
        for (at, rel) in sec.relocations() {
            let insn = (at / INSN_SIZE as u64) as usize;
            let ierr = |reason: LoadProblem| LoadError {
                file: file.to_string(),
                section: Some(sec_name.to_string()),
                insn: Some(insn),
                offset: Some(file_offset + at),
                reason: Box::new(reason),
            };
            if at % INSN_SIZE as u64 != 0 || at as usize >= code.len() {
                return Err(ierr(LoadProblem::RelocOffset(at)));
            }
            let RelocationFlags::Elf { r_type } = rel.flags() else {
                return Err(ierr(LoadProblem::RelocNoType));
            };
            let RelocationTarget::Symbol(sym_idx) = rel.target() else {
                return Err(ierr(LoadProblem::RelocNoSymbol));
            };
            let sym = obj
                .symbol_by_index(sym_idx)
                .map_err(|e| ierr(LoadProblem::RelocBadSymbol(e)))?;
            let sym_name = sym.name().unwrap_or("?");
            let sym_section = sym
                .section_index()
                .and_then(|i| obj.section_by_index(i).ok());
            let sym_section_name = sym_section
                .as_ref()
                .and_then(|s| s.name().ok())
                .unwrap_or("");
            match r_type {
                R_BPF_64_64 => {
                    if code[at as usize] != LD_DW_IMM || (at as usize + 2 * INSN_SIZE) > code.len()
                    {
                        return Err(ierr(LoadProblem::RelocNotLddw {
                            symbol: sym_name.to_string(),
                        }));
                    }
                    let imm_at = at as usize + 4;
                    let addend =
                        u32::from_le_bytes(code[imm_at..imm_at + 4].try_into().expect("4")) as u64;
                    let target = if sym_section_name == MAPS_SECTION {
                        let off = sym.address() + addend;
                        let idx = map_offsets.iter().position(|&o| o == off).ok_or_else(|| {
                            ierr(LoadProblem::RelocNoMap {
                                symbol: sym_name.to_string(),
                                addend,
                            })
                        })?;
                        RelocTarget::Map(idx)
                    } else if let Some(&(_, region)) = rodata_index
                        .iter()
                        .find(|(i, _)| Some(*i) == sym.section_index())
                    {
                        let off = sym.address() + addend;
                        if off >= rodata[region].bytes.len() as u64 {
                            return Err(ierr(LoadProblem::RelocPastRodata {
                                section: rodata[region].name.clone(),
                            }));
                        }
                        RelocTarget::Rodata {
                            region,
                            offset: off as u32,
                        }
                    } else if sym_section_name.starts_with(".data")
                        || sym_section_name.starts_with(".bss")
                    {
                        return Err(ierr(LoadProblem::GlobalVariable {
                            symbol: sym_name.to_string(),
                            section: sym_section_name.to_string(),
                        }));
                    } else {
                        return Err(ierr(LoadProblem::RelocSection {
                            symbol: sym_name.to_string(),
                            section: sym_section_name.to_string(),
                        }));
                    };
                    // The value is patched in when the program is instantiated.
                    code[imm_at..imm_at + 4].fill(0);
                    code[imm_at + 8..imm_at + 12].fill(0);
                    relocs.push(Reloc { insn, target });
                }
                R_BPF_64_32 => {
                    return Err(ierr(LoadProblem::FunctionCall {
                        symbol: sym_name.to_string(),
                    }));
                }
                t => {
                    return Err(ierr(LoadProblem::RelocKind {
                        r_type: t,
                        symbol: sym_name.to_string(),
                    }));
                }
            }
        }
        programs.push(ProgramImage {
            name: prog_name.to_string(),
            section: sec_name.to_string(),
            code,
            relocs,
            file_offset,
        });
    }
    if programs.is_empty() {
        return Err(cx.err(LoadProblem::NoPrograms));
    }
    Ok(ElfObject {
        file: file.to_string(),
        programs,
        maps,
        rodata,
    })
}
