//! Entry points for the fuzz targets (`engine/fuzz`) and their stable-Rust
//! regression tests: each takes arbitrary bytes and must never panic.

use crate::abi::RsCtx;
use crate::decision::{self, Budgets, ChainView, DecisionRequest, InputSource, Registrations};
use crate::program::elf::{self, ElfObject, ProgramImage, Reloc, RelocTarget};
use crate::program::maps::{MAP_TYPE_ARRAY, MAP_TYPE_HASH, MapDef};
use crate::program::{LoadOptions, Registry};

/// Parse as ELF and, if that works, verify and instantiate every program.
pub fn load_any(data: &[u8]) {
    if let Ok(obj) = elf::parse("fuzz.o", data) {
        let mut reg = Registry::new();
        let _ = reg.load_parsed(&obj, &LoadOptions::default());
    }
}

struct Zeroes;

impl InputSource for Zeroes {
    fn ktime_ns(&mut self) -> u64 {
        42
    }
    fn read_buf(&mut self, _buf: u16, _off: u64, dst: &mut [u8]) {
        dst.fill(0x5a);
    }
}

/// Treat `data` as instructions (the first byte picks which `lddw`s load the
/// two maps), verify them, and run what verifies on a context made of the
/// last 64 bytes. A verified program must never hit a VM memory error.
pub fn verify_and_run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let code_len = rest.len() / 8 * 8;
    if code_len == 0 {
        return;
    }
    let code = rest[..code_len].to_vec();
    let mut relocs = Vec::new();
    for i in 0..code_len / 8 {
        if code[i * 8] == 0x18 && (sel as usize + i).is_multiple_of(3) && relocs.len() < 4 {
            relocs.push(Reloc {
                insn: i,
                target: RelocTarget::Map(i % 2),
            });
        }
    }
    let obj = ElfObject {
        file: "fuzz".into(),
        programs: vec![ProgramImage {
            name: "f".into(),
            section: "ringside/f".into(),
            code,
            relocs,
            file_offset: 0,
        }],
        maps: vec![
            MapDef::validate("a", MAP_TYPE_ARRAY, 4, 16, 8, 0).expect("valid"),
            MapDef::validate("h", MAP_TYPE_HASH, 8, 8, 8, 0).expect("valid"),
        ],
        rodata: vec![],
    };
    let mut reg = Registry::new();
    let Ok(loaded) = reg.load_parsed(&obj, &LoadOptions::default()) else {
        return;
    };
    let id = loaded.programs[0].1;
    let mut ctx_bytes = [0u8; 64];
    let tail = &data[data.len().saturating_sub(64)..];
    ctx_bytes[..tail.len()].copy_from_slice(tail);
    let ctx = RsCtx::from_bytes(&ctx_bytes);
    let regs = Registrations {
        files: 1,
        buffers: vec![4096],
    };
    let budgets = Budgets::default();
    let (p, maps) = reg.program_and_maps(id).expect("loaded");
    let req = DecisionRequest {
        seq: 0,
        ctx,
        view: ChainView {
            chain: 1,
            step: 0,
            nsteps: 1,
            ..Default::default()
        },
        regs: &regs,
        budgets: &budgets,
        record: true,
        count_insns: true,
    };
    let rec = decision::execute(p, maps, req, &mut Zeroes);
    if let decision::DecisionResult::VmError { message } = &rec.result {
        panic!("a verified program hit a VM error: {message}");
    }
}
