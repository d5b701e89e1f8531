//! The error type shared by every solver of the crate.

use std::fmt;

/// Why an optimal-transport call refused its input or could not finish.
///
/// Every public entry point validates shapes, lengths and numeric input
/// before any work starts and reports problems through this type instead of
/// panicking inside tensor code.
#[derive(Clone, Debug, PartialEq)]
pub enum OtError {
    /// Two inputs disagree on a dimension, or a buffer has the wrong length.
    Shape {
        /// What was being checked, e.g. `"cost [B, M, N] vs x padding [B, M]"`.
        what: String,
        /// The expected shape or length.
        expected: Vec<usize>,
        /// The shape or length found.
        found: Vec<usize>,
    },
    /// A per-example length is zero or larger than the padded dimension.
    Length {
        /// Which side (`"x"`/`"y"`, or `"rows"`/`"cols"`).
        side: &'static str,
        /// Index of the example in the batch.
        example: usize,
        /// The offending length.
        length: usize,
        /// The padded size of that side.
        max: usize,
    },
    /// A problem has no valid (unpadded) row or column left.
    EmptyProblem {
        /// Index of the example in the batch.
        example: usize,
    },
    /// A marginal has a negative, non-finite or all-zero weight, or the two
    /// marginals do not carry the same total mass.
    Marginals(String),
    /// A cost entry is NaN or infinite.
    NonFiniteCost {
        /// Index of the example in the batch.
        example: usize,
    },
    /// A configuration value is out of range (e.g. `beta <= 0`).
    Config(String),
    /// A solver ran out of its iteration budget before reaching optimality.
    NotConverged {
        /// Index of the example in the batch.
        example: usize,
        /// Iterations (pivots for the exact solver) spent.
        iterations: usize,
    },
    /// Tensor data could not be read back to the host.
    Data(String),
}

impl fmt::Display for OtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtError::Shape {
                what,
                expected,
                found,
            } => write!(
                f,
                "shape mismatch in {what}: expected {expected:?}, found {found:?}"
            ),
            OtError::Length {
                side,
                example,
                length,
                max,
            } => write!(
                f,
                "{side} length {length} of example {example} is out of range 1..={max}"
            ),
            OtError::EmptyProblem { example } => write!(
                f,
                "example {example} has no unpadded row or no unpadded column"
            ),
            OtError::Marginals(msg) => write!(f, "invalid marginals: {msg}"),
            OtError::NonFiniteCost { example } => {
                write!(
                    f,
                    "cost matrix of example {example} has a NaN or infinite entry"
                )
            }
            OtError::Config(msg) => write!(f, "invalid configuration: {msg}"),
            OtError::NotConverged {
                example,
                iterations,
            } => write!(
                f,
                "example {example} did not reach optimality within {iterations} iterations"
            ),
            OtError::Data(msg) => write!(f, "could not read tensor data: {msg}"),
        }
    }
}

impl std::error::Error for OtError {}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, OtError>;

pub(crate) fn shape_err(what: &str, expected: &[usize], found: &[usize]) -> OtError {
    OtError::Shape {
        what: what.to_string(),
        expected: expected.to_vec(),
        found: found.to_vec(),
    }
}
