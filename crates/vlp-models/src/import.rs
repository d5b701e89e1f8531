//! Loading Hugging Face safetensors checkpoints into vlp modules.
//!
//! burn-store reads the file and applies it ([`SafetensorsStore`]); a
//! [`KeyMap`] renames the checkpoint's keys to vlp's module paths (a
//! [`KeyRemapper`]) and back again for messages, and [`HfAdapter`] turns
//! PyTorch layouts into Burn's. Every key that does not fit — missing,
//! unexpected, or of the wrong shape — is reported by its checkpoint name.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use burn_store::{
    ApplyError, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
    TensorSnapshot,
};
use serde::de::DeserializeOwned;

use crate::config_error::ConfigError;
use crate::feed_forward::Activation;

/// Why a checkpoint or its configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// A `config.json` that is not valid JSON, or describes a model vlp cannot build.
    #[error("{path}: {message}")]
    Config {
        /// The `config.json`.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `config.json` whose values cannot build a model (e.g. a width
    /// the heads do not divide), naming the key.
    #[error("{path}: {source}")]
    InvalidConfig {
        /// The `config.json`.
        path: PathBuf,
        /// The offending key and value.
        #[source]
        source: ConfigError,
    },
    /// A file that is not a readable safetensors checkpoint.
    #[error("{path}: not a readable safetensors checkpoint: {message}")]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },
    /// A readable checkpoint whose tensors do not fit the model.
    #[error("{path}: the checkpoint does not fit the model\n{mismatch}")]
    Mismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The keys that do not fit.
        mismatch: KeyMismatch,
    },
}

/// The keys of a checkpoint that do not fit a model, by checkpoint name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyMismatch {
    /// Keys the model needs and the checkpoint lacks, with the shape expected
    /// (in the checkpoint's layout).
    pub missing: Vec<(String, Vec<usize>)>,
    /// Keys of the checkpoint that no parameter of the model takes.
    pub unexpected: Vec<String>,
    /// Keys whose tensor has another shape than the parameter.
    pub wrong_shape: Vec<ShapeMismatch>,
    /// Tensors that could not be read or converted, with the reason.
    pub unreadable: Vec<(String, String)>,
}

/// A checkpoint tensor whose shape is not the parameter's (both in the
/// checkpoint's layout, e.g. PyTorch's `[out, in]` for linear weights).
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeMismatch {
    /// The checkpoint key.
    pub key: String,
    /// The parameter's shape.
    pub expected: Vec<usize>,
    /// The checkpoint tensor's shape.
    pub found: Vec<usize>,
}

impl KeyMismatch {
    /// Whether every key fits.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
            && self.unreadable.is_empty()
    }
}

impl fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.missing.is_empty() {
            writeln!(f, "missing keys ({}):", self.missing.len())?;
            for (key, shape) in &self.missing {
                writeln!(f, "  {key} {shape:?}")?;
            }
        }
        if !self.unexpected.is_empty() {
            writeln!(f, "unexpected keys ({}):", self.unexpected.len())?;
            for key in &self.unexpected {
                writeln!(f, "  {key}")?;
            }
        }
        if !self.wrong_shape.is_empty() {
            writeln!(f, "shape mismatches ({}):", self.wrong_shape.len())?;
            for m in &self.wrong_shape {
                writeln!(
                    f,
                    "  {}: checkpoint {:?}, model expects {:?}",
                    m.key, m.found, m.expected
                )?;
            }
        }
        if !self.unreadable.is_empty() {
            writeln!(f, "unreadable tensors ({}):", self.unreadable.len())?;
            for (key, reason) in &self.unreadable {
                writeln!(f, "  {key}: {reason}")?;
            }
        }
        Ok(())
    }
}

/// What a successful import did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Number of parameter tensors loaded.
    pub loaded: usize,
    /// Checkpoint keys deliberately skipped (buffers such as `position_ids`,
    /// task heads the model does not have).
    pub ignored: Vec<String>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loaded {} tensors", self.loaded)?;
        if !self.ignored.is_empty() {
            write!(f, ", ignored {}", self.ignored.join(", "))?;
        }
        Ok(())
    }
}

