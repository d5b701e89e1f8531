//! Region-feature readers against NumPy's own files and values
//! (`tests/fixtures/gen_regions.py` writes the fixtures and `expected.json`).

use burn::backend::NdArray;
use serde_json::Value;
use vlp_data::{ButdTsv, DataError, NpzRegionDir, RegionBatch, RegionFeatureSource, RegionRecord};
use vlp_test_support::fixtures::f32s as floats;
use vlp_test_support::{assert_close, fixture, fixture_path, Tol};

fn expected() -> Value {
    fixture!("regions/expected.json")
}

/// Compares a decoded record with the generator's values.
fn check_record(record: &RegionRecord, expected: &Value) {
    let id = expected["image_id"].as_str().unwrap();
    assert_eq!(record.image_id, id);
    assert_eq!(
        record.num_boxes as u64,
        expected["num_boxes"].as_u64().unwrap()
    );
    assert_eq!(
        record.feature_dim as u64,
        expected["feature_dim"].as_u64().unwrap()
    );
    assert_eq!(record.features.len(), record.num_boxes * record.feature_dim);
    let sum: f64 = record.features.iter().map(|&v| f64::from(v)).sum();
    let abs_sum: f64 = record.features.iter().map(|&v| f64::from(v).abs()).sum();
    assert_close(
        format!("{id} feature sum"),
        sum,
        &expected["feature_sum"],
        Tol::scaled(1e-5),
    );
    assert_close(
        format!("{id} feature |sum|"),
        abs_sum,
        &expected["feature_abs_sum"],
        Tol::scaled(1e-5),
    );
    // First and last values are exact: float16 widens to float32 exactly.
    assert_eq!(
        record.features[..4],
        floats(&expected["first_features"])[..]
    );
    assert_eq!(
        *record.features.last().unwrap(),
        expected["last_feature"].as_f64().unwrap() as f32
    );
    let boxes = expected["boxes"].as_array().unwrap();
    assert_eq!(record.boxes.len(), boxes.len());
    for (actual, expected) in record.boxes.iter().zip(boxes) {
        assert_close(format!("{id} box"), actual, expected, Tol::abs(1e-6));
        assert!(actual.iter().all(|a| (0.0..=1.0).contains(a)));
    }
    match &expected["image_size"] {
        Value::Null => assert_eq!(record.image_size, None),
        size => {
            let size = floats(size);
            assert_eq!(record.image_size, Some((size[0], size[1])));
        }
    }
    match &expected["confidence"] {
        Value::Null => assert_eq!(record.confidence, None),
        conf => assert_eq!(record.confidence.as_deref(), Some(&floats(conf)[..])),
    }
    assert_eq!(
        record.num_classes as u64,
        expected["num_classes"].as_u64().unwrap()
    );
    match &expected["soft_label_sum"] {
        Value::Null => assert_eq!(record.soft_labels, None),
        total => {
            let soft = record.soft_labels.as_ref().unwrap();
            assert_eq!(soft.len(), record.num_boxes * record.num_classes);
            let sum: f64 = soft.iter().map(|&v| f64::from(v)).sum();
            assert_close(format!("{id} soft labels"), sum, total, Tol::scaled(1e-5));
            assert_eq!(
                soft[..record.num_classes],
                floats(&expected["first_soft_labels"])[..]
            );
        }
    }
}

fn npz_dir() -> NpzRegionDir {
    NpzRegionDir::open(fixture_path!("regions/npz")).unwrap()
}

fn tsv() -> ButdTsv {
    ButdTsv::open(fixture_path!("regions/butd.tsv")).unwrap()
}

#[test]
fn npz_records_match_numpy() {
    let dir = npz_dir();
    let ids: Vec<&str> = dir.ids().iter().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "coco_000000000139",
            "coco_000000000285",
            "coco_000000000632",
            "coco_000000000724",
            "coco_000000000776",
            "coco_000000000785"
        ],
        "every .npz and nothing else"
    );
    let expected = expected();
    for entry in expected["npz"].as_array().unwrap() {
        let record = dir.get(entry["image_id"].as_str().unwrap()).unwrap();
        check_record(&record, entry);
    }
}

