//! What one decision costs, per pattern program: the interpreter, compiled
//! code, and the same logic written in Rust.

use ringside_engine::abi::{self, RsCtx, RsSqe, op};
use ringside_engine::decision::{
    self, Budgets, ChainView, DecisionRequest, Detail, InputSource, Registrations,
};
use ringside_engine::program::vm::ExecMode;
use ringside_engine::program::{LoadOptions, Registry};
use ringside_workload::content;
use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

struct BenchSource {
    node: Vec<u8>,
}

impl InputSource for BenchSource {
    fn ktime_ns(&mut self) -> u64 {
        1
    }
    fn read_buf(&mut self, _buf: u16, off: u64, dst: &mut [u8]) {
        let off = off as usize % self.node.len();
        let n = dst.len().min(self.node.len() - off);
        dst[..n].copy_from_slice(&self.node[off..off + n]);
    }
}

/// A representative decision for each program: the path that does the most.
fn bench_ctx(name: &str) -> RsCtx {
    let base = RsCtx {
        user_data: 7,
        chain_id: 1,
        nsteps: 1,
        attempt: 1,
        fd: 0,
        buf_index: 0,
        ..Default::default()
    };
    match name {
        "read_exact" => RsCtx {
            opcode: op::READ,
            res: 1000,
            len: 4096,
            ..base
        },
        "read_to_eof" => RsCtx {
            opcode: op::READ,
            res: 4096,
            len: 4096,
            ..base
        },
        "copy" => RsCtx {
            opcode: op::READ,
            res: 4096,
            len: 4096,
            ..base
        },
        "header_body" => RsCtx {
            opcode: op::RECV,
            res: 4,
            len: 4,
            ..base
        },
        "btree_lookup" => RsCtx {
            opcode: op::READ,
            res: 512,
            len: 512,
            user_data: 1000,
            ..base
        },
        // A step that is not the chain's last: the program submits the next NOP.
        "nop_chain" => RsCtx {
            opcode: op::NOP,
            res: 0,
            len: 0,
            fd: -1,
            buf_index: abi::NO_BUF,
            ..base
        },
        _ => RsCtx {
            opcode: op::RECV,
            res: -11,
            len: 100,
            ..base
        },
    }
}

/// The same logic as each pattern program, written in Rust against plain
/// collections: what the program would cost with no VM and no engine checks.
struct RustPatterns {
    maps: HashMap<u64, u64>,
    actions: Vec<RsSqe>,
    node: Vec<u8>,
}

impl RustPatterns {
    fn decide(&mut self, name: &str, c: &RsCtx) -> u64 {
        let again = |c: &RsCtx, done: u32| RsSqe {
            opcode: c.opcode,
            buf_index: c.buf_index,
            fd: c.fd,
            off: c.off + done as u64,
            buf_off: c.buf_off + done as u64,
            len: c.len - done,
            user_data: c.user_data,
            ..Default::default()
        };
        match name {
            "read_exact" => {
                if c.res < 0 {
                    self.maps.remove(&c.chain_id);
                    return 2;
                }
                if (c.res as u32) < c.len {
                    self.actions.push(again(c, c.res as u32));
                    *self.maps.entry(c.chain_id).or_default() += c.res as u64;
                }
                0
            }
            "read_to_eof" | "copy" => {
                *self.maps.entry(c.chain_id).or_default() += c.res as u64;
                self.actions.push(again(c, 0));
                0
            }
            "header_body" => {
                let len = u32::from_le_bytes(self.node[..4].try_into().expect("4"));
                self.actions.push(RsSqe { len, ..again(c, 0) });
                0
            }
            "nop_chain" => {
                if (c.step as u64) + 1 >= c.user_data {
                    return 1;
                }
                self.actions.push(RsSqe {
                    opcode: op::NOP,
                    fd: -1,
                    buf_index: 0xffff,
                    user_data: c.user_data,
                    ..Default::default()
                });
                0
            }
            "btree_lookup" => {
                let n = u16::from_le_bytes([self.node[6], self.node[7]]) as usize;
                let mut idx = 0;
                for j in 0..n.min(31) {
                    let k =
                        u64::from_le_bytes(self.node[8 + 8 * j..16 + 8 * j].try_into().expect("8"));
                    if k <= c.user_data {
                        idx = j;
                    }
                }
                let o = 8 + 8 * 31 + 8 * idx;
                let child = u64::from_le_bytes(self.node[o..o + 8].try_into().expect("8"));
                self.actions.push(RsSqe {
                    off: child,
                    ..again(c, 0)
                });
                0
            }
            _ => {
                let max = self.maps.get(&0).copied().unwrap_or(8);
                if (c.attempt as u64) < max {
                    self.actions.push(again(c, 0));
                    self.actions.push(RsSqe {
                        opcode: op::TIMEOUT,
                        ..Default::default()
                    });
                }
                0
            }
        }
    }
}

/// One pattern program loaded for the decision-cost table: its registry, the
/// decision it runs (the path that does the most) and that decision's inputs.
pub struct DecisionBench {
    name: &'static str,
    reg: Registry,
    id: ringside_engine::program::ProgId,
    ctx: RsCtx,
    view: ChainView,
    source: BenchSource,
    regs: Registrations,
    budgets: Budgets,
}

