//! The PrefixLM vision-language model in one stack (SimVLM's decoder-only
//! variant, UniLM's seq-to-seq mask): one transformer over
//! `[image tokens; text]` where the image and each row's first `p` text
//! tokens see each other in both directions and every later text token sees
//! the prefix and the tokens before it; an LM head tied to the word
//! embeddings predicts each text position's next token.

use burn::prelude::*;
use vlp_data::VisualBatch;
use vlp_features::{TextEmbeddings, VisualEmbeddings, VisualEmbeddingsConfig};

use crate::attention::KeyValue;
use crate::config_error::ConfigError;
use crate::encoder::TransformerEncoder;
use crate::encoder_decoder::image_then_text_padding;
use crate::generate::NextTokenModel;
use crate::lm_head::{LmHead, LmHeadConfig};
use crate::mask::AttentionMask;
use crate::size::{init_one_stack, validate_one_stack, TransformerSize};

/// Configuration of [`PrefixLmModel`]. The defaults are a tiny model for
/// the synthetic world.
#[derive(Config, Debug)]
pub struct PrefixLmConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The visual extractor; its `hidden_size` must equal
    /// `transformer.hidden_size`.
    pub visual: VisualEmbeddingsConfig,
    /// The one stack: 128 wide, 4 heads, inner 512, 4 layers, pre-norm
    /// (post-norm is BERT's), dropout 0.1.
    #[config(default = "TransformerSize::new().with_num_layers(4)")]
    pub transformer: TransformerSize,
    /// Longest text the position table covers.
    #[config(default = 64)]
    pub max_text_len: usize,
}

/// Text embeddings, visual extractor, one transformer stack, tied LM head.
#[derive(Module, Debug)]
pub struct PrefixLmModel<B: Backend> {
    /// Text embeddings, shared with the LM head.
    pub embeddings: TextEmbeddings<B>,
    /// The visual extractor.
    pub visual: VisualEmbeddings<B>,
    /// The one stack over `[image; text]`.
    pub encoder: TransformerEncoder<B>,
    /// LM head tied to the word embeddings.
    pub lm_head: LmHead<B>,
}

/// Decoding state of [`PrefixLmModel`].
#[derive(Debug, Clone)]
pub struct PrefixLmState<B: Backend> {
    /// Per layer, the keys and values of every position so far (image,
    /// prefix, generated tokens).
    pub cache: Vec<KeyValue<B>>,
    /// `[N, 1, 1, K]` bias of the cached keys (the image's padding), `None`
    /// when no key is hidden.
    pub key_bias: Option<Tensor<B, 4>>,
    /// Text tokens so far (prefix and generated): the next one's position.
    pub text_len: usize,
    /// `[N, V]` logits of the next token.
    pub logits: Tensor<B, 2>,
}

impl PrefixLmConfig {
    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_one_stack(&self.visual, &self.transformer)
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> PrefixLmModel<B> {
        let (embeddings, visual, encoder) = init_one_stack(
            self.vocab_size,
            self.max_text_len,
            &self.visual,
            &self.transformer,
            device,
        );
        PrefixLmModel {
            embeddings,
            visual,
            encoder,
            lm_head: LmHeadConfig::new(self.transformer.hidden_size, self.vocab_size).init(device),
        }
    }
}

impl<B: Backend> PrefixLmModel<B> {
    /// Training pass: `ids` `[B, T]` with `padding` `[B, T]`, row `b`'s
    /// first `prefix_lengths[b]` text tokens in the prefix with the image →
    /// logits `[B, T, V]` (position `t` predicts text token `t + 1`; only
    /// positions from `prefix_lengths[b] - 1` on are language modelling,
    /// earlier ones see their own next token).
    pub fn forward(
        &self,
        visual: &VisualBatch<B>,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
        prefix_lengths: &[usize],
    ) -> Tensor<B, 3> {
        let [batch, text_len] = ids.dims();
        assert_eq!(
            prefix_lengths.len(),
            batch,
            "one prefix length per row of the batch"
        );
        let image = self.visual.forward(visual);
        let [_, image_len, _] = image.tokens.dims();
        let text = self.embeddings.forward(ids);
        let padding = image_then_text_padding(image.padding, image_len, padding);
        let prefixes: Vec<usize> = prefix_lengths.iter().map(|p| image_len + p).collect();
        let bias = AttentionMask::prefix(&prefixes, image_len + text_len, &text.device())
            .and_padding(padding)
            .bias();
        let hidden = self
            .encoder
            .forward_with_bias(Tensor::cat(vec![image.tokens, text], 1), bias)
            .narrow(1, image_len, text_len);
        self.lm_head
            .forward(hidden, self.embeddings.word_embedding_weight())
    }

