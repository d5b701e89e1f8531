use super::*;
use crate::patch_masking::patch_rgb_targets;
use crate::pretrain_batch::matched_region_targets;
use crate::visual::VisualBatch;
use burn::backend::NdArray;
use burn::tensor::{Int, Tensor};
use rand::SeedableRng;

#[test]
fn whole_word_masking_predicts_whole_words() {
    let world = SyntheticWorld::new(0, 32);
    // A small vocabulary splits the world's words into several pieces.
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 60).unwrap();
    let batcher = PretrainBatcher::new(world, tokenizer, 64)
        .with_masking(MlmMasking {
            whole_word: true,
            ..MlmMasking::default()
        })
        .with_itm_negative_probability(0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let host = batcher
        .batch(Split::Train, &[0, 1, 2, 3, 4, 5], &mut rng)
        .unwrap();
    let words = &host.tokens.word_ids;
    assert!(
        words.iter().flatten().flatten().count()
            > words
                .iter()
                .map(|row| row.iter().flatten().max().unwrap() + 1)
                .sum::<u32>() as usize,
        "some words have several tokens"
    );
    let targets: HashSet<(usize, usize)> = host
        .mlm_targets
        .iter()
        .map(|&(row, t, _)| (row, t))
        .collect();
    for &(row, t, _) in &host.mlm_targets {
        let word = words[row][t].expect("specials are never predicted");
        for (u, other) in words[row].iter().enumerate() {
            if *other == Some(word) {
                assert!(
                    targets.contains(&(row, u)),
                    "row {row}: word {word} is split"
                );
            }
        }
    }
}

fn region_batcher() -> PretrainBatcher {
    let world = SyntheticWorld::new(0, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 200).unwrap();
    PretrainBatcher::new(world, tokenizer, 32)
        .with_fused_pairs(Some(5))
        .with_detector(Some(SyntheticDetector::new(0, Default::default())))
        .with_region_masking(Some(RegionMasking::uniter()))
        .with_vqa_answers(Some(AnswerVocabulary::synthetic()))
}

#[test]
fn masked_region_targets_follow_the_matched_pairs_into_the_fused_pass() {
    let batcher = region_batcher();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let host = batcher
        .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
        .unwrap();
    let masked = host.masked_regions.as_ref().unwrap();
    let HostVisual::Regions(regions) = &host.visual else {
        panic!("the batcher has a detector");
    };
    let (r, dim, classes) = (regions.regions, regions.feature_dim, regions.num_classes);
    let (positions, features, soft) =
        matched_region_targets(masked, &host.itm_image, &host.itm_labels);
    // Independent count: every masked slot of every matched pair's image.
    let expected: usize = (0..host.itm_labels.len())
        .filter(|&i| host.itm_labels[i])
        .map(|i| {
            (0..r)
                .filter(|&s| masked.mask[host.itm_image[i] * r + s])
                .count()
        })
        .sum();
    assert!(expected > 0 && host.itm_labels.contains(&false));
    assert_eq!(positions.len(), expected);
    let soft_labels = regions.soft_labels.as_ref().unwrap();
    for (k, &position) in positions.iter().enumerate() {
        let (pair, slot) = (position as usize / r, position as usize % r);
        assert!(host.itm_labels[pair]);
        let source = host.itm_image[pair] * r + slot;
        assert!(masked.mask[source]);
        assert_eq!(
            &features[k * dim..(k + 1) * dim],
            &regions.features[source * dim..(source + 1) * dim],
            "the target is the unmasked feature"
        );
        assert!(masked.batch.features[source * dim..(source + 1) * dim]
            .iter()
            .all(|&v| v == 0.0));
        assert_eq!(
            &soft[k * classes..(k + 1) * classes],
            &soft_labels[source * classes..(source + 1) * classes]
        );
    }
    let batch = host.to_device::<NdArray>(&Default::default());
    let mvm = batch.mvm.unwrap();
    assert_eq!(mvm.feature_targets.dims(), [expected, dim]);
    assert_eq!(mvm.soft_label_targets.dims(), [expected, classes]);
    assert_eq!(batch.uniforms.dims(), [2, 8]);
}

