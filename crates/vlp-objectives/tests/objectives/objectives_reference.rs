//! Every survey-§4 objective against PyTorch on committed fixtures
//! (`fixtures/gen_objectives.py` regenerates `fixtures/objectives/*.json`):
//! losses to 1e-5 (relative to max(1, |value|), f32), edge cases included.

use burn::backend::NdArray;
use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::{TensorData, Tolerance};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use vlp_objectives::*;
use vlp_ot::{WraConfig, WraReduction};
use vlp_test_support::fixtures::{bool_tensor, float_tensor, int_tensor, shape};
use vlp_test_support::{seeded, Tol};

type B = NdArray;

/// `fixtures/objectives/<name>.json`.
fn fixture(name: &str) -> Value {
    vlp_test_support::fixture!(format!("objectives/{name}.json"))
}

fn float<const D: usize>(value: &Value) -> Tensor<B, D> {
    float_tensor(value, &Default::default())
}

fn int<const D: usize>(value: &Value) -> Tensor<B, D, Int> {
    int_tensor(value, &Default::default())
}

fn boolean<const D: usize>(value: &Value) -> Tensor<B, D, Bool> {
    bool_tensor(value, &Default::default())
}

fn ints(tensor: Tensor<B, 1, Int>) -> Vec<i64> {
    tensor.into_data().convert::<i64>().to_vec().unwrap()
}

fn set_linear(linear: &mut Linear<B>, weight: &Value, bias: &Value) {
    linear.weight = Param::from_tensor(float(weight));
    linear.bias = Some(Param::from_tensor(float(bias)));
}

fn set_layer_norm(norm: &mut LayerNorm<B>, gamma: &Value, beta: &Value) {
    norm.gamma = Param::from_tensor(float(gamma));
    norm.beta = Some(Param::from_tensor(float(beta)));
}

fn scalar(loss: Tensor<B, 1>) -> f64 {
    assert_eq!(loss.dims(), [1]);
    loss.into_scalar() as f64
}

/// A scalar to 1e-5 relative to `max(1, |expected|)` (the panic names the caller's line).
#[track_caller]
fn assert_close(got: f64, expected: &Value) {
    vlp_test_support::assert_close("scalar", got, expected, Tol::scaled(1e-5));
}

/// A tensor to 1e-5 absolute.
#[track_caller]
fn assert_tensor_close<const D: usize>(got: Tensor<B, D>, expected: &Value) {
    vlp_test_support::assert_close("tensor", got, expected, Tol::abs(1e-5));
}

// ---- MVM -----------------------------------------------------------------

#[test]
fn feature_regression_head_and_loss_match_uniter() {
    let f = fixture("mvm");
    let r = &f["reg"];
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let mut head = MvmRegressionHeadConfig::new(4, 6).init::<B>(&device);
    set_linear(&mut head.dense, &r["dense_w"], &r["dense_b"]);
    set_layer_norm(&mut head.layer_norm, &r["gamma"], &r["beta"]);
    head.bias = Param::from_tensor(float(&r["out_bias"]));
    let pred = head.forward(float(&f["hidden"]), float(&r["proj"]));
    assert_tensor_close(pred.clone(), &r["pred"]);
    let loss = feature_regression_loss(pred, float(&r["target"])).unwrap();
    assert_close(scalar(loss), &r["loss"]);
    // Nothing masked: 0, not NaN.
    let empty = Tensor::<B, 2>::zeros([0, 6], &device);
    assert_eq!(
        scalar(feature_regression_loss(empty.clone(), empty).unwrap()),
        0.0
    );
    assert!(feature_regression_loss(
        Tensor::<B, 2>::zeros([2, 6], &device),
        Tensor::zeros([2, 5], &device)
    )
    .is_err());
}

