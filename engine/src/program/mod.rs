//! Loaded programs and their maps: ELF -> verified, relocated, runnable.
//!
//! A [`Registry`] owns every program and map of an engine (or of a replay,
//! which loads the same images without a ring). Programs of one object share
//! its maps.

pub mod compiled;
pub mod disasm;
pub mod elf;
pub mod host;
pub mod image;
pub mod interp;
pub mod isa;
pub mod maps;
pub mod mem;
pub mod verifier;
pub mod vm;

use elf::{ElfObject, LoadError, LoadProblem, RelocTarget};
use maps::{Map, MapDef};
use mem::{AddrSpace, FIRST_STATIC_ID, Region, RegionKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use verifier::{Limits, VerifyInput, VerifyReport};
use vm::{ExecMode, Vm};

/// Tag in the upper half of a map handle (what a relocated `lddw` of a map
/// loads): "RSMP". The low half is the map's index in its object.
pub const MAP_HANDLE_TAG: u64 = 0x5253_4d50_0000_0000;

/// Most bytes of map values all the objects of one registry may hold.
pub const MAX_REGISTRY_MAP_BYTES: u64 = 2 << 30;

/// A program's id in its registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProgId(pub u32);

/// A map's id in its registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MapId(pub u32);

/// How to load an object.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Skip the memory-safety proof (structural checks still run). Only for
    /// programs whose author the application trusts.
    pub trusted: bool,
    /// Compiled (the default) or the interpreter. Only verified programs are
    /// compiled: a trusted one, or one the compiler cannot take, runs under
    /// the interpreter (and [`LoadedProgram::exec_note`] says why).
    pub exec: ExecMode,
    /// Verifier limits.
    pub limits: Limits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            trusted: false,
            exec: ExecMode::Compiled,
            limits: Limits::default(),
        }
    }
}

/// A runnable program.
pub struct LoadedProgram {
    /// Id.
    pub id: ProgId,
    /// Name (`<name>` of `ringside/<name>`).
    pub name: String,
    /// Object file it came from.
    pub file: String,
    /// The code as verified (relocated `lddw`s hold 0).
    pub image: elf::ProgramImage,
    /// What the verifier proved.
    pub report: VerifyReport,
    /// Loaded as trusted.
    pub trusted: bool,
    /// Object-local map index -> registry map.
    pub maps: Vec<MapId>,
    /// Definitions of those maps, in the same order.
    pub map_defs: Vec<MapDef>,
    /// Hash of the object bytes it came from (FNV-1a 64), for recordings.
    pub object_hash: u64,
    /// Why it runs under the interpreter although compiled code was asked for.
    pub exec_note: Option<String>,
    vm: Vm,
    regions: Vec<Region>,
    _rodata: Arc<Vec<Box<[u64]>>>,
}

impl std::fmt::Debug for LoadedProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedProgram")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("file", &self.file)
            .field("mode", &self.vm.mode())
            .finish()
    }
}

impl LoadedProgram {
    /// The relocated code as the interpreter runs it (virtual addresses in
    /// its `lddw`s: what traces and disassembly show).
    pub fn code(&self) -> &[u8] {
        self.vm.code()
    }
    /// The VM.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
    /// Execution mode.
    pub fn exec_mode(&self) -> ExecMode {
        self.vm.mode()
    }
    /// Regions besides context and stack the program may touch: its maps'
    /// value arenas in object order, then its rodata (the order of their
    /// virtual ids, see [`crate::program::mem`]).
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
    /// Map handle -> registry map id, if the handle is one of this program's.
    pub fn map_of_handle(&self, handle: u64) -> Option<(usize, MapId)> {
        if handle & 0xffff_ffff_0000_0000 != MAP_HANDLE_TAG {
            return None;
        }
        let local = (handle & 0xffff_ffff) as usize;
        self.maps.get(local).map(|&m| (local, m))
    }
}

/// Programs and maps of one object, as loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedObject {
    /// File name.
    pub file: String,
    /// (name, id) of each program.
    pub programs: Vec<(String, ProgId)>,
    /// (name, id) of each map.
    pub maps: Vec<(String, MapId)>,
}

/// Every program and map of an engine or replay.
#[derive(Default)]
pub struct Registry {
    programs: Vec<LoadedProgram>,
    maps: Vec<Map>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("programs", &self.programs.len())
            .field("maps", &self.maps.len())
            .finish()
    }
}

