//! The workload crate's errors about a spec: where ([`SpecError`]) and
//! what ([`SpecProblem`] and the typed causes it carries). Their own
//! module so that the parser (`spec`) and the checker (`plan`) both use
//! them without using each other.

use crate::check::Check;
use crate::content::ContentError;
use crate::limits::{bytes, count};
use std::fmt;

/// A spec problem, with where it is. Its text says everything (it has no
/// `source()`), so it prints once however it is printed.
#[derive(Debug)]
pub struct SpecError {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub problem: SpecProblem,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.problem
        )
    }
}

/// What is wrong at a [`SpecError`]'s place: the typed causes other parts
/// of the crate find, and the checks of the spec's values.
#[derive(Debug, thiserror::Error)]
pub enum SpecProblem {
    /// A check of a value of the spec (TOML syntax, ranges, names).
    #[error("{0}")]
    Check(Check),
    /// A `content` spec.
    #[error("{0}")]
    Content(ContentError),
    /// A TYPE:VALUE field of a map entry.
    #[error("{0}")]
    Field(FieldError),
    /// A spec-wide total crossed.
    #[error("{0}")]
    Total(TotalExceeded),
    /// A program object that does not load.
    #[error("{0}")]
    Object(Box<ringside_engine::program::elf::LoadError>),
}

impl From<Check> for SpecProblem {
    fn from(c: Check) -> Self {
        SpecProblem::Check(c)
    }
}

impl From<ContentError> for SpecProblem {
    fn from(e: ContentError) -> Self {
        SpecProblem::Content(e)
    }
}

impl From<FieldError> for SpecProblem {
    fn from(e: FieldError) -> Self {
        SpecProblem::Field(e)
    }
}

impl From<TotalExceeded> for SpecProblem {
    fn from(e: TotalExceeded) -> Self {
        SpecProblem::Total(e)
    }
}

impl From<ringside_engine::program::elf::LoadError> for SpecProblem {
    fn from(e: ringside_engine::program::elf::LoadError) -> Self {
        SpecProblem::Object(Box::new(e))
    }
}

impl std::error::Error for SpecError {}

/// A TYPE:VALUE field of a map entry that encodes to no bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Not TYPE:VALUE.
    #[error("`{0}`: expected TYPE:VALUE (u8, u16, u32, u64, i32, i64, file, hex)")]
    Shape(String),
    /// An integer type with a value that is no number.
    #[error("`{0}` is not a number")]
    NotNumber(String),
    /// A number too large (or negative) for its type (or, given as an
    /// integer, for the map's key or value).
    #[error("{value} does not fit in {bytes} bytes")]
    Fit {
        /// The number.
        value: i128,
        /// Bytes of its type.
        bytes: usize,
    },
    /// `file:NAME` naming no file or stream of the spec.
    #[error("no file or stream named `{0}`")]
    NoName(String),
    /// `hex:` with other than pairs of hex digits.
    #[error("`{0}` is not hex (pairs of 0-9a-f)")]
    NotHex(String),
    /// `hex:` with a pair that is no byte.
    #[error("`{0}` is not hex")]
    NotHexByte(String),
    /// A type there is not.
    #[error("unknown field type `{0}`")]
    Type(String),
}

/// How a [`TotalExceeded`] words its maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// A count: `1,000,000`.
    Count,
    /// Bytes: `1 GiB`.
    Bytes,
}

/// A spec-wide total (bytes of files, copies of chains, ...) crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} in all would be more than the {} a spec may have", match figure {
    Figure::Count => count(*max),
    Figure::Bytes => bytes(*max),
})]
pub struct TotalExceeded {
    /// What is totalled.
    pub what: &'static str,
    /// The most a spec may have.
    pub max: u64,
    /// How the maximum is worded.
    pub figure: Figure,
}
