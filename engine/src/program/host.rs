//! The bridge from a running program to the helpers of the decision it
//! belongs to: what the interpreter calls ([`HelperHost`]) and what
//! compiled code calls ([`HelperEntry`], through a [`HostFrame`]). Both
//! backends and the [`crate::program::vm`] that picks between them use it.

use crate::abi::helper_id;
use crate::program::mem::AddrSpace;

/// Something that implements the helpers for one running decision.
pub trait HelperHost {
    /// Call helper `id` with the program's r1..r5; returns r0. Pointer
    /// arguments are addresses in `mem`.
    fn call(&mut self, id: u32, args: [u64; 5], mem: &AddrSpace<'_>) -> u64;
}

/// What compiled code passes to each helper entry: the decision's host and
/// the run's address space.
pub struct HostFrame<'a, 'b> {
    pub(crate) host: &'a mut dyn HelperHost,
    pub(crate) mem: AddrSpace<'b>,
    /// The first helper that panicked, if one did.
    pub(crate) panicked: Option<u32>,
}

/// The signature compiled code calls a helper with: the frame, then r1..r5.
pub type HelperEntry = unsafe extern "C" fn(*mut HostFrame<'_, '_>, u64, u64, u64, u64, u64) -> u64;

/// Entry point of helper `ID` for compiled code.
///
/// # Safety
/// `frame` is the frame [`crate::program::vm::Vm::execute`] passed to the compiled code, alive
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
