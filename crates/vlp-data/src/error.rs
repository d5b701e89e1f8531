use std::path::PathBuf;

/// Errors of the data layer. Each names the file or item at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("tokenizer file {path} not found")]
    TokenizerNotFound { path: PathBuf },
    #[error("tokenizer file {path} is not a valid tokenizer.json: {reason}")]
    TokenizerInvalid { path: PathBuf, reason: String },
    #[error("tokenizer {source_name} has no special token {token}")]
    MissingSpecialToken { source_name: String, token: String },
    #[error("could not write tokenizer file {path}: {reason}")]
    TokenizerWrite { path: PathBuf, reason: String },
    #[error("tokenizer training failed: {0}")]
    TokenizerTraining(String),
    #[error("could not tokenize {text:?}: {reason}")]
    Tokenize { text: String, reason: String },
    #[error("could not read {path}: {reason}")]
    RegionIo { path: PathBuf, reason: String },
    #[error("{path} line {line}: {reason}")]
    TsvRecord {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: not a readable npz archive: {reason}")]
    NpzArchive { path: PathBuf, reason: String },
    #[error("{path}, array `{key}`: {reason}")]
    NpzArray {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("no image {image_id:?} in {path}")]
    UnknownImage { path: PathBuf, image_id: String },
    #[error("{count} corrupt region records, more than the {max} allowed; last: {last}")]
    TooManyCorruptRecords {
        count: usize,
        max: usize,
        last: Box<DataError>,
    },
    #[error("cannot batch regions: {0}")]
    RegionBatch(String),
    #[error("cannot cut a {width}x{height} image into {patch_size}-pixel patches")]
    PatchSize {
        width: usize,
        height: usize,
        patch_size: usize,
    },
    #[error("invalid answer vocabulary: {0}")]
    AnswerVocabulary(String),
    #[error("{0}")]
    RegionMaskingWithoutRegions(&'static str),
    #[error("patch_masking needs pixel images; the batcher has a detector (regions)")]
    PatchMaskingWithoutImages,
    #[error("{name} is {value}, not a probability in [0, 1]")]
    Probability { name: &'static str, value: f64 },
}

impl DataError {
    /// Checks masking settings (typically read from a config file) before
    /// they reach `rand`, which panics on values outside `[0, 1]`.
    pub(crate) fn check_probabilities(settings: &[(&'static str, f64)]) -> Result<(), DataError> {
        match settings
            .iter()
            .find(|(_, value)| !(0.0..=1.0).contains(value))
        {
            Some(&(name, value)) => Err(DataError::Probability { name, value }),
            None => Ok(()),
        }
    }
}
