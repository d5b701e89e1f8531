//! Image-text contrastive learning (survey §4.5): project text and image
//! `[CLS]` embeddings into a shared space and pull matching pairs together
//! with a symmetric InfoNCE over the batch, at a learnable temperature.
//!
//! The temperature is learnt either directly (ALBEF/BLIP: `τ` clamped to
//! `[0.001, 0.5]`) or as CLIP's logit scale (`s = ln(1/τ)`, initialised to
//! `ln(1/0.07)`, clamped to `[0, ln 100]`); see [`TemperatureParameterization`].
//!
//! ALBEF's momentum distillation is here too, with the momentum model in
//! [`crate::momentum`]: [`ItcQueue`] keeps the last `K`
//! momentum embeddings as extra negatives ([`ItcQueueBuffers`] stores it in
//! a module, so checkpoints carry it), and [`itc_loss_with_queue`] is the
//! contrastive loss against batch + queue with ALBEF's soft targets.
//!
//! # Data-parallel training
//!
//! InfoNCE's negatives are the other pairs of the batch, so when a step's
//! batch is split into shards (micro-batches, devices) each shard must see
//! every shard's embeddings: [`gather_pairs`] gathers the text and image
//! embeddings over the step's shards ([`PretrainBatch::shard`]) before the
//! logits, and every shard computes the global batch's `[N, N]` loss
//! (open_clip's `gather_with_grad=True, local_loss=False`). The gather
//! passes each shard's own rows the gradient of every shard's copy of the
//! loss, so the summed gradients are the global loss's. ALBEF's momentum
//! embeddings are gathered too (no gradient) and each shard enqueues its
//! own, in order, so the queue is the one a single batch would fill.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use vlp_data::PretrainBatch;

use crate::error::{shape_error, value_error};
use crate::loss::{cross_entropy, l2_normalize};
use crate::pretrainer::ObjectiveOutput;

/// How [`ItcHead`]'s learnable scalar is read.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum TemperatureParameterization {
    /// The parameter is `τ`, clamped to `[min_temperature, max_temperature]`
    /// (ALBEF/BLIP).
    Temperature,
    /// The parameter is the logit scale `s = ln(1/τ)`, clamped to
    /// `[0, ln max_logit_scale]`; logits are `sim · eˢ` (CLIP/open_clip).
    LogitScale,
}

/// Configuration of [`ItcHead`] (ALBEF's settings by default).
#[derive(Config, Debug)]
pub struct ItcHeadConfig {
    /// Width `H` of the (pooled) text features.
    pub hidden_size: usize,
    /// Width of the image features when it differs from the text's
    /// (ViLBERT's 1024-wide visual stream).
    #[config(default = "None")]
    pub image_hidden_size: Option<usize>,
    /// Width of the shared embedding space.
    #[config(default = 256)]
    pub embed_dim: usize,
    /// Initial temperature τ.
    #[config(default = 0.07)]
    pub temperature: f64,
    /// τ is clamped to `[min_temperature, max_temperature]` when used.
    #[config(default = 0.001)]
    pub min_temperature: f64,
    /// Upper bound of τ (see `min_temperature`).
    #[config(default = 0.5)]
    pub max_temperature: f64,
    /// What the learnable scalar is; `LogitScale` initialises it to
    /// `ln(1 / temperature)` and ignores the temperature bounds.
    #[config(default = "TemperatureParameterization::Temperature")]
    pub parameterization: TemperatureParameterization,
    /// Upper bound of CLIP's logit scale `eˢ` (open_clip clamps `s` to `[0, ln 100]`).
    #[config(default = 100.0)]
    pub max_logit_scale: f64,
}

