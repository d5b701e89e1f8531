//! Collation: host-side tokens, images and clips into the tensors a model
//! takes, on any Burn backend (the glue between `vlp-data` and a model).

use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};

use crate::synthetic::{Clip, RgbImage};
use crate::tokenizer::TokenizedBatch;

/// Images as `[N, 3, H, W]` floats scaled to `[-1, 1]`.
///
/// # Panics
/// If the images differ in size (the synthetic world's never do).
pub fn images_to_tensor<B: Backend>(images: &[&RgbImage], device: &B::Device) -> Tensor<B, 4> {
    let (height, width) = (images[0].height, images[0].width);
    let plane = height * width;
    let mut values = vec![0f32; images.len() * 3 * plane];
    for (n, image) in images.iter().enumerate() {
        assert_eq!(
            (image.height, image.width),
            (height, width),
            "images of one batch share a size"
        );
        let out = &mut values[n * 3 * plane..(n + 1) * 3 * plane];
        for (p, rgb) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + p] = rgb[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Tensor::from_data(
        TensorData::new(values, [images.len(), 3, height, width]),
        device,
    )
}

/// Clips as `[N, T, 3, H, W]` floats scaled to `[-1, 1]`; all clips of a
/// batch have the same number of frames.
///
/// # Panics
/// If the clips differ in length or frame size.
pub fn clips_to_tensor<B: Backend>(clips: &[&Clip], device: &B::Device) -> Tensor<B, 5> {
    let num_frames = clips.first().map_or(0, |clip| clip.frames.len());
    assert!(
        clips.iter().all(|clip| clip.frames.len() == num_frames),
        "clips of one batch share a length"
    );
    let frames: Vec<&RgbImage> = clips.iter().flat_map(|clip| &clip.frames).collect();
    let [_, channels, height, width] = images_to_tensor::<B>(&frames[..1], device).dims();
    images_to_tensor(&frames, device).reshape([clips.len(), num_frames, channels, height, width])
}

/// Token ids `[N, T]` and the padding mask `[N, T]` (`true` at padding) of
/// a [`TokenizedBatch`]: the glue between
/// [`TextTokenizer::encode`](crate::TextTokenizer::encode) and a model's text
/// input (e.g. `vlp_models::BertModel::forward(ids, padding)`).
///
/// `T` is the batch's longest sequence; keep it within the model's position
/// table by encoding with `max_len` at most `max_position_embeddings`
/// (`vlp_features::TextEmbeddings::max_positions`).
///
/// ```
/// use burn::backend::NdArray;
/// use vlp_data::{tokens_to_tensors, TextTokenizer};
///
/// let corpus: Vec<String> = ["a red circle", "a small blue square"]
///     .map(String::from)
///     .to_vec();
/// let tokenizer = TextTokenizer::train_wordpiece(&corpus, 100)?;
/// // `[CLS] a red circle [SEP]` and `[CLS] a small blue square [SEP]`,
/// // padded with `[PAD]` to the longer one.
/// let batch = tokenizer.encode(&corpus, 32)?;
/// assert_eq!(batch.lengths, [5, 6]);
///
/// let (ids, padding) = tokens_to_tensors::<NdArray>(&batch, &Default::default());
/// assert_eq!(ids.dims(), [2, 6]);
/// assert_eq!(padding.dims(), [2, 6]);
/// let padding: Vec<bool> = padding.into_data().to_vec().unwrap();
/// assert_eq!(padding[..6], [false, false, false, false, false, true]);
/// assert!(padding[6..].iter().all(|&pad| !pad));
/// let ids: Vec<i64> = ids.into_data().to_vec().unwrap();
/// assert_eq!(ids[0], i64::from(tokenizer.special().cls));
/// assert_eq!(ids[5], i64::from(tokenizer.special().pad));
/// # Ok::<(), vlp_data::DataError>(())
/// ```
pub fn tokens_to_tensors<B: Backend>(
    batch: &TokenizedBatch,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Bool>) {
    let rows = batch.ids.len();
    let cols = batch.ids.first().map_or(0, Vec::len);
    let ids: Vec<i64> = batch.ids.iter().flatten().map(|&id| id as i64).collect();
    let padding: Vec<bool> = batch
        .lengths
        .iter()
        .flat_map(|&len| (0..cols).map(move |t| t >= len))
        .collect();
    (
        Tensor::from_data(TensorData::new(ids, [rows, cols]), device),
        Tensor::from_data(TensorData::new(padding, [rows, cols]), device),
    )
}

/// `values` as an integer tensor of `shape`.
pub(crate) fn int_tensor<B: Backend, const D: usize>(
    values: Vec<i64>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{Split, SyntheticWorld};
    use burn::backend::NdArray;

    #[test]
    fn clips_stack_frames_in_time_order() {
        let world = SyntheticWorld::new(0, 16);
        let clips = [
            world.clip(Split::Train, 0, 3),
            world.clip(Split::Train, 1, 3),
        ];
        let refs: Vec<&Clip> = clips.iter().collect();
        let device = Default::default();
        let tensor = clips_to_tensor::<NdArray>(&refs, &device);
        assert_eq!(tensor.dims(), [2, 3, 3, 16, 16]);
        let frame = images_to_tensor::<NdArray>(&[&clips[1].frames[2]], &device);
        tensor
            .slice([1..2, 2..3])
            .reshape([1, 3, 16, 16])
            .into_data()
            .assert_eq(&frame.into_data(), true);
    }
}
