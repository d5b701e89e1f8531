//! The encoder-decoder vision-language model (SimVLM's layout): a
//! bidirectional encoder over `[image tokens; text prefix]`, a transformer
//! decoder over the rest of the text reading the encoder output, and an LM
//! head tied to the word embeddings.
//!
//! Split convention: for a text `x₀ … x_{T-1}` cut after `p ≥ 1` tokens, the
//! encoder reads `x₀ … x_{p-1}` and the decoder reads `x_{p-1} … x_{T-2}`
//! (it starts from the last prefix token, e.g. `[CLS]` for an image-only
//! prompt) and predicts `x_p … x_{T-1}`. Decoder positions count from 0.
//! The word (and position) embeddings are shared by the encoder's text, the
//! decoder and the LM head, as in SimVLM and T5.

use burn::prelude::*;
use vlp_data::VisualBatch;
use vlp_features::{
    PatchEmbeddingsConfig, TextEmbeddings, VisualEmbeddings, VisualEmbeddingsConfig,
};

use crate::config_error::ConfigError;
use crate::decoder::{DecoderCache, TransformerDecoder, TransformerDecoderConfig};
use crate::encoder::TransformerEncoder;
use crate::generate::NextTokenModel;
use crate::layer::CrossContext;
use crate::lm_head::{LmHead, LmHeadConfig};
use crate::mask::AttentionMask;
use crate::size::{init_one_stack, validate_one_stack, TransformerSize};

/// Configuration of [`EncoderDecoderModel`]. The defaults are a tiny model
/// for the synthetic world; [`simvlm_base`](Self::simvlm_base) is the
/// published base size.
#[derive(Config, Debug)]
pub struct EncoderDecoderConfig {
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// The visual extractor; its `hidden_size` must equal
    /// `transformer.hidden_size`.
    pub visual: VisualEmbeddingsConfig,
    /// Width, heads, inner width, norm placement and dropout of both
    /// stacks, and the encoder's depth (`num_layers`): 128 wide, 4 heads,
    /// inner 512, 2 layers, pre-norm (SimVLM, ViT, T5; post-norm is
    /// BERT's), dropout 0.1.
    #[config(default = "TransformerSize::new()")]
    pub transformer: TransformerSize,
    /// Decoder layers.
    #[config(default = 2)]
    pub num_decoder_layers: usize,
    /// Longest text (prefix, or decoder input) the position table covers.
    #[config(default = 64)]
    pub max_text_len: usize,
}

impl EncoderDecoderConfig {
    /// SimVLM-base (Wang et al., ICLR 2022, "SimVLM: Simple Visual Language
    /// Model Pretraining with Weak Supervision", arXiv:2108.10904): width
    /// 768, MLP 3072, 12 heads, 224² images; 12 encoder and 12 decoder
    /// layers (T5-base's split).
    ///
    /// The paper sizes its models after ViT: SimVLM_base is listed at 86M
    /// parameters with ViT-B's shape (12 layers, 768, 3072, 12 heads). 86M
    /// is ViT-B/16's count — one 12-layer width-768 stack with its patch
    /// stem — so it leaves out the decoder and the word embeddings, and the
    /// stored copies of the paper we could search do not state the decoder
    /// depth; 12 is our choice. What we match: our encoder stack plus patch
    /// stem has 85,799,424 parameters (ViT-B/16 without its classifier,
    /// 85,798,656, plus our 768-wide image type embedding), within 1% of
    /// 86M. Our stem differs from the paper's: SimVLM feeds the transformer
    /// with the first three stages of a ResNet; we use ViT's 16×16 patch
    /// projection. The whole model, with a 32,000-token vocabulary (T5's
    /// SentencePiece size; `vocab_size` is the caller's) and 512 text
    /// positions, has 224,818,688 parameters (closed form in the test
    /// `simvlm_base_counts`).
    pub fn simvlm_base(vocab_size: usize) -> Self {
        Self::new(
            vocab_size,
            VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(224, 16, 768)),
        )
        .with_transformer(TransformerSize::of(768, 12, 3072, 12))
        .with_num_decoder_layers(12)
        .with_max_text_len(512)
    }

    /// Whether the values can build a model; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_one_stack(&self.visual, &self.transformer)
    }

    /// # Panics
    ///
    /// When [`validate`](Self::validate) fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> EncoderDecoderModel<B> {
        let (embeddings, visual, encoder) = init_one_stack(
            self.vocab_size,
            self.max_text_len,
            &self.visual,
            &self.transformer,
            device,
        );
        EncoderDecoderModel {
            embeddings,
            visual,
            encoder,
            decoder: TransformerDecoderConfig::new(
                self.transformer.layer(),
                self.num_decoder_layers,
            )
            .init(device),
            lm_head: LmHeadConfig::new(self.transformer.hidden_size, self.vocab_size).init(device),
        }
    }
}