#[test]
fn masked_patch_targets_are_the_original_colours_at_fused_positions() {
    let batcher = region_batcher()
        .with_detector(None)
        .with_region_masking(None)
        .with_vqa_answers(None)
        .with_patch_masking(Some(PatchMasking::vilt(8)));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let host = batcher
        .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
        .unwrap();
    let HostVisual::Images(images) = &host.visual else {
        panic!("no detector: pixels");
    };
    let masked = host.masked_patches.as_ref().unwrap();
    let p = (32 / 8) * (32 / 8);
    assert_eq!((masked.num_patches, masked.mask.len()), (p, 8 * p));
    let batch = host.to_device::<NdArray>(&Default::default());
    let mpp = batch.mpp.unwrap();
    assert_eq!(
        mpp.patch_mask.into_data().to_vec::<bool>().unwrap(),
        masked.mask
    );
    let positions: Vec<i64> = mpp.positions.into_data().convert::<i64>().to_vec().unwrap();
    let targets: Vec<i64> = mpp
        .rgb_targets
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    // Independently: every masked patch of every matched pair's image, in
    // pair order, with [CLS] at token 0 of each image.
    let mut expected_positions = Vec::new();
    let mut expected_targets = Vec::new();
    for pair in (0..host.itm_labels.len()).filter(|&i| host.itm_labels[i]) {
        let image = host.itm_image[pair];
        let colours = patch_rgb_targets(&images[image], 8).unwrap();
        for patch in (0..p).filter(|&k| masked.mask[image * p + k]) {
            expected_positions.push((pair * (p + 1) + 1 + patch) as i64);
            expected_targets.extend(colours[patch].map(i64::from));
        }
    }
    assert!(!expected_positions.is_empty() && host.itm_labels.contains(&false));
    assert_eq!(positions, expected_positions);
    assert_eq!(targets, expected_targets);
    // The targets are not one colour: the scenes' patches differ.
    assert!(targets.chunks(3).any(|rgb| rgb != &targets[..3]));

    let regions = batcher
        .clone()
        .with_detector(Some(SyntheticDetector::new(0, Default::default())));
    let error = regions.batch(Split::Train, &[0, 1], &mut rng).unwrap_err();
    assert!(error.to_string().contains("patch_masking"), "{error}");
    let uneven = batcher.with_patch_masking(Some(PatchMasking::vilt(5)));
    let error = uneven.batch(Split::Train, &[0, 1], &mut rng).unwrap_err();
    assert!(error.to_string().contains("5-pixel patches"), "{error}");
}

#[test]
fn questions_ask_about_the_fused_images_with_full_credit_targets() {
    let batcher = region_batcher();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let host = batcher
        .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
        .unwrap();
    let vqa = host.vqa.as_ref().unwrap();
    let answers = AnswerVocabulary::synthetic();
    assert_eq!(vqa.tokens.ids.len(), 5, "one question per fused image");
    for row in vqa.soft_targets.chunks(answers.len()) {
        assert_eq!(row.iter().filter(|&&v| v == 1.0).count(), 1);
        assert_eq!(row.iter().filter(|&&v| v == 0.0).count(), answers.len() - 1);
    }
    let batch = host.to_device::<NdArray>(&Default::default());
    assert_eq!(batch.vqa.unwrap().soft_targets.dims(), [5, answers.len()]);

    let pixels = region_batcher().with_detector(None);
    let error = pixels.batch(Split::Train, &[0, 1], &mut rng).unwrap_err();
    assert!(error.to_string().contains("needs regions"), "{error}");
}