/// Projections into the shared space and the learnable temperature:
/// `[B, H]` text and `[B, Hv]` image features → unit `[B, D]` embeddings → `[B, B]` logits.
#[derive(Module, Debug)]
pub struct ItcHead<B: Backend> {
    /// `H → D` text projection.
    pub text_projection: Linear<B>,
    /// `Hv → D` image projection.
    pub image_projection: Linear<B>,
    /// `[1]` learnable temperature `τ`, or logit scale `ln(1/τ)`
    /// (see `parameterization`).
    pub temperature: Param<Tensor<B, 1>>,
    /// Lower bound of τ when used.
    pub min_temperature: f64,
    /// Upper bound of τ when used.
    pub max_temperature: f64,
    /// What [`Self::temperature`](ItcHead::temperature) holds.
    #[module(skip)]
    pub parameterization: TemperatureParameterization,
    /// Upper bound of the logit scale `eˢ`.
    pub max_logit_scale: f64,
}

impl ItcHeadConfig {
    /// The head: projections, then the temperature parameter.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ItcHead<B> {
        ItcHead {
            text_projection: LinearConfig::new(self.hidden_size, self.embed_dim).init(device),
            image_projection: LinearConfig::new(
                self.image_hidden_size.unwrap_or(self.hidden_size),
                self.embed_dim,
            )
            .init(device),
            temperature: Initializer::Constant {
                value: match self.parameterization {
                    TemperatureParameterization::Temperature => self.temperature,
                    TemperatureParameterization::LogitScale => (1.0 / self.temperature).ln(),
                },
            }
            .init([1], device),
            min_temperature: self.min_temperature,
            max_temperature: self.max_temperature,
            parameterization: self.parameterization,
            max_logit_scale: self.max_logit_scale,
        }
    }
}

impl<B: Backend> ItcHead<B> {
    /// `[B, H]` text `[CLS]` → `[B, D]` unit vectors.
    pub fn embed_text(&self, text_cls: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(self.text_projection.forward(text_cls))
    }

    /// `[B, H]` image `[CLS]` → `[B, D]` unit vectors.
    pub fn embed_image(&self, image_cls: Tensor<B, 2>) -> Tensor<B, 2> {
        l2_normalize(self.image_projection.forward(image_cls))
    }

    /// The temperature in use (clamped), `[1]`.
    pub fn temperature(&self) -> Tensor<B, 1> {
        match self.parameterization {
            TemperatureParameterization::Temperature => self
                .temperature
                .val()
                .clamp(self.min_temperature, self.max_temperature),
            TemperatureParameterization::LogitScale => self.logit_scale().recip(),
        }
    }

    /// The logit scale in use, `1/τ`, `[1]`.
    pub fn logit_scale(&self) -> Tensor<B, 1> {
        match self.parameterization {
            TemperatureParameterization::Temperature => self.temperature().recip(),
            TemperatureParameterization::LogitScale => self
                .temperature
                .val()
                .clamp(0.0, self.max_logit_scale.ln())
                .exp(),
        }
    }

    /// Text-to-image logits `[B, B]`: cosine similarity / τ.
    pub fn logits(&self, text: Tensor<B, 2>, image: Tensor<B, 2>) -> Tensor<B, 2> {
        let similarity = text.matmul(image.transpose());
        match self.parameterization {
            TemperatureParameterization::Temperature => {
                similarity / self.temperature().unsqueeze::<2>()
            }
            TemperatureParameterization::LogitScale => {
                similarity * self.logit_scale().unsqueeze::<2>()
            }
        }
    }
}

/// Symmetric InfoNCE over `logits` `[B, B]` whose diagonal holds the matching
/// pairs: the mean of the text→image and image→text cross-entropies.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use vlp_objectives::itc_loss;
///
/// let device = Default::default();
/// // Every pair equally similar: each direction's cross-entropy is ln B.
/// let uniform = Tensor::<NdArray, 2>::zeros([3, 3], &device);
/// let loss: f32 = itc_loss(uniform).into_scalar();
/// assert!((loss - 3f32.ln()).abs() < 1e-6);
/// // The pairs far apart from the rest: the loss is close to 0.
/// let aligned = Tensor::<NdArray, 2>::eye(3, &device).mul_scalar(20.0);
/// let loss: f32 = itc_loss(aligned).into_scalar();
/// assert!(loss < 1e-6, "{loss}");
/// ```
pub fn itc_loss<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let [batch, _] = logits.dims();
    let targets = Tensor::<B, 1, Int>::arange(0..batch as i64, &logits.device());
    (cross_entropy(logits.clone(), targets.clone()) + cross_entropy(logits.transpose(), targets))
        / 2.0
}

