//! The ALBEF pre-training model: unimodal encoders, fusion layers, and the
//! MLM, ITM and ITC heads. ITC aligns the unimodal embeddings before fusion;
//! ITM reads the fused `[CLS]`; MLM predicts masked words through the fusion
//! layers.
//!
//! With `queue_size > 0`, ITC is ALBEF's momentum distillation: an EMA copy
//! of the unimodal encoders and ITC projections ([`AlbefMomentum`]) embeds
//! each pair too; the online embeddings are contrasted with the momentum
//! embeddings of the batch and of the last `queue_size` pairs, against
//! targets that mix the one-hot pairs with the momentum model's
//! similarities. [`Pretrainer::after_step`] moves the copy and fills the queue.

use burn::nn::Linear;
use burn::prelude::*;
use vlp_data::{PretrainBatch, VisualBatch};
use vlp_features::{TextEmbeddings, VisualEmbeddings, VisualTokens};
use vlp_models::{mean_pool, FusionConfig, FusionModel, TransformerEncoder};

use crate::error::value_error;
use crate::itc::{
    gather_pairs, itc_loss_with_queue, itc_objective, ItcHead, ItcHeadConfig, ItcQueueBuffers,
};
use crate::itm::ItmHead;
use crate::loss::l2_normalize;
use crate::mlm::MlmHead;
use crate::momentum::{momentum_copy, momentum_update};
use crate::pretrainer::{ObjectiveOutput, PretrainOutput, Pretrainer, RetrievalModel};
use crate::text_matching::{TextMatching, TextMatchingConfig};

/// Configuration of [`AlbefPretrainer`] (ALBEF: 256-d contrastive space, τ 0.07).
#[derive(Config, Debug)]
pub struct AlbefPretrainerConfig {
    /// The fusion backbone (ALBEF).
    pub model: FusionConfig,
    /// Width of the contrastive embedding space.
    #[config(default = 256)]
    pub itc_embed_dim: usize,
    /// Initial ITC temperature.
    #[config(default = 0.07)]
    pub itc_temperature: f64,
    /// Weight of MLM in the total loss.
    #[config(default = 1.0)]
    pub mlm_weight: f64,
    /// Weight of ITM in the total loss.
    #[config(default = 1.0)]
    pub itm_weight: f64,
    /// Weight of ITC in the total loss.
    #[config(default = 1.0)]
    pub itc_weight: f64,
    /// Momentum embedding pairs the ITC queue holds (ALBEF: 65 536); 0
    /// turns the momentum model, the queue and distillation off.
    #[config(default = 0)]
    pub queue_size: usize,
    /// EMA coefficient `m` of the momentum model (ALBEF: 0.995).
    #[config(default = 0.995)]
    pub momentum: f64,
    /// Weight `α` of the momentum model's soft ITC targets (ALBEF: 0.4,
    /// reached by a ramp over the first epoch; constant here).
    #[config(default = 0.4)]
    pub distill_alpha: f64,
}

/// ALBEF: the fusion backbone with its MLM, ITM and ITC heads and, with a
/// queue, its momentum model.
#[derive(Module, Debug)]
pub struct AlbefPretrainer<B: Backend> {
    /// Unimodal encoders and fusion layers.
    pub backbone: FusionModel<B>,
    /// MLM on the fused text (see [`crate::text_matching`]).
    pub mlm_head: MlmHead<B>,
    /// ITM on the fused `[CLS]`.
    pub itm_head: ItmHead<B>,
    /// ITC projections and temperature.
    pub itc_head: ItcHead<B>,
    /// Weight of MLM in the total loss.
    pub mlm_weight: f64,
    /// Weight of ITM in the total loss.
    pub itm_weight: f64,
    /// Weight of ITC in the total loss.
    pub itc_weight: f64,
    /// ALBEF's momentum model and queue (`queue_size > 0`). Its parameters
    /// share the online ones' ids, so it must stay the last field: the
    /// optimiser hands a gradient to the first parameter with its id.
    pub momentum: Option<AlbefMomentum<B>>,
}