/// Shared text embeddings, visual extractor, encoder, decoder, tied LM head.
#[derive(Module, Debug)]
pub struct EncoderDecoderModel<B: Backend> {
    /// Text embeddings shared by the encoder, the decoder and the LM head.
    pub embeddings: TextEmbeddings<B>,
    /// The visual extractor.
    pub visual: VisualEmbeddings<B>,
    /// The encoder over `[image; prefix]`.
    pub encoder: TransformerEncoder<B>,
    /// The decoder over the rest of the text.
    pub decoder: TransformerDecoder<B>,
    /// LM head tied to the word embeddings.
    pub lm_head: LmHead<B>,
}

/// Decoding state of [`EncoderDecoderModel`]: the decoder cache, the
/// number of decoder positions so far, and the logits of the next token.
#[derive(Debug, Clone)]
pub struct EncoderDecoderState<B: Backend> {
    /// The decoder's keys and values so far.
    pub cache: DecoderCache<B>,
    /// Decoder positions so far.
    pub len: usize,
    /// `[N, V]`.
    pub logits: Tensor<B, 2>,
}

/// `[B, V]` image padding (or none) then `[B, T]` text padding → `[B, V + T]`.
pub(crate) fn image_then_text_padding<B: Backend>(
    image: Option<Tensor<B, 2, Bool>>,
    image_len: usize,
    text: Tensor<B, 2, Bool>,
) -> Tensor<B, 2, Bool> {
    let [batch, _] = text.dims();
    // Concatenated as integers: bools built in different ways may have
    // different dtypes, which `cat` rejects.
    let image = match image {
        Some(padding) => padding.int(),
        None => Tensor::zeros([batch, image_len], &text.device()),
    };
    Tensor::cat(vec![image, text.int()], 1).bool()
}

impl<B: Backend> EncoderDecoderModel<B> {
    /// The encoder over `[image; text prefix]`: `prefix_ids` `[B, P]` with
    /// `prefix_padding` `[B, P]` (`true` at padding) → hidden `[B, V + P, H]`
    /// and its padding `[B, V + P]`.
    pub fn encode(
        &self,
        visual: &VisualBatch<B>,
        prefix_ids: Tensor<B, 2, Int>,
        prefix_padding: Tensor<B, 2, Bool>,
    ) -> (Tensor<B, 3>, Tensor<B, 2, Bool>) {
        let image = self.visual.forward(visual);
        let [_, image_len, _] = image.tokens.dims();
        let text = self.embeddings.forward(prefix_ids);
        let padding = image_then_text_padding(image.padding, image_len, prefix_padding);
        let hidden = self.encoder.forward(
            Tensor::cat(vec![image.tokens, text], 1),
            Some(padding.clone()),
        );
        (hidden, padding)
    }

    /// Training pass: the encoder over `[image; prefix]`, the decoder over
    /// `decoder_ids` `[B, S]` (with `decoder_padding` `[B, S]`) → next-token
    /// logits `[B, S, V]` (position `s` predicts decoder token `s + 1`, the
    /// last one the token after the input).
    pub fn forward(
        &self,
        visual: &VisualBatch<B>,
        prefix_ids: Tensor<B, 2, Int>,
        prefix_padding: Tensor<B, 2, Bool>,
        decoder_ids: Tensor<B, 2, Int>,
        decoder_padding: Tensor<B, 2, Bool>,
    ) -> Tensor<B, 3> {
        let (hidden, padding) = self.encode(visual, prefix_ids, prefix_padding);
        let context = CrossContext {
            hidden,
            bias: AttentionMask::padding(padding).bias(),
        };
        let x = self.embeddings.forward(decoder_ids);
        let out = self.decoder.forward(x, decoder_padding, &context);
        self.lm_head
            .forward(out, self.embeddings.word_embedding_weight())
    }

