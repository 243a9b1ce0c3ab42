//! Native code for verified programs (Cranelift). Placeholder until the
//! backend lands: every program is refused, so loads fall back to the
//! interpreter with a note saying why.

use crate::program::vm::HelperEntry;

/// Why a program could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("insn {insn}: {reason}")]
pub struct CompileError {
    /// Instruction index.
    pub insn: usize,
    /// Why.
    pub reason: String,
}

/// A compiled program.
pub struct Compiled {
    _private: (),
}

impl Compiled {
    /// Compile verified `code` (host addresses in its `lddw`s); `helpers`
    /// gives the entry of each helper id it calls.
    pub fn new(
        _code: &[u8],
        _helpers: &dyn Fn(u32) -> Option<HelperEntry>,
    ) -> Result<Compiled, CompileError> {
        Err(CompileError {
            insn: 0,
            reason: "the compiled backend is not built yet".into(),
        })
    }

    /// Run.
    ///
    /// # Safety
    /// See [`crate::program::vm::Vm::execute`].
    pub unsafe fn run(
        &self,
        _ctx: *const u8,
        _stack_top: *mut u8,
        _frame: *mut crate::program::vm::HostFrame<'_, '_>,
    ) -> u64 {
        unreachable!("never built")
    }
}
