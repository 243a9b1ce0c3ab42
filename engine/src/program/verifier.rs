//! The verifier: proves, before a program runs, that it terminates, calls only
//! known helpers with well-typed arguments, never writes its read-only
//! context, and touches only its context, its stack, map values a helper
//! returned and its read-only data.
//!
//! rbpf's own verifier checks only encodings. This one runs on top of it and
//! is an abstract interpreter over a DAG: control flow with a cycle is
//! rejected (so every program terminates after at most as many instructions as
//! it has), and one pass in topological order, joining states where paths
//! meet (after keeping a few paths apart), visits every reachable instruction
//! with states that cover every concrete execution.
//!
//! Values are tracked as unsigned ranges for scalars, and as (region, offset
//! range) for pointers. Branches on constants refine ranges; null checks on
//! `bpf_map_lookup_elem` results turn "value or null" into "value". Stack
//! slots remember spilled registers and which bytes are initialised. Pointers
//! never leave the program as numbers (not stored in maps, not passed as
//! scalars, not returned), which keeps decisions deterministic for replay.

use crate::abi::{self, helper_id};
use crate::program::image::{ProgramImage, RelocTarget};
use crate::program::isa;
use crate::program::maps::MapDef;
use std::collections::BTreeSet;
use std::fmt;

mod branch;
mod cfg;
mod domain;
mod rejection;

use branch::{MaybeRange, mirror, refine_range};
pub use cfg::{insn_starts, successors, topological_order};
pub use domain::Region;
use domain::{State, Val, ptr_add, signed_range, slot_index};
pub use rejection::{Access, Rejection, Value};

/// Default limit on instructions in one program.
pub const DEFAULT_MAX_INSNS: usize = 4096;
/// Stack bytes a program may use.
pub const STACK_SIZE: i64 = 512;

/// A rejected program: the instruction and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Instruction index.
    pub insn: usize,
    /// Why the program is rejected.
    pub reason: Rejection,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "insn {}: {}", self.insn, self.reason)
    }
}

impl std::error::Error for VerifyError {}

/// What the verifier proved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Instruction slots in the program.
    pub insns: usize,
    /// Most instructions any one run can execute (longest path).
    pub max_path: u32,
    /// Deepest stack byte used (bytes below r10).
    pub stack_depth: u32,
    /// Helpers the program calls.
    pub helpers: BTreeSet<u32>,
    /// True when every memory access was proved in bounds (always true for a
    /// verified program; false for a trusted program loaded without proof).
    pub memory_safe: bool,
}

/// Limits the verifier enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most instruction slots a program may have.
    pub max_insns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_insns: DEFAULT_MAX_INSNS,
        }
    }
}

/// Everything the verifier needs to know about a program's surroundings.
pub struct VerifyInput<'a> {
    /// The program.
    pub image: &'a ProgramImage,
    /// Maps of its object, indexed by [`RelocTarget::Map`].
    pub maps: &'a [MapDef],
    /// Sizes of its rodata regions, indexed by [`RelocTarget::Rodata`].
    pub rodata_sizes: &'a [usize],
    /// Limits.
    pub limits: Limits,
}

// ---- instruction encoding (see isa.rs) -------------------------------------

use isa::alu::{
    ADD as ALU_ADD, AND as ALU_AND, ARSH as ALU_ARSH, DIV as ALU_DIV, END as ALU_END,
    LSH as ALU_LSH, MOD as ALU_MOD, MOV as ALU_MOV, MUL as ALU_MUL, OR as ALU_OR, RSH as ALU_RSH,
    SUB as ALU_SUB, XOR as ALU_XOR,
};
use isa::class::{
    ALU as CLS_ALU, ALU64 as CLS_ALU64, JMP as CLS_JMP, JMP32 as CLS_JMP32, LD as CLS_LD,
    LDX as CLS_LDX, ST as CLS_ST, STX as CLS_STX,
};
use isa::jmp::{
    CALL as JMP_CALL, EXIT as JMP_EXIT, JA as JMP_JA, JEQ as JMP_JEQ, JGE as JMP_JGE,
    JGT as JMP_JGT, JLE as JMP_JLE, JLT as JMP_JLT, JNE as JMP_JNE, JSGE as JMP_JSGE,
    JSGT as JMP_JSGT, JSLE as JMP_JSLE, JSLT as JMP_JSLT,
};
pub use isa::{Insn, eval_end};
use isa::{SRC_X, eval_alu};