    /// Starts decoding after the prompt `[image; prefix_ids]` (`[B, P]`,
    /// `P ≥ 1`, no padding: every row's prompt has `P` tokens, as a caption
    /// prompt does): one bidirectional pass over the prompt, caching every
    /// layer's keys and values; the state's logits score the first
    /// generated token.
    pub fn start(
        &self,
        visual: &VisualBatch<B>,
        prefix_ids: Tensor<B, 2, Int>,
    ) -> PrefixLmState<B> {
        let [_, prefix_len] = prefix_ids.dims();
        let image = self.visual.forward(visual);
        let text = self.embeddings.forward(prefix_ids);
        let key_bias = image.padding.and_then(|image_padding| {
            let [batch, image_len] = image_padding.dims();
            let text_padding = Tensor::<B, 2, Int>::zeros([batch, prefix_len], &text.device());
            AttentionMask::padding(image_then_text_padding(
                Some(image_padding),
                image_len,
                text_padding.bool(),
            ))
            .bias()
        });
        self.run(
            Tensor::cat(vec![image.tokens, text], 1),
            vec![None; self.encoder.layer.len()],
            key_bias,
            prefix_len,
        )
    }

    /// Runs the stack over the new positions `x` `[N, S, H]` (attending to
    /// the cache and to each other without restriction: the prompt is
    /// bidirectional, and a single new token sees everything anyway).
    fn run(
        &self,
        x: Tensor<B, 3>,
        cache: Vec<Option<KeyValue<B>>>,
        key_bias: Option<Tensor<B, 4>>,
        text_len: usize,
    ) -> PrefixLmState<B> {
        let [rows, new, _] = x.dims();
        let mut next = Vec::with_capacity(cache.len());
        let mut x = x;
        for (layer, past) in self.encoder.layer.iter().zip(cache) {
            let (out, kv) = layer.forward_cached(x, past, key_bias.clone(), None);
            next.push(kv);
            x = out;
        }
        let last = x.narrow(1, new - 1, 1);
        let last = match &self.encoder.final_norm {
            Some(norm) => norm.forward(last),
            None => last,
        };
        let logits = self
            .lm_head
            .forward(last, self.embeddings.word_embedding_weight());
        let [_, _, vocab] = logits.dims();
        PrefixLmState {
            cache: next,
            key_bias,
            text_len,
            logits: logits.reshape([rows, vocab]),
        }
    }
}

impl<B: Backend> NextTokenModel<B> for PrefixLmModel<B> {
    type State = PrefixLmState<B>;

    fn next_logits(&self, state: &Self::State) -> Tensor<B, 2> {
        state.logits.clone()
    }

    fn advance(&self, state: Self::State, tokens: Tensor<B, 1, Int>) -> Self::State {
        let [rows] = tokens.dims();
        let x = self
            .embeddings
            .forward_from(tokens.reshape([rows, 1]), state.text_len, 0);
        // The new key is never hidden.
        let key_bias = state.key_bias.map(|bias| {
            let visible = Tensor::zeros([rows, 1, 1, 1], &bias.device());
            Tensor::cat(vec![bias, visible], 3)
        });
        self.run(
            x,
            state.cache.into_iter().map(Some).collect(),
            key_bias,
            state.text_len + 1,
        )
    }