#[test]
fn feature_classification_losses_match_uniter() {
    let f = fixture("mvm");
    let c = &f["cls"];
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let mut head = MvmClassificationHeadConfig::new(4, 5).init::<B>(&device);
    set_linear(&mut head.dense, &c["dense_w"], &c["dense_b"]);
    set_layer_norm(&mut head.layer_norm, &c["gamma"], &c["beta"]);
    set_linear(&mut head.classifier, &c["out_w"], &c["out_b"]);
    let logits = head.forward(float(&f["hidden"]));
    assert_tensor_close(logits.clone(), &c["logits"]);
    let probs = float::<2>(&c["probs"]);
    let hard = feature_classification_hard_loss(logits.clone(), probs.clone()).unwrap();
    assert_close(scalar(hard), &c["hard_loss"]);
    // A head without a background output: same targets shifted by one.
    let foreground = logits.clone().slice([0..3, 1..5]);
    let hard_fg = feature_classification_hard_loss(foreground, probs.clone()).unwrap();
    assert_close(scalar(hard_fg), &c["hard_loss_foreground_head"]);
    let kl = feature_classification_kl_loss(logits, probs).unwrap();
    assert_close(scalar(kl), &c["kl_loss"]);
    // Nothing masked.
    let empty = Tensor::<B, 2>::zeros([0, 5], &device);
    assert_eq!(
        scalar(feature_classification_hard_loss(empty.clone(), empty.clone()).unwrap()),
        0.0
    );
    assert_eq!(
        scalar(feature_classification_kl_loss(empty.clone(), empty).unwrap()),
        0.0
    );
}

#[test]
fn masked_patch_prediction_matches_vilt() {
    let f = fixture("mvm");
    let p = &f["patch"];
    let patch = p["patch_size"].as_u64().unwrap() as usize;
    // The batcher's host targets (the one source of MPP targets) against
    // ViLT's, from the fixture's uint8 / 255 pixels.
    let [batch, channels, height, width]: [usize; 4] = shape(&p["pixels"]).try_into().unwrap();
    let pixels: Vec<f32> = float::<4>(&p["pixels"]).into_data().to_vec().unwrap();
    let bins: Vec<i64> = (0..batch)
        .flat_map(|n| {
            let mut interleaved = vec![0u8; height * width * 3];
            for c in 0..channels {
                for yx in 0..height * width {
                    let value = pixels[(n * channels + c) * height * width + yx];
                    interleaved[yx * 3 + c] = (value * 255.0).round() as u8;
                }
            }
            let image = vlp_data::synthetic::RgbImage {
                width,
                height,
                pixels: interleaved,
            };
            vlp_data::patch_rgb_targets(&image, patch).unwrap()
        })
        .flat_map(|rgb| rgb.map(i64::from))
        .collect();
    assert_eq!(
        bins,
        int::<3>(&p["bins"])
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap()
    );
    let loss = masked_patch_loss(float(&p["logits"]), int(&p["targets"])).unwrap();
    assert_close(scalar(loss), &p["loss"]);
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    // A padding row (negative bins, any logits) leaves the loss as it was.
    let logits: Tensor<B, 3> = float(&p["logits"]);
    let [rows, _, _] = logits.dims();
    let padded_logits = Tensor::cat(
        vec![
            logits,
            Tensor::random(
                [1, 3, 256],
                burn::tensor::Distribution::Normal(0.0, 3.0),
                &device,
            ),
        ],
        0,
    );
    let padded_targets = Tensor::cat(
        vec![int(&p["targets"]), Tensor::full([1, 3], -1, &device)],
        0,
    );
    assert_eq!(padded_targets.dims(), [rows + 1, 3]);
    let padded = masked_patch_loss(padded_logits, padded_targets).unwrap();
    assert_close(scalar(padded), &p["loss"]);
    let none = masked_patch_loss(
        Tensor::<B, 3>::zeros([0, 3, 256], &device),
        Tensor::zeros([0, 3], &device),
    );
    assert_eq!(scalar(none.unwrap()), 0.0);
    let out_of_range =
        Tensor::<B, 2, Int>::from_data(TensorData::new(vec![0i64, 256, 3], [1, 3]), &device);
    assert!(masked_patch_loss(Tensor::<B, 3>::zeros([1, 3, 256], &device), out_of_range).is_err());
}

// ---- ITM -----------------------------------------------------------------

