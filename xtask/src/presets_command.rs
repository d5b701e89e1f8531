//! `cargo xtask presets`: every shipped preset with its architecture, visual
//! features and parameter count (all, and without the pre-training heads;
//! counted by [`vlp_train::ParameterCount`]).

use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use vlp_train::presets::PRESETS;
use vlp_train::{ParameterCount, PretrainConfig};

use crate::device::{self, BackendJob};
use crate::{report, UsageError};

/// `cargo xtask presets` takes no options.
#[derive(Debug, Args)]
pub struct PresetsArgs {}

struct ListPresets;

impl BackendJob for ListPresets {
    type Output = anyhow::Result<Vec<(PretrainConfig, ParameterCount)>>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        PRESETS
            .iter()
            .map(|preset| {
                let config = PretrainConfig::from_layers(Some(preset), None)
                    .map_err(|err| UsageError(err.to_string()))?;
                let count = ParameterCount::of::<B>(&config, &device).map_err(report)?;
                Ok((config, count))
            })
            .collect()
    }
}

/// Prints the table of presets.
pub fn run(_args: &PresetsArgs) -> anyhow::Result<()> {
    let device =
        device::default_device().ok_or_else(|| UsageError("this build has no backend".into()))?;
    let rows = device::dispatch(device, ListPresets).map_err(UsageError)??;
    println!(
        "{:<14} {:<16} {:<8} {:>10} {:>10}  summary",
        "preset", "architecture", "visual", "params", "backbone"
    );
    for (preset, (config, count)) in PRESETS.iter().zip(rows) {
        println!(
            "{:<14} {:<16} {:<8} {:>9.2}M {:>9.2}M  {}",
            preset.name,
            config.model.architecture.name(),
            config.model.visual.name(),
            count.total as f64 / 1e6,
            count.backbone as f64 / 1e6,
            preset.summary()
        );
    }
    Ok(())
}