/// The parts of ALBEF that embed one modality for ITC: what the momentum
/// model copies (`text_encoder_m`, `visual_encoder_m`, `text_proj_m`,
/// `vision_proj_m` in ALBEF; unimodal layers only, as ITC reads no more).
#[derive(Module, Debug)]
pub struct AlbefUnimodal<B: Backend> {
    /// Text embeddings.
    pub embeddings: TextEmbeddings<B>,
    /// Unimodal text layers.
    pub text_encoder: TransformerEncoder<B>,
    /// Patch or region embeddings.
    pub visual: VisualEmbeddings<B>,
    /// Unimodal image layers.
    pub visual_encoder: TransformerEncoder<B>,
    /// ITC text projection.
    pub text_projection: Linear<B>,
    /// ITC image projection.
    pub image_projection: Linear<B>,
}

impl<B: Backend> AlbefUnimodal<B> {
    /// `[B, T]` ids with their `[B, T]` padding → unit embeddings `[B, D]`,
    /// as [`AlbefPretrainer`]'s ITC computes them.
    pub fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let hidden = self
            .text_encoder
            .forward(self.embeddings.forward(ids), Some(padding.clone()));
        l2_normalize(
            self.text_projection
                .forward(mean_pool(hidden, Some(padding))),
        )
    }

    /// Pixels or regions of `B` images → unit embeddings `[B, D]`.
    pub fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        let image = self.visual.forward(visual);
        let hidden = self
            .visual_encoder
            .forward(image.tokens, image.padding.clone());
        l2_normalize(
            self.image_projection
                .forward(mean_pool(hidden, image.padding)),
        )
    }
}

/// ALBEF's momentum model: an EMA copy of [`AlbefUnimodal`] (no gradient)
/// and the queue of its embeddings, both in the record so that a checkpoint
/// resumes exactly.
#[derive(Module, Debug)]
pub struct AlbefMomentum<B: Backend> {
    /// The EMA copy of the unimodal encoders and projections.
    pub encoders: AlbefUnimodal<B>,
    /// The last momentum embeddings.
    pub queue: ItcQueueBuffers<B>,
    /// EMA coefficient `m`.
    pub momentum: f64,
    /// Weight `α` of the soft targets.
    pub distill_alpha: f64,
}

impl<B: Backend> AlbefMomentum<B> {
    /// ITC of the online unit embeddings `text`, `image` `[B, D]` against the
    /// batch's and the queue's momentum embeddings with soft targets; the
    /// metric is the in-batch text→image accuracy of the online `logits`
    /// `[B, B]`. With a sharded batch, `text` and `image` are the global
    /// batch's ([`gather_pairs`]) and the momentum embeddings are gathered
    /// too. Returns this batch's momentum embeddings, for the queue.
    fn itc(
        &self,
        batch: &PretrainBatch<B>,
        (text, image): (Tensor<B, 2>, Tensor<B, 2>),
        logits: Tensor<B, 2>,
        temperature: Tensor<B, 1>,
    ) -> (ObjectiveOutput<B>, (Tensor<B, 2>, Tensor<B, 2>)) {
        let text_m = self
            .encoders
            .embed_text(batch.text_ids.clone(), batch.text_padding.clone())
            .detach();
        let image_m = self.encoders.embed_image(&batch.visual).detach();
        // The loss sees the global batch's momentum embeddings; the queue
        // takes this shard's (every shard enqueues its own, in order).
        let (all_text_m, all_image_m) = gather_pairs(batch, text_m.clone(), image_m.clone());
        let loss = itc_loss_with_queue(
            text,
            image,
            all_text_m,
            all_image_m,
            &self.queue.queue(),
            temperature,
            self.distill_alpha,
        )
        .expect("online and momentum embeddings share [B, D]; α was validated");
        // The in-batch objective for its name and metric; its loss is unused.
        let itc = ObjectiveOutput {
            loss,
            ..itc_objective(logits)
        };
        (itc, (text_m, image_m))
    }
}

