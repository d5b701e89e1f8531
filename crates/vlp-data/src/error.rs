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
}