/// How a checkpoint's keys become a module's parameter paths.
///
/// A rename maps a checkpoint module prefix to a vlp module prefix; `{n}`
/// stands for a layer index. Parameter names follow the prefix unchanged,
/// except LayerNorm's `weight`/`bias`, which [`HfAdapter`] matches to
/// Burn's `gamma`/`beta`.
pub(crate) struct KeyMap {
    /// Prefixes removed first, e.g. `bert.` of `BertForPreTraining` checkpoints.
    pub strip: &'static [&'static str],
    /// Checkpoint name → vlp path, `{n}` standing for a layer index.
    pub renames: &'static [(&'static str, &'static str)],
    /// Checkpoint keys that no vlp module holds, by their last segment
    /// (buffers such as `position_ids`) or by prefix (task heads such as `cls.`).
    pub ignored_names: &'static [&'static str],
    /// Prefixes of checkpoint keys that are not loaded (task heads).
    pub ignored_prefixes: &'static [&'static str],
    /// vlp parameter paths such checkpoints never hold; the caller sets them
    /// to their neutral value before loading.
    pub absent: &'static [&'static str],
}

impl KeyMap {
    /// The regular expression of a prefix template, capturing `{n}`.
    fn pattern(template: &str) -> String {
        format!(
            "^{}\\.",
            template.replace('.', "\\.").replace("{n}", "(\\d+)")
        )
    }

    fn replacement(template: &str) -> String {
        format!("{}.", template.replace("{n}", "${1}"))
    }

    fn remapper(&self, inverse: bool) -> KeyRemapper {
        let strip = self
            .strip
            .iter()
            .filter(|_| !inverse)
            .map(|prefix| (format!("^{}", prefix.replace('.', "\\.")), String::new()));
        let renames = self.renames.iter().map(|&(checkpoint, vlp)| {
            let (from, to) = if inverse {
                (vlp, checkpoint)
            } else {
                (checkpoint, vlp)
            };
            (Self::pattern(from), Self::replacement(to))
        });
        KeyRemapper::from_pattern_iter(strip.chain(renames))
            .expect("key map templates are valid regular expressions")
    }

    /// The checkpoint key of a vlp parameter path; `norm` says whether the
    /// parameter belongs to a LayerNorm (`gamma`/`beta` ↔ `weight`/`bias`).
    pub fn checkpoint_key(&self, path: &str, norm: bool) -> String {
        let path = match path.rsplit_once('.') {
            Some((module, "gamma")) if norm => format!("{module}.weight"),
            Some((module, "beta")) if norm => format!("{module}.bias"),
            _ => path.to_string(),
        };
        self.remapper(true)
            .patterns
            .iter()
            .find(|(pattern, _)| pattern.is_match(&path))
            .map_or(path.clone(), |(pattern, replacement)| {
                pattern.replace(&path, replacement.as_str()).into_owned()
            })
    }

    fn is_ignored(&self, key: &str) -> bool {
        let name = key.rsplit('.').next().unwrap_or(key);
        self.ignored_names.contains(&name)
            || self
                .ignored_prefixes
                .iter()
                .any(|prefix| key.starts_with(prefix))
    }
}

/// PyTorch → Burn for Hugging Face checkpoints: burn-store's
/// [`PyTorchToBurnAdapter`] (transposed linear weights, LayerNorm names),
/// half and double precision read as `f32`, and 0-d tensors (CLIP's
/// `logit_scale`) as `[1]`, since Burn tensors have at least one dimension.
#[derive(Debug, Clone, Default)]
pub(crate) struct HfAdapter;

