//! Every objective of the configurable single-stream pre-trainer learns: a
//! tiny region model trained on all of them at once (weighted sum) for 150
//! steps on a fixed set of synthetic scenes drives each objective's loss
//! below its start by a margin and moves its own metric the right way by a
//! margin (see `MARGINS`; ITM, which this short mixed run leaves near
//! chance, has its own test in `learns.rs`).

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vlp_data::synthetic::Split;
use vlp_data::{AnswerVocabulary, RegionMasking};
use vlp_objectives::{
    Objective, Pretrainer, RankBy, RetrievalModel, UniterObjectives, UniterPretrainer,
    UniterPretrainerConfig, WeightedObjective,
};
use vlp_test_support::models::{tiny_patches, tiny_regions, tiny_single_stream};
use vlp_test_support::training::{mlm_unigram_entropy, train, Scenes};
use vlp_test_support::{tiny_region_batcher, tiny_world_batcher};

use super::{learning_seed, serial};

type B = Autodiff<NdArray>;

const STEPS: u64 = 150;
const SCENES: Scenes = Scenes::Fixed(12);
const NAMES: [&str; 8] = ["itc", "mlm", "itm", "mrfr", "mrc", "mrc_kl", "wra", "vqa"];

/// Per objective (ITM aside): the least fall of its loss, as a fraction of
/// its start, and the least move of its metric in the right direction
/// (MRFR's metric is its error, which falls; every other metric rises;
/// `None`: not asserted). About half of the smallest move measured over
/// model seeds 0, 1, 2 (`VLP_LEARNING_SEED`; the test prints every move):
///
/// | objective | loss fall (seeds 0/1/2) | metric move (seeds 0/1/2) |
/// |---|---|---|
/// | itc    | 94.2 / 94.6 / 94.3% | +0.65 / +0.72 / +0.77 |
/// | mlm    | 40.5 / 40.2 / 40.2% | +0.22 / +0.16 / +0.15 |
/// | mrfr   | 56.4 / 60.1 / 55.5% | -0.64 / -0.68 / -0.62 |
/// | mrc    | 73.6 / 81.2 / 72.8% | +0.79 / +0.75 / +0.57 |
/// | mrc_kl | 69.3 / 76.1 / 70.2% | +0.68 / +0.80 / +0.52 |
/// | wra    | 88.6 / 76.1 / 96.1% | +0.04 / -0.01 / +0.08 (too noisy to assert) |
/// | vqa    | 80.4 / 79.3 / 76.7% | +0.40 / +0.48 / +0.44 |
const MARGINS: [(&str, f32, Option<f32>); 7] = [
    ("itc", 0.47, Some(0.32)),
    ("mlm", 0.2, Some(0.07)),
    ("mrfr", 0.27, Some(0.31)),
    ("mrc", 0.36, Some(0.28)),
    ("mrc_kl", 0.35, Some(0.26)),
    ("wra", 0.38, None),
    ("vqa", 0.38, Some(0.2)),
];