#[test]
fn npz_errors_name_file_and_array() {
    let dir = npz_dir();
    let message = |id: &str| dir.get(id).unwrap_err().to_string();
    let missing = message("coco_000000000724");
    assert!(
        missing.contains("coco_000000000724.npz") && missing.contains("array `features`: missing"),
        "{missing}"
    );
    let mismatch = message("coco_000000000776");
    assert!(
        mismatch.contains("coco_000000000776.npz")
            && mismatch.contains("array `norm_bb`")
            && mismatch.contains("[3, 6] disagrees with features [4, 16]"),
        "{mismatch}"
    );
    let truncated = message("coco_000000000785");
    assert!(
        truncated.contains("coco_000000000785.npz")
            && truncated.contains("not a readable npz archive"),
        "{truncated}"
    );
    assert!(matches!(
        dir.get("coco_000000000001"),
        Err(DataError::UnknownImage { .. })
    ));
}

#[test]
fn npz_iteration_skips_and_counts_corrupt_files() {
    let dir = npz_dir();
    let mut records = dir.records(100);
    let ok: Vec<String> = records.by_ref().map(|r| r.unwrap().image_id).collect();
    assert_eq!(
        ok,
        [
            "coco_000000000139",
            "coco_000000000285",
            "coco_000000000632"
        ]
    );
    assert_eq!(records.corrupt(), 3);
    assert!(records.skipped()[2]
        .to_string()
        .contains("coco_000000000785.npz"));

    // Two corrupt files tolerated, the third stops the walk.
    let results: Vec<_> = dir.records(2).collect();
    assert_eq!(results.len(), 4);
    assert!(results[..3].iter().all(Result::is_ok));
    let error = results[3].as_ref().unwrap_err();
    assert!(matches!(
        error,
        DataError::TooManyCorruptRecords {
            count: 3,
            max: 2,
            ..
        }
    ));
    assert!(
        error.to_string().contains("coco_000000000785.npz"),
        "{error}"
    );

    // Strict: the first corrupt file is an error.
    let results: Vec<_> = dir.records(0).collect();
    assert_eq!(results.len(), 4);
    assert!(results[3]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("coco_000000000724.npz"));
}

#[test]
fn tsv_records_match_numpy() {
    let tsv = tsv();
    let ids: Vec<&str> = tsv.ids().iter().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["391895", "522418", "184613", "318219", "554625", "397133", "37777"]
    );
    let expected = expected();
    let good = expected["tsv"].as_array().unwrap();
    assert_eq!(good.len(), 4);
    for entry in good {
        let record = tsv.get(entry["image_id"].as_str().unwrap()).unwrap();
        check_record(&record, entry);
    }
}

#[test]
fn tsv_errors_name_file_and_line() {
    let tsv = tsv();
    let message = |id: &str| tsv.get(id).unwrap_err().to_string();
    let truncated = message("184613");
    assert!(
        truncated.contains("butd.tsv line 3") && truncated.contains("features is not valid base64"),
        "{truncated}"
    );
    let count = message("554625");
    assert!(
        count.contains("butd.tsv line 5")
            && count.contains("boxes decode to 8 floats, but num_boxes 5 needs 20"),
        "{count}"
    );
    let width = message("397133");
    assert!(
        width.contains("butd.tsv line 6")
            && width.contains("image_w \"wide\" is not a positive number"),
        "{width}"
    );
    let index_errors = tsv.index_errors();
    assert_eq!(index_errors.len(), 1);
    assert!(index_errors[0]
        .to_string()
        .contains("butd.tsv line 7: no tab-separated columns"));
}

