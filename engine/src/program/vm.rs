//! rbpf glue: one VM per loaded program, and the bridge from rbpf's plain
//! `fn` helpers to the decision that is running.
//!
//! rbpf helpers are `fn(u64, u64, u64, u64, u64) -> u64` with no state, so the
//! running decision's helper host is published in a thread-local for the
//! duration of one execution; each registered helper trampolines into it.

use crate::abi::helper_id;
use std::cell::Cell;
use std::ops::Range;

/// Something that implements the helpers for one running decision.
pub trait HelperHost {
    /// Call helper `id` with the program's r1..r5; returns r0.
    fn call(&mut self, id: u32, args: [u64; 5]) -> u64;
}

thread_local! {
    static HOST: Cell<Option<*mut (dyn HelperHost + 'static)>> = const { Cell::new(None) };
}

/// Publishes a host for the current thread; unpublishes on drop (also on panic).
struct HostGuard {
    prev: Option<*mut (dyn HelperHost + 'static)>,
}

impl HostGuard {
    fn new(host: &mut dyn HelperHost) -> HostGuard {
        // SAFETY: the lifetime is erased only while the guard lives, and the
        // guard lives strictly inside the borrow of `host` (see `execute`).
        let ptr: *mut (dyn HelperHost + 'static) = unsafe {
            std::mem::transmute::<*mut dyn HelperHost, *mut (dyn HelperHost + 'static)>(host)
        };
        HostGuard {
            prev: HOST.with(|h| h.replace(Some(ptr))),
        }
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        HOST.with(|h| h.set(self.prev));
    }
}

fn dispatch(id: u32, args: [u64; 5]) -> u64 {
    match HOST.with(|h| h.get()) {
        // SAFETY: the pointer is published only while its host is borrowed
        // mutably by `execute`, on this thread, and no one else touches it.
        Some(p) => unsafe { (*p).call(id, args) },
        None => (-(libc::ENOSYS as i64)) as u64,
    }
}

macro_rules! trampolines {
    ($($name:ident, $aligned:ident, $c:ident = $id:expr;)*) => {
        $(
            fn $name(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
                dispatch($id, [a, b, c, d, e])
            }

            #[cfg(target_arch = "x86_64")]
            extern "C" fn $c(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
                dispatch($id, [a, b, c, d, e])
            }

            /// Entry for JIT-compiled code: rbpf's JIT calls helpers with the
            /// stack 8 bytes off the ABI's 16-byte alignment, which crashes
            /// any callee that spills SSE registers. Realign, then call.
            #[cfg(target_arch = "x86_64")]
            #[unsafe(naked)]
            extern "C" fn $aligned(_a: u64, _b: u64, _c: u64, _d: u64, _e: u64) -> u64 {
                core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "and rsp, -16",
                    "call {f}",
                    "mov rsp, rbp",
                    "pop rbp",
                    "ret",
                    f = sym $c,
                )
            }
        )*
        /// Helpers for the interpreter (called through Rust function pointers).
        const TRAMPOLINES: &[(u32, rbpf::ebpf::Helper)] = &[$(($id, $name)),*];

        /// Helpers for the JIT (called from generated code with the C ABI).
        #[cfg(target_arch = "x86_64")]
        fn jit_trampolines() -> Vec<(u32, rbpf::ebpf::Helper)> {
            vec![$((
                $id,
                // SAFETY: the JIT only takes the address and calls it with the
                // System V convention, which `$aligned` implements; rbpf's
                // Helper type is a Rust fn pointer, hence the cast.
                unsafe {
                    std::mem::transmute::<extern "C" fn(u64, u64, u64, u64, u64) -> u64, rbpf::ebpf::Helper>($aligned)
                },
            )),*]
        }
    };
}

trampolines! {
    h_map_lookup, j_map_lookup, c_map_lookup = helper_id::MAP_LOOKUP_ELEM;
    h_map_update, j_map_update, c_map_update = helper_id::MAP_UPDATE_ELEM;
    h_map_delete, j_map_delete, c_map_delete = helper_id::MAP_DELETE_ELEM;
    h_ktime, j_ktime, c_ktime = helper_id::KTIME_GET_NS;
    h_printk, j_printk, c_printk = helper_id::TRACE_PRINTK;
    h_submit, j_submit, c_submit = helper_id::RS_SUBMIT;
    h_drop, j_drop, c_drop = helper_id::RS_DROP;
    h_unlink, j_unlink, c_unlink = helper_id::RS_UNLINK;
    h_emit, j_emit, c_emit = helper_id::RS_EMIT;
    h_read_buf, j_read_buf, c_read_buf = helper_id::RS_READ_BUF;
    h_set_res, j_set_res, c_set_res = helper_id::RS_SET_RES;
}

/// How a program is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// rbpf's bounds-checked interpreter (the default).
    Interpreter,
    /// rbpf's x86_64 JIT: only for verified (or explicitly trusted) programs.
    Jit,
}

/// An rbpf VM over a program's final (relocated) code.
pub struct Vm {
    // Declared before `code` so it is dropped first: it borrows `code`.
    vm: rbpf::EbpfVmRaw<'static>,
    code: Box<[u8]>,
    mode: ExecMode,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("insns", &(self.code.len() / 8))
            .field("mode", &self.mode)
            .finish()
    }
}