#[test]
fn every_objective_learns_on_a_fixed_set_of_regions() {
    let answers = AnswerVocabulary::synthetic();
    let batcher = tiny_region_batcher(1)
        .with_region_masking(Some(RegionMasking::uniter()))
        .with_vqa_answers(Some(answers.clone()));
    let device = Default::default();
    let _serial = serial();
    B::seed(&device, learning_seed());
    let model_config = tiny_single_stream(batcher.tokenizer.vocab_size(), tiny_regions(32), 2);
    let objectives = UniterObjectives::new()
        .with_mlm(1.0)
        .with_itm(1.0)
        .with_itc(1.0)
        .with_mrfr(1.0)
        .with_mrc(1.0)
        .with_mrc_kl(1.0)
        .with_wra(1.0)
        .with_vqa(1.0);
    let num_classes = vlp_data::synthetic::NUM_DETECTOR_LABELS;
    let model: UniterPretrainer<B> = UniterPretrainerConfig::new(model_config, objectives)
        .with_num_region_classes(num_classes)
        .with_num_answers(answers.len())
        .with_itc_embed_dim(32)
        .init(&device)
        .unwrap();
    let (_, history) = train(model, &batcher, SCENES, STEPS, 2e-3, &device);
    assert_eq!(history.names, NAMES);
    let mut failures = Vec::new();
    for (name, loss_fall, metric_move) in MARGINS {
        let (start, end) = (history.start_loss(name, 5), history.end_loss(name, 10));
        let (m0, m1) = (history.start_metric(name, 5), history.end_metric(name, 10));
        println!("{name}: loss {start:.4} -> {end:.4}, metric {m0:.4} -> {m1:.4}");
        if end > (1.0 - loss_fall) * start {
            failures.push(format!("{name} loss {start} -> {end}"));
        }
        let moved = if name == "mrfr" { m0 - m1 } else { m1 - m0 };
        if metric_move.is_some_and(|least| moved < least) {
            failures.push(format!("{name} metric {m0} -> {m1}"));
        }
    }
    // MLM's loss also ends below the unigram entropy of its targets (the
    // best a model ignoring its input does): measured 0.079 / 0.107 / 0.084
    // below over seeds 0/1/2. (Its accuracy, 0.219 / 0.180 / 0.162 vs the
    // majority token's 0.149, is no clear margin in this mixed run:
    // `learns::mlm_beats_...` asserts it.)
    let entropy = mlm_unigram_entropy(&batcher, SCENES, STEPS - 10..STEPS);
    let loss = history.end_loss("mlm", 10);
    println!("mlm loss {loss:.4} vs unigram entropy {entropy:.4}");
    if loss > entropy - 0.04 {
        failures.push(format!("mlm loss {loss} vs unigram entropy {entropy}"));
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Per-step task sampling: a step of one objective computes that objective
/// alone, at weight 1, and (for MLM and ITC, whose inputs do not depend on
/// the other objectives) the same loss as the summed step on the same batch;
/// an objective whose head was not configured is an error naming it.
#[test]
fn a_sampled_step_computes_only_the_drawn_objective() {
    type I = NdArray;
    let batcher = tiny_region_batcher(1);
    let device = Default::default();
    let _serial = serial();
    I::seed(&device, 0);
    let model_config = tiny_single_stream(batcher.tokenizer.vocab_size(), tiny_regions(32), 1);
    let objectives = UniterObjectives::new()
        .with_mlm(2.0)
        .with_itm(2.0)
        .with_itc(1.0);
    let model: UniterPretrainer<I> = UniterPretrainerConfig::new(model_config, objectives)
        .with_itc_embed_dim(32)
        .init(&device)
        .unwrap();
    let batch = batcher
        .batch(
            Split::Train,
            &(0..8).collect::<Vec<_>>(),
            &mut ChaCha8Rng::seed_from_u64(3),
        )
        .unwrap()
        .to_device::<I>(&device);
    let scalar = |t: &Tensor<I, 1>| t.clone().into_scalar().elem::<f32>();
    let summed = model.forward(&batch);
    let one = |objective| {
        [WeightedObjective {
            objective,
            weight: 1.0,
        }]
    };
    for (objective, name) in [
        (Objective::Mlm, "mlm"),
        (Objective::Itm, "itm"),
        (Objective::Itc, "itc"),
    ] {
        let step = model.forward_step(&batch, &one(objective)).unwrap();
        let names: Vec<&str> = step.objectives.iter().map(|o| o.name).collect();
        assert_eq!(names, [name]);
        assert_eq!(scalar(&step.loss), scalar(&step.objectives[0].loss));
        if name != "itm" {
            // ITM alone sees clean text; summed with MLM it sees the masked copy.
            let reference = scalar(&summed.objective(name).unwrap().loss);
            assert!((scalar(&step.loss) - reference).abs() < 1e-6, "{name}");
        }
    }
    let err = model
        .forward_step(&batch, &one(Objective::Mrfr))
        .unwrap_err();
    assert!(err.to_string().contains("mrfr was not configured"), "{err}");
    let err = model
        .forward_step(&batch, &one(Objective::Fom))
        .unwrap_err();
    assert!(err.to_string().contains("no Fom objective"), "{err}");

    // Retrieval: ITC's embeddings when there is an ITC head, else the ITM
    // head's match probability of each (text, image) pair.
    assert_eq!(model.rank_by(), RankBy::Embeddings);
    let scores = model
        .match_scores(
            batch.text_ids.clone(),
            batch.text_padding.clone(),
            &batch.visual,
        )
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(scores.len(), 8);
    assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)));
}

