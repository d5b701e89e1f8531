//! Batched text generation: greedy decoding and beam search over any model
//! that scores the next token from a cached state ([`NextTokenModel`]:
//! [`EncoderDecoderModel`](crate::EncoderDecoderModel) and
//! [`PrefixLmModel`](crate::PrefixLmModel)).
//!
//! Scores are sums of natural-log probabilities. A hypothesis's length
//! counts its generated tokens including the EOS that ends it (EOS is a
//! decision with a probability of its own); the returned tokens leave the
//! EOS out. Beam search ranks complete hypotheses by `log_prob / len^α`
//! (Hugging Face's `length_penalty`; α = 0 ranks by probability alone,
//! α > 0 favours longer hypotheses).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::TensorData;

/// A model that scores the next token of every row of a batch from a
/// cached state (keys and values of everything decoded so far).
pub trait NextTokenModel<B: Backend> {
    /// What the model keeps between steps; it includes the logits of the
    /// next token, so a fresh state (after the prompt) can be scored at once.
    type State;

    /// Logits `[N, V]` of the next token of each of the state's `N` rows.
    fn next_logits(&self, state: &Self::State) -> Tensor<B, 2>;

    /// The state after appending `tokens` `[N]`, one per row.
    fn advance(&self, state: Self::State, tokens: Tensor<B, 1, Int>) -> Self::State;

    /// The rows `indices` `[M]` of the state (repeats allowed): how beam
    /// search widens the batch to its beams and reorders them.
    fn select(&self, state: Self::State, indices: Tensor<B, 1, Int>) -> Self::State;
}

/// One generated sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The generated ids, without the prompt and without the final EOS.
    pub tokens: Vec<u32>,
    /// Sum of the log-probabilities of the tokens (and of the EOS, if finished).
    pub log_prob: f32,
    /// Whether the sequence ended with EOS (rather than at the length limit).
    pub finished: bool,
}

impl Generated {
    /// Length for the length penalty: tokens plus the EOS when there is one.
    pub fn scored_len(&self) -> usize {
        self.tokens.len() + usize::from(self.finished)
    }

    /// `log_prob / len^α`, the beam-search ranking score.
    pub fn normalised_score(&self, length_penalty: f64) -> f64 {
        normalised(self.log_prob as f64, self.scored_len(), length_penalty)
    }
}

fn normalised(log_prob: f64, len: usize, length_penalty: f64) -> f64 {
    log_prob / (len.max(1) as f64).powf(length_penalty)
}

/// Settings of [`beam_search`].
#[derive(Config, Debug)]
pub struct BeamSearchConfig {
    /// Id that ends a hypothesis (`[SEP]` for BERT-style vocabularies).
    pub eos: u32,
    /// Hypotheses kept per example.
    #[config(default = 4)]
    pub beam_size: usize,
    /// α of `log_prob / len^α` (Hugging Face's default 1.0).
    #[config(default = 1.0)]
    pub length_penalty: f64,
    /// Most tokens generated per example, EOS included.
    #[config(default = 20)]
    pub max_len: usize,
}

/// Greedy decoding of every row of `state`: the most probable token at each
/// step, until EOS or `max_len` tokens (EOS included).
pub fn greedy<B: Backend, M: NextTokenModel<B>>(
    model: &M,
    mut state: M::State,
    max_len: usize,
    eos: u32,
) -> Vec<Generated> {
    let rows = model.next_logits(&state).dims()[0];
    let mut out = vec![
        Generated {
            tokens: Vec::new(),
            log_prob: 0.0,
            finished: false,
        };
        rows
    ];
    for step in 0..max_len {
        let logits = model.next_logits(&state);
        let device = logits.device();
        let (best, index) = log_softmax(logits, 1).max_dim_with_indices(1);
        let best = floats(best);
        let index = ints(index);
        for (row, generated) in out.iter_mut().enumerate() {
            if generated.finished {
                continue;
            }
            generated.log_prob += best[row];
            if index[row] as u32 == eos {
                generated.finished = true;
            } else {
                generated.tokens.push(index[row] as u32);
            }
        }
        if step + 1 == max_len || out.iter().all(|g| g.finished) {
            break;
        }
        // Finished rows are fed EOS; what follows it is never read.
        let next: Vec<i64> = out
            .iter()
            .zip(&index)
            .map(|(g, &i)| if g.finished { eos as i64 } else { i })
            .collect();
        state = model.advance(state, int_tensor(next, &device));
    }
    out
}