impl Vm {
    /// Build a VM. `allowed` are the extra memory ranges (map arenas, rodata)
    /// the interpreter admits besides the context and stack.
    pub fn new(code: Box<[u8]>, allowed: &[Range<u64>], mode: ExecMode) -> Result<Vm, String> {
        // SAFETY: `code` is heap memory owned by the returned Vm and never
        // mutated or moved (a Box's contents stay put); the VM, which holds
        // the borrow, is dropped before it.
        let prog: &'static [u8] = unsafe { std::slice::from_raw_parts(code.as_ptr(), code.len()) };
        let mut vm = rbpf::EbpfVmRaw::new(Some(prog))
            .map_err(|e| format!("rbpf rejected the program: {e}"))?;
        #[cfg(target_arch = "x86_64")]
        let helpers = if mode == ExecMode::Jit {
            jit_trampolines()
        } else {
            TRAMPOLINES.to_vec()
        };
        #[cfg(not(target_arch = "x86_64"))]
        let helpers = TRAMPOLINES.to_vec();
        for (id, f) in helpers {
            vm.register_helper(id, f)
                .map_err(|e| format!("rbpf: {e}"))?;
        }
        for r in allowed {
            vm.register_allowed_memory(r.clone());
        }
        if mode == ExecMode::Jit {
            #[cfg(target_arch = "x86_64")]
            vm.jit_compile()
                .map_err(|e| format!("JIT compilation failed: {e}"))?;
            #[cfg(not(target_arch = "x86_64"))]
            return Err("the JIT is available on x86_64 only".into());
        }
        Ok(Vm { vm, code, mode })
    }

    /// The code this VM runs.
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// Execution mode.
    pub fn mode(&self) -> ExecMode {
        self.mode
    }

    /// Run once over `ctx` (a private copy: writes cannot escape), with
    /// `host` answering helper calls. Returns r0 or rbpf's error.
    pub fn execute(&self, ctx: &mut [u8], host: &mut dyn HelperHost) -> Result<u64, String> {
        let _guard = HostGuard::new(host);
        // SAFETY: rbpf ties `mem` to the VM's lifetime parameter but does not
        // keep it past the call; the slice outlives the call.
        let mem: &'static mut [u8] = unsafe { &mut *(ctx as *mut [u8]) };
        match self.mode {
            ExecMode::Interpreter => {
                // rbpf's interpreter is plain Rust: a panic in it (a bug we have
                // not met yet) becomes this decision's VM error, not a crash.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.vm.execute_program(mem)
                }))
                .map_err(|_| "rbpf's interpreter panicked".to_string())?
                .map_err(|e| e.to_string())
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a program gets a Jit VM only when the verifier proved
            // every memory access in bounds, or its loader declared it trusted.
            ExecMode::Jit => unsafe { self.vm.execute_program_jit(mem) }.map_err(|e| e.to_string()),
            #[cfg(not(target_arch = "x86_64"))]
            ExecMode::Jit => Err("no JIT on this architecture".into()),
        }
    }
}