impl DecisionBench {
    /// Load built-in program `name` under `exec`; `None` for an unknown name.
    pub fn new(name: &str, exec: ExecMode) -> Option<DecisionBench> {
        let &(name, bytes) = ringside_engine::progs::ALL
            .iter()
            .find(|(n, _)| *n == name)?;
        let mut reg = Registry::new();
        let obj = reg
            .load_object(
                name,
                bytes,
                &LoadOptions {
                    exec,
                    ..Default::default()
                },
            )
            .expect("built-in program loads");
        let id = obj.programs[0].1;
        // btree_lookup reads the tree's root node; the others read a 100-byte
        // length header (header_body) at the start of their buffer.
        let node = if name == "btree_lookup" {
            content::btree(4096, 4).unwrap_or_default()[..512].to_vec()
        } else {
            let mut node = vec![0u8; 512];
            node[..4].copy_from_slice(&100u32.to_le_bytes());
            node
        };
        let ctx = bench_ctx(name);
        let view = ChainView {
            chain: 1,
            step: 0,
            nsteps: 1,
            opcode: ctx.opcode,
            fd: 0,
            attempt: 1,
            pending: vec![],
        };
        Some(DecisionBench {
            name,
            reg,
            id,
            ctx,
            view,
            source: BenchSource { node },
            regs: Registrations {
                files: 2,
                buffers: vec![1 << 20],
            },
            budgets: Budgets {
                steps_per_chain: u32::MAX,
                ..Budgets::default()
            },
        })
    }

    /// Why the compiler refused the program, when it did (the "compiled" run
    /// is then the interpreter's).
    pub fn exec_note(&self) -> Option<String> {
        self.reg.program(self.id).and_then(|p| p.exec_note.clone())
    }

    /// The decision's instruction count (one counted, recorded run).
    pub fn insns(&mut self) -> u64 {
        let (p, maps) = self.reg.program_and_maps(self.id).expect("loaded");
        let req = DecisionRequest {
            seq: 0,
            ctx: self.ctx,
            view: self.view.clone(),
            regs: &self.regs,
            budgets: &self.budgets,
            record: Some(Detail::Full),
            count_insns: true,
        };
        decision::execute(p, maps, req, &mut self.source)
            .insns
            .unwrap_or(0)
    }

    /// Run the decision `n` times as the engine runs one nobody records (no
    /// record, buffers reused, the view refilled each time); ns per decision.
    pub fn run_unrecorded(&mut self, n: u64) -> f64 {
        let mut scratch = decision::Scratch::default();
        let start = Instant::now();
        for _ in 0..n {
            let (p, maps) = self.reg.program_and_maps(self.id).expect("loaded");
            // As the engine's view_into does: the pending list's allocation
            // is reused (ChainView's derived clone_from would drop it).
            let v = &mut scratch.view;
            let pending = std::mem::take(&mut v.pending);
            *v = ChainView {
                pending,
                ..self.view
            };
            v.pending.clear();
            v.pending.extend_from_slice(&self.view.pending);
            std::hint::black_box(decision::execute_unrecorded(
                p,
                maps,
                &self.ctx,
                &self.regs,
                &self.budgets,
                &mut self.source,
                &mut scratch,
                false,
            ));
        }
        start.elapsed().as_nanos() as f64 / n.max(1) as f64
    }

    /// The same logic in Rust, `n` times; ns per decision.
    pub fn run_rust(&self, n: u64) -> f64 {
        let mut rust = RustPatterns {
            maps: HashMap::new(),
            actions: Vec::new(),
            node: self.source.node.clone(),
        };
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rust.decide(self.name, std::hint::black_box(&self.ctx)));
            rust.actions.clear();
        }
        (start.elapsed().as_nanos() as f64 / n.max(1) as f64).max(0.1)
    }
}

pub(crate) fn decision_costs(out: &mut dyn Write, n: u64) -> std::io::Result<()> {
    writeln!(
        out,
        "Decision cost (ns per decision nobody records, as the engine runs it; the path of each program that does the most work)"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| program | interpreter | compiled | interpreter / compiled | Rust | interpreter / Rust | compiled / Rust | instructions |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (name, _) in ringside_engine::progs::ALL {
        let mut per_mode = Vec::new();
        let mut insns = 0;
        let mut rust_ns = 0.0;
        for exec in [ExecMode::Interpreter, ExecMode::Compiled] {
            let mut b = DecisionBench::new(name, exec).expect("a built-in program");
            // A program the compiler refused would make the compiled row a
            // second interpreter row: say so rather than print it as one.
            if let Some(note) = b.exec_note() {
                writeln!(out, "({name}: {note})")?;
            }
            insns = b.insns();
            per_mode.push(b.run_unrecorded(n));
            if exec == ExecMode::Compiled {
                rust_ns = b.run_rust(n);
            }
        }
        writeln!(
            out,
            "| {name} | {:.0} | {:.0} | {:.1}x | {:.1} | {:.0}x | {:.0}x | {insns} |",
            per_mode[0],
            per_mode[1],
            per_mode[0] / per_mode[1],
            rust_ns,
            per_mode[0] / rust_ns,
            per_mode[1] / rust_ns
        )?;
    }
    writeln!(out)
}

// ---- read_exact chains -------------------------------------------------------------
