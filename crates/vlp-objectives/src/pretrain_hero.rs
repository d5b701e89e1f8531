//! HERO's pre-training (Li et al., EMNLP 2020; survey §4.1 MLM, §4.4
//! matching, §4.5 contrastive, §4.7 frame order): [`HeroModel`] with MLM
//! on the caption fused with its clip, video-text matching (VTM) on the
//! fused pair, video-text contrastive learning (VTC) between the caption
//! and the clip passed alone, and frame order modelling (FOM) on the
//! clip's frames shown out of order.
//!
//! FOM shows every clip with its frames in a random order, and the head on
//! the temporal stack names the frame each position shows. The frames are
//! reordered before they are embedded: the frame tokens carry temporal
//! positions, and a frame shuffled after them would carry its original
//! position, which the head would read instead of the frames (a first
//! version did, and reached accuracy 1.0 from the positions alone). HERO
//! shuffles 15% of the frames; with the 6 to 8 frames of a clip here that
//! is one frame, which cannot move, so every frame of a clip is shuffled.
//! The order is drawn on the device from the backend's seeded generator,
//! so a step reads nothing back.

use burn::prelude::*;
use burn::tensor::Distribution;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_models::{clip_frames, mean_pool, ConfigError, HeroConfig, HeroModel};

use crate::fom::{fom_loss, FomHead, FomHeadConfig};
use crate::itc::{gather_pairs, itc_objective, ItcHead, ItcHeadConfig};
use crate::itm::ItmHead;
use crate::loss::accuracy;
use crate::mlm::MlmHead;
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RankBy, RetrievalModel};
use crate::text_matching::{ItmPairRows, TextMatching, TextMatchingConfig};

/// Configuration of [`HeroPretrainer`]: the model and each objective's
/// weight in the summed loss (1 each by default; 0 leaves one out).
#[derive(Config, Debug)]
pub struct HeroPretrainerConfig {
    /// The cross-modal and temporal transformers.
    pub model: HeroConfig,
    /// Weight of MLM.
    #[config(default = 1.0)]
    pub mlm_weight: f64,
    /// Weight of video-text matching.
    #[config(default = 1.0)]
    pub vtm_weight: f64,
    /// Weight of video-text contrastive learning.
    #[config(default = 1.0)]
    pub vtc_weight: f64,
    /// Weight of frame order modelling.
    #[config(default = 1.0)]
    pub fom_weight: f64,
    /// Width of the contrastive space.
    #[config(default = 128)]
    pub itc_embed_dim: usize,
    /// Initial contrastive temperature.
    #[config(default = 0.07)]
    pub itc_temperature: f64,
}

/// HERO and its heads.
#[derive(Module, Debug)]
pub struct HeroPretrainer<B: Backend> {
    /// Cross-modal and temporal transformers.
    pub backbone: HeroModel<B>,
    /// MLM on the fused caption (see [`crate::text_matching`]).
    pub mlm_head: MlmHead<B>,
    /// VTM on the pooled temporal `[CLS]`.
    pub itm_head: ItmHead<B>,
    /// VTC projections and temperature.
    pub itc_head: ItcHead<B>,
    /// FOM: each shown position's original frame.
    pub fom_head: FomHead<B>,
    /// Weight of MLM.
    pub mlm_weight: f64,
    /// Weight of VTM.
    pub vtm_weight: f64,
    /// Weight of VTC.
    pub vtc_weight: f64,
    /// Weight of FOM.
    pub fom_weight: f64,
}