#[test]
fn dual_stream_itm_heads_match_reference() {
    let f = fixture("itm");
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    for (fusion, key) in [
        (DualStreamFusion::Product, "product"),
        (DualStreamFusion::Concat, "concat"),
    ] {
        let mut head = DualStreamItmHeadConfig::new(4)
            .with_fusion(fusion)
            .init::<B>(&device);
        set_linear(
            &mut head.classifier,
            &f[format!("{key}_w")],
            &f[format!("{key}_b")],
        );
        let logits = head.forward(float(&f["text"]), float(&f["image"]));
        assert_tensor_close(logits, &f[format!("{key}_logits")]);
    }
}

#[test]
fn hard_negatives_are_the_inverse_cdf_draws_of_the_reference() {
    let f = fixture("itm");
    for case in f["negatives"].as_array().unwrap() {
        let smoothing = case["smoothing"].as_f64().unwrap();
        let (images, texts) =
            hard_negative_indices(float(&f["similarity"]), float(&f["uniform"]), smoothing)
                .unwrap();
        let expected_images = ints(int(&case["images_for_texts"]));
        let expected_texts = ints(int(&case["texts_for_images"]));
        assert_eq!(ints(images), expected_images);
        assert_eq!(ints(texts), expected_texts);
        for (i, (&image, &text)) in expected_images.iter().zip(&expected_texts).enumerate() {
            assert_ne!(image as usize, i);
            assert_ne!(text as usize, i);
        }
    }
}

#[test]
fn hard_negative_frequencies_follow_the_softmax_weights() {
    let f = fixture("itm");
    let case = &f["negatives"][1];
    let smoothing = case["smoothing"].as_f64().unwrap();
    let expected: Vec<f32> = float::<2>(&case["p_image_given_text"])
        .into_data()
        .to_vec()
        .unwrap();
    let n = 5;
    let draws = 20_000;
    let mut counts = vec![0usize; n * n];
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let similarity = float::<2>(&f["similarity"]);
    for _ in 0..draws {
        let (images, _) = hard_negatives_with_rng(similarity.clone(), smoothing, &mut rng).unwrap();
        for (text, image) in ints(images).into_iter().enumerate() {
            counts[text * n + image as usize] += 1;
        }
    }
    for (k, &p) in expected.iter().enumerate() {
        let frequency = counts[k] as f64 / draws as f64;
        let sigma = (p as f64 * (1.0 - p as f64) / draws as f64).sqrt();
        assert!(
            (frequency - p as f64).abs() <= 5.0 * sigma + 1e-9,
            "text {} image {}: frequency {frequency}, probability {p}",
            k / n,
            k % n
        );
        if k / n == k % n {
            assert_eq!(counts[k], 0, "a positive was drawn as a negative");
        }
    }
}

#[test]
fn a_batch_of_one_has_no_hard_negative() {
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let result = hard_negative_indices(
        Tensor::<B, 2>::zeros([1, 1], &device),
        Tensor::<B, 2>::zeros([2, 1], &device),
        0.0,
    );
    assert!(matches!(
        result,
        Err(ObjectiveError::NoNegatives { batch: 1 })
    ));
    let bad_uniform = hard_negative_indices(
        Tensor::<B, 2>::zeros([2, 2], &device),
        Tensor::<B, 2>::ones([2, 2], &device),
        0.0,
    );
    assert!(bad_uniform.is_err());
}

// ---- ITC -----------------------------------------------------------------

#[test]
fn clip_logit_scale_is_clamped_as_open_clip() {
    let f = fixture("itc");
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let config =
        ItcHeadConfig::new(4).with_parameterization(TemperatureParameterization::LogitScale);
    let mut head = config.init::<B>(&device);
    assert!((head.temperature.val().into_scalar() as f64 - (1.0f64 / 0.07).ln()).abs() < 1e-6);
    for case in f["clip"].as_array().unwrap() {
        let s = case["logit_scale_param"].as_f64().unwrap();
        head.temperature = Param::from_tensor(Tensor::from_floats([s as f32], &device));
        let logits = head.logits(float(&f["text"]), float(&f["image"]));
        assert_tensor_close(logits.clone(), &case["logits"]);
        assert_close(scalar(itc_loss(logits)), &case["loss"]);
    }
}

