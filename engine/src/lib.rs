//! ringside BPF link engine.
