//! Loaded programs and their maps: ELF -> verified, relocated, runnable.
//!
//! A [`Registry`] owns every program and map of an engine (or of a replay,
//! which loads the same images without a ring). Programs of one object share
//! its maps.

pub mod elf;
pub mod fixup;
pub mod interp;
pub mod maps;
pub mod verifier;
pub mod vm;

use elf::{ElfObject, LoadError, RelocTarget};
use interp::MemRegion;
use maps::{Map, MapDef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use verifier::{Limits, VerifyInput, VerifyReport};
use vm::{ExecMode, Vm};

/// Tag in the upper half of a map handle (what a relocated `lddw` of a map
/// loads): "RSMP". The low half is the map's index in its object.
pub const MAP_HANDLE_TAG: u64 = 0x5253_4d50_0000_0000;

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
    /// Interpreter (default) or JIT. The JIT is refused for programs whose
    /// memory accesses were not proved safe, unless `trusted`.
    pub exec: ExecMode,
    /// Verifier limits.
    pub limits: Limits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            trusted: false,
            exec: ExecMode::Interpreter,
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
    /// The code as verified (relocated `lddw`s hold 0; see [`crate::program::fixup`]
    /// for the only rewrite).
    pub image: elf::ProgramImage,
    /// When the code was rewritten: the object-file index of each instruction.
    pub origin: Option<Vec<usize>>,
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
    vm: Vm,
    regions: Vec<MemRegion>,
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
    /// The relocated code rbpf runs.
    pub fn code(&self) -> &[u8] {
        self.vm.code()
    }
    /// The rbpf VM.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
    /// Execution mode.
    pub fn exec_mode(&self) -> ExecMode {
        self.vm.mode()
    }
    /// Regions besides context and stack the program may touch (maps, rodata).
    pub fn regions(&self) -> &[MemRegion] {
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
        let rodata_sizes: Vec<usize> = obj.rodata.iter().map(|r| r.bytes.len()).collect();
        // Verify everything before creating anything, so a failed load leaves no trace.
        let mut verified = Vec::new();
        for original in &obj.programs {
            if only.is_some_and(|o| !o.contains(&original.name.as_str())) {
                continue;
            }
            let at = |insn: usize, reason: String| LoadError {
                file: obj.file.clone(),
                section: Some(original.section.clone()),
                insn: Some(insn),
                offset: Some(original.file_offset + (insn as u64) * 8),
                reason,
            };
            let mut image = original.clone();
            let origin = fixup::rewrite(&mut image).map_err(|e| at(e.insn, e.reason))?;
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
            .map_err(|e| match &origin {
                // Report the instruction as it is in the object file.
                Some(o) => at(o.get(e.insn).copied().unwrap_or(e.insn), e.reason),
                None => at(e.insn, e.reason),
            })?;
            if opts.exec == ExecMode::Jit && !report.memory_safe && !opts.trusted {
                return Err(LoadError {
                    file: obj.file.clone(),
                    section: Some(image.section.clone()),
                    insn: None,
                    offset: None,
                    reason: "the JIT needs a program whose memory accesses were proved safe (or one loaded as trusted)".into(),
                });
            }
            verified.push((image, report, origin));
        }

        // Rodata: 8 bytes of padding after each region (see maps.rs on rbpf's check).
        let rodata: Arc<Vec<Box<[u64]>>> = Arc::new(
            obj.rodata
                .iter()
                .map(|r| {
                    let mut words = vec![0u64; r.bytes.len().div_ceil(8) + 1].into_boxed_slice();
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

        let mut regions: Vec<MemRegion> = new_maps.iter().map(MemRegion::map).collect();
        for (r, words) in obj.rodata.iter().zip(rodata.iter()) {
            let start = words.as_ptr() as u64;
            regions.push(MemRegion {
                kind: "rodata",
                range: start..start + r.bytes.len() as u64,
                writable: false,
            });
        }

        let mut programs = Vec::new();
        let mut loaded = Vec::new();
        for (image, report, origin) in verified {
            let mut code = image.code.clone().into_boxed_slice();
            for reloc in &image.relocs {
                let value = match reloc.target {
                    RelocTarget::Map(local) => MAP_HANDLE_TAG | local as u64,
                    RelocTarget::Rodata { region, offset } => {
                        rodata[region].as_ptr() as u64 + offset as u64
                    }
                };
                let at = reloc.insn * 8;
                code[at + 4..at + 8].copy_from_slice(&(value as u32).to_le_bytes());
                code[at + 12..at + 16].copy_from_slice(&((value >> 32) as u32).to_le_bytes());
            }
            let allowed: Vec<_> = regions.iter().map(|r| r.range.clone()).collect();
            let vm = Vm::new(code, &allowed, opts.exec).map_err(|reason| LoadError {
                file: obj.file.clone(),
                section: Some(image.section.clone()),
                insn: None,
                offset: None,
                reason,
            })?;
            let id = ProgId((self.programs.len() + loaded.len()) as u32);
            programs.push((image.name.clone(), id));
            loaded.push(LoadedProgram {
                id,
                name: image.name.clone(),
                file: obj.file.clone(),
                image: image.clone(),
                origin,
                report,
                trusted: opts.trusted,
                maps: map_ids.clone(),
                map_defs: obj.maps.clone(),
                object_hash: hash,
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