#[test]
fn queue_loss_with_distillation_matches_albef() {
    let f = fixture("itc");
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let (queue_text, queue_image) = (float(&f["queue_text"]), float(&f["queue_image"]));
    let mut queue = ItcQueue::<B>::new(5);
    queue
        .enqueue(queue_text.clone(), queue_image.clone())
        .unwrap();
    // The fixed-shape queue of a training step: buffers of 9 rows, filled
    // in two enqueues; its empty rows must change nothing.
    let [rows, dim] = queue_text.dims();
    let empty = ItcQueueBuffers::<B>::new(9, dim, &device);
    let buffers = empty
        .clone()
        .enqueue(
            queue_text.clone().narrow(0, 0, 2),
            queue_image.clone().narrow(0, 0, 2),
        )
        .unwrap()
        .enqueue(
            queue_text.narrow(0, 2, rows - 2),
            queue_image.narrow(0, 2, rows - 2),
        )
        .unwrap();
    assert_eq!(buffers.queue().len(), 9);
    for case in f["albef"].as_array().unwrap() {
        let (queue, view) = if case["queue"].as_bool().unwrap() {
            (queue.clone(), buffers.queue())
        } else {
            (ItcQueue::new(5), empty.queue())
        };
        for queue in [queue, view] {
            let temperature = Tensor::<B, 1>::from_floats(
                [case["temperature"].as_f64().unwrap() as f32],
                &device,
            );
            let loss = itc_loss_with_queue(
                float(&f["text"]),
                float(&f["image"]),
                float(&f["text_m"]),
                float(&f["image_m"]),
                &queue,
                temperature,
                case["alpha"].as_f64().unwrap(),
            )
            .unwrap();
            assert_close(scalar(loss), &case["loss"]);
        }
    }
}

// ---- WRA -----------------------------------------------------------------