#[test]
fn collates_consistent_tensors() {
    let world = SyntheticWorld::new(0, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.corpus(100), 200).unwrap();
    let batcher = PretrainBatcher::new(world, tokenizer, 32);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let host = batcher
        .batch(Split::Train, &[0, 1, 2, 3], &mut rng)
        .unwrap();
    let device = Default::default();
    let batch = host.to_device::<NdArray>(&device);
    let t = host.tokens.ids[0].len();
    let VisualBatch::Images(images) = &batch.visual else {
        panic!("no detector: pixels");
    };
    assert_eq!(images.dims(), [4, 3, 32, 32]);
    assert_eq!(batch.text_ids.dims(), [4, t]);
    assert_eq!(batch.mlm_ids.dims(), [4, t]);
    let pixel = images.clone().slice([0..1, 0..1, 0..1, 0..1]).into_scalar();
    assert!((-1.0..=1.0).contains(&pixel));
    let padding: Vec<bool> = batch.text_padding.into_data().to_vec().unwrap();
    for (row, &len) in host.tokens.lengths.iter().enumerate() {
        for col in 0..t {
            assert_eq!(padding[row * t + col], col >= len);
        }
    }
    let subset = batcher.clone().with_fused_pairs(Some(2));
    let partial = subset.batch(Split::Train, &[0, 1, 2, 3], &mut rng).unwrap();
    assert_eq!(
        (
            partial.itm_labels.len(),
            partial.itm_text.len(),
            partial.itm_image.len()
        ),
        (2, 2, 2)
    );
    assert!(partial.mlm_targets.iter().all(|&(row, _, _)| row < 2));
    for (&prefix, &len) in host.prefix_lengths.iter().zip(&host.tokens.lengths) {
        assert!((1..len).contains(&prefix));
    }
    assert_eq!(batch.prefix_lengths, host.prefix_lengths);
    let twins = batcher.draw(Split::Train, 10, true, &mut rng);
    let keys: HashSet<String> = twins.iter().map(|s| s.scene.description_key()).collect();
    assert_eq!((twins.len(), keys.len()), (10, 10));
    let positions: Vec<i64> = batch
        .mlm_positions
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let labels: Vec<i64> = batch
        .mlm_labels
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let matched = host.itm_labels.iter().filter(|&&m| m).count();
    assert!(
        positions.len() >= matched,
        "at least one masked token per matching pair"
    );
    for (&flat, &label) in positions.iter().zip(&labels) {
        let (row, col) = (flat as usize / t, flat as usize % t);
        assert!(
            host.itm_labels[row],
            "MLM targets come from matching pairs only"
        );
        assert_eq!(host.tokens.ids[row][col] as i64, label);
    }
}

