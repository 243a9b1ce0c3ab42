//! How a program runs: the execution mode a decision's record names, and
//! the backend (where decisions run) a ring's setup names.

/// How a program is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// The interpreter: any program, every access checked.
    Interpreter,
    /// Native code compiled with Cranelift: verified programs only. (Read
    /// as `jit` too: what recordings made before it called rbpf's JIT.)
    #[serde(alias = "jit")]
    Compiled,
}

impl ExecMode {
    /// Name, as the UI and the CLI write it.
    pub fn name(&self) -> &'static str {
        match self {
            ExecMode::Interpreter => "interpreter",
            ExecMode::Compiled => "compiled",
        }
    }
}

/// Where decisions run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// In this process, where the engine reaps completions (every kernel).
    #[default]
    User,
    /// In the kernel, inside io_uring_enter (Linux 7.1+, CAP_BPF + CAP_PERFMON).
    Kernel,
}

impl Backend {
    /// Name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::User => "user",
            Backend::Kernel => "kernel",
        }
    }
}
