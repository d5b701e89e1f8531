//! SimVLM pre-training: one PrefixLM objective. Each text is cut after
//! `prefix_lengths[b]` tokens (the batch's split, `≥ 1` = `[CLS]`); the
//! image and the prefix are read bidirectionally, and the loss is the
//! next-token cross-entropy of the suffix only. The model is either the
//! encoder-decoder ([`EncoderDecoderModel`]) or the single PrefixLM stack
//! ([`PrefixLmModel`]); both caption images from `[CLS]` alone.

use burn::prelude::*;
use burn::tensor::TensorData;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_models::{
    beam_search, greedy, BeamSearchConfig, EncoderDecoderConfig, EncoderDecoderModel,
    PrefixLmConfig, PrefixLmModel,
};

use crate::loss::{accuracy, cross_entropy};
use crate::mlm::gather_positions;
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer};

/// Which SimVLM layout to train.
#[derive(Config, Debug)]
pub enum SimVlmArchitecture {
    /// Encoder over `[image; prefix]`, decoder over the suffix (the paper's).
    EncoderDecoder(EncoderDecoderConfig),
    /// One stack with a prefix mask (the paper's decoder-only ablation).
    PrefixLm(PrefixLmConfig),
}

/// Configuration of [`SimVlmPretrainer`].
#[derive(Config, Debug)]
pub struct SimVlmPretrainerConfig {
    /// Which layout, with its sizes.
    pub model: SimVlmArchitecture,
    /// Id of `[CLS]`, the caption prompt.
    pub cls_id: u32,
    /// Id of `[SEP]`, which ends a caption.
    pub sep_id: u32,
}

/// The model being trained, whichever layout.
// One value per pretrainer: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SimVlmModel<B: Backend> {
    /// Bidirectional encoder over image and prefix, causal decoder.
    EncoderDecoder(EncoderDecoderModel<B>),
    /// One stack with a prefix mask.
    PrefixLm(PrefixLmModel<B>),
}

/// A SimVLM model with its PrefixLM objective and captioning.
#[derive(Module, Debug)]
pub struct SimVlmPretrainer<B: Backend> {
    /// The model.
    pub model: SimVlmModel<B>,
    /// Id of `[CLS]`, the caption prompt.
    pub cls_id: u32,
    /// Id of `[SEP]`, which ends a caption.
    pub sep_id: u32,
}

impl SimVlmPretrainerConfig {
    /// The pre-trainer, initialised on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> SimVlmPretrainer<B> {
        SimVlmPretrainer {
            model: match &self.model {
                SimVlmArchitecture::EncoderDecoder(config) => {
                    SimVlmModel::EncoderDecoder(config.init(device))
                }
                SimVlmArchitecture::PrefixLm(config) => SimVlmModel::PrefixLm(config.init(device)),
            },
            cls_id: self.cls_id,
            sep_id: self.sep_id,
        }
    }
}

/// Positions to score: flat indices into the logits and into the ids.
struct Targets {
    /// Flat `row * S + s` positions of the logits `[B, S, V]` to score.
    logits: Vec<i64>,
    /// Flat `row * T + t` positions of the ids that are their labels.
    labels: Vec<i64>,
}

fn int_tensor<B: Backend, const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

