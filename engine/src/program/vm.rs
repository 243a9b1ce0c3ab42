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
pub use crate::program::host::{HelperEntry, HelperHost, HostFrame, helper_entry};
use crate::program::interp::{self, InterpError};
use crate::program::mem::{AddrSpace, Addressing, Region, STACK_SIZE};
use std::mem::MaybeUninit;

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