// ---- helper signatures -----------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// Must be the context pointer itself.
    Ctx,
    /// A map handle.
    Map,
    /// Any scalar (never a pointer).
    Scalar,
    /// Readable initialised memory of the map's key size.
    Key,
    /// Readable initialised memory of the map's value size.
    Value,
    /// Readable initialised memory whose size is the given argument (0-based).
    ReadMem { size_arg: usize },
    /// Writable memory whose size is the given argument (0-based).
    WriteMem { size_arg: usize },
    /// A scalar with a known upper bound, used as a memory size.
    Size,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ret {
    Scalar,
    ValueOrNull,
}

fn signature(id: u32) -> Option<(&'static [Arg], Ret)> {
    use Arg::*;
    Some(match id {
        helper_id::MAP_LOOKUP_ELEM => (&[Map, Key], Ret::ValueOrNull),
        helper_id::MAP_UPDATE_ELEM => (&[Map, Key, Value, Scalar], Ret::Scalar),
        helper_id::MAP_DELETE_ELEM => (&[Map, Key], Ret::Scalar),
        helper_id::KTIME_GET_NS => (&[], Ret::Scalar),
        helper_id::TRACE_PRINTK => (
            &[ReadMem { size_arg: 1 }, Size, Scalar, Scalar, Scalar],
            Ret::Scalar,
        ),
        helper_id::RS_SUBMIT => (&[Ctx, ReadMem { size_arg: 2 }, Size, Scalar], Ret::Scalar),
        helper_id::RS_DROP => (&[Ctx, Scalar], Ret::Scalar),
        helper_id::RS_UNLINK => (&[Ctx, Scalar], Ret::Scalar),
        helper_id::RS_EMIT => (&[Ctx, Scalar, Scalar, Scalar], Ret::Scalar),
        helper_id::RS_READ_BUF => (
            &[Ctx, Scalar, Scalar, WriteMem { size_arg: 4 }, Size],
            Ret::Scalar,
        ),
        helper_id::RS_SET_RES => (&[Ctx, Scalar], Ret::Scalar),
        _ => return None,
    })
}

// ---- the verifier ----------------------------------------------------------

struct Verifier<'a> {
    input: &'a VerifyInput<'a>,
    code: &'a [u8],
    n: usize,
    next_id: u32,
    report: VerifyReport,
    /// Reachable instructions in topological order.
    order: Vec<usize>,
}

fn err<T>(insn: usize, reason: Rejection) -> Result<T, VerifyError> {
    Err(VerifyError { insn, reason })
}

/// Verify a program; on success, what was proved.
pub fn verify(input: &VerifyInput<'_>) -> Result<VerifyReport, VerifyError> {
    check(input, true)
}

/// Structural checks only (encodings, termination, helpers): what a trusted
/// program must still pass. Memory safety is not proved.
pub fn verify_structure(input: &VerifyInput<'_>) -> Result<VerifyReport, VerifyError> {
    check(input, false)
}

fn check(input: &VerifyInput<'_>, prove_memory: bool) -> Result<VerifyReport, VerifyError> {
    let code = input.image.code.as_slice();
    let n = code.len() / 8;
    if n == 0 {
        return err(0, Rejection::Empty);
    }
    if n > input.limits.max_insns {
        return err(
            input.limits.max_insns,
            Rejection::TooLong {
                len: n,
                limit: input.limits.max_insns,
            },
        );
    }
    let mut v = Verifier {
        input,
        code,
        n,
        next_id: 1,
        order: Vec::new(),
        report: VerifyReport {
            insns: n,
            memory_safe: prove_memory,
            ..Default::default()
        },
    };
    v.check_structure()?;
    v.report.max_path = v.longest_path();
    if prove_memory {
        v.run()?;
    }
    Ok(v.report)
}

impl<'a> Verifier<'a> {
    fn insn(&self, i: usize) -> Insn {
        Insn::decode(self.code, i)
    }

    fn successors(&self, i: usize) -> Vec<usize> {
        successors(self.code, i)
    }