impl AlbefPretrainerConfig {
    /// Checks the momentum settings: `momentum` and `distill_alpha` lie in
    /// `[0, 1]` (errors name the key).
    pub fn validate(&self) -> crate::Result<()> {
        for (key, value) in [
            ("momentum", self.momentum),
            ("distill_alpha", self.distill_alpha),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(value_error(key, format!("must lie in [0, 1], got {value}")));
            }
        }
        Ok(())
    }

    /// The pre-trainer (backbone, MLM and ITM heads, ITC head, in that
    /// order); with a queue, its momentum model starts as a copy of the
    /// online encoders (ALBEF's `copy_params`) and its queue empty. Errors
    /// as [`validate`](Self::validate).
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<AlbefPretrainer<B>> {
        self.validate()?;
        let model = &self.model;
        let backbone = model.init(device);
        let (mlm_head, itm_head) = TextMatchingConfig::new(
            model.text.hidden_size,
            model.vocab_size,
            model.text.hidden_size,
        )
        .with_layer_norm_eps(model.layer_norm_eps)
        .init(device);
        let mut pretrainer = AlbefPretrainer {
            backbone,
            mlm_head,
            itm_head,
            itc_head: ItcHeadConfig::new(model.text.hidden_size)
                .with_image_hidden_size(Some(model.vision.hidden_size))
                .with_embed_dim(self.itc_embed_dim)
                .with_temperature(self.itc_temperature)
                .init(device),
            mlm_weight: self.mlm_weight,
            itm_weight: self.itm_weight,
            itc_weight: self.itc_weight,
            momentum: None,
        };
        if self.queue_size > 0 {
            let (online, copy) = momentum_copy(pretrainer.unimodal());
            pretrainer = pretrainer.with_unimodal(online);
            pretrainer.momentum = Some(AlbefMomentum {
                encoders: copy,
                queue: ItcQueueBuffers::new(self.queue_size, self.itc_embed_dim, device),
                momentum: self.momentum,
                distill_alpha: self.distill_alpha,
            });
        }
        Ok(pretrainer)
    }
}

impl<B: Backend> AlbefPretrainer<B> {
    /// The online unimodal encoders and ITC projections (shared, not copied).
    pub fn unimodal(&self) -> AlbefUnimodal<B> {
        AlbefUnimodal {
            embeddings: self.backbone.embeddings.clone(),
            text_encoder: self.backbone.text_encoder.clone(),
            visual: self.backbone.visual.clone(),
            visual_encoder: self.backbone.visual_encoder.clone(),
            text_projection: self.itc_head.text_projection.clone(),
            image_projection: self.itc_head.image_projection.clone(),
        }
    }

    /// This model with `unimodal` as its unimodal encoders and projections.
    fn with_unimodal(self, unimodal: AlbefUnimodal<B>) -> Self {
        Self {
            backbone: FusionModel {
                embeddings: unimodal.embeddings,
                text_encoder: unimodal.text_encoder,
                visual: unimodal.visual,
                visual_encoder: unimodal.visual_encoder,
                ..self.backbone
            },
            itc_head: ItcHead {
                text_projection: unimodal.text_projection,
                image_projection: unimodal.image_projection,
                ..self.itc_head
            },
            ..self
        }
    }
}

impl<B: Backend> Pretrainer<B> for AlbefPretrainer<B> {
    /// ITC on the mean-pooled unimodal encoders' outputs; ITM and MLM on one
    /// pass of the fusion layers over the batch's matching pairs with masked
    /// text, the image encoded once for both.
    fn forward(&self, batch: &PretrainBatch<B>) -> PretrainOutput<B> {
        let backbone = &self.backbone;
        let padding = batch.text_padding.clone();
        let text =
            backbone.encode_text(backbone.embed_text(batch.text_ids.clone()), padding.clone());
        let image_tokens = backbone.embed_image(&batch.visual);
        let image = VisualTokens {
            padding: image_tokens.padding.clone(),
            tokens: backbone.encode_image(image_tokens),
        };
        let (text_embeddings, image_embeddings) = gather_pairs(
            batch,
            self.itc_head
                .embed_text(mean_pool(text, Some(padding.clone()))),
            self.itc_head
                .embed_image(mean_pool(image.tokens.clone(), image.padding.clone())),
        );
        let logits = self
            .itc_head
            .logits(text_embeddings.clone(), image_embeddings.clone());
        let (itc, momentum_embeddings) = match &self.momentum {
            Some(momentum) => {
                let (itc, embeddings) = momentum.itc(
                    batch,
                    (text_embeddings, image_embeddings),
                    logits,
                    self.itc_head.temperature(),
                );
                (itc, Some(embeddings))
            }
            None => (itc_objective(logits), None),
        };

        let masked_text = backbone.encode_text(backbone.embed_text(batch.mlm_ids.clone()), padding);
        let heads = TextMatching::both(
            (&self.mlm_head, self.mlm_weight),
            (&self.itm_head, self.itm_weight),
        );
        let mut objectives = heads.forward(batch, masked_text, image, backbone);
        objectives.push((self.itc_weight, itc));
        PretrainOutput::weighted(objectives, momentum_embeddings).expect("MLM, ITM and ITC")
    }