/// Shape-stable batches: the MLM and masked-patch targets padded to a power
/// of two keep the exact batch's rows first, then rows that gather position
/// 0 with target -1; the text is padded to a bucket; `shape` reports both.
#[test]
fn padded_targets_keep_the_exact_rows_then_ignored_ones() {
    let exact = region_batcher()
        .with_detector(None)
        .with_region_masking(None)
        .with_vqa_answers(None)
        .with_patch_masking(Some(PatchMasking::vilt(8)));
    let stable = exact
        .clone()
        .with_shapes(TextPadding::Buckets(4), TargetSlots::PowerOfTwo);
    let draw = |batcher: &PretrainBatcher| {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        batcher
            .batch(Split::Train, &[0, 1, 2, 3, 4, 5, 6, 7], &mut rng)
            .unwrap()
    };
    let (host, padded) = (draw(&exact), draw(&stable));
    let ints = |t: Tensor<NdArray, 1, Int>| t.into_data().convert::<i64>().to_vec::<i64>().unwrap();
    let (a, b) = (
        host.to_device::<NdArray>(&Default::default()),
        padded.to_device::<NdArray>(&Default::default()),
    );
    let (n, slots) = (a.mlm_labels.dims()[0], b.mlm_labels.dims()[0]);
    assert!(
        n > 0 && slots == n.next_power_of_two(),
        "{n} targets, {slots} rows"
    );
    let (labels, padded_labels) = (ints(a.mlm_labels), ints(b.mlm_labels));
    assert_eq!(padded_labels[..n], labels[..]);
    assert!(padded_labels[n..].iter().all(|&label| label == -1));
    // Positions index the flattened [rows, T] of each batch's own width T.
    let (t, bucket) = (a.mlm_ids.dims()[1], b.mlm_ids.dims()[1]);
    assert_eq!(bucket, TextPadding::Buckets(4).padded_length(t, 32));
    let rows_and_columns = |positions: Vec<i64>, width: i64| {
        positions
            .iter()
            .map(|p| (p / width, p % width))
            .collect::<Vec<_>>()
    };
    let padded_positions = ints(b.mlm_positions);
    assert_eq!(
        rows_and_columns(padded_positions[..n].to_vec(), bucket as i64),
        rows_and_columns(ints(a.mlm_positions), t as i64)
    );
    assert!(padded_positions[n..].iter().all(|&p| p == 0));
    let (mpp, padded_mpp) = (a.mpp.unwrap(), b.mpp.unwrap());
    let m = mpp.positions.dims()[0];
    assert_eq!(padded_mpp.positions.dims()[0], m.next_power_of_two());
    let targets = padded_mpp.rgb_targets.into_data().convert::<i64>();
    let targets = targets.to_vec::<i64>().unwrap();
    assert!(targets[3 * m..].iter().all(|&bin| bin == -1));
    // [images, width, height, text, MLM rows, fused pairs, masked patches]
    assert_eq!(
        padded.shape(),
        [8, 32, 32, bucket, slots, 5, m.next_power_of_two()]
    );
    assert_eq!(host.shape(), [8, 32, 32, t, n, 5, m]);
}

/// Clip batches: captions of each clip's motion, motion twins beside the
/// drawn clips in training, and a held-out set of clips and their twins in
/// which every caption names one clip.
#[test]
fn clip_batches_pair_clips_with_their_motion_and_twins_compete() {
    let world = SyntheticWorld::new(2, 32);
    let tokenizer = TextTokenizer::train_wordpiece(&world.clip_corpus(100, 4), 200).unwrap();
    let batcher = PretrainBatcher::new(world, tokenizer, 40).with_clips(Some(4));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut state = batcher.train_draws().unwrap();
    let host = batcher
        .train_batch(&mut state, 6, true, 0, &mut rng)
        .unwrap();
    let HostVisual::Clips(clips) = &host.visual else {
        panic!("clips, not {:?}", host.visual.shape())
    };
    assert_eq!(host.visual.shape(), [6, 4, 32]);
    // Drawn clip, its twin, ...: same first frame, other motion.
    for pair in clips.chunks(2) {
        assert_eq!(pair[0].frames[0], pair[1].frames[0]);
        assert_ne!(pair[0].description_key(), pair[1].description_key());
    }
    for (clip, key) in clips.iter().zip(&host.descriptions) {
        assert_eq!(&clip.description_key(), key);
    }
    let batch = host.to_device::<NdArray>(&Default::default());
    let VisualBatch::Clips(pixels) = &batch.visual else {
        panic!("clips on the device")
    };
    assert_eq!(pixels.dims(), [6, 4, 3, 32, 32]);

    let held_out = batcher.held_out_pairs(7).unwrap();
    let HostVisual::Clips(clips) = &held_out.visual else {
        panic!("held-out clips")
    };
    assert_eq!((clips.len(), held_out.captions.len()), (7, 7));
    assert_eq!(clips[0].frames[0], clips[1].frames[0]);
    for (i, (clip, caption)) in clips.iter().zip(&held_out.captions).enumerate() {
        assert_eq!(caption, &clip.caption(i % NUM_CLIP_PHRASINGS));
        let matching = clips
            .iter()
            .filter(|other| held_out.references[i].contains(&other.caption(0)))
            .count();
        assert_eq!(matching, 1, "{caption}");
    }
    let with_detector = batcher.with_detector(Some(SyntheticDetector::new(0, Default::default())));
    assert!(with_detector
        .batch(Split::Train, &[0, 1], &mut rng)
        .is_err());
}