impl HeroPretrainerConfig {
    /// Whether the model can be built (keys of [`HeroConfig::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.model.validate()
    }

    /// The model, then the MLM, VTM, VTC and FOM heads.
    ///
    /// # Panics
    /// When [`Self::validate`] fails, with its message.
    pub fn init<B: Backend>(&self, device: &B::Device) -> HeroPretrainer<B> {
        let backbone = self.model.init(device);
        let hidden = self.model.cross_modal.hidden_size;
        let (mlm_head, itm_head) =
            TextMatchingConfig::new(hidden, self.model.vocab_size, hidden).init(device);
        let max_frames = backbone.frame_position_embeddings.dims()[1];
        HeroPretrainer {
            backbone,
            mlm_head,
            itm_head,
            itc_head: ItcHeadConfig::new(hidden)
                .with_embed_dim(self.itc_embed_dim)
                .with_temperature(self.itc_temperature)
                .init(device),
            fom_head: FomHeadConfig::new(hidden, max_frames).init(device),
            mlm_weight: self.mlm_weight,
            vtm_weight: self.vtm_weight,
            vtc_weight: self.vtc_weight,
            fom_weight: self.fom_weight,
        }
    }
}

impl<B: Backend> HeroPretrainer<B> {
    /// VTC's text side: the caption alone, mean-pooled, `[B, H]`.
    fn pooled_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let backbone = &self.backbone;
        let text = backbone.encode_text(backbone.embed_text(ids), padding.clone());
        mean_pool(text, Some(padding))
    }

    /// FOM on `clips` `[B, T, C, S, S]`: every clip's frames shown in a
    /// random order; the loss and accuracy of naming the frame each
    /// position shows.
    fn frame_order(&self, clips: Tensor<B, 5>) -> crate::Result<ObjectiveOutput<B>> {
        let [batch, count, _, _, _] = clips.dims();
        let device = clips.device();
        let order =
            Tensor::<B, 2>::random([batch, count], Distribution::Default, &device).argsort(1);
        let shown = VisualBatch::Clips(show_frames(clips, order.clone()));
        let backbone = &self.backbone;
        let frames = backbone.encode_frames(backbone.embed_video(&shown), count);
        let outputs = backbone.temporal(frames, None);
        let [_, _, hidden] = outputs.dims();
        let rows = batch * count;
        // A frame can only come from one of the clip's `T` positions: the
        // head's columns past `T` are never a target.
        let logits = self
            .fom_head
            .forward(outputs.reshape([rows, hidden]))
            .slice([0..rows, 0..count]);
        let targets = order.reshape([rows]);
        Ok(ObjectiveOutput {
            name: "fom",
            loss: fom_loss(logits.clone(), targets.clone())?,
            metric: accuracy(logits, targets),
            metric_name: "accuracy",
        })
    }

    /// The step's objectives: VTC on the unimodal passes, FOM on a pass of
    /// the shuffled clips, MLM and VTM on one fused pass over the batch's
    /// matching pairs.
    pub fn objectives(&self, batch: &PretrainBatch<B>) -> crate::Result<PretrainOutput<B>> {
        let backbone = &self.backbone;
        let count = clip_frames(&batch.visual);
        let video = backbone.embed_video(&batch.visual);
        let mut out = Vec::with_capacity(4);

        if self.vtc_weight > 0.0 {
            let frames = backbone.encode_frames(video.clone(), count);
            let clip = backbone.temporal(frames, None).mean_dim(1);
            let [rows, _, hidden] = clip.dims();
            let (text, clip) = gather_pairs(
                batch,
                self.itc_head.embed_text(
                    self.pooled_text(batch.text_ids.clone(), batch.text_padding.clone()),
                ),
                self.itc_head.embed_image(clip.reshape([rows, hidden])),
            );
            out.push((
                self.vtc_weight,
                vtc(itc_objective(self.itc_head.logits(text, clip))),
            ));
        }
        if self.fom_weight > 0.0 {
            let VisualBatch::Clips(clips) = &batch.visual else {
                unreachable!("clip_frames checked: clips")
            };
            out.push((self.fom_weight, self.frame_order(clips.clone())?));
        }
        if self.mlm_weight > 0.0 || self.vtm_weight > 0.0 {
            let pairs = ItmPairRows::of_batch(batch);
            let (text, padding) = pairs.select_text(
                backbone.embed_text(batch.mlm_ids.clone()),
                batch.text_padding.clone(),
            );
            let fused = backbone.fuse(text, padding, pairs.select_image(video), count);
            let heads = TextMatching {
                mlm: (self.mlm_weight > 0.0).then_some((&self.mlm_head, self.mlm_weight)),
                itm: (self.vtm_weight > 0.0).then_some((&self.itm_head, self.vtm_weight)),
            };
            let objectives = heads.objectives(
                fused.text,
                fused.pooled,
                backbone.embeddings.word_embedding_weight(),
                batch,
                &pairs,
            );
            out.extend(objectives.into_iter().map(|(weight, objective)| {
                let objective = match objective.name {
                    "itm" => ObjectiveOutput {
                        name: "vtm",
                        ..objective
                    },
                    _ => objective,
                };
                (weight, objective)
            }));
        }
        PretrainOutput::weighted(out, None)
    }
}