    fn temperature(&self) -> Option<f32> {
        Some(self.itc_head.temperature().into_scalar().elem())
    }

    /// With a momentum model: its EMA towards the stepped weights, then the
    /// step's momentum embeddings into the queue.
    fn after_step(mut self, output: &PretrainOutput<B>) -> crate::Result<Self> {
        let Some(momentum) = self.momentum.take() else {
            return Ok(self);
        };
        let Some((text_m, image_m)) = output.momentum_embeddings.clone() else {
            return Err(value_error(
                "step output",
                "has no momentum embeddings to enqueue (not an ALBEF step with a queue)",
            ));
        };
        let encoders = momentum_update(momentum.encoders, &self.unimodal(), momentum.momentum)?;
        self.momentum = Some(AlbefMomentum {
            encoders,
            queue: momentum.queue.enqueue(text_m, image_m)?,
            ..momentum
        });
        Ok(self)
    }
}

impl<B: Backend> RetrievalModel<B> for AlbefPretrainer<B> {
    /// Unit text embeddings `[N, D]` from the text encoder.
    fn embed_text(&self, ids: Tensor<B, 2, Int>, padding: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        self.unimodal().embed_text(ids, padding)
    }

    /// Unit image embeddings `[N, D]` from the image encoder.
    fn embed_image(&self, visual: &VisualBatch<B>) -> Tensor<B, 2> {
        self.unimodal().embed_image(visual)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use burn::backend::{Autodiff, NdArray};
    use burn::module::{ModuleVisitor, Param, ParamId};
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
    use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use vlp_data::synthetic::{Split, SyntheticWorld};
    use vlp_data::{PretrainBatcher, TextTokenizer};
    use vlp_features::{PatchEmbeddingsConfig, VisualEmbeddingsConfig};
    use vlp_models::TransformerSize;

    use super::*;

    type B = Autodiff<NdArray>;

    fn batcher() -> PretrainBatcher {
        let world = SyntheticWorld::new(3, 32);
        let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 120).unwrap();
        PretrainBatcher::new(world, tokenizer, 24)
    }

    fn config(batcher: &PretrainBatcher, queue_size: usize) -> AlbefPretrainerConfig {
        let visual = VisualEmbeddingsConfig::Patches(
            PatchEmbeddingsConfig::new(32, 8, 32).with_dropout(0.0),
        );
        let model = FusionConfig::new(batcher.tokenizer.vocab_size(), visual)
            .with_text(
                TransformerSize::of(32, 4, 64, 1)
                    .with_norm_first(false)
                    .with_dropout(0.0),
            )
            .with_num_fusion_layers(1)
            .with_vision(TransformerSize::of(32, 4, 64, 1).with_dropout(0.0))
            .with_max_text_len(24);
        AlbefPretrainerConfig::new(model)
            .with_itc_embed_dim(16)
            .with_queue_size(queue_size)
    }

    fn batch(batcher: &PretrainBatcher, indices: &[usize], seed: u64) -> PretrainBatch<B> {
        batcher
            .batch(Split::Train, indices, &mut ChaCha8Rng::seed_from_u64(seed))
            .unwrap()
            .to_device(&Default::default())
    }