    fn check_structure(&mut self) -> Result<(), VerifyError> {
        let n = self.n;
        let mut lddw_second = vec![false; n];
        for i in self.insn_starts() {
            if self.insn(i).opc == isa::LDDW && i + 1 < n {
                lddw_second[i + 1] = true;
            }
        }
        let mut i = 0;
        while i < n {
            let ins = self.insn(i);
            let next = (i + 1 < n).then(|| self.insn(i + 1));
            isa::check_encoding(&ins, next.as_ref()).map_err(|e| VerifyError {
                insn: i,
                reason: Rejection::Encoding(e),
            })?;
            // Nothing writes the frame pointer: the backends keep it fixed.
            let writes_dst = matches!(ins.class(), CLS_LD | CLS_LDX | CLS_ALU | CLS_ALU64);
            if writes_dst && ins.dst == 10 {
                return err(i, Rejection::FramePointer);
            }
            match ins.class() {
                CLS_LD => {
                    if ins.src != 0 && self.input.image.reloc_at(i).is_none() {
                        return err(i, Rejection::LddwWithoutReloc { src: ins.src });
                    }
                    i += 2;
                    continue;
                }
                CLS_JMP | CLS_JMP32 => match ins.op() {
                    JMP_EXIT => {}
                    JMP_CALL => match ins.src {
                        0 => {
                            let id = ins.imm as u32;
                            if signature(id).is_none() {
                                return err(i, Rejection::UnknownHelper { id });
                            }
                            self.report.helpers.insert(id);
                        }
                        1 => {
                            let target = i as i64 + 1 + ins.imm as i64;
                            if target <= i as i64 {
                                return err(i, Rejection::Recursion { target });
                            }
                            return err(i, Rejection::BpfCall { target });
                        }
                        s => {
                            return err(i, Rejection::CallSrc { src: s });
                        }
                    },
                    _ => {
                        let target = i as i64 + 1 + ins.off as i64;
                        if target < 0 {
                            return err(i, Rejection::JumpBeforeStart { target });
                        }
                        if target >= n as i64 {
                            return err(i, Rejection::JumpPastEnd { target });
                        }
                        if lddw_second[target as usize] {
                            return err(i, Rejection::JumpIntoLddw { lddw: target - 1 });
                        }
                    }
                },
                _ => {}
            }
            i += 1;
        }
        self.order = self.topological_order()?;
        Ok(())
    }

    fn topological_order(&self) -> Result<Vec<usize>, VerifyError> {
        topological_order(self.code)
    }

