//! `bench step`'s inputs: the case shapes and one seeded synthetic batch
//! (COCO-like caption lengths with BERT's MLM masking, detector-like region
//! features and boxes, half the ITM pairs negative), written as `.npy` files
//! for the PyTorch reference and turned into vlp's [`PretrainBatch`].

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vlp_data::{MlmMasking, PretrainBatch, RegionTensors, SpecialTokens, VisualBatch};

use super::Mode;
use crate::{normals, write_npy};

/// BERT's uncased vocabulary size.
pub const VOCAB_SIZE: usize = 30_522;
/// Width of a bottom-up-attention detector feature.
pub const FEATURE_SIZE: usize = 2048;
/// BERT uncased ids of `[PAD] [UNK] [CLS] [SEP] [MASK]`.
pub const SPECIAL: SpecialTokens = SpecialTokens {
    pad: 0,
    unk: 100,
    cls: 101,
    sep: 102,
    mask: 103,
};
/// First id of BERT uncased's whole words (below are specials and `[unused]`).
pub const FIRST_WORD_ID: i64 = 1996;
/// The headline case.
pub const HEADLINE: Shape = Shape {
    batch: 32,
    text_len: 32,
    regions: 36,
};

/// Batch size, text length and region count of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Image-text pairs.
    pub batch: usize,
    /// Tokens per caption, `[CLS]` and `[SEP]` included, padded.
    pub text_len: usize,
    /// Detector regions per image.
    pub regions: usize,
}

impl Shape {
    /// `b32-t32-r36`.
    pub fn name(&self) -> String {
        format!("b{}-t{}-r{}", self.batch, self.text_len, self.regions)
    }

    /// Reads a [`Shape::name`]; the error names the text.
    pub fn parse(text: &str) -> Result<Shape> {
        let field = |prefix: char, part: Option<&str>| -> Result<usize> {
            part.and_then(|p| p.strip_prefix(prefix))
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .with_context(|| format!("invalid shape '{text}', expected e.g. b32-t32-r36"))
        };
        let mut parts = text.split('-');
        let shape = Shape {
            batch: field('b', parts.next())?,
            text_len: field('t', parts.next())?,
            regions: field('r', parts.next())?,
        };
        if parts.next().is_some() || shape.text_len < 3 {
            bail!("invalid shape '{text}', expected e.g. b32-t32-r36 with t >= 3");
        }
        Ok(shape)
    }

    /// The JSON / table row name: what differs from the headline shape.
    pub fn benchmark(&self, mode: Mode) -> String {
        let mut name = format!("uniter-bench-{}-b{}", mode.name(), self.batch);
        if self.text_len != HEADLINE.text_len {
            write!(name, "-t{}", self.text_len).expect("writing to a String");
        }
        if self.regions != HEADLINE.regions {
            write!(name, "-r{}", self.regions).expect("writing to a String");
        }
        name
    }
}

/// One step's inputs on the host; every step of a measurement reuses them.
pub struct Inputs {
    /// The batch's shape.
    pub shape: Shape,
    /// `[B, T]` text: `[CLS]` words `[SEP]` then `[PAD]`.
    text_ids: Vec<i64>,
    /// `[B, T]` the text with BERT's MLM masking applied.
    input_ids: Vec<i64>,
    /// `[B, T]` 1 at real tokens, 0 at padding.
    attention_mask: Vec<i64>,
    /// `[N]` flat positions `b * T + t` of the masked tokens.
    mlm_positions: Vec<i64>,
    /// `[N]` their original ids.
    mlm_labels: Vec<i64>,
    /// `[B, R, F]` detector features.
    region_features: Vec<f32>,
    /// `[B, R, 4]` boxes `x1, y1, x2, y2` normalised by the image size.
    region_boxes: Vec<f32>,
    /// `[B]` 1 = matching pair, 0 = negative; exactly half are negative.
    itm_labels: Vec<i64>,
}