/// `clips` `[B, T, C, S, S]` with clip `b` showing frame `order[b, p]` at
/// position `p` (`order` `[B, T]`).
fn show_frames<B: Backend>(clips: Tensor<B, 5>, order: Tensor<B, 2, Int>) -> Tensor<B, 5> {
    let [batch, count, channels, height, width] = clips.dims();
    let first = Tensor::<B, 1, Int>::arange_step(0..(batch * count) as i64, count, &clips.device())
        .reshape([batch, 1]);
    let rows = (order + first).reshape([batch * count]);
    clips
        .reshape([batch * count, channels, height, width])
        .select(0, rows)
        .reshape([batch, count, channels, height, width])
}

/// ITC's output under HERO's name for it.
fn vtc<B: Backend>(itc: ObjectiveOutput<B>) -> ObjectiveOutput<B> {
    ObjectiveOutput { name: "vtc", ..itc }
}

impl<B: Backend> Pretrainer<B> for HeroPretrainer<B> {
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        self.objectives(batch)
            .expect("HERO's objectives are built with the model")
    }

    fn temperature(&self) -> Option<f32> {
        (self.vtc_weight > 0.0).then(|| self.itc_head.temperature().into_scalar().elem())
    }
}

impl<B: Backend> RetrievalModel<B> for HeroPretrainer<B> {
    /// VTC's unit embedding of the caption alone, `[N, D]`.
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        self.itc_head.embed_text(self.pooled_text(ids, padding))
    }

    /// VTC's unit embedding of the clip alone (cross-modal, temporal, mean
    /// over frames), `[N, D]`.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let clip = self.backbone.encode_video(visual).mean_dim(1);
        let [rows, _, hidden] = clip.dims();
        self.itc_head.embed_image(clip.reshape([rows, hidden]))
    }

    /// VTC's embeddings when VTC trains, else the VTM head.
    fn rank_by(&self) -> RankBy {
        if self.vtc_weight > 0.0 {
            RankBy::Embeddings
        } else if self.vtm_weight > 0.0 {
            RankBy::Matching
        } else {
            RankBy::Nothing
        }
    }

    /// VTM's probability that caption `i` matches clip `i`, `[N]`.
    fn match_scores(
        &self,
        ids: Tensor<B, 2, Int>,
        padding: Tensor<B, 2, Bool>,
        visual: &VisualBatch<B>,
    ) -> Option<Tensor<B, 1>> {
        let backbone = &self.backbone;
        let fused = backbone.fuse(
            backbone.embed_text(ids),
            padding,
            backbone.embed_video(visual),
            clip_frames(visual),
        );
        Some(self.itm_head.match_probability(fused.pooled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::TensorData;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use vlp_data::synthetic::{Split, SyntheticWorld};
    use vlp_data::{PretrainBatcher, TextTokenizer};
    use vlp_features::{FramePatchEmbeddingsConfig, PatchEmbeddingsConfig, VisualEmbeddingsConfig};
    use vlp_models::TransformerSize;

    type B = Autodiff<NdArray>;

    /// Parameters, and how many of them have a gradient.
    struct Reached<'a> {
        grads: &'a <B as burn::tensor::backend::AutodiffBackend>::Gradients,
        params: usize,
        with_grad: usize,
    }

    impl ModuleVisitor<B> for Reached<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.params += 1;
            self.with_grad += usize::from(param.val().grad(self.grads).is_some());
        }
    }

    #[test]
    fn a_shuffled_clip_shows_the_frames_its_order_names() {
        let device = Default::default();
        let clips = vlp_test_support::uniform::<NdArray, 5>([2, 3, 1, 2, 2], 6, &device);
        let order = Tensor::<NdArray, 2, Int>::from_data(
            TensorData::new(vec![2i64, 0, 1, 1, 2, 0], [2, 3]),
            &device,
        );
        let shown = show_frames(clips.clone(), order);
        for (clip, order) in [(0, [2, 0, 1]), (1, [1, 2, 0])] {
            for (position, frame) in order.into_iter().enumerate() {
                let got = shown
                    .clone()
                    .slice([clip..clip + 1, position..position + 1]);
                let want = clips.clone().slice([clip..clip + 1, frame..frame + 1]);
                assert_eq!(
                    got.into_data(),
                    want.into_data(),
                    "clip {clip} position {position}"
                );
            }
        }
    }

    #[test]
    fn one_step_trains_every_part_through_four_objectives() {
        let _serial = crate::test_serial();
        let device = Default::default();
        B::seed(&device, 11);
        let world = SyntheticWorld::new(2, 16);
        let tokenizer = TextTokenizer::train_wordpiece(&world.clip_corpus(100, 4), 200).unwrap();
        let vocab = tokenizer.vocab_size();
        let batcher = PretrainBatcher::new(world, tokenizer, 40).with_clips(Some(4));
        let batch = batcher
            .batch(
                Split::Train,
                &[0, 1, 2, 3],
                &mut ChaCha8Rng::seed_from_u64(3),
            )
            .unwrap()
            .to_device::<B>(&device);
        let patches = PatchEmbeddingsConfig::new(16, 8, 32).with_dropout(0.0);
        let frames = FramePatchEmbeddingsConfig::new(patches)
            .with_max_frames(4)
            .with_time_kernel(3);
        let size = TransformerSize::of(32, 4, 64, 1).with_dropout(0.0);
        let model = HeroPretrainerConfig::new(
            HeroConfig::new(vocab, VisualEmbeddingsConfig::Frames(frames))
                .with_cross_modal(size.clone())
                .with_temporal(size)
                .with_max_text_len(40),
        )
        .init::<B>(&device);

        let output = model.forward(&batch);
        let names: Vec<_> = output.objectives.iter().map(|o| o.name).collect();
        assert_eq!(names, ["vtc", "fom", "mlm", "vtm"]);
        let loss: f32 = output.loss.clone().into_scalar();
        // Chance level of each: ln 4 (VTC over 4 clips, FOM over 4
        // positions), ln vocab (MLM), ln 2 (VTM); an untrained model sits near.
        let chance = 2.0 * 4f32.ln() + (vocab as f32).ln() + 2f32.ln();
        assert!((loss - chance).abs() < 0.25 * chance, "{loss} vs {chance}");
        let grads = output.loss.backward();
        let mut reached = Reached {
            grads: &grads,
            params: 0,
            with_grad: 0,
        };
        model.visit(&mut reached);
        // Every parameter takes part in some objective.
        assert_eq!(reached.with_grad, reached.params);

        // Ranked by the contrastive space; matching scores one per pair.
        assert_eq!(model.rank_by(), RankBy::Embeddings);
        let scores = model
            .match_scores(
                batch.text_ids.clone(),
                batch.text_padding.clone(),
                &batch.visual,
            )
            .unwrap();
        assert_eq!(scores.dims(), [4]);
        assert_eq!(
            model.embed_image(&batch.visual).dims(),
            model
                .embed_text(batch.text_ids.clone(), batch.text_padding.clone())
                .dims()
        );
    }
}