#[test]
fn tsv_iteration_skips_and_counts_corrupt_lines() {
    let tsv = tsv();
    let mut records = tsv.records(vlp_data::regions::DEFAULT_MAX_CORRUPT);
    let ok: Vec<String> = records.by_ref().map(|r| r.unwrap().image_id).collect();
    assert_eq!(ok, ["391895", "522418", "318219", "37777"]);
    assert_eq!(records.corrupt(), 4, "lines 3, 5, 6 and 7");

    let results: Vec<_> = tsv.records(3).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((results.len(), ok), (4, 3));
    let error = results[3].as_ref().unwrap_err();
    assert!(matches!(
        error,
        DataError::TooManyCorruptRecords {
            count: 4,
            max: 3,
            ..
        }
    ));
    assert!(error.to_string().contains("butd.tsv line 6"), "{error}");

    // Strict: the line that could not be indexed stops the walk at once.
    let results: Vec<_> = tsv.records(0).collect();
    assert_eq!(results.len(), 1);
    assert!(results[0]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("line 7"));
}

#[test]
fn padded_batches_keep_the_first_regions() {
    let dir = npz_dir();
    let records: Vec<RegionRecord> = dir.records(100).map(Result::unwrap).collect();
    let lengths: Vec<usize> = records.iter().map(|r| r.num_boxes).collect();
    assert_eq!(lengths, [5, 3, 4]);

    let batch = RegionBatch::from_records(&records, 4).unwrap();
    let (r, f) = (4, 16);
    assert_eq!((batch.len(), batch.regions, batch.feature_dim), (3, r, f));
    assert_eq!(batch.lengths, [4, 3, 4]);
    let expected_padding: Vec<bool> = [4, 3, 4]
        .iter()
        .flat_map(|&kept| (0..r).map(move |n| n >= kept))
        .collect();
    assert_eq!(batch.padding, expected_padding);
    for (b, record) in records.iter().enumerate() {
        for n in 0..r {
            let row = &batch.features[(b * r + n) * f..(b * r + n + 1) * f];
            let bx = &batch.boxes[(b * r + n) * 4..(b * r + n + 1) * 4];
            if n < batch.lengths[b] {
                assert_eq!(row, record.box_features(n));
                assert_eq!(bx, record.boxes[n]);
            } else {
                assert!(row.iter().chain(bx).all(|&v| v == 0.0));
            }
        }
    }
    assert!(batch.soft_labels.is_none(), "one record has no soft labels");

    // Padding goes to the longest record, not to max_regions.
    let wide = RegionBatch::from_records(&records[..2], 100).unwrap();
    assert_eq!((wide.regions, wide.lengths.clone()), (5, vec![5, 3]));
    let soft = wide.soft_labels.as_ref().unwrap();
    assert_eq!(wide.num_classes, 5);
    assert_eq!(soft[..5 * 5], records[0].soft_labels.as_ref().unwrap()[..]);
    assert_eq!(&soft[(5 + 3) * 5..], &[0.0; 2 * 5]);

    let device = Default::default();
    let tensors = batch.to_tensors::<NdArray>(&device);
    assert_eq!(tensors.features.dims(), [3, r, f]);
    assert_eq!(tensors.boxes.dims(), [3, r, 4]);
    assert_eq!(tensors.padding.dims(), [3, r]);
    assert!(tensors.soft_labels.is_none());
    let features: Vec<f32> = tensors.features.into_data().to_vec().unwrap();
    assert_eq!(features, batch.features);
    let padding: Vec<bool> = tensors.padding.clone().into_data().to_vec().unwrap();
    assert_eq!(padding, batch.padding);
    // The mask concatenates with masks made from integers (as fusion models do).
    let ones = burn::tensor::Tensor::<NdArray, 2, burn::tensor::Int>::ones([3, 1], &device);
    let joined = burn::tensor::Tensor::cat(vec![tensors.padding.int(), ones], 1).bool();
    assert_eq!(joined.dims(), [3, r + 1]);

    // TSV records batch with NPZ ones when the feature dimension agrees.
    let tsv_record = tsv().get("37777").unwrap();
    let mixed = RegionBatch::from_records(&[tsv_record, records[1].clone()], 36).unwrap();
    assert_eq!((mixed.regions, mixed.lengths), (3, vec![1, 3]));
}