impl<B: Backend> SimVlmPretrainer<B> {
    /// Next-token logits gathered at the suffix positions `[N, V]` and
    /// their labels `[N]`.
    fn suffix_logits(&self, batch: &PretrainBatch<B>) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        let ids = batch.text_ids.clone();
        let [rows, text_len] = ids.dims();
        let device = ids.device();
        let lengths: Vec<usize> = batch
            .text_padding
            .clone()
            .bool_not()
            .int()
            .sum_dim(1)
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .expect("int data")
            .into_iter()
            .map(|n| n as usize)
            .collect();
        let prefixes = &batch.prefix_lengths;
        assert_eq!(prefixes.len(), rows, "one prefix length per text row");
        let flat_ids = ids.clone().reshape([rows * text_len]);
        let (logits, targets) = match &self.model {
            SimVlmModel::PrefixLm(model) => {
                // Position t predicts token t + 1; the suffix starts at p.
                let mut targets = Targets {
                    logits: Vec::new(),
                    labels: Vec::new(),
                };
                for (row, (&p, &n)) in prefixes.iter().zip(&lengths).enumerate() {
                    for t in p - 1..n - 1 {
                        targets.logits.push((row * text_len + t) as i64);
                        targets.labels.push((row * text_len + t + 1) as i64);
                    }
                }
                let logits =
                    model.forward(&batch.visual, ids, batch.text_padding.clone(), prefixes);
                (logits, targets)
            }
            SimVlmModel::EncoderDecoder(model) => {
                // Encoder: ids[..p] (left-aligned, padded to the longest
                // prefix). Decoder: ids[p - 1 .. n - 1] predicting ids[p .. n].
                let prefix_len = prefixes.iter().copied().max().unwrap_or(1);
                let suffix_len = prefixes
                    .iter()
                    .zip(&lengths)
                    .map(|(&p, &n)| n.saturating_sub(p))
                    .max()
                    .unwrap_or(1)
                    .max(1);
                let mut prefix_padding = Vec::with_capacity(rows * prefix_len);
                let mut decoder_index = Vec::with_capacity(rows * suffix_len);
                let mut decoder_padding = Vec::with_capacity(rows * suffix_len);
                let mut targets = Targets {
                    logits: Vec::new(),
                    labels: Vec::new(),
                };
                for (row, (&p, &n)) in prefixes.iter().zip(&lengths).enumerate() {
                    prefix_padding.extend((0..prefix_len).map(|t| t >= p));
                    for s in 0..suffix_len {
                        let real = s < n.saturating_sub(p);
                        let t = if real { p - 1 + s } else { 0 };
                        decoder_index.push((row * text_len + t) as i64);
                        decoder_padding.push(!real);
                        if real {
                            targets.logits.push((row * suffix_len + s) as i64);
                            targets.labels.push((row * text_len + t + 1) as i64);
                        }
                    }
                }
                let decoder_ids = flat_ids
                    .clone()
                    .select(0, int_tensor(decoder_index, [rows * suffix_len], &device))
                    .reshape([rows, suffix_len]);
                let logits = model.forward(
                    &batch.visual,
                    ids.narrow(1, 0, prefix_len),
                    Tensor::from_data(TensorData::new(prefix_padding, [rows, prefix_len]), &device),
                    decoder_ids,
                    Tensor::from_data(
                        TensorData::new(decoder_padding, [rows, suffix_len]),
                        &device,
                    ),
                );
                (logits, targets)
            }
        };
        let count = targets.logits.len();
        let selected = gather_positions(logits, int_tensor(targets.logits, [count], &device));
        let labels = flat_ids.select(0, int_tensor(targets.labels, [count], &device));
        (selected, labels)
    }

    /// Captions of the images or regions in `visual`, generated from
    /// `[CLS]` alone: greedy when `beam <= 1`, otherwise beam search with
    /// `beam` hypotheses ranked by `log_prob / len^length_penalty`; at most
    /// `max_len` tokens, `[SEP]` included and left out of the result.
    pub fn caption(
        &self,
        visual: &VisualBatch<B>,
        max_len: usize,
        beam: usize,
        length_penalty: f64,
    ) -> Vec<Vec<u32>> {
        let rows = visual.len();
        let device = visual.device();
        let prompt = int_tensor(vec![self.cls_id as i64; rows], [rows, 1], &device);
        let config = BeamSearchConfig::new(self.sep_id)
            .with_beam_size(beam)
            .with_length_penalty(length_penalty)
            .with_max_len(max_len);
        let generated = match &self.model {
            SimVlmModel::EncoderDecoder(model) => {
                let padding = Tensor::<B, 2, Int>::zeros([rows, 1], &device).bool();
                let state = model.start(visual, prompt, padding);
                if beam <= 1 {
                    greedy(model, state, max_len, self.sep_id)
                } else {
                    beam_search(model, state, &config)
                }
            }
            SimVlmModel::PrefixLm(model) => {
                let state = model.start(visual, prompt);
                if beam <= 1 {
                    greedy(model, state, max_len, self.sep_id)
                } else {
                    beam_search(model, state, &config)
                }
            }
        };
        generated.into_iter().map(|g| g.tokens).collect()
    }
}

