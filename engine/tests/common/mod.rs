//! Helpers for engine tests: pipes, socket pairs, files.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pipe: (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A stream socket pair.
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    assert_eq!(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        },
        0
    );
    // SAFETY: fresh fds we own.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Write all of `data` to a raw fd.
pub fn write_all(fd: RawFd, data: &[u8]) {
    let mut done = 0;
    while done < data.len() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(fd, data[done..].as_ptr() as *const _, data.len() - done) };
        assert!(n > 0, "write failed: {}", std::io::Error::last_os_error());
        done += n as usize;
    }
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Keep an fd's number while keeping it open.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

/// The backend the engine tests run under: `RINGSIDE_TEST_BACKEND=kernel`
/// runs them inside the kernel's io_uring BPF loop (scripts/kernel-checks
/// does in a 7.1+ guest), anything else or unset the userspace engine.
/// Asking for the kernel backend where the kernel has no loop is a
/// failure, not a quiet fallback to userspace.
pub fn backend() -> ringside_engine::kernel::Backend {
    match std::env::var("RINGSIDE_TEST_BACKEND").as_deref() {
        Ok("kernel") => {
            if let Err(e) = ringside_engine::kernel::probe() {
                panic!("RINGSIDE_TEST_BACKEND=kernel, but: {e}");
            }
            ringside_engine::kernel::Backend::Kernel
        }
        Ok("user") | Err(_) => ringside_engine::kernel::Backend::User,
        Ok(other) => panic!("RINGSIDE_TEST_BACKEND={other}: kernel or user"),
    }
}

/// How the engine tests' programs run in userspace:
/// `RINGSIDE_TEST_EXEC=interpreter` under the interpreter (scripts/test runs
/// the engine's tests once each way), `compiled` or unset compiled, the
/// default. Anything else is a failure, not a quiet default.
pub fn exec() -> ringside_engine::program::vm::ExecMode {
    use ringside_engine::program::vm::ExecMode;
    match std::env::var("RINGSIDE_TEST_EXEC").as_deref() {
        Ok("interpreter") => ExecMode::Interpreter,
        Ok("compiled") | Err(_) => ExecMode::Compiled,
        Ok(other) => panic!("RINGSIDE_TEST_EXEC={other}: interpreter or compiled"),
    }
}

/// Load options of the engine tests: the defaults, run as [`exec`] says.
pub fn load_options() -> ringside_engine::program::LoadOptions {
    ringside_engine::program::LoadOptions {
        exec: exec(),
        ..Default::default()
    }
}

/// A test of what only the userspace engine does (docs/kernel-backend.md,
/// "What differs"): under the kernel backend it says loudly that it did
/// not run, and why, and returns true (the caller returns).
pub fn user_backend_only(test: &str, why: &str) -> bool {
    if backend() != ringside_engine::kernel::Backend::Kernel {
        return false;
    }
    use std::io::Write;
    // Straight to fd 2: libtest captures what passing tests print.
    let _ = std::io::stderr().write_all(
        format!("\n######## SKIP {test}: NOT RUN under the kernel backend: {why} ########\n\n")
            .as_bytes(),
    );
    true
}

/// An engine with `config` under the backend the tests run under
/// ([`backend`]).
pub fn engine_with(config: ringside_engine::EngineConfig) -> ringside_engine::Engine {
    engine_under(backend(), config)
}

/// An engine with `config` under `backend`, and never a quiet fallback to
/// the other: a test that asked for the kernel ran in the kernel.
pub fn engine_under(
    backend: ringside_engine::kernel::Backend,
    config: ringside_engine::EngineConfig,
) -> ringside_engine::Engine {
    let e = ringside_engine::Engine::new(ringside_engine::EngineConfig { backend, ..config })
        .unwrap_or_else(|e| panic!("an engine under the {backend:?} backend: {e}"));
    assert_eq!(
        e.backend(),
        backend,
        "never a quiet fallback to another backend"
    );
    e
}