    /// Starts decoding after the prompt `[image; prefix]`: encodes it once,
    /// feeds the decoder each row's last prefix token, and returns the state
    /// whose logits score the first generated token.
    pub fn start(
        &self,
        visual: &VisualBatch<B>,
        prefix_ids: Tensor<B, 2, Int>,
        prefix_padding: Tensor<B, 2, Bool>,
    ) -> EncoderDecoderState<B> {
        let [batch, _] = prefix_ids.dims();
        let last = prefix_padding
            .clone()
            .bool_not()
            .int()
            .sum_dim(1)
            .sub_scalar(1);
        let first = prefix_ids.clone().gather(1, last).reshape([batch, 1]);
        let (hidden, padding) = self.encode(visual, prefix_ids, prefix_padding);
        let cache = self.decoder.start(&CrossContext {
            hidden,
            bias: AttentionMask::padding(padding).bias(),
        });
        self.decode_step(cache, 0, first)
    }

    /// Runs the decoder on `ids` `[N, 1]` at position `len`.
    fn decode_step(
        &self,
        cache: DecoderCache<B>,
        len: usize,
        ids: Tensor<B, 2, Int>,
    ) -> EncoderDecoderState<B> {
        let [rows, _] = ids.dims();
        let x = self.embeddings.forward_from(ids, len, 0);
        let (out, cache) = self.decoder.step(x, cache);
        let logits = self
            .lm_head
            .forward(out, self.embeddings.word_embedding_weight());
        let [_, _, vocab] = logits.dims();
        EncoderDecoderState {
            cache,
            len: len + 1,
            logits: logits.reshape([rows, vocab]),
        }
    }
}

impl<B: Backend> NextTokenModel<B> for EncoderDecoderModel<B> {
    type State = EncoderDecoderState<B>;

    fn next_logits(&self, state: &Self::State) -> Tensor<B, 2> {
        state.logits.clone()
    }

    fn advance(&self, state: Self::State, tokens: Tensor<B, 1, Int>) -> Self::State {
        let [rows] = tokens.dims();
        self.decode_step(state.cache, state.len, tokens.reshape([rows, 1]))
    }