/// Beam search of every row of `state` (one example per row): keeps the
/// `beam_size` best unfinished hypotheses of each example (the batch runs
/// `B × K` rows), retires a hypothesis when it takes EOS, and returns each
/// example's best hypothesis by `log_prob / len^α`.
///
/// Each step ranks the `2K` best continuations per example; an EOS among
/// the first `K` retires its hypothesis, and the other live ones refill the
/// beam (Hugging Face's scheme). An example stops when no live hypothesis
/// can still beat its best retired one: a live score `s ≤ 0` can at best
/// stay `s` and end at any length in `cur + 1 ..= max_len`, so its bound is
/// the larger of `s / (cur + 1)^α` and `s / max_len^α`. With `K ≥ V^max_len`
/// nothing is ever dropped, and the result is the exact optimum.
pub fn beam_search<B: Backend, M: NextTokenModel<B>>(
    model: &M,
    state: M::State,
    config: &BeamSearchConfig,
) -> Vec<Generated> {
    let first = model.next_logits(&state);
    let [examples, vocab] = first.dims();
    let device = first.device();
    let k = config.beam_size.max(1);
    let alpha = config.length_penalty;
    if config.max_len == 0 {
        return vec![empty(); examples];
    }
    let mut best: Vec<Option<Generated>> = vec![None; examples];
    let widen: Vec<i64> = (0..examples as i64)
        .flat_map(|b| std::iter::repeat_n(b, k))
        .collect();
    let mut state = model.select(state, int_tensor(widen, &device));
    // Beam 0 of each example starts alone; the copies wait at -inf.
    let mut scores: Vec<f32> = (0..examples * k)
        .map(|r| if r % k == 0 { 0.0 } else { f32::NEG_INFINITY })
        .collect();
    let mut hypotheses: Vec<Vec<u32>> = vec![Vec::new(); examples * k];
    let mut done = vec![false; examples];

    for step in 0..config.max_len {
        let log_probs = log_softmax(model.next_logits(&state), 1)
            + Tensor::<B, 1>::from_data(TensorData::new(scores.clone(), [examples * k]), &device)
                .reshape([examples * k, 1]);
        let width = (2 * k).min(k * vocab);
        let (top, index) = log_probs
            .reshape([examples, k * vocab])
            .topk_with_indices(width, 1);
        let (top, index) = (floats(top), ints(index));
        let last_step = step + 1 == config.max_len;

        // Each example's surviving hypotheses: (source row, token, hypothesis).
        let mut next: Vec<(usize, u32, Generated)> = Vec::with_capacity(examples * k);
        for b in 0..examples {
            let mut live = Vec::with_capacity(k);
            if !done[b] {
                for rank in 0..width {
                    let score = top[b * width + rank];
                    if score == f32::NEG_INFINITY || live.len() == k {
                        break;
                    }
                    let flat = index[b * width + rank] as usize;
                    let (row, token) = (b * k + flat / vocab, (flat % vocab) as u32);
                    if token == config.eos {
                        if rank < k {
                            let finished = hypothesis(&hypotheses[row], None, score);
                            keep_best(&mut best[b], finished, alpha);
                        }
                    } else {
                        live.push((row, token, hypothesis(&hypotheses[row], Some(token), score)));
                    }
                }
                if last_step {
                    // Cut at the length limit: complete, unfinished.
                    for (_, _, unfinished) in live.drain(..) {
                        keep_best(&mut best[b], unfinished, alpha);
                    }
                }
                let scores: Vec<f32> = live.iter().map(|(_, _, h)| h.log_prob).collect();
                done[b] = live.is_empty()
                    || cannot_improve(best[b].as_ref(), &scores, step + 1, config.max_len, alpha);
                if done[b] {
                    live.clear();
                }
            }
            // Empty beams ride along at -inf.
            while live.len() < k {
                live.push((
                    b * k,
                    config.eos,
                    Generated {
                        log_prob: f32::NEG_INFINITY,
                        ..empty()
                    },
                ));
            }
            next.extend(live);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        let sources = next.iter().map(|(row, _, _)| *row as i64).collect();
        let tokens = next.iter().map(|(_, token, _)| *token as i64).collect();
        state = model.select(state, int_tensor(sources, &device));
        state = model.advance(state, int_tensor(tokens, &device));
        scores = next.iter().map(|(_, _, h)| h.log_prob).collect();
        hypotheses = next.into_iter().map(|(_, _, h)| h.tokens).collect();
    }
    best.into_iter().map(|g| g.unwrap_or_else(empty)).collect()
}

/// Whether no live hypothesis (scores `live` after `len` tokens) can end
/// with a better normalised score than `best`.
fn cannot_improve(
    best: Option<&Generated>,
    live: &[f32],
    len: usize,
    max_len: usize,
    alpha: f64,
) -> bool {
    let Some(best) = best else { return false };
    let target = best.normalised_score(alpha);
    live.iter().all(|&s| {
        let s = s as f64;
        normalised(s, len + 1, alpha).max(normalised(s, max_len, alpha)) <= target
    })
}

fn hypothesis(prefix: &[u32], token: Option<u32>, log_prob: f32) -> Generated {
    let mut tokens = prefix.to_vec();
    tokens.extend(token);
    Generated {
        tokens,
        log_prob,
        finished: token.is_none(),
    }
}

fn keep_best(best: &mut Option<Generated>, candidate: Generated, alpha: f64) {
    let better = best
        .as_ref()
        .is_none_or(|b| candidate.normalised_score(alpha) > b.normalised_score(alpha));
    if better {
        *best = Some(candidate);
    }
}

fn empty() -> Generated {
    Generated {
        tokens: Vec::new(),
        log_prob: 0.0,
        finished: false,
    }
}

fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("float data")
}

