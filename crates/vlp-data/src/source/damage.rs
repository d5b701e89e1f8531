//! Property tests of the readers on damaged input (issue 15): seeded
//! truncations, bit flips, noise spans and pure noise of real files of
//! every format (annotation JSON of COCO, Karpathy, LAVIS and VQA v2, JSONL,
//! CSV and TSV manifests, WebDataset tar shards, BUTD TSV and NPZ region
//! features) parse or fail with an error, never a panic.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vlp_test_support::fixture_path;

use super::*;
use crate::regions::{ButdTsv, NpzRegionDir, RegionFeatureSource};
use crate::synthetic::{Split, SyntheticWorld};

/// Damaged versions of each file.
const CASES: u64 = 240;

/// `bytes` damaged by the draws of `seed`: cut short, a few bits flipped,
/// a span after the first 8 bytes (a file's signature) replaced by noise,
/// or noise only (the image decoder's test uses it too).
pub(crate) fn damage(bytes: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bytes = bytes.to_vec();
    match seed % 4 {
        0 => bytes.truncate(rng.random_range(0..bytes.len())),
        1 => {
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
        }
        2 => {
            let start = rng.random_range(8.min(bytes.len())..bytes.len());
            let end = rng.random_range(start..=bytes.len());
            rng.fill(&mut bytes[start..end]);
        }
        _ => {
            bytes = vec![0; rng.random_range(0..256)];
            rng.fill(&mut bytes[..]);
        }
    }
    bytes
}

/// Writes damaged versions of `file` over `target` and runs `read` on each:
/// it must return (either way) without panicking. The undamaged file must
/// read and some damaged ones must fail, so the damage reaches the parser.
fn assert_no_panic(name: &str, file: &Path, target: &Path, read: impl Fn() -> bool) {
    let original = std::fs::read(file).unwrap();
    let (mut read_ok, mut refused) = (0, 0);
    for seed in 0..CASES {
        std::fs::write(target, damage(&original, seed)).unwrap();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&read)) {
            Ok(true) => read_ok += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("{name} panicked on the damaged input of seed {seed}"),
        }
    }
    std::fs::write(target, original).unwrap();
    assert!(read(), "{name}: the undamaged file does not read");
    assert!(refused > 0, "{name}: {read_ok} read, {refused} refused");
}

fn exported(format: ExportFormat) -> PathBuf {
    let dir = test_dir(&format!("damage-{format}"));
    let options = ExportOptions {
        scenes: 6,
        held_out: 2,
        shard_size: 4,
        ..ExportOptions::new(format)
    };
    export(&SyntheticWorld::new(2, 16), &options, &dir).unwrap();
    dir
}

/// Runs `read` on a damaged copy of `file` in the same folder (so relative
/// image paths still resolve).
fn check_copy(name: &str, file: &Path, read: impl Fn(&Path) -> bool) {
    let copy = file.with_extension(format!(
        "damaged.{}",
        file.extension().and_then(|e| e.to_str()).unwrap_or("bin")
    ));
    std::fs::copy(file, &copy).unwrap();
    assert_no_panic(name, file, &copy, || read(&copy));
}

#[test]
fn caption_readers_never_panic_on_damaged_files() {
    let budget = || CorruptBudget::new(SkipLimit::count(usize::MAX));
    let dir = exported(ExportFormat::Coco);
    check_copy(
        "read_coco",
        &dir.join("annotations/captions_train2017.json"),
        |f| read_coco(f, &dir.join("train2017"), &budget()).is_ok(),
    );
    let dir = exported(ExportFormat::Karpathy);
    check_copy("read_karpathy", &dir.join("dataset_coco.json"), |f| {
        read_karpathy(f, &dir, KarpathySelect::new(Split::Train)).is_ok()
    });
    let dir = exported(ExportFormat::Lavis);
    check_copy(
        "read_lavis",
        &dir.join("annotations/coco_karpathy_val.json"),
        |f| read_lavis(f, &dir).is_ok(),
    );
    let dir = exported(ExportFormat::Jsonl);
    check_copy("read_jsonl", &dir.join("train.jsonl"), |f| {
        read_jsonl(f, &CorruptBudget::new(SkipLimit::count(0))).is_ok()
    });
    for format in [ExportFormat::Csv, ExportFormat::Tsv] {
        let dir = exported(format);
        let file = dir.join(format!("train.{format}"));
        let options = DelimitedOptions::for_path(&file);
        check_copy("read_delimited", &file, |f| {
            read_delimited(f, &options, &CorruptBudget::new(SkipLimit::count(0))).is_ok()
        });
    }
    let dir = exported(ExportFormat::Vqa2);
    let questions = dir.join("v2_OpenEnded_mscoco_train2014_questions.json");
    let annotations = dir.join("v2_mscoco_train2014_annotations.json");
    let options = Vqa2Options {
        split: "train".into(),
        image_pattern: ImagePattern::parse(EXPORT_VQA2_PATTERN).unwrap(),
    };
    let images = dir.join("train2014");
    check_copy("read_vqa2 questions", &questions, |f| {
        read_vqa2(f, Some(&annotations), &images, &options, &budget()).is_ok()
    });
    check_copy("read_vqa2 annotations", &annotations, |f| {
        read_vqa2(&questions, Some(f), &images, &options, &budget()).is_ok()
    });
}

#[test]
fn shard_and_region_readers_never_panic_on_damaged_files() {
    let dir = exported(ExportFormat::WebDataset);
    check_copy("read_shard", &dir.join("train-00000.tar"), |f| {
        let mut samples = 0;
        let read = read_shard(f, &CorruptBudget::new(SkipLimit::count(0)), &mut |_| {
            samples += 1;
            true
        });
        read.is_ok() && samples > 0
    });
    // Damaged copies go to a scratch folder, never next to the fixture.
    let tsv = test_dir("damage-tsv").join("butd.tsv");
    std::fs::copy(fixture_path!("regions/butd.tsv"), &tsv).unwrap();
    // "Reads": every good record of the fixture (those its generator
    // lists in expected.json; the others are corrupt on purpose) reads.
    let good = vlp_test_support::fixture!("regions/expected.json")["tsv"]
        .as_array()
        .unwrap()
        .len();
    check_copy("ButdTsv", &tsv, |f| match ButdTsv::open(f) {
        Ok(source) => {
            let ids = source.ids().to_vec();
            ids.iter().filter(|id| source.get(id).is_ok()).count() == good
        }
        Err(_) => false,
    });
    let npz_dir = test_dir("damage-npz");
    // A good record of the fixtures (float16 features, boxes, labels).
    let first = fixture_path!("regions/npz/coco_000000000139.npz");
    let target = npz_dir.join("1.npz");
    std::fs::copy(&first, &target).unwrap();
    let source = NpzRegionDir::open(&npz_dir).unwrap();
    assert_no_panic("NpzRegionDir", &first, &target, || source.get("1").is_ok());
}