    fn select(&self, state: Self::State, indices: Tensor<B, 1, Int>) -> Self::State {
        EncoderDecoderState {
            cache: state.cache.select(indices.clone()),
            len: state.len,
            logits: state.logits.select(0, indices),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::generate::{beam_search, greedy, BeamSearchConfig, Generated};
    use burn::backend::NdArray;
    use burn::module::{Module, Param};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type B = NdArray;

    pub(crate) fn patches() -> VisualEmbeddingsConfig {
        VisualEmbeddingsConfig::Patches(PatchEmbeddingsConfig::new(16, 8, 16).with_dropout(0.0))
    }

    pub(crate) fn images(batch: usize) -> VisualBatch<B> {
        VisualBatch::Images(Tensor::random(
            [batch, 3, 16, 16],
            Distribution::Default,
            &Default::default(),
        ))
    }

    pub(crate) fn ids(rows: Vec<Vec<i64>>) -> Tensor<B, 2, Int> {
        let shape = [rows.len(), rows[0].len()];
        Tensor::from_data(
            TensorData::new(rows.into_iter().flatten().collect::<Vec<_>>(), shape),
            &Default::default(),
        )
    }

    pub(crate) fn padding(rows: Vec<Vec<bool>>) -> Tensor<B, 2, Bool> {
        let shape = [rows.len(), rows[0].len()];
        Tensor::from_data(
            TensorData::new(rows.into_iter().flatten().collect::<Vec<_>>(), shape),
            &Default::default(),
        )
    }

    /// Word embeddings of N(0, 1) instead of N(0, 0.02): peaked next-token
    /// distributions, so generation has clear choices to make.
    pub(crate) fn sharpen(embeddings: &mut TextEmbeddings<B>) {
        let [vocab, hidden] = embeddings.word_embeddings.weight.dims();
        embeddings.word_embeddings.weight = Param::from_tensor(Tensor::random(
            [vocab, hidden],
            Distribution::Normal(0.0, 1.0),
            &Default::default(),
        ));
    }

    fn model(vocab: usize) -> EncoderDecoderModel<B> {
        B::seed(&Default::default(), 7);
        let mut model = EncoderDecoderConfig::new(vocab, patches())
            .with_transformer(TransformerSize::of(16, 2, 32, 2).with_dropout(0.0))
            .with_max_text_len(8)
            .init(&Default::default());
        sharpen(&mut model.embeddings);
        model
    }

    #[test]
    fn later_decoder_tokens_leave_earlier_logits_unchanged() {
        let model = model(12);
        let visual = images(2);
        let prefix = ids(vec![vec![1, 5, 6], vec![1, 7, 0]]);
        let prefix_padding = padding(vec![vec![false; 3], vec![false, false, true]]);
        let run = |decoder: Vec<Vec<i64>>| {
            model.forward(
                &visual,
                prefix.clone(),
                prefix_padding.clone(),
                ids(decoder),
                padding(vec![vec![false; 5]; 2]),
            )
        };
        let before = run(vec![vec![6, 3, 4, 8, 9], vec![7, 2, 2, 3, 4]]);
        let after = run(vec![vec![6, 3, 4, 10, 11], vec![7, 2, 2, 9, 1]]);
        after
            .clone()
            .narrow(1, 0, 3)
            .into_data()
            .assert_approx_eq::<f32>(
                &before.clone().narrow(1, 0, 3).into_data(),
                Tolerance::absolute(1e-6),
            );
        assert!((after - before).narrow(1, 3, 2).abs().max().into_scalar() > 1e-3);
    }

    #[test]
    fn cached_decoding_equals_the_full_pass() {
        let model = model(12);
        let visual = images(2);
        let prefix = ids(vec![vec![1, 5, 6], vec![1, 7, 0]]);
        let prefix_padding = padding(vec![vec![false; 3], vec![false, false, true]]);
        // Decoder inputs start with each row's last prefix token.
        let decoder = vec![vec![6i64, 3, 4, 8], vec![7, 2, 2, 3]];
        let full = model.forward(
            &visual,
            prefix.clone(),
            prefix_padding.clone(),
            ids(decoder.clone()),
            padding(vec![vec![false; 4]; 2]),
        );
        let mut state = model.start(&visual, prefix, prefix_padding);
        for t in 0..4 {
            state.logits.clone().into_data().assert_approx_eq::<f32>(
                &full.clone().narrow(1, t, 1).reshape([2, 12]).into_data(),
                Tolerance::absolute(1e-5),
            );
            if t < 3 {
                let next = ids(vec![vec![decoder[0][t + 1], decoder[1][t + 1]]]).reshape([2]);
                state = model.advance(state, next);
            }
        }
    }

    /// Log-probability of every complete hypothesis of at most `max_len`
    /// tokens, from full (uncached) forward passes over all `V^max_len`
    /// continuations of row `row`'s prompt.
    fn enumerate(
        model: &EncoderDecoderModel<B>,
        visual: &VisualBatch<B>,
        prefix: Vec<i64>,
        vocab: usize,
        max_len: usize,
        eos: u32,
    ) -> Vec<Generated> {
        let count = vocab.pow(max_len as u32);
        let sequences: Vec<Vec<u32>> = (0..count)
            .map(|n| {
                (0..max_len)
                    .map(|i| ((n / vocab.pow((max_len - 1 - i) as u32)) % vocab) as u32)
                    .collect()
            })
            .collect();
        let start = *prefix.last().unwrap();
        let inputs: Vec<Vec<i64>> = sequences
            .iter()
            .map(|s| {
                std::iter::once(start)
                    .chain(s[..max_len - 1].iter().map(|&t| t as i64))
                    .collect()
            })
            .collect();
        let VisualBatch::Images(pixels) = visual else {
            unreachable!()
        };
        let pixels = VisualBatch::Images(pixels.clone().repeat_dim(0, count));
        let prefix_len = prefix.len();
        let log_probs = log_softmax(
            model.forward(
                &pixels,
                ids(vec![prefix; count]),
                padding(vec![vec![false; prefix_len]; count]),
                ids(inputs),
                padding(vec![vec![false; max_len]; count]),
            ),
            2,
        )
        .into_data()
        .to_vec::<f32>()
        .unwrap();
        sequences
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let mut total = 0.0f64;
                for (t, &token) in s.iter().enumerate() {
                    total += log_probs[(n * max_len + t) * vocab + token as usize] as f64;
                    if token == eos {
                        return Generated {
                            tokens: s[..t].to_vec(),
                            log_prob: total as f32,
                            finished: true,
                        };
                    }
                }
                Generated {
                    tokens: s.clone(),
                    log_prob: total as f32,
                    finished: false,
                }
            })
            .collect()
    }

