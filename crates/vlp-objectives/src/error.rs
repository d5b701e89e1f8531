//! Errors of the objectives: bad shapes, bad labels, impossible requests.

/// What went wrong in an objective; every message names the argument.
#[derive(Debug, thiserror::Error)]
pub enum ObjectiveError {
    /// A tensor's shape does not fit the objective.
    #[error("{what}: expected shape {expected}, got {actual:?}")]
    Shape {
        /// The argument.
        what: &'static str,
        /// The shape it should have.
        expected: String,
        /// The shape it has.
        actual: Vec<usize>,
    },
    /// A value is outside its valid range (a probability, a label, a ratio).
    #[error("{what}: {message}")]
    Value {
        /// The argument or setting.
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Hard negatives need another pair in the batch.
    #[error("hard negatives need a batch of at least 2 pairs, got {batch}")]
    NoNegatives {
        /// Pairs in the batch.
        batch: usize,
    },
    /// The momentum copy and the online model do not share parameters.
    #[error("momentum update: parameter {param} of the momentum model is not in the online model (build the momentum model as a clone of the online one)")]
    UnknownParam {
        /// The parameter's id.
        param: String,
    },
    /// An objective reads a part of the batch that its batcher did not make.
    #[error("objective {objective} needs a batch with {part} (set it in the batcher)")]
    MissingBatchPart {
        /// The objective.
        objective: &'static str,
        /// The batch part (the batcher setting that makes it).
        part: &'static str,
    },
    /// The model cannot do what was asked (an objective it lacks).
    #[error("{0}")]
    Unsupported(String),
    /// Word-region alignment failed inside the OT solver.
    #[error("word-region alignment: {0}")]
    Ot(#[from] vlp_ot::OtError),
}

/// Result of the fallible objectives.
pub type Result<T> = std::result::Result<T, ObjectiveError>;

pub(crate) fn shape_error(
    what: &'static str,
    expected: impl Into<String>,
    actual: &[usize],
) -> ObjectiveError {
    ObjectiveError::Shape {
        what,
        expected: expected.into(),
        actual: actual.to_vec(),
    }
}

pub(crate) fn value_error(what: &'static str, message: impl Into<String>) -> ObjectiveError {
    ObjectiveError::Value {
        what,
        message: message.into(),
    }
}
