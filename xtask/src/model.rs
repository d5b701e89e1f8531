//! The model a configuration describes, whatever its architecture, handed to
//! code written once for all of them (training, evaluation, listing).

use std::path::Path;

use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use vlp_data::SpecialTokens;
use vlp_features::set_trainable;
use vlp_models::{BertModel, SingleStreamModel};
use vlp_objectives::{
    AlbefPretrainer, ClipPretrainer, DualStreamPretrainer, Pretrainer, SimVlmPretrainer,
    UniterPretrainer,
};

use crate::config::{Architecture, Component, PretrainConfig};
use crate::eval::Evaluate;
use crate::UsageError;

/// Work to do with a freshly built model of any architecture.
pub trait ModelTask<B: AutodiffBackend> {
    type Output;

    fn run<M>(self, model: M) -> Self::Output
    where
        M: AutodiffModule<B> + Pretrainer<B> + 'static,
        M::InnerModule: Evaluate<B::InnerBackend> + Pretrainer<B::InnerBackend>;
}

/// Builds the model `config` describes for a tokenizer of `vocab_size` ids
/// with `special` tokens
/// (seeded initialisation; frozen components applied; the text tower loaded
/// from `init_text`, a Hugging Face BERT folder, when given) and runs `task` on it.
pub fn with_model<B: AutodiffBackend, T: ModelTask<B>>(
    config: &PretrainConfig,
    vocab_size: usize,
    special: SpecialTokens,
    init_text: Option<&Path>,
    device: &B::Device,
    task: T,
) -> anyhow::Result<T::Output> {
    B::seed(device, config.seed);
    let architecture = config.model.architecture.name();
    if init_text.is_some() && !matches!(config.model.architecture, Architecture::SingleStream {}) {
        return Err(UsageError(format!(
            "--init-text is supported for the single_stream architecture only, not {architecture}"
        ))
        .into());
    }
    if !config.model.frozen.is_empty()
        && !matches!(config.model.architecture, Architecture::SingleStream {})
    {
        return Err(UsageError(format!(
            "model.frozen is supported for the single_stream architecture only, not {architecture}"
        ))
        .into());
    }
    Ok(match &config.model.architecture {
        Architecture::SingleStream {} => {
            let mut model: UniterPretrainer<B> = config.pretrainer(vocab_size).init(device)?;
            if let Some(dir) = init_text {
                model.backbone =
                    init_text_from_bert(model.backbone, &dir.join("model.safetensors"))?;
            }
            task.run(freeze(model, &config.model.frozen))
        }
        Architecture::DualStream { .. } => {
            let model: DualStreamPretrainer<B> =
                unwrap_family(config.dual_stream(vocab_size)).init(device);
            task.run(model)
        }
        Architecture::Fusion { .. } => {
            let model: AlbefPretrainer<B> =
                unwrap_family(config.fusion(vocab_size)).init(device)?;
            task.run(model)
        }
        Architecture::DualEncoder { .. } => {
            let model: ClipPretrainer<B> =
                unwrap_family(config.dual_encoder(vocab_size)).init(device);
            task.run(model)
        }
        Architecture::EncoderDecoder { .. } | Architecture::PrefixLm {} => {
            let model: SimVlmPretrainer<B> = config.simvlm(vocab_size, special).init(device);
            task.run(model)
        }
    })
}

/// The family's configuration, which exists because the match arm checked the kind.
fn unwrap_family<T>(config: Option<T>) -> T {
    config.expect("the architecture kind was matched")
}

/// Loads a BERT checkpoint into the text embeddings, transformer and
/// pooler of `backbone`; errors list missing, unexpected and mis-shaped keys.
fn init_text_from_bert<B: Backend>(
    backbone: SingleStreamModel<B>,
    path: &Path,
) -> anyhow::Result<SingleStreamModel<B>> {
    let mut bert = BertModel {
        embeddings: backbone.embeddings,
        encoder: backbone.encoder,
        pooler: Some(backbone.pooler),
    };
    let report = bert
        .load_safetensors(path)
        .map_err(|err| UsageError(format!("cannot initialise the text tower: {err}")))?;
    eprintln!(
        "text tower initialised from {} ({} tensors)",
        path.display(),
        report.loaded
    );
    Ok(SingleStreamModel {
        embeddings: bert.embeddings,
        encoder: bert.encoder,
        pooler: bert.pooler.expect("the pooler was given"),
        visual: backbone.visual,
    })
}

/// Stops the gradient of every parameter of the `frozen` components.
fn freeze<B: Backend>(mut model: UniterPretrainer<B>, frozen: &[Component]) -> UniterPretrainer<B> {
    if !frozen.is_empty() {
        eprintln!("frozen (no gradient): {frozen:?}");
    }
    for component in frozen {
        let backbone = model.backbone;
        model.backbone = match component {
            Component::TextEmbeddings => SingleStreamModel {
                embeddings: set_trainable(backbone.embeddings, false),
                ..backbone
            },
            Component::Visual => SingleStreamModel {
                visual: set_trainable(backbone.visual, false),
                ..backbone
            },
            Component::Encoder => SingleStreamModel {
                encoder: set_trainable(backbone.encoder, false),
                ..backbone
            },
        };
    }
    model
}

/// Parameter count of a built model, in millions, for logs and listings.
pub fn millions<B: Backend, M: Module<B>>(model: &M) -> f64 {
    model.num_params() as f64 / 1e6
}