    #[test]
    fn wide_beam_search_finds_the_brute_force_optimum_and_one_beam_is_greedy() {
        let (vocab, max_len, eos) = (5, 3, 2);
        let model = model(vocab);
        let prefixes = vec![vec![1i64, 3], vec![1, 4]];
        for seed in [11, 12] {
            B::seed(&Default::default(), seed);
            let visual = images(2);
            let start = || {
                model.start(
                    &visual,
                    ids(prefixes.clone()),
                    padding(vec![vec![false; 2]; 2]),
                )
            };
            for alpha in [0.0, 1.0] {
                let config = BeamSearchConfig::new(eos)
                    .with_beam_size(vocab.pow(max_len as u32))
                    .with_max_len(max_len)
                    .with_length_penalty(alpha);
                let found = beam_search(&model, start(), &config);
                for (row, got) in found.iter().enumerate() {
                    let VisualBatch::Images(pixels) = &visual else {
                        unreachable!()
                    };
                    let one = VisualBatch::Images(pixels.clone().narrow(0, row, 1));
                    let all = enumerate(&model, &one, prefixes[row].clone(), vocab, max_len, eos);
                    let best = all
                        .into_iter()
                        .max_by(|a, b| {
                            a.normalised_score(alpha)
                                .total_cmp(&b.normalised_score(alpha))
                        })
                        .unwrap();
                    assert_eq!(got.tokens, best.tokens, "seed {seed}, α {alpha}, row {row}");
                    assert_eq!(got.finished, best.finished);
                    assert!((got.log_prob - best.log_prob).abs() < 1e-4);
                }
            }
            let greedy = greedy(&model, start(), 6, eos);
            let one_beam = beam_search(
                &model,
                start(),
                &BeamSearchConfig::new(eos)
                    .with_beam_size(1)
                    .with_length_penalty(0.0)
                    .with_max_len(6),
            );
            for (g, b) in greedy.iter().zip(&one_beam) {
                assert_eq!(g.tokens, b.tokens);
                assert!((g.log_prob - b.log_prob).abs() < 1e-4);
            }
        }
    }

    /// SimVLM-base's count in closed form: per width-`h` layer, attention
    /// `4(h² + h)`, feed-forward `2hf + f + h`, LayerNorms `2h` each; a
    /// decoder layer adds cross-attention and its norm; pre-norm stacks end
    /// with a norm. Patch stem: `16·16·3·h + h` convolution, `[CLS]`,
    /// 197 positions, type. Text: words, 512 positions, 2 types, norm. LM
    /// head: `h² + h` dense, norm, `V` bias (its matrix is the tied words).
    #[test]
    fn simvlm_base_counts() {
        let vocab = 32_000;
        let config = EncoderDecoderConfig::simvlm_base(vocab);
        let model: EncoderDecoderModel<B> = config.init(&Default::default());
        let (h, f, t) = (768usize, 3072usize, 512usize);
        let norm = 2 * h;
        let attention = 4 * (h * h + h);
        let feed_forward = h * f + f + f * h + h;
        let encoder_layer = attention + norm + feed_forward + norm;
        let decoder_layer = encoder_layer + attention + norm;
        let patches = (h * 3 * 16 * 16 + h) + h + 197 * h + h;
        let encoder = 12 * encoder_layer + norm;
        // The paper's 86M: one ViT-B-shaped stack with its stem.
        assert_eq!(
            model.encoder.num_params() + model.visual.num_params(),
            encoder + patches
        );
        assert_eq!(encoder + patches, 85_799_424);
        assert!(((encoder + patches) as f64 / 86e6 - 1.0).abs() < 0.01);
        let text = vocab * h + t * h + 2 * h + norm;
        let head = h * h + h + norm + vocab;
        let total = text + patches + encoder + 12 * decoder_layer + norm + head;
        assert_eq!(model.num_params(), total);
        assert_eq!(total, 224_818_688);
    }
}
