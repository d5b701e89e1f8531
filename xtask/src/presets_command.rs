//! `cargo xtask presets`: every shipped preset with its architecture, visual
//! features and parameter count (all, and without the pre-training heads).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use vlp_data::SpecialTokens;
use vlp_objectives::Pretrainer;

use vlp_train::presets::{Preset, PRESETS};
use vlp_train::{with_model, Evaluate, ModelTask, PretrainConfig};

use crate::device::{self, BackendJob};
use crate::{report, UsageError};

/// `cargo xtask presets` takes no options.
#[derive(Debug, Args)]
pub struct PresetsArgs {}

/// One line of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetRow {
    /// The preset's name.
    pub name: &'static str,
    /// `model.architecture.kind`.
    pub architecture: &'static str,
    /// `model.visual`.
    pub visual: &'static str,
    /// Parameters of the built model (heads included), for a tokenizer of
    /// `data.tokenizer_vocab_size` ids.
    pub parameters: usize,
    /// Parameters outside the pre-training heads (the top-level `*_head`
    /// modules) and ALBEF's momentum copy and queue (`momentum`): what
    /// published model sizes count.
    pub backbone_parameters: usize,
    /// Elements of every parameter tensor by module path (`backbone.encoder.layer.0…`).
    pub by_module: Vec<(String, usize)>,
    /// What the preset is, from its first comment line.
    pub summary: String,
}

/// Counts parameters from their shapes: Burn initialises parameters lazily,
/// and counting this way never materialises them (a `-base` model would
/// otherwise allocate a gigabyte or more).
#[derive(Default)]
struct LazyCounter {
    path: Vec<String>,
    counts: Vec<(String, usize)>,
}

impl<B: Backend> ModuleVisitor<B> for LazyCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.counts
            .push((self.path.join("."), param.lazy_shape().num_elements()));
    }
}

struct CountParameters;

impl<B: AutodiffBackend> ModelTask<B> for CountParameters {
    type Output = Vec<(String, usize)>;

    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>,
    {
        let mut counter = LazyCounter::default();
        model.visit(&mut counter);
        counter.counts
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
    let config = PretrainConfig::from_layers(Some(preset), None)
        .map_err(|err| UsageError(err.to_string()))?;
    let by_module = with_model::<B, _>(
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
    )
    .map_err(report)?;
    let is_head = |path: &str| {
        path.split('.')
            .next()
            .is_some_and(|top| top.ends_with("_head") || top == "momentum")
    };
    Ok(PresetRow {
        name: preset.name,
        architecture: config.model.architecture.name(),
        visual: config.model.visual.name(),
        parameters: by_module.iter().map(|(_, n)| n).sum(),
        backbone_parameters: by_module
            .iter()
            .filter(|(path, _)| !is_head(path))
            .map(|(_, n)| n)
            .sum(),
        by_module,
        summary: preset.summary(),
    })
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
    for row in rows {
        println!(
            "{:<14} {:<16} {:<8} {:>9.2}M {:>9.2}M  {}",
            row.name,
            row.architecture,
            row.visual,
            row.parameters as f64 / 1e6,
            row.backbone_parameters as f64 / 1e6,
            row.summary
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use std::collections::BTreeMap;

    fn row_of(name: &str) -> PresetRow {
        let preset = vlp_train::presets::find(name).unwrap();
        row::<Autodiff<NdArray>>(preset, &Default::default()).unwrap()
    }

    /// The `-base` presets build the published models: backbone sizes within
    /// 1% of the counts `crates/vlp-models/tests/fixtures/gen_param_counts.py`
    /// computes from the PyTorch models (Hugging Face LXMERT and CLIP,
    /// BERT/ViT pieces for ALBEF and UNITER, ViLBERT's published config).
    #[test]
    fn base_presets_have_the_published_sizes() {
        let references: BTreeMap<String, usize> = serde_json::from_str(include_str!(
            "../../crates/vlp-models/tests/fixtures/param_counts.json"
        ))
        .unwrap();
        for (name, reference) in &references {
            let row = row_of(name);
            let ratio = row.backbone_parameters as f64 / *reference as f64;
            assert!(
                (ratio - 1.0).abs() < 0.01,
                "{name}: {} parameters, reference {reference}",
                row.backbone_parameters
            );
        }
        // SimVLM-base: the paper's 86 M is ViT-B's size, the encoder with its
        // patch stem; the decoder and the word embeddings come on top.
        let simvlm = row_of("simvlm-base");
        let encoder: usize = simvlm
            .by_module
            .iter()
            .filter(|(path, _)| path.contains(".encoder") || path.contains(".visual"))
            .map(|(_, n)| n)
            .sum();
        assert!(
            (encoder as f64 / 86e6 - 1.0).abs() < 0.01,
            "SimVLM-base encoder {encoder}"
        );
        assert!(simvlm.backbone_parameters > 2 * encoder);
    }

    /// The pre-training heads each family trains beside its backbone: the
    /// fused-[CLS] families have MLM, ITM and ITC heads (ALBEF's `-base` a
    /// momentum copy too); CLIP's projections and SimVLM's tied LM head are
    /// part of the published model, so their backbone is the whole model.
    #[test]
    fn every_preset_builds_with_the_heads_of_its_family() {
        for preset in PRESETS {
            let row = row::<Autodiff<NdArray>>(preset, &Default::default()).unwrap();
            let heads: Vec<&str> = row
                .by_module
                .iter()
                .filter_map(|(path, _)| path.split('.').next())
                .filter(|top| top.ends_with("_head") || *top == "momentum")
                .collect();
            let expected: &[&str] = match row.architecture {
                "single_stream" | "dual_stream" | "fusion" => &["mlm_head", "itm_head", "itc_head"],
                _ => &[],
            };
            for head in expected {
                assert!(
                    heads.contains(head),
                    "{}: no {head} in {heads:?}",
                    preset.name
                );
            }
            let head_parameters = row.parameters - row.backbone_parameters;
            assert_eq!(
                head_parameters > 0,
                !expected.is_empty(),
                "{}: {head_parameters} head parameters",
                preset.name
            );
            assert!(row.backbone_parameters > 0, "{}", preset.name);
        }
    }
}