impl ModuleAdapter for HfAdapter {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        let snapshot = PyTorchToBurnAdapter.adapt(snapshot);
        let cast = matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F64);
        let scalar = snapshot.shape.is_empty();
        if !cast && !scalar {
            return snapshot;
        }
        let data_fn = snapshot.clone_data_fn();
        let shape: Vec<usize> = if scalar {
            vec![1]
        } else {
            snapshot.shape.to_vec()
        };
        let dtype = if cast { DType::F32 } else { snapshot.dtype };
        let target_shape = shape.clone();
        TensorSnapshot::from_closure(
            Rc::new(move || {
                let data = data_fn()?;
                let data = if cast {
                    data.convert_dtype(DType::F32)
                } else {
                    data
                };
                Ok(TensorData::from_bytes_vec(
                    data.as_bytes().to_vec(),
                    target_shape.clone(),
                    dtype,
                ))
            }),
            dtype,
            shape.into(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn get_alternative_param_name(&self, param_name: &str, container_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, container_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Shape and layout facts about one parameter of the target module.
struct Target {
    shape: Vec<usize>,
    /// Burn stores linear weights `[in, out]`, PyTorch `[out, in]`.
    linear_weight: bool,
    norm: bool,
}

impl Target {
    fn checkpoint_shape(&self, burn_shape: &[usize]) -> Vec<usize> {
        let mut shape = burn_shape.to_vec();
        if self.linear_weight {
            shape.reverse();
        }
        shape
    }
}

fn targets<B: Backend, M: ModuleSnapshot<B>>(module: &M) -> BTreeMap<String, Target> {
    module
        .collect(None, None, false)
        .into_iter()
        .map(|snapshot| {
            let module_type = snapshot.module_type().unwrap_or_default();
            let path = snapshot.full_path();
            let target = Target {
                shape: snapshot.shape.to_vec(),
                linear_weight: module_type == "Struct:Linear" && path.ends_with(".weight"),
                norm: module_type == "Struct:LayerNorm",
            };
            (path, target)
        })
        .collect()
}

fn error_path(error: &ApplyError) -> &String {
    match error {
        ApplyError::ShapeMismatch { path, .. }
        | ApplyError::DTypeMismatch { path, .. }
        | ApplyError::AdapterError { path, .. }
        | ApplyError::LoadError { path, .. } => path,
    }
}

/// Loads the safetensors checkpoint `path` into `module`, renaming keys with
/// `keys`. Fails, naming every key, unless each parameter of the module is
/// loaded with the right shape and each checkpoint key is used or ignored.
pub(crate) fn load_safetensors<B: Backend, M: ModuleSnapshot<B>>(
    module: &mut M,
    path: &Path,
    keys: &KeyMap,
) -> Result<ImportReport, ImportError> {
    // The store would report a missing file as a generic I/O failure.
    std::fs::metadata(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let targets = targets(module);
    let mut store = SafetensorsStore::from_file(path)
        .remap(keys.remapper(false))
        .with_from_adapter(HfAdapter)
        .validate(false)
        .allow_partial(true);
    let result = module
        .load_from(&mut store)
        .map_err(|err| ImportError::Checkpoint {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;

    let target = |path: &str| targets.get(path);
    let key = |path: &str| keys.checkpoint_key(path, target(path).is_some_and(|t| t.norm));
    let mut mismatch = KeyMismatch::default();
    for (path, _) in &result.missing {
        if keys.absent.contains(&path.as_str()) {
            continue;
        }
        let shape = target(path).map_or(Vec::new(), |t| t.checkpoint_shape(&t.shape));
        mismatch.missing.push((key(path), shape));
    }
    // burn-store finds LayerNorm `weight`/`bias` under the alternative names
    // `gamma`/`beta` but still lists the checkpoint's names as unused.
    let taken = |path: &String| {
        result.applied.contains(path) || result.errors.iter().any(|e| error_path(e) == path)
    };
    let taken_by_norm = |path: &str| {
        let burn_path = match path.rsplit_once('.') {
            Some((module, "weight")) => format!("{module}.gamma"),
            Some((module, "bias")) => format!("{module}.beta"),
            _ => return false,
        };
        target(&burn_path).is_some_and(|t| t.norm) && taken(&burn_path)
    };
    let mut ignored = Vec::new();
    for path in result.unused.iter().filter(|path| !taken_by_norm(path)) {
        let name = key(path);
        if keys.is_ignored(&name) {
            ignored.push(name);
        } else {
            mismatch.unexpected.push(name);
        }
    }
    for error in &result.errors {
        match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => {
                let layout = |shape: &[usize]| {
                    target(path).map_or(shape.to_vec(), |t| t.checkpoint_shape(shape))
                };
                mismatch.wrong_shape.push(ShapeMismatch {
                    key: key(path),
                    expected: layout(expected),
                    found: layout(found),
                });
            }
            _ => {
                let path = error_path(error);
                mismatch.unreadable.push((key(path), error.to_string()));
            }
        }
    }
    if !mismatch.is_empty() {
        return Err(ImportError::Mismatch {
            path: path.to_path_buf(),
            mismatch,
        });
    }
    Ok(ImportReport {
        loaded: result.applied.len(),
        ignored,
    })
}

/// Reads a Hugging Face `config.json` into `T`.
pub(crate) fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|err| ImportError::Config {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// The activation a config's `hidden_act` names, or an error naming it.
pub(crate) fn activation(path: &Path, hidden_act: &str) -> Result<Activation, ImportError> {
    Activation::from_hf_name(hidden_act).ok_or_else(|| ImportError::Config {
        path: path.to_path_buf(),
        message: format!(
            "hidden_act \"{hidden_act}\" is not supported (supported: \"gelu\", \"quick_gelu\")"
        ),
    })
}

/// An error unless a config's `model_type` is `expected` (when present).
pub(crate) fn expect_model_type(
    path: &Path,
    found: Option<&str>,
    expected: &str,
) -> Result<(), ImportError> {
    match found {
        Some(found) if found != expected => Err(ImportError::Config {
            path: path.to_path_buf(),
            message: format!("model_type is \"{found}\", expected \"{expected}\""),
        }),
        _ => Ok(()),
    }
}

/// `config` if `validate` accepts it, else the error naming `path`.
pub(crate) fn validated<C>(
    path: &Path,
    config: C,
    validate: impl FnOnce(&C) -> Result<(), ConfigError>,
) -> Result<C, ImportError> {
    validate(&config).map_err(|source| ImportError::InvalidConfig {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(config)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The checkpoint key of every parameter of `module`, after checking that
    /// the loader's renaming takes each key back to its parameter.
    pub(crate) fn round_trip<B: Backend, M: ModuleSnapshot<B>>(
        module: &M,
        keys: &KeyMap,
    ) -> Vec<String> {
        let targets = targets(module);
        let snapshots = module
            .collect(None, None, false)
            .into_iter()
            .filter(|snapshot| !keys.absent.contains(&snapshot.full_path().as_str()))
            .map(|snapshot| {
                let path = snapshot.full_path();
                let key = keys.checkpoint_key(&path, targets[&path].norm);
                let renamed = TensorSnapshot::from_closure(
                    snapshot.clone_data_fn(),
                    snapshot.dtype,
                    snapshot.shape.clone(),
                    key.split('.').map(str::to_string).collect(),
                    Vec::new(),
                    Default::default(),
                );
                (path, key, renamed)
            })
            .collect::<Vec<_>>();
        let (keys_only, renamed): (Vec<_>, Vec<_>) = snapshots
            .into_iter()
            .map(|(path, key, snapshot)| ((path, key), snapshot))
            .unzip();
        let (remapped, _) = keys.remapper(false).remap(renamed);
        for ((path, key), snapshot) in keys_only.iter().zip(remapped) {
            let norm = targets[path].norm;
            let loaded_as = match snapshot.full_path().rsplit_once('.') {
                Some((module, "weight")) if norm => format!("{module}.gamma"),
                Some((module, "bias")) if norm => format!("{module}.beta"),
                _ => snapshot.full_path(),
            };
            assert_eq!(&loaded_as, path, "checkpoint key {key}");
        }
        keys_only.into_iter().map(|(_, key)| key).collect()
    }

    const KEYS: KeyMap = KeyMap {
        strip: &["bert."],
        renames: &[
            (
                "encoder.layer.{n}.attention.self.query",
                "encoder.layer.{n}.attention.query",
            ),
            (
                "encoder.layer.{n}.attention.output.LayerNorm",
                "encoder.layer.{n}.attention_norm",
            ),
        ],
        ignored_names: &["position_ids"],
        ignored_prefixes: &["cls."],
        absent: &[],
    };

    #[test]
    fn keys_are_renamed_both_ways() {
        assert_eq!(
            KEYS.checkpoint_key("encoder.layer.11.attention.query.weight", false),
            "encoder.layer.11.attention.self.query.weight"
        );
        assert_eq!(
            KEYS.checkpoint_key("encoder.layer.3.attention_norm.gamma", true),
            "encoder.layer.3.attention.output.LayerNorm.weight"
        );
        let forward = KEYS.remapper(false);
        let rename = |key: &str| {
            forward
                .patterns
                .iter()
                .fold(key.to_string(), |key, (p, r)| {
                    p.replace_all(&key, r.as_str()).into_owned()
                })
        };
        assert_eq!(
            rename("bert.encoder.layer.2.attention.self.query.bias"),
            "encoder.layer.2.attention.query.bias"
        );
        assert!(KEYS.is_ignored("embeddings.position_ids"));
        assert!(KEYS.is_ignored("cls.predictions.bias"));
        assert!(!KEYS.is_ignored("embeddings.word_embeddings.weight"));
    }
}