fn ints<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("int data")
}

fn int_tensor<B: Backend>(values: Vec<i64>, device: &B::Device) -> Tensor<B, 1, Int> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::Distribution;

    type B = NdArray;

    /// A toy model whose next-token logits depend on the row's example, the
    /// last token and the position: `row_bias[e] + table[last] + step[t]`.
    struct TableModel {
        row_bias: Vec<Vec<f32>>,
        table: Vec<Vec<f32>>,
        step: Vec<Vec<f32>>,
    }

    #[derive(Clone)]
    struct TableState {
        example: Vec<usize>,
        last: Vec<usize>,
        len: usize,
    }

    impl TableModel {
        fn random(examples: usize, vocab: usize, max_len: usize, scale: f64) -> Self {
            let device = Default::default();
            let table = |rows: usize| -> Vec<Vec<f32>> {
                let values = floats(Tensor::<B, 2>::random(
                    [rows, vocab],
                    Distribution::Normal(0.0, scale),
                    &device,
                ));
                values.chunks(vocab).map(<[f32]>::to_vec).collect()
            };
            Self {
                row_bias: table(examples),
                table: table(vocab + 1),
                step: table(max_len + 1),
            }
        }

        fn start(&self) -> TableState {
            let examples = self.row_bias.len();
            TableState {
                example: (0..examples).collect(),
                // Index `vocab` stands for "no token yet".
                last: vec![self.table.len() - 1; examples],
                len: 0,
            }
        }

        /// Log-probabilities of the next token, on the host in f64.
        fn log_probs(&self, example: usize, last: usize, len: usize) -> Vec<f64> {
            let logits: Vec<f64> = (0..self.table[0].len())
                .map(|v| {
                    (self.row_bias[example][v] + self.table[last][v] + self.step[len][v]) as f64
                })
                .collect();
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let norm = logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln() + max;
            logits.iter().map(|l| l - norm).collect()
        }
    }

    impl NextTokenModel<B> for TableModel {
        type State = TableState;

        fn next_logits(&self, state: &TableState) -> Tensor<B, 2> {
            let vocab = self.table[0].len();
            let values: Vec<f32> = state
                .example
                .iter()
                .zip(&state.last)
                .flat_map(|(&e, &l)| {
                    (0..vocab).map(move |v| {
                        self.row_bias[e][v] + self.table[l][v] + self.step[state.len][v]
                    })
                })
                .collect();
            Tensor::from_data(
                TensorData::new(values, [state.example.len(), vocab]),
                &Default::default(),
            )
        }

        fn advance(&self, state: TableState, tokens: Tensor<B, 1, Int>) -> TableState {
            TableState {
                last: ints(tokens).into_iter().map(|t| t as usize).collect(),
                len: state.len + 1,
                ..state
            }
        }

        fn select(&self, state: TableState, indices: Tensor<B, 1, Int>) -> TableState {
            let indices = ints(indices);
            TableState {
                example: indices.iter().map(|&i| state.example[i as usize]).collect(),
                last: indices.iter().map(|&i| state.last[i as usize]).collect(),
                len: state.len,
            }
        }
    }

    /// Every complete sequence of at most `max_len` tokens (ending at EOS,
    /// or unfinished at `max_len`) with its exact log-probability.
    fn enumerate(model: &TableModel, example: usize, max_len: usize, eos: u32) -> Vec<Generated> {
        let vocab = model.table[0].len();
        let mut out = Vec::new();
        let mut frontier = vec![(Vec::<u32>::new(), 0f64)];
        for len in 0..max_len {
            let mut next = Vec::new();
            for (tokens, score) in frontier {
                let last = tokens.last().map_or(vocab, |&t| t as usize);
                for (v, lp) in model.log_probs(example, last, len).into_iter().enumerate() {
                    let mut grown = tokens.clone();
                    if v as u32 == eos {
                        out.push(Generated {
                            tokens: grown,
                            log_prob: (score + lp) as f32,
                            finished: true,
                        });
                    } else {
                        grown.push(v as u32);
                        next.push((grown, score + lp));
                    }
                }
            }
            frontier = next;
        }
        out.extend(frontier.into_iter().map(|(tokens, score)| Generated {
            tokens,
            log_prob: score as f32,
            finished: false,
        }));
        out
    }

    fn best_of(all: Vec<Generated>, alpha: f64) -> Generated {
        all.into_iter()
            .max_by(|a, b| {
                a.normalised_score(alpha)
                    .total_cmp(&b.normalised_score(alpha))
            })
            .unwrap()
    }

    #[test]
    fn wide_beams_find_the_exact_optimum_of_brute_force_enumeration() {
        // V = 4, L = 3: 4³ = 64 beams keep every hypothesis.
        let (vocab, max_len, eos) = (4, 3, 0);
        for (seed, alpha) in [(1u64, 0.0), (2, 0.7), (3, 1.5)] {
            B::seed(&Default::default(), seed);
            let model = TableModel::random(3, vocab, max_len, 1.5);
            let config = BeamSearchConfig::new(eos)
                .with_beam_size(64)
                .with_max_len(max_len)
                .with_length_penalty(alpha);
            let found = beam_search(&model, model.start(), &config);
            for (example, got) in found.into_iter().enumerate() {
                let expected = best_of(enumerate(&model, example, max_len, eos), alpha);
                assert_eq!(
                    got.tokens, expected.tokens,
                    "seed {seed}, α {alpha}, example {example}"
                );
                assert_eq!(got.finished, expected.finished);
                assert!((got.log_prob - expected.log_prob).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn one_beam_without_length_penalty_is_greedy() {
        let (vocab, max_len, eos) = (6, 8, 2);
        for seed in 0..4 {
            B::seed(&Default::default(), seed);
            let model = TableModel::random(5, vocab, max_len, 2.0);
            let greedy = greedy(&model, model.start(), max_len, eos);
            let beam = beam_search(
                &model,
                model.start(),
                &BeamSearchConfig::new(eos)
                    .with_beam_size(1)
                    .with_length_penalty(0.0)
                    .with_max_len(max_len),
            );
            for (g, b) in greedy.iter().zip(&beam) {
                assert_eq!(g.tokens, b.tokens);
                assert_eq!(g.finished, b.finished);
                assert!((g.log_prob - b.log_prob).abs() < 1e-5);
            }
            // Greedy's own invariant: each token is the arg-max of its step.
            for (example, g) in greedy.iter().enumerate() {
                let mut last = vocab;
                let path = g.tokens.iter().copied().chain(g.finished.then_some(eos));
                let mut total = 0.0;
                for (len, token) in path.enumerate() {
                    let lp = model.log_probs(example, last, len);
                    let argmax = (0..vocab).max_by(|&a, &b| lp[a].total_cmp(&lp[b])).unwrap();
                    assert_eq!(argmax as u32, token);
                    total += lp[argmax];
                    last = token as usize;
                }
                assert!((total as f32 - g.log_prob).abs() < 1e-4);
            }
        }
    }

    /// A model with fixed probabilities: from the start, EOS 0.4 and token 1
    /// 0.6; after token 1, EOS 0.55 and token 2 0.45; after token 2, EOS only.
    struct Fixed;

    impl NextTokenModel<B> for Fixed {
        type State = Vec<usize>;

        fn next_logits(&self, state: &Vec<usize>) -> Tensor<B, 2> {
            let values: Vec<f32> = state
                .iter()
                .flat_map(|&last| match last {
                    3 => [0.4, 0.6, 1e-30],
                    1 => [0.55, 1e-30, 0.45],
                    _ => [1.0, 1e-30, 1e-30],
                })
                .map(|p: f32| p.ln())
                .collect();
            Tensor::from_data(
                TensorData::new(values, [state.len(), 3]),
                &Default::default(),
            )
        }

        fn advance(&self, _: Vec<usize>, tokens: Tensor<B, 1, Int>) -> Vec<usize> {
            ints(tokens).into_iter().map(|t| t as usize).collect()
        }

        fn select(&self, state: Vec<usize>, indices: Tensor<B, 1, Int>) -> Vec<usize> {
            ints(indices)
                .into_iter()
                .map(|i| state[i as usize])
                .collect()
        }
    }

    #[test]
    fn length_penalty_changes_the_choice_where_its_closed_form_says() {
        // The three answers and their scores `log p / len^α`:
        //   a = [EOS]        ln 0.4                     / 1
        //   b = [1, EOS]     (ln 0.6 + ln 0.55)         / 2^α
        //   c = [1, 2, EOS]  (ln 0.6 + ln 0.45 + ln 1)  / 3^α
        // b overtakes a at 2^α = lb/la, c overtakes b at (3/2)^α = lc/lb.
        let (la, lb, lc) = (
            0.4f64.ln(),
            0.6f64.ln() + 0.55f64.ln(),
            0.6f64.ln() + 0.45f64.ln(),
        );
        let a_to_b = (lb / la).ln() / 2f64.ln();
        let b_to_c = (lc / lb).ln() / 1.5f64.ln();
        assert!(0.0 < a_to_b && a_to_b < b_to_c);
        let run = |alpha: f64| {
            beam_search(
                &Fixed,
                vec![3, 3],
                &BeamSearchConfig::new(0)
                    .with_beam_size(2)
                    .with_length_penalty(alpha)
                    .with_max_len(5),
            )
        };
        for (alpha, tokens, log_prob) in [
            (a_to_b - 0.02, vec![], la),
            (a_to_b + 0.02, vec![1], lb),
            (b_to_c - 0.02, vec![1], lb),
            (b_to_c + 0.02, vec![1, 2], lc),
        ] {
            for got in run(alpha) {
                assert_eq!(got.tokens, tokens, "α = {alpha}");
                assert!(got.finished);
                assert!((got.log_prob as f64 - log_prob).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn eos_ends_a_row_and_rows_finish_independently() {
        let model = Fixed;
        let out = greedy(&model, vec![3, 1, 2], 5, 0);
        // Row 0: token 1 (0.6), then EOS (0.55).
        assert_eq!(out[0].tokens, vec![1]);
        assert!((out[0].log_prob as f64 - (0.6f64.ln() + 0.55f64.ln())).abs() < 1e-5);
        // Row 1 starts after token 1: EOS at once.
        assert_eq!(out[1].tokens, Vec::<u32>::new());
        assert!(out[0].finished);
        assert_eq!(out[2].tokens, Vec::<u32>::new());
        assert!(out[2].finished);
        assert!((out[2].log_prob).abs() < 1e-6);
        // Cut at the length limit: unfinished.
        let cut = greedy(&model, vec![3], 1, 0);
        assert_eq!(cut[0].tokens, vec![1]);
        assert!(!cut[0].finished);
    }
}
