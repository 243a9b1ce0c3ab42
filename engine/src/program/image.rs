//! A program's code as the loader hands it on: its instructions and the
//! `lddw`s the loader relocates. What the verifier checks and the backends
//! run; made by the ELF reader ([`crate::program::elf`]), which may refuse
//! an object for what the verifier says about it, so this sits below both.

/// Size of one BPF instruction.
pub const INSN_SIZE: usize = 8;

/// What a relocated `lddw` loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocTarget {
    /// A handle to the object's map number `n`.
    Map(usize),
    /// The address of byte `offset` of rodata region `region`.
    Rodata {
        /// Index into [`ElfObject::rodata`](crate::program::elf::ElfObject::rodata).
        region: usize,
        /// Byte offset inside the region.
        offset: u32,
    },
}

/// A relocated `lddw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    /// Index of the `lddw` instruction.
    pub insn: usize,
    /// What it loads.
    pub target: RelocTarget,
}

/// One program: the code of a `ringside/<name>` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramImage {
    /// `<name>` of the section.
    pub name: String,
    /// Full section name.
    pub section: String,
    /// Instructions, little endian, 8 bytes each (relocated `lddw`s hold 0).
    pub code: Vec<u8>,
    /// Relocated `lddw`s.
    pub relocs: Vec<Reloc>,
    /// Offset of the section in the file, for error messages.
    pub file_offset: u64,
}

impl ProgramImage {
    /// Number of instruction slots (an `lddw` takes two).
    pub fn insn_count(&self) -> usize {
        self.code.len() / INSN_SIZE
    }

    /// The relocation of instruction `insn`, if any.
    pub fn reloc_at(&self, insn: usize) -> Option<RelocTarget> {
        self.relocs
            .iter()
            .find(|r| r.insn == insn)
            .map(|r| r.target)
    }
}
