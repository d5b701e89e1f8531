//! `cargo xtask presets`: every shipped preset with its architecture, visual
//! features and parameter count.

use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use vlp_data::SpecialTokens;
use vlp_objectives::Pretrainer;

use crate::config::PretrainConfig;
use crate::device::{self, BackendJob};
use crate::eval::Evaluate;
use crate::model::{with_model, ModelTask};
use crate::presets::{Preset, PRESETS};
use crate::UsageError;

#[derive(Debug, Args)]
pub struct PresetsArgs {}

/// One line of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetRow {
    pub name: &'static str,
    pub architecture: &'static str,
    pub visual: String,
    /// Parameters of the built model (heads included), for a tokenizer of
    /// `data.tokenizer_vocab_size` ids.
    pub parameters: usize,
    /// What the preset is, from its first comment line.
    pub summary: String,
}

struct CountParameters;

impl<B: AutodiffBackend> ModelTask<B> for CountParameters {
    type Output = usize;

    fn run<M>(self, model: M) -> usize
    where
        M: burn::module::AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend>,
    {
        model.num_params()
    }
}

struct ListPresets;

impl BackendJob for ListPresets {
    type Output = anyhow::Result<Vec<PresetRow>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        PRESETS
            .iter()
            .map(|preset| row::<B>(preset, &device))
            .collect()
    }
}

/// Builds `preset`'s model (parameters are initialised lazily, so even the
/// `-base` sizes cost no memory) and counts its parameters.
pub fn row<B: AutodiffBackend>(preset: &Preset, device: &B::Device) -> anyhow::Result<PresetRow> {
    let config = PretrainConfig::from_layers(Some(preset), None).map_err(UsageError)?;
    let parameters = with_model::<B, _>(
        &config,
        config.data.tokenizer_vocab_size,
        // The ids of the special tokens do not change the parameter count.
        SpecialTokens {
            pad: 0,
            unk: 1,
            cls: 2,
            sep: 3,
            mask: 4,
        },
        None,
        device,
        CountParameters,
    )?;
    Ok(PresetRow {
        name: preset.name,
        architecture: config.model.architecture.name(),
        visual: format!("{:?}", config.model.visual).to_lowercase(),
        parameters,
        summary: preset.summary(),
    })
}

pub fn run(_args: &PresetsArgs) -> anyhow::Result<()> {
    let device =
        device::default_device().ok_or_else(|| UsageError("this build has no backend".into()))?;
    let rows = device::dispatch(device, ListPresets).map_err(UsageError)??;
    println!(
        "{:<22} {:<16} {:<8} {:>10}  summary",
        "preset", "architecture", "visual", "params"
    );
    for row in rows {
        println!(
            "{:<22} {:<16} {:<8} {:>9.2}M  {}",
            row.name,
            row.architecture,
            row.visual,
            row.parameters as f64 / 1e6,
            row.summary
        );
    }
    Ok(())
}