    fn longest_path(&self) -> u32 {
        let mut best = vec![0u32; self.n + 2];
        for &i in self.order.iter().rev() {
            let m = self
                .successors(i)
                .iter()
                .map(|&s| best.get(s).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            best[i] = 1 + m;
        }
        best[0]
    }

    fn insn_starts(&self) -> Vec<usize> {
        insn_starts(self.code)
    }

    fn run(&mut self) -> Result<(), VerifyError> {
        // Up to PATHS distinct states per instruction keep the analysis path
        // sensitive where clang relies on it (a register set and used under the
        // same condition); beyond that, states are joined so the pass stays linear.
        const PATHS: usize = 16;
        let mut pending: Vec<Vec<State>> = vec![Vec::new(); self.n + 1];
        pending[0].push(State::entry());
        for i in self.order.clone() {
            for st in std::mem::take(&mut pending[i]) {
                for (target, s) in self.step(i, st)? {
                    if target >= self.n {
                        return err(i, Rejection::RunsPastEnd);
                    }
                    let list = &mut pending[target];
                    if list.contains(&s) {
                        continue;
                    }
                    list.push(s);
                    if list.len() > PATHS {
                        let a = list.pop().expect("len > PATHS");
                        let b = list.pop().expect("len > PATHS");
                        list.push(a.join(&b, &mut self.next_id));
                    }
                }
            }
        }
        Ok(())
    }

    fn read_reg(&self, i: usize, st: &State, r: u8) -> Result<Val, VerifyError> {
        let v = st.regs[r as usize].clone();
        match v {
            Val::Uninit => err(i, Rejection::Uninit { reg: r }),
            Val::Conflict => err(i, Rejection::Conflict { reg: r }),
            _ => Ok(v),
        }
    }

    fn step(&mut self, i: usize, mut st: State) -> Result<Vec<(usize, State)>, VerifyError> {
        let ins = self.insn(i);
        match ins.class() {
            CLS_LD => {
                let v = match self.input.image.reloc_at(i) {
                    Some(RelocTarget::Map(m)) => {
                        if m >= self.input.maps.len() {
                            return err(
                                i,
                                Rejection::LddwMap {
                                    map: m,
                                    maps: self.input.maps.len(),
                                },
                            );
                        }
                        Val::MapHandle(m)
                    }
                    Some(RelocTarget::Rodata { region, offset }) => Val::Ptr {
                        region: Region::Rodata(region),
                        lo: offset as i64,
                        hi: offset as i64,
                    },
                    None => {
                        let hi = self.insn(i + 1);
                        Val::konst((ins.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32))
                    }
                };
                st.regs[ins.dst as usize] = v;
                Ok(vec![(i + 2, st)])
            }
            CLS_LDX => {
                let base = self.read_reg(i, &st, ins.src)?;
                let size = ins.size() as i64;
                let v = self.load(i, &st, &base, ins.off as i64, size, ins.src)?;
                st.regs[ins.dst as usize] = v;
                Ok(vec![(i + 1, st)])
            }
            CLS_ST | CLS_STX => {
                let base = self.read_reg(i, &st, ins.dst)?;
                let val = if ins.class() == CLS_STX {
                    self.read_reg(i, &st, ins.src)?
                } else {
                    Val::konst(ins.imm as i64 as u64)
                };
                self.store(
                    i,
                    &mut st,
                    &base,
                    ins.off as i64,
                    ins.size() as i64,
                    val,
                    ins.dst,
                )?;
                Ok(vec![(i + 1, st)])
            }
            CLS_ALU | CLS_ALU64 => {
                self.alu(i, &mut st, ins)?;
                Ok(vec![(i + 1, st)])
            }
            CLS_JMP | CLS_JMP32 => self.jump(i, st, ins),
            _ => unreachable!("3-bit class"),
        }
    }

    /// Check an access of `size` bytes at `base + off`; returns the region and offset range.
    fn access(
        &mut self,
        i: usize,
        base: &Val,
        off: i64,
        size: i64,
        reg: u8,
        write: bool,
    ) -> Result<(Region, i64, i64), VerifyError> {
        let access = if write { Access::Write } else { Access::Read };
        let (region, lo, hi) = match base {
            Val::Ptr { region, lo, hi } => (*region, lo + off, hi + off),
            Val::ValueOrNull { .. } => {
                return err(i, Rejection::MaybeNull { access, reg });
            }
            other => {
                return err(
                    i,
                    Rejection::NotPointer {
                        access,
                        reg,
                        value: Value(other.clone()),
                    },
                );
            }
        };
        let (start, end) = match region {
            Region::Ctx => (0, abi::CTX_SIZE as i64),
            Region::Stack => (-STACK_SIZE, 0),
            Region::MapValue(m) => (0, self.input.maps[m].value_size as i64),
            Region::Rodata(r) => (
                0,
                self.input.rodata_sizes.get(r).copied().unwrap_or(0) as i64,
            ),
        };
        if lo < start || hi + size > end {
            return err(
                i,
                Rejection::OutOfBounds {
                    access,
                    size,
                    lo,
                    hi,
                    region,
                    len: end - start,
                },
            );
        }
        if write && region == Region::Ctx {
            return err(i, Rejection::WriteCtx { offset: lo });
        }
        if write && matches!(region, Region::Rodata(_)) {
            return err(i, Rejection::WriteRodata);
        }
        if region == Region::Stack {
            self.report.stack_depth = self.report.stack_depth.max((-lo) as u32);
        }
        Ok((region, lo, hi))
    }

    fn load(
        &mut self,
        i: usize,
        st: &State,
        base: &Val,
        off: i64,
        size: i64,
        reg: u8,
    ) -> Result<Val, VerifyError> {
        let (region, lo, hi) = self.access(i, base, off, size, reg, false)?;
        let bounded = if size == 8 {
            Val::unknown()
        } else {
            Val::range(0, (1u64 << (size * 8)) - 1)
        };
        if region != Region::Stack {
            return Ok(bounded);
        }
        if lo == hi && size == 8 && lo % 8 == 0 {
            let slot = &st.stack[slot_index(lo)];
            if let Some(v) = &slot.spill {
                return Ok(v.clone());
            }
        }
        for b in lo..hi + size {
            let s = &st.stack[slot_index(b)];
            if s.init & (1 << (b.rem_euclid(8))) == 0 {
                return err(i, Rejection::UninitStack { offset: b });
            }
            if s.spill.as_ref().is_some_and(Val::may_hold_pointer) {
                return err(i, Rejection::ReadSpilledPointer { offset: b });
            }
        }
        Ok(bounded)
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        i: usize,
        st: &mut State,
        base: &Val,
        off: i64,
        size: i64,
        val: Val,
        reg: u8,
    ) -> Result<(), VerifyError> {
        let (region, lo, hi) = self.access(i, base, off, size, reg, true)?;
        if region != Region::Stack {
            if val.is_pointer() {
                return err(i, Rejection::StorePointer { region });
            }
            return Ok(());
        }
        if val.is_pointer() && !(size == 8 && lo == hi && lo % 8 == 0) {
            return err(i, Rejection::UnalignedSpill);
        }
        if lo != hi {
            // Variable offset: any slot in range may change; none is known
            // initialised by it. Bytes of a spilled pointer it might hit would
            // leave the rest of the pointer readable as a number.
            for b in lo..hi + size {
                let s = &mut st.stack[slot_index(b)];
                if s.spill.as_ref().is_some_and(Val::may_hold_pointer) {
                    return err(
                        i,
                        Rejection::VariableStoreOverSpill {
                            slot: b - b.rem_euclid(8),
                        },
                    );
                }
                s.spill = None;
            }
            return Ok(());
        }
        if size == 8 && lo % 8 == 0 {
            let slot = &mut st.stack[slot_index(lo)];
            slot.spill = Some(val);
            slot.init = 0xff;
            return Ok(());
        }
        for b in lo..lo + size {
            let s = &mut st.stack[slot_index(b)];
            if s.spill.as_ref().is_some_and(Val::may_hold_pointer) {
                return err(
                    i,
                    Rejection::PartialSpillOverwrite {
                        slot: b - b.rem_euclid(8),
                    },
                );
            }
            s.spill = None;
            s.init |= 1 << b.rem_euclid(8);
        }
        Ok(())
    }

    fn alu(&mut self, i: usize, st: &mut State, ins: Insn) -> Result<(), VerifyError> {
        let is64 = ins.class() == CLS_ALU64;
        let op = ins.opc & 0xf0;
        let d = ins.dst as usize;
        if op == ALU_END {
            // A byte swap reads only its destination (its X bit means "to big endian").
            return match self.read_reg(i, st, ins.dst)? {
                Val::Scalar { min, max } => {
                    let width = ins.imm as u32;
                    let mask = if width == 64 {
                        u64::MAX
                    } else {
                        (1u64 << width) - 1
                    };
                    st.regs[d] = if min == max {
                        Val::konst(eval_end(ins.opc, ins.imm, min))
                    } else if ins.opc & SRC_X == 0 && max <= mask {
                        Val::range(min, max) // to little endian on a little-endian machine: a truncation
                    } else {
                        Val::range(0, mask)
                    };
                    Ok(())
                }
                other => err(
                    i,
                    Rejection::ByteSwapPointer {
                        reg: ins.dst,
                        value: Value(other),
                    },
                ),
            };
        }
        let src_val = if ins.opc & SRC_X != 0 {
            self.read_reg(i, st, ins.src)?
        } else if is64 {
            Val::konst(ins.imm as i64 as u64)
        } else {
            Val::konst(ins.imm as u32 as u64)
        };
        if op == ALU_MOV {
            st.regs[d] = if is64 {
                src_val
            } else {
                match src_val {
                    Val::Scalar { min, max } if max <= u32::MAX as u64 => Val::range(min, max),
                    Val::Scalar { min, max } if min == max => Val::konst(min as u32 as u64),
                    Val::Scalar { .. } => Val::range(0, u32::MAX as u64),
                    other => {
                        return err(
                            i,
                            Rejection::Mov32Pointer {
                                reg: ins.src,
                                value: Value(other),
                            },
                        );
                    }
                }
            };
            return Ok(());
        }
        let dst_val = self.read_reg(i, st, ins.dst)?;
        // Pointer arithmetic: only pointer +/- scalar (64-bit), or scalar + pointer.
        if dst_val.is_pointer() || src_val.is_pointer() {
            if !is64 {
                return err(
                    i,
                    Rejection::Alu32Pointer {
                        reg: ins.dst,
                        dst: Value(dst_val),
                        src: Value(src_val),
                    },
                );
            }
            let r = match (op, &dst_val, &src_val) {
                (ALU_ADD, Val::Ptr { region, lo, hi }, Val::Scalar { min, max })
                | (ALU_ADD, Val::Scalar { min, max }, Val::Ptr { region, lo, hi }) => {
                    signed_range(*min, *max).and_then(|(a, b)| ptr_add(*region, *lo, *hi, a, b))
                }
                (ALU_SUB, Val::Ptr { region, lo, hi }, Val::Scalar { min, max }) => {
                    signed_range(*min, *max).and_then(|(a, b)| ptr_add(*region, *lo, *hi, -b, -a))
                }
                // The distance between two pointers into one region is the
                // same on every machine; between two map values it would
                // depend on where each entry lives in the map.
                (ALU_SUB, Val::Ptr { region: r1, .. }, Val::Ptr { region: r2, .. })
                    if r1 == r2 && !matches!(r1, Region::MapValue(_)) =>
                {
                    Some(Val::unknown())
                }
                _ => {
                    return err(
                        i,
                        Rejection::PointerArithmetic {
                            reg: ins.dst,
                            dst: Value(dst_val.clone()),
                            src: Value(src_val.clone()),
                        },
                    );
                }
            };
            match r {
                Some(v) => st.regs[d] = v,
                None => {
                    return err(i, Rejection::PointerOffsetRange { reg: ins.dst });
                }
            }
            return Ok(());
        }
        let (Val::Scalar { min: a0, max: a1 }, Val::Scalar { min: b0, max: b1 }) =
            (&dst_val, &src_val)
        else {
            unreachable!("non-pointer values are scalars here");
        };
        let (mut a0, mut a1, mut b0, mut b1) = (*a0, *a1, *b0, *b1);
        if !is64 {
            // 32-bit ops see the low halves; if a range spans more, it becomes the full u32 range.
            let t = |lo: u64, hi: u64| {
                if hi <= u32::MAX as u64 {
                    (lo, hi)
                } else if lo == hi {
                    (lo as u32 as u64, lo as u32 as u64)
                } else {
                    (0, u32::MAX as u64)
                }
            };
            (a0, a1) = t(a0, a1);
            (b0, b1) = t(b0, b1);
        }
        let bits = if is64 { 64 } else { 32 };
        let full = if is64 { u64::MAX } else { u32::MAX as u64 };
        let both_const = a0 == a1 && b0 == b1;
        let r = if both_const {
            let v = eval_alu(op, is64, a0, b0);
            (v, v)
        } else {
            match op {
                ALU_ADD => match (a1.checked_add(b1), a0.checked_add(b0)) {
                    (Some(hi), Some(lo)) if hi <= full => (lo, hi),
                    _ => (0, full),
                },
                ALU_SUB if a0 >= b1 => (a0 - b1, a1 - b0),
                ALU_MUL => match (a1.checked_mul(b1), a0.checked_mul(b0)) {
                    (Some(hi), Some(lo)) if hi <= full => (lo, hi),
                    _ => (0, full),
                },
                // A divisor that may be 0 may give 0 (the kernel's x / 0).
                ALU_DIV if b0 == 0 => (0, a1),
                ALU_DIV => (a0 / b1, a1 / b0),
                ALU_MOD => (0, if b0 > 0 { a1.min(b1 - 1) } else { a1 }),
                ALU_AND => (0, a1.min(b1)),
                ALU_OR | ALU_XOR => {
                    let m = a1.max(b1);
                    let top = if m == 0 {
                        0
                    } else {
                        u64::MAX >> m.leading_zeros()
                    };
                    (0, top.min(full))
                }
                ALU_LSH if b0 == b1 && b0 < bits => {
                    let s = b0 as u32;
                    if a1.leading_zeros() >= s + (64 - bits as u32) {
                        (a0 << s, a1 << s)
                    } else {
                        (0, full)
                    }
                }
                ALU_RSH if b0 == b1 && b0 < bits => (a0 >> b0, a1 >> b0),
                ALU_RSH => (0, a1),
                ALU_ARSH if b0 == b1 && b0 < bits && a1 <= (full >> 1) => (a0 >> b0, a1 >> b0),
                _ => (0, full),
            }
        };
        st.regs[d] = Val::range(r.0, r.1);
        Ok(())
    }

    fn jump(
        &mut self,
        i: usize,
        mut st: State,
        ins: Insn,
    ) -> Result<Vec<(usize, State)>, VerifyError> {
        let op = ins.opc & 0xf0;
        let target = (i as i64 + 1 + ins.off as i64) as usize;
        match op {
            JMP_EXIT => {
                match self.read_reg(i, &st, 0) {
                    Ok(v) if v.is_pointer() => {
                        return err(i, Rejection::ReturnsPointer { value: Value(v) });
                    }
                    Ok(_) => {}
                    Err(_) => return err(i, Rejection::ExitWithoutR0),
                }
                return Ok(vec![]);
            }
            JMP_JA => return Ok(vec![(target, st)]),
            JMP_CALL => {
                self.call(i, &mut st, ins.imm as u32)?;
                return Ok(vec![(i + 1, st)]);
            }
            _ => {}
        }
        let is32 = ins.class() == CLS_JMP32;
        let dv = self.read_reg(i, &st, ins.dst)?;
        let (sv, src_reg) = if ins.opc & SRC_X != 0 {
            (self.read_reg(i, &st, ins.src)?, Some(ins.src))
        } else if is32 {
            (Val::konst(ins.imm as u32 as u64), None)
        } else {
            (Val::konst(ins.imm as i64 as u64), None)
        };

        // Null checks of lookup results.
        if let (Val::ValueOrNull { id, .. }, Val::Scalar { min: 0, max: 0 }) = (&dv, &sv)
            && !is32
            && matches!(op, JMP_JEQ | JMP_JNE)
        {
            let mut taken = st.clone();
            let mut fall = st;
            let null_when_taken = op == JMP_JEQ;
            taken.refine_null(*id, null_when_taken);
            fall.refine_null(*id, !null_when_taken);
            return Ok(vec![(i + 1, fall), (target, taken)]);
        }
        // A pointer known non-null tested against 0 again (clang re-tests after merges).
        if let (Val::Ptr { .. }, Val::Scalar { min: 0, max: 0 }) = (&dv, &sv)
            && !is32
            && matches!(op, JMP_JEQ | JMP_JNE)
        {
            let to = if op == JMP_JEQ { i + 1 } else { target };
            return Ok(vec![(to, st)]);
        }
        if dv.is_pointer() || sv.is_pointer() {
            // Only two pointers into one region (not map values: see the
            // subtraction) compare the same on every machine, and only
            // whole: the low halves of two addresses can compare either way.
            let same_region = matches!((&dv, &sv), (Val::Ptr { region: a, .. }, Val::Ptr { region: b, .. })
                if a == b && !matches!(a, Region::MapValue(_)));
            if !same_region || is32 {
                return err(
                    i,
                    Rejection::ComparePointer {
                        reg: ins.dst,
                        dst: Value(dv),
                        src: Value(sv),
                    },
                );
            }
            return Ok(vec![(i + 1, st.clone()), (target, st)]);
        }
        let (Val::Scalar { min: a0, max: a1 }, Val::Scalar { min: b0, max: b1 }) =
            (dv.clone(), sv.clone())
        else {
            unreachable!()
        };
        let mut out = Vec::new();
        // Refine dst against a constant operand (and src against a constant dst).
        let refine = |taken: bool| -> (MaybeRange, MaybeRange) {
            let d = if b0 == b1 {
                refine_range(op, is32, a0, a1, b0, taken)
            } else {
                Some((a0, a1))
            };
            let s = if a0 == a1 && src_reg.is_some() {
                refine_range(mirror(op), is32, b0, b1, a0, taken)
            } else {
                Some((b0, b1))
            };
            (d, s)
        };
        for (taken, to) in [(false, i + 1), (true, target)] {
            let (d, s) = refine(taken);
            let (Some(d), Some(s)) = (d, s) else { continue };
            let mut ns = st.clone();
            ns.regs[ins.dst as usize] = Val::range(d.0, d.1);
            if let Some(r) = src_reg {
                ns.regs[r as usize] = Val::range(s.0, s.1);
            }
            out.push((to, ns));
        }
        Ok(out)
    }

    /// Check a memory argument of up to `size` bytes; a write initialises the
    /// first `min_size` bytes (what the helper writes on every path).
    #[allow(clippy::too_many_arguments)]
    fn mem_arg(
        &mut self,
        i: usize,
        st: &mut State,
        argn: usize,
        val: &Val,
        size: u64,
        min_size: u64,
        write: bool,
    ) -> Result<(), VerifyError> {
        let reg = (argn + 1) as u8;
        if size == 0 {
            return Ok(());
        }
        if size > STACK_SIZE as u64 * 128 {
            return err(
                i,
                Rejection::ArgSizeTooLarge {
                    arg: argn + 1,
                    reg,
                    size,
                },
            );
        }
        let (region, lo, hi) = self
            .access(i, val, 0, size as i64, reg, write)
            .map_err(|e| VerifyError {
                insn: e.insn,
                reason: Rejection::HelperArg {
                    arg: argn + 1,
                    reg,
                    inner: Box::new(e.reason),
                },
            })?;
        if region == Region::Stack {
            if write {
                if lo != hi {
                    return err(i, Rejection::ArgVariableStackBuffer { arg: argn + 1, reg });
                }
                for b in lo..lo + size as i64 {
                    let s = &mut st.stack[slot_index(b)];
                    // A spilled pointer must be overwritten whole on every path.
                    let slot = b - b.rem_euclid(8);
                    if s.spill.as_ref().is_some_and(Val::may_hold_pointer)
                        && !(slot >= lo && slot + 8 <= lo + min_size as i64)
                    {
                        return err(
                            i,
                            Rejection::ArgOverwritesSpill {
                                arg: argn + 1,
                                reg,
                                slot,
                            },
                        );
                    }
                    s.spill = None;
                    if b < lo + min_size as i64 {
                        s.init |= 1 << b.rem_euclid(8);
                    }
                }
            } else {
                for b in lo..hi + size as i64 {
                    let s = &st.stack[slot_index(b)];
                    if s.init & (1 << b.rem_euclid(8)) == 0 {
                        return err(
                            i,
                            Rejection::ArgUninitStack {
                                arg: argn + 1,
                                reg,
                                offset: b,
                            },
                        );
                    }
                    if s.spill.as_ref().is_some_and(Val::may_hold_pointer) {
                        return err(
                            i,
                            Rejection::ArgReadsSpill {
                                arg: argn + 1,
                                reg,
                                offset: b,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, i: usize, st: &mut State, id: u32) -> Result<(), VerifyError> {
        let (args, ret) = signature(id).expect("checked in check_structure");
        let vals: Vec<Val> = (0..args.len())
            .map(|a| {
                self.read_reg(i, st, (a + 1) as u8)
                    .map_err(|e| VerifyError {
                        insn: i,
                        reason: Rejection::ArgRead {
                            helper: id,
                            arg: a + 1,
                            inner: Box::new(e.reason),
                        },
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut map = None;
        for (a, kind) in args.iter().enumerate() {
            let v = &vals[a];
            let reg = a + 1;
            match kind {
                Arg::Ctx => {
                    if !matches!(
                        v,
                        Val::Ptr {
                            region: Region::Ctx,
                            lo: 0,
                            hi: 0
                        }
                    ) {
                        return err(
                            i,
                            Rejection::ArgNotCtx {
                                helper: id,
                                arg: reg,
                                value: Value(v.clone()),
                            },
                        );
                    }
                }
                Arg::Map => match v {
                    Val::MapHandle(m) => map = Some(*m),
                    _ => {
                        return err(
                            i,
                            Rejection::ArgNotMap {
                                helper: id,
                                arg: reg,
                                value: Value(v.clone()),
                            },
                        );
                    }
                },
                Arg::Scalar => {
                    if v.is_pointer() {
                        return err(
                            i,
                            Rejection::ArgPointerAsNumber {
                                helper: id,
                                arg: reg,
                                value: Value(v.clone()),
                            },
                        );
                    }
                }
                Arg::Size => match v {
                    Val::Scalar { max, .. } if *max <= (1 << 20) => {}
                    _ => {
                        return err(
                            i,
                            Rejection::ArgUnboundedSize {
                                helper: id,
                                arg: reg,
                                value: Value(v.clone()),
                            },
                        );
                    }
                },
                Arg::Key | Arg::Value => {
                    let m = map.expect("map comes first");
                    let def = &self.input.maps[m];
                    let size = if *kind == Arg::Key {
                        def.key_size
                    } else {
                        def.value_size
                    } as u64;
                    let v = v.clone();
                    self.mem_arg(i, st, a, &v, size, size, false)
                        .map_err(|e| VerifyError {
                            insn: e.insn,
                            reason: Rejection::Helper {
                                helper: id,
                                inner: Box::new(e.reason),
                            },
                        })?;
                }
                Arg::ReadMem { size_arg } | Arg::WriteMem { size_arg } => {
                    let (min_size, size) = match &vals[*size_arg] {
                        Val::Scalar { min, max } => (*min, *max),
                        other => {
                            return err(
                                i,
                                Rejection::SizeArgNotScalar {
                                    helper: id,
                                    arg: size_arg + 1,
                                    value: Value(other.clone()),
                                },
                            );
                        }
                    };
                    if size > (1 << 20) {
                        return err(
                            i,
                            Rejection::SizeArgTooLarge {
                                helper: id,
                                arg: size_arg + 1,
                                max: size,
                            },
                        );
                    }
                    let v = v.clone();
                    let write = matches!(kind, Arg::WriteMem { .. });
                    self.mem_arg(i, st, a, &v, size, min_size, write)
                        .map_err(|e| VerifyError {
                            insn: e.insn,
                            reason: Rejection::Helper {
                                helper: id,
                                inner: Box::new(e.reason),
                            },
                        })?;
                }
            }
        }
        for r in 1..=5 {
            st.regs[r] = Val::Uninit;
        }
        st.regs[0] = match ret {
            Ret::Scalar => Val::unknown(),
            Ret::ValueOrNull => {
                let id = self.next_id;
                self.next_id += 1;
                Val::ValueOrNull {
                    map: map.expect("lookup has a map"),
                    id,
                }
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests;