/// ITC as a step's objective on text→image `logits` `[B, B]` whose diagonal
/// holds the pairs: [`itc_loss`], measured by the text→image accuracy.
pub fn itc_objective<B: Backend>(logits: Tensor<B, 2>) -> ObjectiveOutput<B> {
    let [rows, _] = logits.dims();
    let diagonal = Tensor::<B, 1, Int>::arange(0..rows as i64, &logits.device());
    ObjectiveOutput::classification("itc", logits, diagonal, |logits, _| itc_loss(logits))
}

/// `batch`'s text and image embeddings `[n, D]`, gathered over the step's
/// shards into the global batch's `[N, D]` (one collective call for both)
/// when `batch` is a shard of a data-parallel step, so that contrastive
/// negatives come from the whole step; unchanged otherwise.
pub fn gather_pairs<B: Backend>(
    batch: &PretrainBatch<B>,
    text: Tensor<B, 2>,
    image: Tensor<B, 2>,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let Some(shard) = &batch.shard else {
        return (text, image);
    };
    let [_, width] = text.dims();
    let both = shard.gather(Tensor::cat(vec![text, image], 1));
    let [_, total] = both.dims();
    (
        both.clone().narrow(1, 0, width),
        both.narrow(1, width, total - width),
    )
}

/// The block of `logits` (text rows × image columns, as [`gather_pairs`]
/// gathers them) of `batch`'s own pairs: all of `logits` when the batch is
/// not a shard.
pub fn own_pairs<B: Backend>(batch: &PretrainBatch<B>, logits: Tensor<B, 2>) -> Tensor<B, 2> {
    match &batch.shard {
        Some(shard) => logits.slice([shard.rows(), shard.rows()]),
        None => logits,
    }
}

/// ALBEF's feature queue: the last `capacity` momentum text and image
/// embeddings (`[K, D]` each, oldest first), used as extra negatives.
/// Stored detached; enqueuing past the capacity drops the oldest rows.
///
/// [`ItcQueueBuffers::queue`] gives a fixed-shape view instead: all `K`
/// rows of its buffers with a validity mask ([`Self::valid`]), so that a
/// step's shapes do not grow while the queue fills and nothing is read
/// back from the device.
#[derive(Clone, Debug)]
pub struct ItcQueue<B: Backend> {
    capacity: usize,
    /// `[len, D]` text and image embeddings; `None` while empty.
    entries: Option<(Tensor<B, 2>, Tensor<B, 2>)>,
    /// `[len]`, `true` at the rows that hold a pair; `None`: all of them.
    valid: Option<Tensor<B, 1, Bool>>,
}

