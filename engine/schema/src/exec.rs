//! How a program runs: the backend a decision's record names.

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