/// FNV-1a, 64 bit: a stable content hash for object images.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Registry {
    /// Empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Parse, verify and instantiate every program of an object.
    pub fn load_object(
        &mut self,
        file: &str,
        bytes: &[u8],
        opts: &LoadOptions,
    ) -> Result<LoadedObject, LoadError> {
        let obj = elf::parse(file, bytes)?;
        self.instantiate(&obj, fnv1a64(bytes), opts, None)
    }

    /// Like [`Registry::load_object`] but only the named programs.
    pub fn load_programs(
        &mut self,
        file: &str,
        bytes: &[u8],
        names: &[&str],
        opts: &LoadOptions,
    ) -> Result<LoadedObject, LoadError> {
        let obj = elf::parse(file, bytes)?;
        for n in names {
            obj.program(n)?;
        }
        self.instantiate(&obj, fnv1a64(bytes), opts, Some(names))
    }

    /// Instantiate an already parsed (or hand-built) object: what tests,
    /// fuzzers and benchmarks use to load raw instructions.
    pub fn load_parsed(
        &mut self,
        obj: &ElfObject,
        opts: &LoadOptions,
    ) -> Result<LoadedObject, LoadError> {
        let hash = obj
            .programs
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, p| h ^ fnv1a64(&p.code));
        self.instantiate(obj, hash, opts, None)
    }

    fn instantiate(
        &mut self,
        obj: &ElfObject,
        hash: u64,
        opts: &LoadOptions,
        only: Option<&[&str]>,
    ) -> Result<LoadedObject, LoadError> {
        let have: u64 = self.maps.iter().map(|m| m.def().arena_bytes()).sum();
        let adding: u64 = obj.maps.iter().map(MapDef::arena_bytes).sum();
        if have + adding > MAX_REGISTRY_MAP_BYTES {
            return Err(LoadError {
                file: obj.file.clone(),
                section: Some(elf::MAPS_SECTION.into()),
                insn: None,
                offset: None,
                reason: Box::new(LoadProblem::RegistryMapBytes {
                    total: have + adding,
                }),
            });
        }
        let rodata_sizes: Vec<usize> = obj.rodata.iter().map(|r| r.bytes.len()).collect();
        // Verify everything before creating anything, so a failed load leaves no trace.
        let mut verified = Vec::new();
        for original in &obj.programs {
            if only.is_some_and(|o| !o.contains(&original.name.as_str())) {
                continue;
            }
            let at = |insn: usize, reason: LoadProblem| LoadError {
                file: obj.file.clone(),
                section: Some(original.section.clone()),
                insn: Some(insn),
                offset: Some(original.file_offset + (insn as u64) * 8),
                reason: Box::new(reason),
            };
            let image = original.clone();
            let input = VerifyInput {
                image: &image,
                maps: &obj.maps,
                rodata_sizes: &rodata_sizes,
                limits: opts.limits,
            };
            let report = if opts.trusted {
                verifier::verify_structure(&input)
            } else {
                verifier::verify(&input)
            }
            .map_err(|e| at(e.insn, LoadProblem::Verify(e.reason)))?;
            verified.push((image, report));
        }

        // Rodata, in u64 words so that 8-byte loads from it are aligned.
        let rodata: Arc<Vec<Box<[u64]>>> = Arc::new(
            obj.rodata
                .iter()
                .map(|r| {
                    let mut words = vec![0u64; r.bytes.len().div_ceil(8)].into_boxed_slice();
                    // SAFETY: viewing a u64 slice as bytes.
                    let bytes = unsafe {
                        std::slice::from_raw_parts_mut(
                            words.as_mut_ptr() as *mut u8,
                            words.len() * 8,
                        )
                    };
                    bytes[..r.bytes.len()].copy_from_slice(&r.bytes);
                    words
                })
                .collect(),
        );
        let first_map = self.maps.len() as u32;
        let map_ids: Vec<MapId> = (0..obj.maps.len() as u32)
            .map(|i| MapId(first_map + i))
            .collect();
        let mut new_maps: Vec<Map> = obj.maps.iter().cloned().map(Map::new).collect();

        let mut regions: Vec<Region> = new_maps
            .iter()
            .enumerate()
            .map(|(i, m)| Region::map(i as u32, m))
            .collect();
        for (i, (r, words)) in obj.rodata.iter().zip(rodata.iter()).enumerate() {
            regions.push(Region {
                kind: RegionKind::Rodata(i as u32),
                ptr: words.as_ptr() as *mut u8,
                len: r.bytes.len(),
                writable: false,
            });
        }
        let nmaps = obj.maps.len() as u32;

        let mut programs = Vec::new();
        let mut loaded = Vec::new();
        for (image, report) in verified {
            // Two copies of the relocated code: the interpreter's with the
            // virtual addresses it gives rodata, and the compiler's input
            // with the host addresses.
            let mut code = image.code.clone().into_boxed_slice();
            let mut native = image.code.clone();
            for reloc in &image.relocs {
                let (virt, host) = match reloc.target {
                    RelocTarget::Map(local) => {
                        (MAP_HANDLE_TAG | local as u64, MAP_HANDLE_TAG | local as u64)
                    }
                    RelocTarget::Rodata { region, offset } => (
                        AddrSpace::virtual_addr(
                            FIRST_STATIC_ID + nmaps + region as u32,
                            offset as u64,
                        ),
                        rodata[region].as_ptr() as u64 + offset as u64,
                    ),
                };
                let at = reloc.insn * 8;
                for (buf, value) in [(&mut code[..], virt), (&mut native[..], host)] {
                    buf[at + 4..at + 8].copy_from_slice(&(value as u32).to_le_bytes());
                    buf[at + 12..at + 16].copy_from_slice(&((value >> 32) as u32).to_le_bytes());
                }
            }
            let (vm, exec_note) = match opts.exec {
                ExecMode::Interpreter => (Vm::interpreter(code), None),
                ExecMode::Compiled if !report.memory_safe => (
                    Vm::interpreter(code),
                    Some("loaded as trusted (no memory proof): runs under the interpreter".into()),
                ),
                ExecMode::Compiled => match Vm::compiled(code.clone(), &native) {
                    Ok(vm) => (vm, None),
                    Err(e) => (
                        Vm::interpreter(code),
                        Some(format!(
                            "the compiler refused it ({e}): runs under the interpreter"
                        )),
                    ),
                },
            };
            let id = ProgId((self.programs.len() + loaded.len()) as u32);
            programs.push((image.name.clone(), id));
            loaded.push(LoadedProgram {
                id,
                name: image.name.clone(),
                file: obj.file.clone(),
                image: image.clone(),
                report,
                trusted: opts.trusted,
                maps: map_ids.clone(),
                map_defs: obj.maps.clone(),
                object_hash: hash,
                exec_note,
                vm,
                regions: regions.clone(),
                _rodata: rodata.clone(),
            });
        }
        self.programs.extend(loaded);
        self.maps.append(&mut new_maps);
        Ok(LoadedObject {
            file: obj.file.clone(),
            programs,
            maps: obj
                .maps
                .iter()
                .zip(&map_ids)
                .map(|(d, &id)| (d.name.clone(), id))
                .collect(),
        })
    }

    /// A program.
    pub fn program(&self, id: ProgId) -> Option<&LoadedProgram> {
        self.programs.get(id.0 as usize)
    }

    /// Every program.
    pub fn programs(&self) -> &[LoadedProgram] {
        &self.programs
    }

    /// A map.
    pub fn map(&self, id: MapId) -> Option<&Map> {
        self.maps.get(id.0 as usize)
    }

    /// A map, mutable.
    pub fn map_mut(&mut self, id: MapId) -> Option<&mut Map> {
        self.maps.get_mut(id.0 as usize)
    }

    /// Every map.
    pub fn maps(&self) -> &[Map] {
        &self.maps
    }

    /// Find a map by program and name.
    pub fn map_by_name(&self, prog: ProgId, name: &str) -> Option<MapId> {
        let p = self.program(prog)?;
        p.maps
            .iter()
            .copied()
            .find(|&m| self.map(m).is_some_and(|m| m.def().name == name))
    }

    /// Split borrow: a program and every map, mutably.
    pub fn program_and_maps(&mut self, id: ProgId) -> Option<(&LoadedProgram, &mut [Map])> {
        let p = self.programs.get(id.0 as usize)?;
        Some((p, &mut self.maps))
    }

    /// Definitions of a program's maps, in object order.
    pub fn map_defs(&self, id: ProgId) -> Vec<MapDef> {
        self.program(id)
            .map(|p| {
                p.maps
                    .iter()
                    .filter_map(|&m| self.map(m))
                    .map(|m| m.def().clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}