impl<B: Backend> ItcQueue<B> {
    /// An empty queue holding at most `capacity` pairs (ALBEF: 65 536).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: None,
            valid: None,
        }
    }

    /// A full queue of random unit vectors `[capacity, dim]`, as ALBEF starts.
    pub fn random(capacity: usize, dim: usize, device: &B::Device) -> Self {
        let draw = || {
            l2_normalize(Tensor::random(
                [capacity, dim],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                device,
            ))
        };
        let mut queue = Self::new(capacity);
        if capacity > 0 {
            queue.entries = Some((draw(), draw()));
        }
        queue
    }

    /// Most pairs the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows of [`Self::text`] and [`Self::image`]: the pairs held, or the
    /// capacity for a view of [`ItcQueueBuffers`] (see [`Self::valid`]).
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |(text, _)| text.dims()[0])
    }

    /// Whether the queue holds no pair yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queued text embeddings `[len, D]` (`None` when empty).
    pub fn text(&self) -> Option<Tensor<B, 2>> {
        self.entries.as_ref().map(|(text, _)| text.clone())
    }

    /// Queued image embeddings `[len, D]` (`None` when empty).
    pub fn image(&self) -> Option<Tensor<B, 2>> {
        self.entries.as_ref().map(|(_, image)| image.clone())
    }

    /// `[len]`: which rows hold a pair (`None`: every row), for the
    /// fixed-shape view of [`ItcQueueBuffers::queue`].
    pub fn valid(&self) -> Option<Tensor<B, 1, Bool>> {
        self.valid.clone()
    }

    /// Appends a batch of pairs `text`, `image` `[b, D]` (detached) and drops
    /// the oldest pairs beyond the capacity.
    pub fn enqueue(&mut self, text: Tensor<B, 2>, image: Tensor<B, 2>) -> crate::Result<()> {
        if text.dims() != image.dims() {
            return Err(shape_error(
                "queued image embeddings",
                format!("{:?} (as the text embeddings)", text.dims()),
                &image.dims(),
            ));
        }
        if let Some((queued, _)) = &self.entries {
            if queued.dims()[1] != text.dims()[1] {
                return Err(shape_error(
                    "queued text embeddings",
                    format!("[b, {}] (the queue's width)", queued.dims()[1]),
                    &text.dims(),
                ));
            }
        }
        if self.valid.is_some() {
            return Err(value_error(
                "ITC queue",
                "a view of ItcQueueBuffers is enqueued with ItcQueueBuffers::enqueue",
            ));
        }
        let (text, image) = match self.entries.take() {
            Some((old_text, old_image)) => (
                Tensor::cat(vec![old_text, text.detach()], 0),
                Tensor::cat(vec![old_image, image.detach()], 0),
            ),
            None => (text.detach(), image.detach()),
        };
        let len = text.dims()[0];
        let overflow = len.saturating_sub(self.capacity);
        self.entries = (len > overflow).then(|| {
            (
                text.narrow(0, overflow, len - overflow),
                image.narrow(0, overflow, len - overflow),
            )
        });
        Ok(())
    }

    /// Removes and returns the `count` oldest pairs (fewer if the queue is
    /// shorter; `None` when nothing is removed, and for a view of
    /// [`ItcQueueBuffers`]).
    pub fn dequeue(&mut self, count: usize) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
        let len = self.len();
        let count = count.min(len);
        if count == 0 {
            return None;
        }
        if self.valid.is_some() {
            return None;
        }
        let (text, image) = self.entries.take()?;
        if count < len {
            self.entries = Some((
                text.clone().narrow(0, count, len - count),
                image.clone().narrow(0, count, len - count),
            ));
        }
        Some((text.narrow(0, 0, count), image.narrow(0, 0, count)))
    }
}

/// An [`ItcQueue`] kept as module parameters, so that checkpoints carry it
/// and a resumed run sees the same negatives: fixed `[K, D]` buffers and the
/// number of filled rows. No gradient; the buffers are allocated lazily.
/// Every operation keeps the shapes fixed and stays on the device (the
/// filled length too), so a GPU compiles the step's kernels once and does
/// not wait for the host.
#[derive(Module, Debug)]
pub struct ItcQueueBuffers<B: Backend> {
    /// `[K, D]` queued text embeddings, oldest first, newest in the last
    /// row; the `K - len` rows before the filled ones are 0.
    pub text: Param<Tensor<B, 2>>,
    /// `[K, D]` queued image embeddings, as `text`.
    pub image: Param<Tensor<B, 2>>,
    /// `[1]` filled rows.
    pub len: Param<Tensor<B, 1, Int>>,
}

