//! Parameter counts of a configuration's model (survey §3, Table 2 lists the
//! published sizes), counted from the parameters' shapes so that even the
//! `-base` presets cost no memory: Burn initialises parameters lazily and
//! [`Param::lazy_shape`] never materialises them.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use vlp_data::SpecialTokens;
use vlp_objectives::Pretrainer;

use crate::build::{with_model, ModelTask};
use crate::config::PretrainConfig;
use crate::error::Result;
use crate::eval::Evaluate;

/// How many parameters a configuration's model has.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterCount {
    /// Every parameter of the built model, heads included, for a tokenizer of
    /// `data.tokenizer_vocab_size` ids.
    pub total: usize,
    /// Parameters outside the pre-training heads (the top-level `*_head`
    /// modules) and ALBEF's momentum copy and queue (`momentum`): what
    /// published model sizes count.
    pub backbone: usize,
    /// Elements of every parameter tensor by module path
    /// (`backbone.encoder.layer.0…`), in the model's order.
    pub by_module: Vec<(String, usize)>,
}

impl ParameterCount {
    /// Counts the parameters of `config`'s model (built on `device`, never
    /// materialised).
    pub fn of<B: AutodiffBackend>(config: &PretrainConfig, device: &B::Device) -> Result<Self> {
        let by_module = with_model::<B, _>(
            config,
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
        Ok(Self {
            total: by_module.iter().map(|(_, n)| n).sum(),
            backbone: by_module
                .iter()
                .filter(|(path, _)| !is_head(path))
                .map(|(_, n)| n)
                .sum(),
            by_module,
        })
    }

    /// The top-level head modules (see [`ParameterCount::backbone`]), once
    /// each, in the model's order.
    pub fn heads(&self) -> Vec<&str> {
        let mut heads: Vec<&str> = Vec::new();
        for (path, _) in &self.by_module {
            let top = path.split('.').next().unwrap_or_default();
            if is_head(top) && !heads.contains(&top) {
                heads.push(top);
            }
        }
        heads
    }
}

/// Whether a module path lies in a pre-training head or ALBEF's momentum copy.
fn is_head(path: &str) -> bool {
    path.split('.')
        .next()
        .is_some_and(|top| top.ends_with("_head") || top == "momentum")
}

/// Collects every float parameter's element count by module path.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{self, PRESETS};
    use burn::backend::{Autodiff, NdArray};
    use std::collections::BTreeMap;

    fn count(name: &str) -> (PretrainConfig, ParameterCount) {
        let _draws = crate::ndarray_draws();
        let config = PretrainConfig::from_layers(Some(presets::find(name).unwrap()), None).unwrap();
        let count = ParameterCount::of::<Autodiff<NdArray>>(&config, &Default::default()).unwrap();
        (config, count)
    }

    /// The `-base` presets build the published models: backbone sizes within
    /// 1% of the counts `crates/vlp-models/tests/fixtures/gen_param_counts.py`
    /// computes from the PyTorch models (Hugging Face LXMERT and CLIP,
    /// BERT/ViT pieces for ALBEF and UNITER, ViLBERT's published config).
    #[test]
    fn base_presets_have_the_published_sizes() {
        let references: BTreeMap<String, usize> = serde_json::from_str(include_str!(
            "../../vlp-models/tests/fixtures/param_counts.json"
        ))
        .unwrap();
        for (name, reference) in &references {
            let (_, count) = count(name);
            // UNITER published bert-base-cased (28,996 words); the preset
            // reads BERT's uncased vocabulary (30,522), the one vlp ships.
            let vocabulary = match name.as_str() {
                "uniter-base" => (30522 - 28996) * 768,
                _ => 0,
            };
            let ratio = (count.backbone - vocabulary) as f64 / *reference as f64;
            assert!(
                (ratio - 1.0).abs() < 0.01,
                "{name}: {} parameters, reference {reference}",
                count.backbone
            );
        }
        // SimVLM-base: the paper's 86 M is ViT-B's size, the encoder with its
        // patch stem; the decoder and the word embeddings come on top.
        let (_, simvlm) = count("simvlm-base");
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
        assert!(simvlm.backbone > 2 * encoder);
    }

