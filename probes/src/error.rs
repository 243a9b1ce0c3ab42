//! Errors, each with a one-line message that says what to do.

use thiserror::Error;

/// Everything that can stop the probes. Messages are one line, meant to be
/// printed as-is by the CLI (`ringside: <message>`), without a backtrace.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// Neither root nor CAP_BPF + CAP_PERFMON.
    #[error(
        "kernel probes need root or CAP_BPF+CAP_PERFMON (have: {have}); run with sudo, or grant them: sudo setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep <ringside binary>"
    )]
    NotPrivileged {
        /// Which of the capabilities we have.
        have: String,
    },
    /// tracefs is not mounted and could not be mounted.
    #[error(
        "tracefs is not available ({detail}); run as root: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    NoTracefs {
        /// What went wrong.
        detail: String,
    },
    /// tracefs has no events/io_uring: kernel without io_uring tracepoints.
    #[error(
        "this kernel has no io_uring tracepoints ({path} is missing): it needs CONFIG_IO_URING and CONFIG_TRACEPOINTS"
    )]
    NoIoUringTracepoints {
        /// The directory we looked for.
        path: String,
    },
    /// The kernel lacks tracepoints or fields the probes cannot do without
    /// (kernels older than 6.1, or a layout these probes do not know).
    #[error(
        "kernel {release} lacks what ringside's kernel probes need (they support Linux 6.1 and newer): {lacking}"
    )]
    UnsupportedKernel {
        /// `uname -r`.
        release: String,
        /// Everything missing or different, `; `-separated.
        lacking: String,
    },
    /// A tracepoint field has a different size or place than the probe expects.
    #[error("tracepoint {tracepoint}: field {field} {reason}")]
    TracepointField {
        /// Tracepoint name.
        tracepoint: String,
        /// Field name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tracepoint format file could not be parsed.
    #[error("cannot parse tracepoint format {path} (line {line}): {reason}")]
    FormatFile {
        /// File path.
        path: String,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// /proc/sys/kernel/io_uring_disabled is 2.
    #[error(
        "io_uring is disabled on this machine (kernel.io_uring_disabled = {value}): no process can have rings; enable it with: sysctl -w kernel.io_uring_disabled=0"
    )]
    IoUringDisabled {
        /// The sysctl value.
        value: u32,
    },
    /// The pid does not exist.
    #[error("process {pid} does not exist")]
    NoSuchPid {
        /// The pid.
        pid: u32,
    },
    /// The pid has no io_uring instance.
    #[error(
        "process {pid} has no io_uring rings (no anon_inode:[io_uring] fd); pass --wait-for-rings to keep watching for rings it creates later"
    )]
    NoRings {
        /// The pid.
        pid: u32,
    },
    /// /proc/PID/fdinfo/FD could not be parsed.
    #[error("cannot parse {path}: {reason}")]
    Fdinfo {
        /// The fdinfo path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Loading or attaching the BPF programs failed.
    #[error("loading the BPF probes failed: {0}")]
    Bpf(String),
    /// Attaching one program to its tracepoint failed.
    #[error("attaching to tracepoint {tracepoint} failed: {reason}")]
    Attach {
        /// Tracepoint name.
        tracepoint: String,
        /// The kernel's reason.
        reason: String,
    },
    /// A ring buffer record was not a valid event (object/loader mismatch).
    /// (Its cause is in the message, not also a `source`: printed with
    /// `{:#}`, an error chain then says each fact once.)
    #[error("bad probe event: {0}")]
    Decode(crate::event::wire::DecodeError),
    /// An I/O error, with what we were doing.
    #[error("{what}: {error}")]
    Io {
        /// What we were doing.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}

impl From<crate::event::wire::DecodeError> for ProbeError {
    fn from(e: crate::event::wire::DecodeError) -> Self {
        ProbeError::Decode(e)
    }
}

impl ProbeError {
    /// A process exit code for the CLI: 2 for environment/permission
    /// problems the user must fix, 3 for a bad target pid, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProbeError::NotPrivileged { .. }
            | ProbeError::NoTracefs { .. }
            | ProbeError::NoIoUringTracepoints { .. }
            | ProbeError::UnsupportedKernel { .. }
            | ProbeError::TracepointField { .. }
            | ProbeError::IoUringDisabled { .. } => 2,
            ProbeError::NoSuchPid { .. } | ProbeError::NoRings { .. } => 3,
            _ => 1,
        }
    }
}