impl<B: Backend> ItcQueueBuffers<B> {
    /// An empty queue of `capacity` pairs of `dim`-wide embeddings.
    pub fn new(capacity: usize, dim: usize, device: &B::Device) -> Self {
        let buffer = || {
            Param::uninitialized(
                ParamId::new(),
                move |device, _| Tensor::zeros([capacity, dim], device),
                device.clone(),
                false,
                burn::tensor::Shape::new([capacity, dim]),
            )
        };
        Self {
            text: buffer(),
            image: buffer(),
            len: Param::initialized(ParamId::new(), Tensor::zeros([1], device)),
        }
    }

    /// Pairs the queue holds at most.
    pub fn capacity(&self) -> usize {
        let [capacity, _] = self.text.lazy_shape().dims();
        capacity
    }

    /// The queue as [`itc_loss_with_queue`] takes it, without a read: all
    /// `K` rows of the buffers, with the filled ones (the last `len`)
    /// marked in [`ItcQueue::valid`].
    pub fn queue(&self) -> ItcQueue<B> {
        let capacity = self.capacity();
        let rows = Tensor::<B, 1, Int>::arange(0..capacity as i64, &self.len.device());
        // Row i holds a pair when i + len >= K.
        let valid = (rows + self.len.val()).greater_equal_elem(capacity as i64);
        ItcQueue {
            capacity,
            entries: Some((self.text.val(), self.image.val())),
            valid: Some(valid),
        }
    }

    /// The pairs held, oldest first (reads the filled length back: for
    /// inspection and tests, not for a training step).
    pub fn held(&self) -> ItcQueue<B> {
        let capacity = self.capacity();
        let len = self
            .len
            .val()
            .into_scalar()
            .elem::<i64>()
            .clamp(0, capacity as i64) as usize;
        ItcQueue {
            capacity,
            entries: (len > 0).then(|| {
                (
                    self.text.val().narrow(0, capacity - len, len),
                    self.image.val().narrow(0, capacity - len, len),
                )
            }),
            valid: None,
        }
    }

    /// [`ItcQueue::enqueue`] on the stored queue: appends `text`, `image`
    /// `[b, D]` (detached) after the newest row, dropping the oldest `b`
    /// rows, so the buffers keep their shape; the filled length is updated
    /// on the device.
    pub fn enqueue(self, text: Tensor<B, 2>, image: Tensor<B, 2>) -> crate::Result<Self> {
        let [capacity, dim] = self.text.lazy_shape().dims();
        if text.dims()[1] != dim {
            return Err(shape_error(
                "queued text embeddings",
                format!("[b, {dim}] (the queue's width)"),
                &text.dims(),
            ));
        }
        if text.dims() != image.dims() {
            return Err(shape_error(
                "queued image embeddings",
                format!("{:?} (as the text embeddings)", text.dims()),
                &image.dims(),
            ));
        }
        let batch = text.dims()[0];
        let push = |buffer: Tensor<B, 2>, fresh: Tensor<B, 2>| {
            let fresh = fresh.detach();
            if batch >= capacity {
                fresh.narrow(0, batch - capacity, capacity)
            } else {
                Tensor::cat(vec![buffer, fresh], 0).narrow(0, batch, capacity)
            }
        };
        let len = self
            .len
            .val()
            .add_scalar(batch as i64)
            .clamp_max(capacity as i64);
        Ok(Self {
            text: Param::initialized(self.text.id, push(self.text.val(), text)),
            image: Param::initialized(self.image.id, push(self.image.val(), image)),
            len: Param::initialized(self.len.id, len),
        })
    }
}

