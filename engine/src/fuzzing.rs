//! Entry points for the fuzz targets (`engine/fuzz`) and their stable-Rust
//! regression tests: each takes arbitrary bytes and must never panic.
//! [`load_any`] and [`verify_and_run`] are the `elf` and `verifier`
//! targets, [`server_stream`] the
//! `socket_client` target.

use crate::abi::RsCtx;
use crate::decision::{
    self, Budgets, ChainView, DecisionRequest, Detail, InputSource, Registrations,
};
use crate::program::elf::{self, ElfObject, ProgramImage, Reloc, RelocTarget};
use crate::program::maps::{MAP_TYPE_ARRAY, MAP_TYPE_HASH, MapDef};
use crate::program::vm::ExecMode;
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
/// last 64 bytes, under the interpreter and as compiled code. A verified
/// program must never hit a VM memory error, and both must decide alike.
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
    // The interpreter checks every access: a verified program it stops is a
    // hole in the verifier. Compiled code checks nothing: the same hole
    // would be a crash (what the fuzzer catches), and any difference
    // between the two a miscompilation.
    let mut ctx_bytes = [0u8; 64];
    let tail = &data[data.len().saturating_sub(64)..];
    ctx_bytes[..tail.len()].copy_from_slice(tail);
    let ctx = RsCtx::from_bytes(&ctx_bytes);
    let mut results = Vec::new();
    for exec in [ExecMode::Interpreter, ExecMode::Compiled] {
        let mut reg = Registry::new();
        let opts = LoadOptions {
            exec,
            ..LoadOptions::default()
        };
        let Ok(loaded) = reg.load_parsed(&obj, &opts) else {
            return;
        };
        let id = loaded.programs[0].1;
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
            record: Some(Detail::Full),
            count_insns: true,
        };
        let rec = decision::execute(p, maps, req, &mut Zeroes);
        if let decision::DecisionResult::VmError { message } = &rec.result {
            panic!("a verified program hit a VM error: {message}");
        }
        results.push((
            rec.ret,
            rec.result,
            rec.calls,
            rec.actions,
            rec.map_writes,
            rec.insns,
        ));
    }
    assert_eq!(
        results[0], results[1],
        "the interpreter and compiled code disagree"
    );
}

/// Hands out its bytes in pieces of one size, with a read timeout between.
struct Trickle<'a> {
    data: &'a [u8],
    piece: usize,
    timeout_next: bool,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.timeout_next {
            self.timeout_next = false;
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.timeout_next = true;
        let n = self.piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Arbitrary bytes as what a server sends (the first byte picks the read
/// size and the line limit): the client's reader returns messages, a
/// timeout, the end or a protocol error, never panics or loops, and never
/// holds more than the limit. The same bytes as what a client sends go
/// through the server's reader.
pub fn server_stream(data: &[u8]) {
    use ringside_schema::protocol::{ClientMsg, ServerReader, read_msg};
    use std::io::BufReader;
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let piece = (sel & 0x3f) as usize + 1;
    let max = if sel & 0x40 != 0 { 64 } else { 4096 };
    let trickle = Trickle {
        data: rest,
        piece,
        timeout_next: false,
    };
    let mut r = ServerReader::with_limit(BufReader::with_capacity(16, trickle), max);
    let mut messages = 0usize;
    // Each call consumes bytes or times out, and timeouts alternate with reads.
    for _ in 0..4 * rest.len() + 4 {
        match r.next_msg() {
            Ok(Some(_)) => messages += 1,
            Ok(None) => break,
            Err(e) if e.is_timeout() => {}
            Err(_) => break,
        }
        assert!(
            r.pending() <= max,
            "{} bytes held, limit {max}",
            r.pending()
        );
    }
    assert!(messages <= rest.len(), "more messages than lines");
    let mut c = rest;
    for _ in 0..rest.len() + 1 {
        match read_msg::<ClientMsg>(&mut c, 256) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}