/// ViLT's masked patch prediction alone on a tiny patch model and a fixed
/// set of scenes (fresh masks every step): the loss falls and the bin
/// accuracy rises from chance (1/256). The fused pass never sees a masked
/// patch's pixels: repainting them leaves the loss unchanged, repainting
/// an unmasked patch does not. A sampled MPP step computes MPP alone.
#[test]
fn masked_patch_prediction_learns_and_hides_the_masked_pixels() {
    use vlp_data::{HostVisual, PatchMasking};
    // The tiny patches are 8 pixels wide.
    let patch = 8;
    let batcher = tiny_world_batcher(1).with_patch_masking(Some(PatchMasking::vilt(patch)));
    let device = Default::default();
    let _serial = serial();
    B::seed(&device, learning_seed());
    let model_config = tiny_single_stream(batcher.tokenizer.vocab_size(), tiny_patches(32), 1);
    let model: UniterPretrainer<B> =
        UniterPretrainerConfig::new(model_config, UniterObjectives::new().with_mpp(1.0))
            .init(&device)
            .unwrap();
    let (model, history) = train(model, &batcher, SCENES, 80, 3e-3, &device);
    let (start, end) = (history.start_loss("mpp", 5), history.end_loss("mpp", 10));
    let (a0, a1) = (
        history.start_metric("mpp", 5),
        history.end_metric("mpp", 10),
    );
    println!("mpp: loss {start:.4} -> {end:.4}, accuracy {a0:.4} -> {a1:.4}");
    assert!(
        (start - (256f32).ln()).abs() < 1.0,
        "starts near ln 256: {start}"
    );
    // Measured (model seeds 0, 1, 2, two runs each): the loss falls by
    // 2.73-2.88 / 2.84-2.87 / 2.93 nats, the accuracy rises by 0.29-0.32 /
    // 0.27 / 0.31-0.33; the margins are about half of the smallest.
    assert!(end < start - 1.35, "loss {start} -> {end}");
    assert!(a1 > a0 + 0.13, "accuracy {a0} -> {a1}");

    use burn::module::AutodiffModule;
    let model = model.valid();
    let mut host = batcher
        .batch(
            Split::Train,
            &(0..12).collect::<Vec<_>>(),
            &mut ChaCha8Rng::seed_from_u64(99),
        )
        .unwrap();
    let loss = |host: &vlp_data::HostPretrainBatch| {
        let output = model.forward(&host.to_device(&device));
        output.loss.into_scalar().elem::<f32>()
    };
    let before = loss(&host);
    let masked = host.masked_patches.clone().unwrap();
    let repaint = |host: &mut vlp_data::HostPretrainBatch, want_masked: bool| {
        let HostVisual::Images(images) = &mut host.visual else {
            panic!("no detector: pixels");
        };
        let columns = 32 / patch;
        for (n, image) in images.iter_mut().enumerate() {
            for k in 0..masked.num_patches {
                if masked.mask[n * masked.num_patches + k] != want_masked {
                    continue;
                }
                let (row, column) = (k / columns, k % columns);
                for y in row * patch..(row + 1) * patch {
                    for x in column * patch..(column + 1) * patch {
                        for c in 0..3 {
                            let value = &mut image.pixels[(y * 32 + x) * 3 + c];
                            *value = 255 - *value;
                        }
                    }
                }
            }
        }
    };
    repaint(&mut host, true);
    assert_eq!(
        loss(&host),
        before,
        "masked pixels are hidden from the model"
    );
    repaint(&mut host, false);
    assert!(
        (loss(&host) - before).abs() > 1e-6,
        "unmasked pixels are seen"
    );

    let step = model
        .forward_step(
            &host.to_device(&device),
            &[WeightedObjective {
                objective: Objective::Mpp,
                weight: 1.0,
            }],
        )
        .unwrap();
    let names: Vec<&str> = step.objectives.iter().map(|o| o.name).collect();
    assert_eq!(names, ["mpp"]);
}
