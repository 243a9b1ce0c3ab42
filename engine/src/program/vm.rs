//! Running a loaded program: the backends, and the bridge from a running
//! program to the helpers of the decision it belongs to.
//!
//! Two backends, one meaning ([`crate::program::isa`]): the interpreter
//! ([`crate::program::interp`]), which runs anything and checks everything,
//! and compiled native code ([`crate::program::compiled`]), which runs only
//! programs the verifier proved and checks nothing it proved. Helpers see the
//! program's memory through an [`AddrSpace`] in both, so a helper never
//! dereferences a pointer it did not check.

use crate::abi::helper_id;
use crate::program::compiled::{CompileError, Compiled};
use crate::program::interp::{self, InterpError};
use crate::program::mem::{AddrSpace, Addressing, Region, STACK_SIZE};
use std::mem::MaybeUninit;

/// Something that implements the helpers for one running decision.
pub trait HelperHost {
    /// Call helper `id` with the program's r1..r5; returns r0. Pointer
    /// arguments are addresses in `mem`.
    fn call(&mut self, id: u32, args: [u64; 5], mem: &AddrSpace<'_>) -> u64;
}

pub use ringside_schema::exec::ExecMode;

/// Why a run stopped before `exit`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The interpreter stopped it.
    #[error(transparent)]
    Interp(#[from] InterpError),
    /// A helper panicked (a bug in ringside; the decision fails instead of the process).
    #[error("helper {} panicked", helper_id::name(*.0).unwrap_or("?"))]
    HelperPanicked(u32),
}

/// A finished run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ran {
    /// r0 at exit.
    pub ret: u64,
    /// Instructions executed, when the interpreter ran it (compiled code does
    /// not count).
    pub insns: Option<u64>,
}

/// A program ready to run in one of the backends.
pub struct Vm {
    /// Code with virtual addresses (the interpreter's, and the one shown).
    code: Box<[u8]>,
    compiled: Option<Compiled>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("insns", &(self.code.len() / 8))
            .field("mode", &self.mode())
            .finish()
    }
}

/// What compiled code passes to each helper entry: the decision's host and
/// the run's address space.
pub struct HostFrame<'a, 'b> {
    host: &'a mut dyn HelperHost,
    mem: AddrSpace<'b>,
    panicked: Option<u32>,
}

/// The signature compiled code calls a helper with: the frame, then r1..r5.
pub type HelperEntry = unsafe extern "C" fn(*mut HostFrame<'_, '_>, u64, u64, u64, u64, u64) -> u64;

/// Entry point of helper `ID` for compiled code.
///
/// # Safety
/// `frame` is the frame [`Vm::execute`] passed to the compiled code, alive
/// for the whole run.
unsafe extern "C" fn entry<const ID: u32>(
    frame: *mut HostFrame<'_, '_>,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> u64 {
    // SAFETY: see the function's contract.
    let f = unsafe { &mut *frame };
    // A panic must not unwind into generated code (that aborts the process).
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.host.call(ID, [a1, a2, a3, a4, a5], &f.mem)
    })) {
        Ok(v) => v,
        Err(_) => {
            f.panicked.get_or_insert(ID);
            0
        }
    }
}

/// The entry compiled code calls for helper `id`, if it is one.
pub fn helper_entry(id: u32) -> Option<HelperEntry> {
    use helper_id::*;
    Some(match id {
        MAP_LOOKUP_ELEM => entry::<MAP_LOOKUP_ELEM>,
        MAP_UPDATE_ELEM => entry::<MAP_UPDATE_ELEM>,
        MAP_DELETE_ELEM => entry::<MAP_DELETE_ELEM>,
        KTIME_GET_NS => entry::<KTIME_GET_NS>,
        TRACE_PRINTK => entry::<TRACE_PRINTK>,
        RS_SUBMIT => entry::<RS_SUBMIT>,
        RS_DROP => entry::<RS_DROP>,
        RS_UNLINK => entry::<RS_UNLINK>,
        RS_EMIT => entry::<RS_EMIT>,
        RS_READ_BUF => entry::<RS_READ_BUF>,
        RS_SET_RES => entry::<RS_SET_RES>,
        _ => return None,
    })
}

impl Vm {
    /// An interpreter VM over `code` (virtual addresses in its `lddw`s).
    pub fn interpreter(code: Box<[u8]>) -> Vm {
        Vm {
            code,
            compiled: None,
        }
    }

    /// A VM that runs compiled code. `native` is the same program with host
    /// addresses in its `lddw`s; it must have been verified.
    pub fn compiled(code: Box<[u8]>, native: &[u8]) -> Result<Vm, CompileError> {
        let compiled = Compiled::new(native, &helper_entry)?;
        Ok(Vm {
            code,
            compiled: Some(compiled),
        })
    }

    /// The code the interpreter runs (virtual addresses; what traces and
    /// disassembly show).
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// Execution mode.
    pub fn mode(&self) -> ExecMode {
        if self.compiled.is_some() {
            ExecMode::Compiled
        } else {
            ExecMode::Interpreter
        }
    }

    /// Run once over `ctx` (a private copy: writes cannot escape), with the
    /// program's map arenas and rodata (`statics`) and `host` answering
    /// helper calls. `limit` caps instructions: a run with a limit always
    /// goes through the interpreter, which counts.
    pub fn execute(
        &self,
        ctx: &mut [u8],
        statics: &[Region],
        host: &mut dyn HelperHost,
        limit: Option<u64>,
    ) -> Result<Ran, RunError> {
        match &self.compiled {
            Some(c) if limit.is_none() => {
                let mut stack = MaybeUninit::<[u8; STACK_SIZE]>::uninit();
                let stack_lo = stack.as_mut_ptr() as *mut u8;
                let mut frame = HostFrame {
                    host,
                    mem: AddrSpace::new(
                        Addressing::Host,
                        ctx.as_mut_ptr(),
                        ctx.len(),
                        stack_lo,
                        statics,
                    ),
                    panicked: None,
                };
                // SAFETY: the code was verified (Vm::compiled's contract):
                // it touches only the ctx (read-only), the 512 bytes below
                // the stack top, and the regions whose host addresses its
                // lddws hold, all alive for this call; the stack is never
                // read before it is written (the verifier proved that too).
                let r0 = unsafe {
                    c.run(
                        ctx.as_ptr(),
                        stack_lo.wrapping_add(STACK_SIZE),
                        &mut frame as *mut HostFrame<'_, '_>,
                    )
                };
                match frame.panicked {
                    Some(id) => Err(RunError::HelperPanicked(id)),
                    None => Ok(Ran {
                        ret: r0,
                        insns: None,
                    }),
                }
            }
            _ => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    interp::run(&self.code, ctx, statics, host, limit, None)
                }))
                .map_err(|_| RunError::HelperPanicked(0))??;
                Ok(Ran {
                    ret: r.ret,
                    insns: Some(r.insns),
                })
            }
        }
    }
}