    /// `pretrain --preset NAME` builds its model for the tokenizer it
    /// loads. The BERT-family `-base` presets load BERT's uncased vocabulary
    /// (the MiniLM asset), so the model it builds has the parameters that
    /// `cargo xtask presets` prints ([`ParameterCount::of`]).
    #[test]
    fn bert_family_base_presets_build_the_model_presets_prints() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut checked = Vec::new();
        for preset in PRESETS.iter().filter(|p| p.name.ends_with("-base")) {
            let (mut config, printed) = count(preset.name);
            // CLIP's BPE and SimVLM's SentencePiece vocabularies are not shipped.
            let Some(file) = config.data.tokenizer.clone() else {
                continue;
            };
            config.data.tokenizer = Some(root.join(file));
            let tokenizer = crate::data::tokenizer(&config, None).unwrap();
            let _draws = crate::ndarray_draws();
            let built = with_model::<Autodiff<NdArray>, _>(
                &config,
                tokenizer.vocab_size(),
                tokenizer.special(),
                None,
                &Default::default(),
                CountParameters,
            )
            .unwrap();
            let built: usize = built.iter().map(|(_, n)| n).sum();
            assert_eq!(built, printed.total, "{}", preset.name);
            checked.push(preset.name);
        }
        assert_eq!(
            checked,
            [
                "uniter-base",
                "vilbert-base",
                "lxmert-base",
                "albef-base",
                "hero-base"
            ]
        );
        // Without the asset the run stops naming the key and the command.
        let mut config = count("uniter-base").0;
        config.data.tokenizer = Some("assets/missing/tokenizer.json".into());
        let err = crate::data::tokenizer(&config, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.tokenizer") && err.contains("cargo xtask assets"),
            "{err}"
        );
    }

    /// The pre-training heads each family trains beside its backbone: the
    /// fused-[CLS] families have MLM, ITM and ITC heads (ALBEF's `-base` a
    /// momentum copy too); CLIP's projections and SimVLM's tied LM head are
    /// part of the published model, so their backbone is the whole model.
    #[test]
    fn every_preset_builds_with_the_heads_of_its_family() {
        for preset in PRESETS {
            let (config, count) = count(preset.name);
            let heads = count.heads();
            let expected: &[&str] = match config.model.architecture.name() {
                "single_stream" | "dual_stream" | "fusion" => &["mlm_head", "itm_head", "itc_head"],
                "hero" => &["mlm_head", "itm_head", "itc_head", "fom_head"],
                _ => &[],
            };
            for head in expected {
                assert!(
                    heads.contains(head),
                    "{}: no {head} in {heads:?}",
                    preset.name
                );
            }
            let head_parameters = count.total - count.backbone;
            assert_eq!(
                head_parameters > 0,
                !expected.is_empty(),
                "{}: {head_parameters} head parameters",
                preset.name
            );
            assert!(count.backbone > 0, "{}", preset.name);
        }
    }

    /// The head filter itself: a preset without heads must fail the test
    /// above, so [`ParameterCount::heads`] must not find heads in a backbone
    /// path and must find each top-level head once.
    #[test]
    fn heads_are_the_top_level_head_modules() {
        let count = ParameterCount {
            total: 10,
            backbone: 4,
            by_module: vec![
                ("backbone.mlm_head_like.weight".into(), 4),
                ("mlm_head.dense.weight".into(), 2),
                ("mlm_head.dense.bias".into(), 1),
                ("momentum.queue".into(), 3),
            ],
        };
        assert_eq!(count.heads(), ["mlm_head", "momentum"]);
    }
}