impl Inputs {
    /// A deterministic function of `shape` and `seed`.
    pub fn generate(shape: Shape, seed: u64) -> Inputs {
        let Shape {
            batch,
            text_len,
            regions,
        } = shape;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let masking = MlmMasking::default();
        let (mut text_ids, mut input_ids, mut attention_mask) =
            (Vec::new(), Vec::new(), Vec::new());
        let (mut mlm_positions, mut mlm_labels) = (Vec::new(), Vec::new());
        for row in 0..batch {
            // Caption lengths as in COCO: 3/8 of the maximum to all of it (12–32 at T = 32).
            let len = rng.random_range((text_len * 3 / 8).max(3)..=text_len);
            let mut ids = vec![SPECIAL.cls];
            ids.extend((2..len).map(|_| rng.random_range(FIRST_WORD_ID..VOCAB_SIZE as i64) as u32));
            ids.push(SPECIAL.sep);
            let masked = masking.apply(&ids, SPECIAL, VOCAB_SIZE, &mut rng);
            for (t, label) in masked.labels.iter().enumerate() {
                if let Some(label) = label {
                    mlm_positions.push((row * text_len + t) as i64);
                    mlm_labels.push(i64::from(*label));
                }
            }
            for (row_ids, out) in [(&ids, &mut text_ids), (&masked.input_ids, &mut input_ids)] {
                out.extend(row_ids.iter().map(|&id| i64::from(id)));
                out.extend(std::iter::repeat_n(i64::from(SPECIAL.pad), text_len - len));
            }
            attention_mask.extend((0..text_len).map(|t| i64::from(t < len)));
        }
        // Pooled detector features are post-ReLU: non-negative and sparse.
        let region_features = normals(seed, batch * regions * FEATURE_SIZE)
            .into_iter()
            .map(|x| x.max(0.0))
            .collect();
        let mut region_boxes = Vec::with_capacity(batch * regions * 4);
        for _ in 0..batch * regions {
            let x1: f32 = rng.random_range(0.0..0.8);
            let y1: f32 = rng.random_range(0.0..0.8);
            let x2 = rng.random_range(x1 + 0.05..=1.0);
            let y2 = rng.random_range(y1 + 0.05..=1.0);
            region_boxes.extend([x1, y1, x2, y2]);
        }
        let mut itm_labels: Vec<i64> = (0..batch).map(|i| i64::from(i < batch / 2)).collect();
        itm_labels.shuffle(&mut rng);
        Inputs {
            shape,
            text_ids,
            input_ids,
            attention_mask,
            mlm_positions,
            mlm_labels,
            region_features,
            region_boxes,
            itm_labels,
        }
    }