/// ALBEF's contrastive loss with a queue and momentum distillation.
///
/// `text`, `image` `[B, D]`: unit embeddings of the online encoders;
/// `text_m`, `image_m` `[B, D]`: of the momentum encoders; `queue`: earlier
/// momentum embeddings `[K, D]` (rows that [`ItcQueue::valid`] marks empty
/// are left out); `temperature` `[1]` (clamped τ). Against the
/// candidates `[text_m; queue.text]` and `[image_m; queue.image]` (`B + K`,
/// no gradient), the image→text and text→image logits are `sim / τ`, and
/// the targets are `α · softmax(sim_m / τ) + (1 − α) · onehot(diagonal)`,
/// with `sim_m` the momentum embeddings' similarities (no gradient).
/// Loss = mean over the batch of `−Σ targets · log_softmax(logits)`,
/// averaged over the two directions. `α = 0` gives hard targets (ALBEF
/// ramps α to 0.4 during the first epoch). Enqueue `text_m`, `image_m` after
/// the step.
pub fn itc_loss_with_queue<B: Backend>(
    text: Tensor<B, 2>,
    image: Tensor<B, 2>,
    text_m: Tensor<B, 2>,
    image_m: Tensor<B, 2>,
    queue: &ItcQueue<B>,
    temperature: Tensor<B, 1>,
    alpha: f64,
) -> crate::Result<Tensor<B, 1>> {
    let dims = text.dims();
    for (what, other) in [
        ("ITC image embeddings", image.dims()),
        ("ITC momentum text embeddings", text_m.dims()),
        ("ITC momentum image embeddings", image_m.dims()),
    ] {
        if other != dims {
            return Err(shape_error(
                what,
                format!("{dims:?} (as the text embeddings)"),
                &other,
            ));
        }
    }
    if let Some(queued) = queue.text() {
        if queued.dims()[1] != dims[1] {
            return Err(shape_error(
                "ITC queue",
                format!("[K, {}] (the embedding width)", dims[1]),
                &queued.dims(),
            ));
        }
    }
    if !(0.0..=1.0).contains(&alpha) {
        return Err(value_error(
            "ITC distillation alpha",
            format!("must lie in [0, 1], got {alpha}"),
        ));
    }
    let batch = dims[0];
    if batch == 0 {
        return Ok(Tensor::zeros([1], &text.device()));
    }
    let (text_m, image_m) = (text_m.detach(), image_m.detach());
    let device = text.device();
    // Candidates that are empty rows of a fixed-shape queue get the
    // attention masks' hidden-key bias, which no logit overcomes
    // (|sim / τ| <= 1,000), so both the logits' and the targets' softmax
    // give them 0.
    let hidden = queue.valid().map(|valid| {
        let queued = valid.dims()[0];
        Tensor::cat(
            vec![
                Tensor::<B, 1>::zeros([batch], &device),
                Tensor::<B, 1>::zeros([queued], &device)
                    .mask_fill(valid.bool_not(), vlp_models::HIDDEN),
            ],
            0,
        )
        .reshape([1, batch + queued])
    });
    let hide = |logits: Tensor<B, 2>| match &hidden {
        Some(bias) => logits + bias.clone(),
        None => logits,
    };
    let with_queue = |fresh: Tensor<B, 2>, queued: Option<Tensor<B, 2>>| match queued {
        Some(queued) => Tensor::cat(vec![fresh, queued], 0),
        None => fresh,
    };
    let text_all = with_queue(text_m.clone(), queue.text()).transpose();
    let image_all = with_queue(image_m.clone(), queue.image()).transpose();
    let candidates = text_all.dims()[1];
    let tau = temperature.reshape([1, 1]);
    let tau_m = tau.clone().detach();

    let eye = Tensor::<B, 2>::eye(batch, &device);
    let diagonal = if candidates > batch {
        Tensor::cat(
            vec![eye, Tensor::zeros([batch, candidates - batch], &device)],
            1,
        )
    } else {
        eye
    };
    let soft_targets = |sim_m: Tensor<B, 2>| {
        softmax(hide(sim_m / tau_m.clone()), 1).mul_scalar(alpha)
            + diagonal.clone().mul_scalar(1.0 - alpha)
    };
    let i2t_targets = soft_targets(image_m.matmul(text_all.clone()));
    let t2i_targets = soft_targets(text_m.matmul(image_all.clone()));
    let soft_cross_entropy = |logits: Tensor<B, 2>, targets: Tensor<B, 2>| {
        (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
    };
    let i2t = soft_cross_entropy(hide(image.matmul(text_all) / tau.clone()), i2t_targets);
    let t2i = soft_cross_entropy(hide(text.matmul(image_all) / tau), t2i_targets);
    Ok((i2t + t2i).div_scalar(2.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray;

    fn rows(values: &[f32], width: usize) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len() / width, width]),
            &Default::default(),
        )
    }

    fn values<const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
        tensor.into_data().to_vec().unwrap()
    }

    #[test]
    fn queue_is_a_fifo_of_at_most_capacity_pairs() {
        let mut queue = ItcQueue::<B>::new(3);
        assert!(queue.is_empty() && queue.text().is_none());
        queue
            .enqueue(rows(&[1., 1., 2., 2.], 2), rows(&[-1., -1., -2., -2.], 2))
            .unwrap();
        queue
            .enqueue(rows(&[3., 3., 4., 4.], 2), rows(&[-3., -3., -4., -4.], 2))
            .unwrap();
        assert_eq!(queue.len(), 3);
        assert_eq!(values(queue.text().unwrap()), vec![2., 2., 3., 3., 4., 4.]);
        assert_eq!(
            values(queue.image().unwrap()),
            vec![-2., -2., -3., -3., -4., -4.]
        );
        let (text, image) = queue.dequeue(2).unwrap();
        assert_eq!(values(text), vec![2., 2., 3., 3.]);
        assert_eq!(values(image), vec![-2., -2., -3., -3.]);
        assert_eq!(values(queue.text().unwrap()), vec![4., 4.]);
        assert!(queue
            .enqueue(rows(&[1., 1., 1.], 3), rows(&[1., 1., 1.], 3))
            .is_err());
        assert!(queue.dequeue(5).is_some() && queue.is_empty() && queue.dequeue(1).is_none());
        let _serial = crate::test_serial();
        B::seed(&Default::default(), 13);
        let random = ItcQueue::<B>::random(4, 3, &Default::default());
        assert_eq!(random.text().unwrap().dims(), [4, 3]);
        let norms = values(random.image().unwrap().powi_scalar(2).sum_dim(1));
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
    }

    #[test]
    fn queue_loss_without_queue_or_distillation_is_plain_infonce() {
        let text = l2_normalize(rows(&[1., 0.2, -0.3, 0.4, 1., 0.1, -0.5, 0.3, 1.], 3));
        let image = l2_normalize(rows(&[0.9, 0.1, 0.2, -0.2, 1.1, 0.3, 0.1, -0.4, 0.8], 3));
        let tau = Tensor::<B, 1>::from_floats([0.1], &Default::default());
        // With α = 0 the momentum embeddings only serve as candidates; let
        // them equal the online ones to recover in-batch InfoNCE.
        let with_queue = itc_loss_with_queue(
            text.clone(),
            image.clone(),
            text.clone(),
            image.clone(),
            &ItcQueue::new(8),
            tau,
            0.0,
        )
        .unwrap()
        .into_scalar();
        let plain = itc_loss(text.matmul(image.transpose()).div_scalar(0.1)).into_scalar();
        assert!((with_queue - plain).abs() < 1e-5, "{with_queue} vs {plain}");
    }

    #[test]
    fn logit_scale_head_reports_its_temperature() {
        let _serial = crate::test_serial();
        B::seed(&Default::default(), 14);
        let head = ItcHeadConfig::new(4)
            .with_parameterization(TemperatureParameterization::LogitScale)
            .init::<B>(&Default::default());
        assert!((head.temperature().into_scalar() - 0.07).abs() < 1e-6);
        let albef = ItcHeadConfig::new(4).init::<B>(&Default::default());
        assert!((albef.logit_scale().into_scalar() - 1.0 / 0.07).abs() < 1e-3);
    }
}
