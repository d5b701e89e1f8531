//! Why a model configuration cannot build a model, naming the offending
//! key and value, so a mistake in a preset file is found by name. Every
//! configuration's `validate` method returns it; `init` panics with the
//! same message when `validate` fails (callers that take sizes from users
//! call `validate` first and propagate the error).

use std::fmt::Display;

use vlp_features::VisualEmbeddingsConfig;

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}` = {value}: {reason}")]
pub struct ConfigError {
    /// The configuration key, as spelled in the config struct; nested
    /// sizes are dotted (`vision.hidden_size`).
    pub key: String,
    /// The offending value, as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// The value `value` of `key` is wrong because of `reason`.
    pub fn new(key: impl Into<String>, value: impl Display, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `prefix.key`, or `key` without a prefix.
pub(crate) fn dotted(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// `width` (key `width_key`) must split into `heads` (key `heads_key`) equal heads.
pub(crate) fn check_heads(
    width_key: &str,
    width: usize,
    heads_key: &str,
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

/// The visual extractor must be as wide as the tower reading it (key
/// `tower_key`), and cut its images into whole patches.
pub(crate) fn check_visual(
    visual: &VisualEmbeddingsConfig,
    tower_key: &str,
    tower_width: usize,
) -> Result<(), ConfigError> {
    if let VisualEmbeddingsConfig::Patches(patches) = visual {
        check_patches("visual.", patches.image_size, patches.patch_size)?;
    }
    if visual.hidden_size() != tower_width {
        return Err(ConfigError::new(
            "visual.hidden_size",
            visual.hidden_size(),
            format!("the visual extractor's width must equal {tower_key} = {tower_width}"),
        ));
    }
    Ok(())
}

/// Square images of side `image_size` must cut into whole `patch_size`
/// patches; `prefix` (`""` or `"visual."`) starts the keys.
pub(crate) fn check_patches(
    prefix: &str,
    image_size: usize,
    patch_size: usize,
) -> Result<(), ConfigError> {
    if patch_size == 0 || !image_size.is_multiple_of(patch_size) {
        return Err(ConfigError::new(
            format!("{prefix}patch_size"),
            patch_size,
            format!("must divide {prefix}image_size = {image_size}"),
        ));
    }
    Ok(())
}

/// Panics with `error`'s message: what `init` does with an invalid config
/// (one place, so every `init` says the same thing).
pub(crate) fn or_panic(result: Result<(), ConfigError>) {
    if let Err(error) = result {
        panic!("{error}");
    }
}