    fn select(&self, state: Self::State, indices: Tensor<B, 1, Int>) -> Self::State {
        PrefixLmState {
            cache: state
                .cache
                .into_iter()
                .map(|kv| kv.select(indices.clone()))
                .collect(),
            key_bias: state.key_bias.map(|bias| bias.select(0, indices.clone())),
            text_len: state.text_len,
            logits: state.logits.select(0, indices),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder_decoder::tests::{ids, images, padding, patches, sharpen};
    use crate::generate::{beam_search, greedy, BeamSearchConfig};
    use burn::backend::NdArray;
    use burn::tensor::{TensorData, Tolerance};
    use vlp_data::RegionTensors;
    use vlp_features::RegionEmbeddingsConfig;

    type B = NdArray;

    fn model(visual: VisualEmbeddingsConfig) -> PrefixLmModel<B> {
        B::seed(&Default::default(), 3);
        let mut model = PrefixLmConfig::new(12, visual)
            .with_transformer(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
            .with_max_text_len(8)
            .init(&Default::default());
        sharpen(&mut model.embeddings);
        model
    }

    fn max_change(a: Tensor<B, 3>, b: Tensor<B, 3>, from: usize, len: usize) -> f32 {
        (a - b).narrow(1, from, len).abs().max().into_scalar()
    }

    #[test]
    fn the_suffix_is_causal_and_the_prefix_bidirectional() {
        let model = model(patches());
        let visual = images(1);
        let run = |text: Vec<i64>| {
            model.forward(
                &visual,
                ids(vec![text]),
                padding(vec![vec![false; 6]]),
                &[3],
            )
        };
        let base = run(vec![1, 4, 5, 6, 7, 8]);

        // A suffix token (position 4) changes nothing before it, prefix included.
        let suffix_changed = run(vec![1, 4, 5, 6, 9, 8]);
        suffix_changed
            .clone()
            .narrow(1, 0, 4)
            .into_data()
            .assert_approx_eq::<f32>(
                &base.clone().narrow(1, 0, 4).into_data(),
                Tolerance::absolute(1e-6),
            );
        assert!(max_change(suffix_changed, base.clone(), 4, 2) > 1e-3);

        // The last prefix token (position 2) changes the prefix positions
        // before it: inside the prefix attention runs both ways.
        let prefix_changed = run(vec![1, 4, 9, 6, 7, 8]);
        assert!(max_change(prefix_changed.clone(), base.clone(), 0, 2) > 1e-3);
        // With a prefix of one token, the same change does not reach back.
        let causal = |text: Vec<i64>| {
            model.forward(
                &visual,
                ids(vec![text]),
                padding(vec![vec![false; 6]]),
                &[1],
            )
        };
        let (a, b) = (
            causal(vec![1, 4, 5, 6, 7, 8]),
            causal(vec![1, 4, 9, 6, 7, 8]),
        );
        assert!(max_change(a, b, 0, 2) < 1e-6);
    }

    #[test]
    fn rows_with_different_prefixes_and_padding_match_their_own_passes() {
        let model = model(patches());
        let visual = images(2);
        let batch = model.forward(
            &visual,
            ids(vec![vec![1, 4, 5, 6, 7], vec![1, 3, 2, 0, 0]]),
            padding(vec![vec![false; 5], vec![false, false, false, true, true]]),
            &[2, 1],
        );
        let VisualBatch::Images(pixels) = &visual else {
            unreachable!()
        };
        let second = model.forward(
            &VisualBatch::Images(pixels.clone().narrow(0, 1, 1)),
            ids(vec![vec![1, 3, 2]]),
            padding(vec![vec![false; 3]]),
            &[1],
        );
        batch
            .narrow(0, 1, 1)
            .narrow(1, 0, 3)
            .into_data()
            .assert_approx_eq::<f32>(&second.into_data(), Tolerance::absolute(1e-5));
    }

    fn check_cached_equals_full(model: &PrefixLmModel<B>, visual: &VisualBatch<B>) {
        let text = vec![vec![1i64, 4, 5, 6, 7, 8], vec![1, 3, 2, 9, 10, 11]];
        let prefix = 2;
        let full = model.forward(
            visual,
            ids(text.clone()),
            padding(vec![vec![false; 6]; 2]),
            &[prefix; 2],
        );
        let prompt: Vec<Vec<i64>> = text.iter().map(|row| row[..prefix].to_vec()).collect();
        let mut state = model.start(visual, ids(prompt));
        for t in prefix - 1..6 {
            state.logits.clone().into_data().assert_approx_eq::<f32>(
                &full.clone().narrow(1, t, 1).reshape([2, 12]).into_data(),
                Tolerance::absolute(1e-5),
            );
            if t + 1 < 6 {
                let next = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(vec![text[0][t + 1], text[1][t + 1]], [2]),
                    &Default::default(),
                );
                state = model.advance(state, next);
            }
        }
    }

    #[test]
    fn cached_decoding_equals_the_full_pass() {
        check_cached_equals_full(&model(patches()), &images(2));
    }

    #[test]
    fn cached_decoding_keeps_padded_regions_hidden() {
        let device = Default::default();
        let model = model(VisualEmbeddingsConfig::Regions(
            RegionEmbeddingsConfig::new(6, 16).with_dropout(0.0),
        ));
        let visual = VisualBatch::Regions(RegionTensors {
            features: Tensor::random([2, 3, 6], burn::tensor::Distribution::Default, &device),
            boxes: Tensor::random([2, 3, 4], burn::tensor::Distribution::Default, &device),
            padding: padding(vec![vec![false; 3], vec![false, false, true]]),
            soft_labels: None,
        });
        check_cached_equals_full(&model, &visual);
    }

    #[test]
    fn one_beam_is_greedy() {
        let model = model(patches());
        let visual = images(3);
        let start = || model.start(&visual, ids(vec![vec![1]; 3]));
        let greedy = greedy(&model, start(), 6, 2);
        let beam = beam_search(
            &model,
            start(),
            &BeamSearchConfig::new(2)
                .with_beam_size(1)
                .with_length_penalty(0.0)
                .with_max_len(6),
        );
        for (g, b) in greedy.iter().zip(&beam) {
            assert_eq!(g.tokens, b.tokens);
            assert!((g.log_prob - b.log_prob).abs() < 1e-4);
        }
    }
}
