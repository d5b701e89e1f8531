//! Why a model configuration cannot build a model, naming the offending
//! key and value, so a mistake in a preset file is found by name. Models'
//! `validate` methods return it; their `init` panics with the same message.

use std::fmt::Display;

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}` = {value}: {reason}")]
pub struct ConfigError {
    /// The configuration key, as spelled in the config struct.
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: &'static str, value: impl Display, reason: impl Into<String>) -> Self {
        Self {
            key,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `width` (key `width_key`) must split into `heads` (key `heads_key`) equal heads.
pub(crate) fn check_heads(
    width_key: &'static str,
    width: usize,
    heads_key: &'static str,
    heads: usize,
) -> Result<(), ConfigError> {
    if heads == 0 {
        return Err(ConfigError::new(
            heads_key,
            heads,
            "needs at least one head",
        ));
    }
    if !width.is_multiple_of(heads) {
        return Err(ConfigError::new(
            width_key,
            width,
            format!("not a multiple of {heads_key} = {heads}"),
        ));
    }
    Ok(())
}

/// The visual extractor's width must be the width of the tower reading it.
pub(crate) fn check_visual_width(
    visual_width: usize,
    tower_key: &'static str,
    tower_width: usize,
) -> Result<(), ConfigError> {
    if visual_width != tower_width {
        return Err(ConfigError::new(
            "visual.hidden_size",
            visual_width,
            format!("the visual extractor's width must equal {tower_key} = {tower_width}"),
        ));
    }
    Ok(())
}