#[test]
fn wra_matches_uniter_ipot() {
    let f = fixture("wra");
    let special: Vec<i64> = f["special"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let text_valid = word_alignment_mask(int(&f["ids"]), boolean(&f["attention"]), &special);
    assert_eq!(
        text_valid.clone().into_data().to_vec::<bool>().unwrap(),
        boolean::<2>(&f["text_valid"])
            .into_data()
            .to_vec::<bool>()
            .unwrap()
    );
    let run = |positive: Tensor<B, 1, Bool>, config: &WraConfig| {
        scalar(
            wra_loss(
                float(&f["text_hidden"]),
                text_valid.clone(),
                float(&f["image_hidden"]),
                boolean(&f["image_valid"]),
                positive,
                config,
            )
            .unwrap(),
        )
    };
    let positive = boolean::<1>(&f["positive"]);
    assert_close(
        run(positive.clone(), &uniter_wra_config()),
        &f["pooled_loss"],
    );
    let mean = WraConfig {
        reduction: WraReduction::MeanDifference,
        ..uniter_wra_config()
    };
    assert_close(run(positive, &mean), &f["mean_difference_loss"]);
    // No negative pair: UNITER's pooled form is the mean positive distance.
    let all_positive =
        Tensor::<B, 1, Bool>::from_data(TensorData::new(vec![true; 3], [3]), &Default::default());
    assert_close(
        run(all_positive, &uniter_wra_config()),
        &f["all_positive_pooled_loss"],
    );
}

#[test]
fn wra_distances_match_uniter_ipot() {
    let f = fixture("wra");
    let special = [101, 102];
    let text_valid = word_alignment_mask(int(&f["ids"]), boolean(&f["attention"]), &special);
    let padding = vlp_ot::Padding::new(
        text_valid.bool_not(),
        boolean::<2>(&f["image_valid"]).bool_not(),
    );
    let distances = vlp_ot::wra_distance(
        float(&f["text_hidden"]),
        float(&f["image_hidden"]),
        Some(&padding),
        &uniter_wra_config(),
    )
    .unwrap();
    assert_tensor_close(distances, &f["distances"]);
}

#[test]
fn wra_with_an_all_padding_row_is_an_error() {
    let f = fixture("wra");
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let none = Tensor::<B, 2, Bool>::from_data(TensorData::new(vec![false; 18], [3, 6]), &device);
    let result = wra_loss(
        float(&f["text_hidden"]),
        none,
        float(&f["image_hidden"]),
        boolean(&f["image_valid"]),
        boolean(&f["positive"]),
        &uniter_wra_config(),
    );
    assert!(matches!(result, Err(ObjectiveError::Ot(_))), "{result:?}");
}

// ---- FOM -----------------------------------------------------------------

#[test]
fn fom_head_and_loss_match_hero() {
    let f = fixture("fom");
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let mut head = FomHeadConfig::new(4, 5).init::<B>(&device);
    set_linear(&mut head.classifier, &f["w"], &f["b"]);
    let logits = head.forward(float(&f["hidden"]));
    assert_tensor_close(logits.clone(), &f["logits"]);
    assert_close(
        scalar(fom_loss(logits.clone(), int(&f["targets"])).unwrap()),
        &f["loss"],
    );
    // Every frame ignored (nothing shuffled): 0, not NaN.
    let ignored = Tensor::<B, 1, Int>::full([6], -1, &device);
    assert_eq!(scalar(fom_loss(logits.clone(), ignored).unwrap()), 0.0);
    let too_far = Tensor::<B, 1, Int>::full([6], 5, &device);
    assert!(fom_loss(logits, too_far).is_err());
}

// ---- VQA -----------------------------------------------------------------

#[test]
fn vqa_head_loss_and_score_match_uniter() {
    let f = fixture("vqa");
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let mut head = VqaHeadConfig::new(4, 6).init::<B>(&device);
    set_linear(&mut head.dense, &f["w1"], &f["b1"]);
    set_layer_norm(&mut head.layer_norm, &f["gamma"], &f["beta"]);
    set_linear(&mut head.classifier, &f["w2"], &f["b2"]);
    let logits = head.forward(float(&f["pooled"]));
    assert_tensor_close(logits.clone(), &f["logits"]);
    let scores = float::<2>(&f["scores"]);
    assert_close(
        scalar(vqa_bce_loss(logits.clone(), scores.clone()).unwrap()),
        &f["loss"],
    );
    assert_close(scalar(vqa_score(logits, scores).unwrap()), &f["score"]);
    // Saturated logits stay finite and exact.
    let large = vqa_bce_loss(float(&f["large_logits"]), float(&f["large_scores"])).unwrap();
    assert_close(scalar(large), &f["large_loss"]);
    let empty = Tensor::<B, 2>::zeros([0, 6], &device);
    assert_eq!(
        scalar(vqa_bce_loss(empty.clone(), empty.clone()).unwrap()),
        0.0
    );
    assert_eq!(scalar(vqa_score(empty.clone(), empty).unwrap()), 0.0);
}

// ---- Captioning ------------------------------------------------------------

#[test]
fn lm_and_prefix_lm_losses_match_torch() {
    let f = fixture("caption");
    let logits = float::<3>(&f["logits"]);
    let labels = int::<2>(&f["labels"]);
    let split = int::<1>(&f["split"]);
    assert_close(
        scalar(lm_loss(logits.clone(), labels.clone(), 0.0).unwrap()),
        &f["lm_loss"],
    );
    assert_close(
        scalar(lm_loss(logits.clone(), labels.clone(), 0.1).unwrap()),
        &f["lm_loss_smoothed"],
    );
    assert_close(
        scalar(prefix_lm_loss(logits.clone(), labels.clone(), split.clone(), 0.0).unwrap()),
        &f["prefix_loss"],
    );
    assert_close(
        scalar(prefix_lm_loss(logits.clone(), labels.clone(), split, 0.1).unwrap()),
        &f["prefix_loss_smoothed"],
    );
    // All labels ignored (PyTorch gives NaN): 0. A split past the end: same.
    let device = Default::default();
    let _seeded = seeded::<B>(&device, 0);
    let ignored = Tensor::<B, 2, Int>::full([2, 5], IGNORE_LABEL, &device);
    assert_eq!(scalar(lm_loss(logits.clone(), ignored, 0.1).unwrap()), 0.0);
    let late = Tensor::<B, 1, Int>::full([2], 5, &device);
    assert_eq!(
        scalar(prefix_lm_loss(logits.clone(), labels.clone(), late, 0.0).unwrap()),
        0.0
    );
    // Split at 0: the whole sequence is suffix.
    let zero = Tensor::<B, 1, Int>::zeros([2], &device);
    assert_close(
        scalar(prefix_lm_loss(logits.clone(), labels, zero, 0.0).unwrap()),
        &f["lm_loss"],
    );
    let too_large = Tensor::<B, 2, Int>::full([2, 5], 7, &device);
    assert!(lm_loss(logits, too_large, 0.0).is_err());
}

// ---- Gradients -------------------------------------------------------------

type A = burn::backend::Autodiff<NdArray>;

fn lift<const D: usize>(tensor: Tensor<B, D>) -> Tensor<A, D> {
    Tensor::from_data(tensor.into_data(), &Default::default()).require_grad()
}

#[test]
fn vqa_bce_gradient_is_sigmoid_minus_score_over_batch() {
    let f = fixture("vqa");
    let logits = lift(float::<2>(&f["logits"]));
    let scores: Tensor<A, 2> =
        Tensor::from_data(float::<2>(&f["scores"]).into_data(), &Default::default());
    let grads = vqa_bce_loss(logits.clone(), scores.clone())
        .unwrap()
        .backward();
    let got = logits.grad(&grads).unwrap();
    let expected =
        (burn::tensor::activation::sigmoid(logits.inner()) - scores.inner()).div_scalar(3.0);
    got.into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
}

#[test]
fn smoothed_lm_gradient_is_softmax_minus_smoothed_target() {
    let f = fixture("caption");
    let logits = lift(float::<3>(&f["logits"]));
    let labels: Tensor<A, 2, Int> =
        Tensor::from_data(int::<2>(&f["labels"]).into_data(), &Default::default());
    let grads = lm_loss(logits.clone(), labels, 0.1).unwrap().backward();
    let got: Vec<f32> = logits.grad(&grads).unwrap().into_data().to_vec().unwrap();
    let probs: Vec<f32> = burn::tensor::activation::softmax(logits.inner(), 2)
        .into_data()
        .to_vec()
        .unwrap();
    let label_values = ints(int::<2>(&f["labels"]).reshape([10]));
    let counted = label_values.iter().filter(|&&l| l >= 0).count() as f32;
    for (position, &label) in label_values.iter().enumerate() {
        for class in 0..7 {
            let k = position * 7 + class;
            let expected = if label < 0 {
                0.0
            } else {
                let target = 0.9 * f32::from(u8::from(class as i64 == label)) + 0.1 / 7.0;
                (probs[k] - target) / counted
            };
            assert!(
                (got[k] - expected).abs() < 1e-6,
                "position {position} class {class}"
            );
        }
    }
}

#[test]
fn wra_gradient_reaches_only_the_aligned_positions() {
    let f = fixture("wra");
    let text = lift(float::<3>(&f["text_hidden"]));
    let image = lift(float::<3>(&f["image_hidden"]));
    let to_a = |t: Tensor<B, 2, Bool>| -> Tensor<A, 2, Bool> {
        Tensor::from_data(t.into_data(), &Default::default())
    };
    let text_valid = word_alignment_mask(int(&f["ids"]), boolean(&f["attention"]), &[101, 102]);
    let positive: Tensor<A, 1, Bool> = Tensor::from_data(
        boolean::<1>(&f["positive"]).into_data(),
        &Default::default(),
    );
    let loss = wra_loss(
        text.clone(),
        to_a(text_valid.clone()),
        image.clone(),
        to_a(boolean(&f["image_valid"])),
        positive,
        &uniter_wra_config(),
    )
    .unwrap();
    let grads = loss.backward();
    let row_norms =
        |g: Tensor<B, 3>| -> Vec<f32> { g.powi_scalar(2).sum_dim(2).into_data().to_vec().unwrap() };
    let text_norms = row_norms(text.grad(&grads).unwrap());
    let valid: Vec<bool> = text_valid.into_data().to_vec().unwrap();
    for (norm, valid) in text_norms.iter().zip(valid) {
        assert!(norm.is_finite());
        // [CLS], [SEP] and padding take no part; every aligned word does.
        assert_eq!(*norm > 0.0, valid, "{text_norms:?}");
    }
    let image_valid: Vec<bool> = boolean::<2>(&f["image_valid"])
        .into_data()
        .to_vec()
        .unwrap();
    for (norm, valid) in row_norms(image.grad(&grads).unwrap())
        .iter()
        .zip(image_valid)
    {
        assert_eq!(*norm > 0.0, valid);
    }
}