    fn values<const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
        tensor.into_data().to_vec().unwrap()
    }

    /// Every float parameter's values by id; how many have a gradient in `grads`.
    struct Snapshot<'a> {
        params: HashMap<ParamId, Vec<f32>>,
        grads: Option<&'a <B as burn::tensor::backend::AutodiffBackend>::Gradients>,
        with_grad: usize,
    }

    impl ModuleVisitor<B> for Snapshot<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(grads) = self.grads {
                self.with_grad += usize::from(param.val().grad(grads).is_some());
            }
            self.params.insert(param.id, values(param.val()));
        }
    }

    fn snapshot<M: Module<B>>(
        module: &M,
        grads: Option<&<B as burn::tensor::backend::AutodiffBackend>::Gradients>,
    ) -> (HashMap<ParamId, Vec<f32>>, usize) {
        let mut visitor = Snapshot {
            params: HashMap::new(),
            grads,
            with_grad: 0,
        };
        module.visit(&mut visitor);
        (visitor.params, visitor.with_grad)
    }

    /// One optimiser step and [`Pretrainer::after_step`], as the runner does.
    fn step(
        model: AlbefPretrainer<B>,
        optimizer: &mut impl Optimizer<AlbefPretrainer<B>, B>,
        batch: &PretrainBatch<B>,
    ) -> (AlbefPretrainer<B>, PretrainOutput<B>) {
        let output = model.forward(batch);
        let grads = GradientsParams::from_grads(output.loss.backward(), &model);
        let model = optimizer.step(1e-3, model, grads);
        (model.after_step(&output).unwrap(), output)
    }

    fn momentum(model: &AlbefPretrainer<B>) -> &AlbefMomentum<B> {
        model.momentum.as_ref().expect("the queue is on")
    }

    #[test]
    fn a_step_moves_the_momentum_model_by_its_ema_and_no_gradient_reaches_it() {
        let _serial = crate::test_serial();
        let batcher = batcher();
        B::seed(&Default::default(), 1);
        let model = config(&batcher, 6)
            .with_momentum(0.9)
            .init::<B>(&Default::default())
            .unwrap();
        let before_online = snapshot(&model.unimodal(), None).0;
        let before_momentum = snapshot(&momentum(&model).encoders, None).0;
        // The copy starts equal to the online encoders, parameter by parameter.
        assert_eq!(before_momentum, before_online);

        let batch = batch(&batcher, &[0, 1, 2, 3], 0);
        let output = model.forward(&batch);
        let (text_m, image_m) = output.momentum_embeddings.clone().unwrap();
        assert!(!text_m.is_require_grad() && !image_m.is_require_grad());
        let grads = output.loss.backward();
        let (_, online_with_grad) = snapshot(&model.unimodal(), Some(&grads));
        let (_, momentum_with_grad) = snapshot(&momentum(&model).encoders, Some(&grads));
        assert_eq!(online_with_grad, before_online.len());
        assert_eq!(
            momentum_with_grad, 0,
            "a gradient reached the momentum model"
        );

        let mut optimizer = AdamWConfig::new().init();
        let grads = GradientsParams::from_grads(grads, &model);
        let model = optimizer
            .step(1e-2, model, grads)
            .after_step(&output)
            .unwrap();
        let after_online = snapshot(&model.unimodal(), None).0;
        let after_momentum = snapshot(&momentum(&model).encoders, None).0;
        let mut moved = 0;
        for (id, old) in &before_momentum {
            let (new, online) = (&after_momentum[id], &after_online[id]);
            moved += usize::from(online != &before_online[id]);
            for ((new, old), online) in new.iter().zip(old).zip(online) {
                let expected = 0.9 * old + 0.1 * online;
                assert!((new - expected).abs() < 1e-6, "{new} vs {expected}");
            }
        }
        assert!(
            moved > before_online.len() / 2,
            "the step trained the encoders"
        );
        // The moved copy is still off the graph.
        assert_eq!(
            snapshot(&momentum(&model).encoders, Some(&grads_of(&model, &batch))).1,
            0
        );
    }

    /// The gradients of one more forward pass.
    fn grads_of(
        model: &AlbefPretrainer<B>,
        batch: &PretrainBatch<B>,
    ) -> <B as burn::tensor::backend::AutodiffBackend>::Gradients {
        model.forward(batch).loss.backward()
    }

    #[test]
    fn the_queue_holds_the_last_momentum_embeddings_first_in_first_out() {
        let _serial = crate::test_serial();
        let batcher = batcher();
        B::seed(&Default::default(), 2);
        let mut model = config(&batcher, 6).init::<B>(&Default::default()).unwrap();
        let mut optimizer = AdamWConfig::new().init();
        assert_eq!(momentum(&model).queue.held().len(), 0);
        let mut enqueued: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
        for (seed, expected_len) in [(0, 4), (1, 6), (2, 6)] {
            let indices = [
                4 * seed as usize,
                4 * seed as usize + 1,
                4 * seed as usize + 2,
                4 * seed as usize + 3,
            ];
            let output;
            (model, output) = step(model, &mut optimizer, &batch(&batcher, &indices, seed));
            let (text_m, image_m) = output.momentum_embeddings.unwrap();
            enqueued.push((values(text_m), values(image_m)));
            let queue = momentum(&model).queue.held();
            assert_eq!(queue.len(), expected_len);
            // The newest rows are the step's embeddings; older ones precede them.
            let all_text: Vec<f32> = enqueued.iter().flat_map(|(t, _)| t.clone()).collect();
            let all_image: Vec<f32> = enqueued.iter().flat_map(|(_, i)| i.clone()).collect();
            let keep = expected_len * 16;
            assert_eq!(
                values(queue.text().unwrap()),
                all_text[all_text.len() - keep..]
            );
            assert_eq!(
                values(queue.image().unwrap()),
                all_image[all_image.len() - keep..]
            );
        }
        // The stored rows before the filled ones stay zero until filled.
        let fresh = config(&batcher, 6).init::<B>(&Default::default()).unwrap();
        let mut optimizer = AdamWConfig::new().init();
        let (fresh, _) = step(fresh, &mut optimizer, &batch(&batcher, &[0, 1, 2, 3], 0));
        let stored = values(momentum(&fresh).queue.text.val());
        assert!(stored[..(6 - 4) * 16].iter().all(|v| *v == 0.0));
        assert!(stored[(6 - 4) * 16..].iter().any(|v| *v != 0.0));
    }

    #[test]
    fn a_checkpoint_keeps_the_momentum_model_and_a_partly_filled_queue() {
        let _serial = crate::test_serial();
        let batcher = batcher();
        let device = Default::default();
        B::seed(&device, 4);
        let model = config(&batcher, 6).init::<B>(&device).unwrap();
        let mut optimizer = AdamWConfig::new().init();
        let (model, _) = step(model, &mut optimizer, &batch(&batcher, &[0, 1, 2, 3], 0));
        let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
        let bytes = recorder.record(model.clone().into_record(), ()).unwrap();
        let loaded = config(&batcher, 6)
            .init::<B>(&device)
            .unwrap()
            .load_record(recorder.load(bytes, &device).unwrap());
        let (saved, restored) = (momentum(&model), momentum(&loaded));
        assert_eq!(restored.queue.held().len(), 4);
        for (a, b) in [
            (saved.queue.text.val(), restored.queue.text.val()),
            (saved.queue.image.val(), restored.queue.image.val()),
        ] {
            assert_eq!(values(a), values(b));
        }
        assert_eq!(
            snapshot(&saved.encoders, None).0,
            snapshot(&restored.encoders, None).0
        );
        assert_eq!(
            snapshot(&model.unimodal(), None).0,
            snapshot(&loaded.unimodal(), None).0
        );
        // The restored copy is still off the graph.
        assert_eq!(
            snapshot(
                &restored.encoders,
                Some(&grads_of(&loaded, &batch(&batcher, &[4, 5, 6, 7], 1)))
            )
            .1,
            0
        );
    }

    #[test]
    fn learns_with_the_queue() {
        let _serial = crate::test_serial();
        let batcher = batcher();
        // A short run: a momentum model that follows within ~10 steps.
        B::seed(&Default::default(), 5);
        let mut model = config(&batcher, 32)
            .with_momentum(0.9)
            .init::<B>(&Default::default())
            .unwrap();
        let mut optimizer = AdamWConfig::new().init();
        let pairs: Vec<usize> = (0..16).collect();
        let mut accuracy = Vec::new();
        for seed in 0..120 {
            let output;
            (model, output) = step(model, &mut optimizer, &batch(&batcher, &pairs, seed));
            accuracy.push(output.objective("itc").unwrap().metric_value());
        }
        let mean = |steps: &[f32]| steps.iter().sum::<f32>() / steps.len() as f32;
        let (early, late) = (mean(&accuracy[..10]), mean(&accuracy[105..]));
        println!("ITC in-batch accuracy {early} -> {late}");
        // Chance is 1/16.
        assert!(early < 0.2 && late > 0.35, "{early} -> {late}");
        assert_eq!(momentum(&model).queue.held().len(), 32);
    }

    #[test]
    fn settings_outside_their_range_are_rejected() {
        let batcher = batcher();
        assert!(config(&batcher, 4).validate().is_ok());
        let err = config(&batcher, 4)
            .with_momentum(1.5)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("momentum"), "{err}");
        let err = config(&batcher, 4)
            .with_distill_alpha(-0.1)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("distill_alpha"), "{err}");
    }
}