impl<B: Backend> Pretrainer<B> for SimVlmPretrainer<B> {
    /// PrefixLM: cross-entropy of each suffix token given the image, the
    /// prefix and the suffix before it; accuracy of the arg-max next token.
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        let (logits, labels) = self.suffix_logits(batch);
        let prefix_lm = ObjectiveOutput {
            name: "prefix_lm",
            metric: accuracy(logits.clone().detach(), labels.clone()),
            metric_name: "accuracy",
            loss: cross_entropy(logits, labels),
        };
        PretrainOutput {
            loss: prefix_lm.loss.clone(),
            objectives: vec![prefix_lm],
            momentum_embeddings: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Distribution, Tolerance};
    use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddingsConfig};
    use vlp_models::TransformerSize;

    type B = NdArray;

    fn visual() -> VisualEmbeddingsConfig {
        VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(16, 8, 16).with_dropout(0.0))
    }

    fn batch(prefix_lengths: Vec<usize>) -> PretrainBatch<B> {
        let device = Default::default();
        let ids = vec![vec![2i64, 5, 6, 7, 3], vec![2, 8, 3, 0, 0]];
        let padding = vec![vec![false; 5], vec![false, false, false, true, true]];
        let flat_ids: Vec<i64> = ids.into_iter().flatten().collect();
        let flat_padding: Vec<bool> = padding.into_iter().flatten().collect();
        let empty = || int_tensor::<B, 1>(vec![], [0], &device);
        PretrainBatch {
            visual: VisualBatch::Images(Tensor::random(
                [2, 3, 16, 16],
                Distribution::Default,
                &device,
            )),
            text_ids: int_tensor(flat_ids.clone(), [2, 5], &device),
            text_padding: Tensor::from_data(TensorData::new(flat_padding, [2, 5]), &device),
            mlm_ids: int_tensor(flat_ids, [2, 5], &device),
            mlm_positions: empty(),
            mlm_labels: empty(),
            itm_text: empty(),
            itm_image: empty(),
            itm_labels: empty(),
            mvm: None,
            mpp: None,
            vqa: None,
            uniforms: Tensor::zeros([2, 2], &device),
            shard: None,
            prefix_lengths,
        }
    }

    /// The loss by hand: the mean over suffix tokens of −log p(token | the
    /// image and every earlier token), each probability from a full pass.
    fn by_hand(model: &SimVlmPretrainer<B>, batch: &PretrainBatch<B>) -> f32 {
        let ids: Vec<Vec<i64>> = vec![vec![2, 5, 6, 7, 3], vec![2, 8, 3]];
        let VisualBatch::Images(pixels) = &batch.visual else {
            unreachable!()
        };
        let device = Default::default();
        let mut total = 0.0;
        let mut count = 0;
        for (row, text) in ids.iter().enumerate() {
            let visual = VisualBatch::Images(pixels.clone().narrow(0, row, 1));
            let p = batch.prefix_lengths[row];
            let n = text.len();
            let tensor = |v: &[i64]| int_tensor::<B, 2>(v.to_vec(), [1, v.len()], &device);
            let none = |len: usize| Tensor::<B, 2, Int>::zeros([1, len], &device).bool();
            for t in p..n {
                // Logits of the position that predicts token t.
                let logits: Tensor<B, 1> = match &model.model {
                    SimVlmModel::PrefixLm(m) => m
                        .forward(&visual, tensor(&text[..n]), none(n), &[p])
                        .slice([0..1, t - 1..t])
                        .reshape([12]),
                    SimVlmModel::EncoderDecoder(m) => m
                        .forward(
                            &visual,
                            tensor(&text[..p]),
                            none(p),
                            tensor(&text[p - 1..t]),
                            none(t - p + 1),
                        )
                        .slice([0..1, t - p..t - p + 1])
                        .reshape([12]),
                };
                let log_probs: Vec<f32> = log_softmax(logits, 0).into_data().to_vec().unwrap();
                total -= log_probs[text[t] as usize];
                count += 1;
            }
        }
        total / count as f32
    }

    fn architectures() -> Vec<SimVlmArchitecture> {
        vec![
            SimVlmArchitecture::EncoderDecoder(
                EncoderDecoderConfig::new(12, visual())
                    .with_transformer(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
                    .with_max_text_len(8),
            ),
            SimVlmArchitecture::PrefixLm(
                PrefixLmConfig::new(12, visual())
                    .with_transformer(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
                    .with_max_text_len(8),
            ),
        ]
    }

    #[test]
    fn the_loss_is_the_suffix_cross_entropy_computed_token_by_token() {
        let _serial = crate::test_serial();
        B::seed(&Default::default(), 0);
        for architecture in architectures() {
            let model: SimVlmPretrainer<B> =
                SimVlmPretrainerConfig::new(architecture, 2, 3).init(&Default::default());
            for prefixes in [vec![1, 1], vec![3, 2], vec![4, 1]] {
                let batch = batch(prefixes.clone());
                let output = model.forward(&batch);
                let expected = by_hand(&model, &batch);
                output
                    .objective("prefix_lm")
                    .unwrap()
                    .loss
                    .clone()
                    .into_data()
                    .assert_approx_eq::<f32>(
                        &TensorData::new(vec![expected], [1]),
                        Tolerance::absolute(1e-5),
                    );
            }
        }
    }

    #[test]
    fn captions_stop_at_sep_and_respect_the_length_limit() {
        let _serial = crate::test_serial();
        B::seed(&Default::default(), 1);
        for architecture in architectures() {
            let model: SimVlmPretrainer<B> =
                SimVlmPretrainerConfig::new(architecture, 2, 3).init(&Default::default());
            let visual = batch(vec![1, 1]).visual;
            for beam in [1, 3] {
                let captions = model.caption(&visual, 4, beam, 1.0);
                assert_eq!(captions.len(), 2);
                assert!(captions.iter().all(|c| c.len() <= 4 && !c.contains(&3)));
            }
        }
    }
}