    /// Writes the `.npy` files `benches/reference/uniter_step.py` reads.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let (b, t, r) = (self.shape.batch, self.shape.text_len, self.shape.regions);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let n = self.mlm_positions.len();
        let ints =
            |name: &str, values: &[i64], shape: &[usize]| write_npy(&dir.join(name), values, shape);
        let floats =
            |name: &str, values: &[f32], shape: &[usize]| write_npy(&dir.join(name), values, shape);
        ints("input_ids.npy", &self.input_ids, &[b, t])?;
        ints("attention_mask.npy", &self.attention_mask, &[b, t])?;
        ints("mlm_positions.npy", &self.mlm_positions, &[n])?;
        ints("mlm_labels.npy", &self.mlm_labels, &[n])?;
        floats(
            "region_features.npy",
            &self.region_features,
            &[b, r, FEATURE_SIZE],
        )?;
        floats("region_boxes.npy", &self.region_boxes, &[b, r, 4])?;
        ints("itm_labels.npy", &self.itm_labels, &[b])
    }

    /// `parts` consecutive row ranges of the batch, each with its share of the
    /// masked tokens and of the pairs (`[mlm, itm]`): the weights that make
    /// the parts' mean losses sum to the whole batch's.
    pub fn split(&self, parts: usize) -> Result<Vec<(Inputs, [f32; 2])>> {
        let Shape {
            batch,
            text_len,
            regions,
        } = self.shape;
        if parts > batch / 2 {
            bail!("--micro-batches {parts}: a batch of {batch} needs at least 2 pairs per micro-batch");
        }
        let total_masked = self.mlm_positions.len();
        let mut split = Vec::with_capacity(parts);
        for part in 0..parts {
            let rows = part * batch / parts..(part + 1) * batch / parts;
            let tokens = rows.start * text_len..rows.end * text_len;
            let (masked_positions, masked_labels): (Vec<i64>, Vec<i64>) = self
                .mlm_positions
                .iter()
                .zip(&self.mlm_labels)
                .filter(|(&position, _)| tokens.contains(&(position as usize)))
                .map(|(&position, &label)| (position - tokens.start as i64, label))
                .unzip();
            let features = rows.start * regions * FEATURE_SIZE..rows.end * regions * FEATURE_SIZE;
            let boxes = rows.start * regions * 4..rows.end * regions * 4;
            let shares = [
                masked_positions.len() as f32 / total_masked as f32,
                rows.len() as f32 / batch as f32,
            ];
            split.push((
                Inputs {
                    shape: Shape {
                        batch: rows.len(),
                        ..self.shape
                    },
                    text_ids: self.text_ids[tokens.clone()].to_vec(),
                    input_ids: self.input_ids[tokens.clone()].to_vec(),
                    attention_mask: self.attention_mask[tokens].to_vec(),
                    mlm_positions: masked_positions,
                    mlm_labels: masked_labels,
                    region_features: self.region_features[features].to_vec(),
                    region_boxes: self.region_boxes[boxes].to_vec(),
                    itm_labels: self.itm_labels[rows].to_vec(),
                },
                shares,
            ));
        }
        Ok(split)
    }

    /// The batch as the pre-trainer's [`PretrainBatch`]: pair `i` is text
    /// row `i` with image row `i` (labelled by `itm_labels`), and MLM is
    /// learnt at every masked position, negatives' included, as in the
    /// PyTorch reference.
    pub fn to_batch<B: Backend>(&self, device: &B::Device) -> PretrainBatch<B> {
        let (b, t, r) = (self.shape.batch, self.shape.text_len, self.shape.regions);
        let ints = |v: &[i64], shape: Vec<usize>| TensorData::new(v.to_vec(), shape);
        let n = self.mlm_positions.len();
        let padding: Vec<bool> = self.attention_mask.iter().map(|&m| m == 0).collect();
        let rows: Vec<i64> = (0..b as i64).collect();
        PretrainBatch {
            // Every image has all its regions: no region padding.
            visual: VisualBatch::Regions(RegionTensors {
                features: Tensor::from_data(
                    TensorData::new(self.region_features.clone(), [b, r, FEATURE_SIZE]),
                    device,
                ),
                boxes: Tensor::from_data(
                    TensorData::new(self.region_boxes.clone(), [b, r, 4]),
                    device,
                ),
                padding: Tensor::from_data(TensorData::new(vec![false; b * r], [b, r]), device),
                soft_labels: None,
            }),
            text_ids: Tensor::from_data(ints(&self.text_ids, vec![b, t]), device),
            text_padding: Tensor::from_data(TensorData::new(padding, [b, t]), device),
            mlm_ids: Tensor::from_data(ints(&self.input_ids, vec![b, t]), device),
            mlm_positions: Tensor::from_data(ints(&self.mlm_positions, vec![n]), device),
            mlm_labels: Tensor::from_data(ints(&self.mlm_labels, vec![n]), device),
            itm_text: Tensor::from_data(ints(&rows, vec![b]), device),
            itm_image: Tensor::from_data(ints(&rows, vec![b]), device),
            itm_labels: Tensor::from_data(ints(&self.itm_labels, vec![b]), device),
            // Objectives the bench does not train (PrefixLM, masked
            // regions and patches, VQA, ALBEF's hard negatives) get nothing.
            prefix_lengths: Vec::new(),
            mvm: None,
            mpp: None,
            vqa: None,
            uniforms: Tensor::zeros([2, b], device),
            shard: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_round_trip_and_bad_ones_are_named() {
        let shape = Shape::parse("b64-t32-r72").unwrap();
        let (batch, text_len, regions) = (64, 32, 72);
        assert_eq!(
            shape,
            Shape {
                batch,
                text_len,
                regions
            }
        );
        assert_eq!(shape.name(), "b64-t32-r72");
        assert_eq!(shape.benchmark(Mode::Train), "uniter-bench-train-b64-r72");
        assert_eq!(HEADLINE.benchmark(Mode::Infer), "uniter-bench-infer-b32");
        for bad in ["b32-t32", "x32-t32-r36", "b0-t32-r36", "b32-t32-r36-x"] {
            let err = Shape::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn inputs_follow_the_recipe() {
        let shape = Shape::parse("b8-t32-r4").unwrap();
        let inputs = Inputs::generate(shape, 3);
        let again = Inputs::generate(shape, 3);
        assert_eq!(inputs.input_ids, again.input_ids);
        assert_eq!(inputs.region_features, again.region_features);
        assert_eq!(inputs.itm_labels.iter().sum::<i64>(), 4, "half negatives");
        for row in 0..8 {
            let mask = &inputs.attention_mask[row * 32..(row + 1) * 32];
            let len = mask.iter().sum::<i64>() as usize;
            assert!((12..=32).contains(&len));
            assert!(mask[..len].iter().all(|&m| m == 1));
            let ids = &inputs.input_ids[row * 32..(row + 1) * 32];
            assert_eq!(ids[0], 101);
            assert!(ids[len..].iter().all(|&id| id == 0));
        }
        assert_eq!(inputs.mlm_positions.len(), inputs.mlm_labels.len());
        for (i, (&text, &masked)) in inputs.text_ids.iter().zip(&inputs.input_ids).enumerate() {
            assert!(text == masked || inputs.mlm_positions.contains(&(i as i64)));
        }
        for (&p, &label) in inputs.mlm_positions.iter().zip(&inputs.mlm_labels) {
            let (row, t) = (p as usize / 32, p as usize % 32);
            assert!(
                inputs.attention_mask[p as usize] == 1 && t > 0,
                "row {row} t {t}"
            );
            assert!((FIRST_WORD_ID..VOCAB_SIZE as i64).contains(&label));
            assert_eq!(inputs.text_ids[p as usize], label, "the unmasked text");
        }
        assert!(inputs.region_features.iter().all(|&x| x >= 0.0));
        for b in inputs.region_boxes.chunks(4) {
            assert!(
                b[0] < b[2] && b[1] < b[3] && b[2] <= 1.0 && b[3] <= 1.0,
                "{b:?}"
            );
        }
    }

    #[test]
    fn npy_files_have_numpy_headers() {
        let dir = std::env::temp_dir().join(format!("vlp-bench-step-test-{}", std::process::id()));
        let inputs = Inputs::generate(Shape::parse("b2-t4-r1").unwrap(), 0);
        inputs.write(&dir).unwrap();
        let bytes = std::fs::read(dir.join("input_ids.npy")).unwrap();
        let header = String::from_utf8_lossy(&bytes[10..]);
        assert!(header.contains("'descr': '<i8'") && header.contains("'shape': (2, 4,)"));
        assert_eq!((bytes.len() - 8 * 8) % 64, 0);
        let features = std::fs::read(dir.join("region_features.npy")).unwrap();
        assert_eq!(features.len() - 2 * FEATURE_SIZE * 4, 128);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
