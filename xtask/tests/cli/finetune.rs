//! `finetune vqa`, `eval vqa` and `answer` as a user meets them, on
//! questions exported in the VQA v2 layout; `finetune caption` and
//! `caption` on an exported COCO dataset.

use std::path::Path;

use super::{assert_usage_error, export_small, read_json, report, temp_dir, xtask, TINY};

/// `finetune vqa` from a pre-training run on questions exported in the VQA
/// v2 layout: the run folder, metrics and the official accuracy per answer
/// type over every held-out question; a bad image pattern is a usage error
/// and images that are not where the pattern says stop the run naming one.
#[test]
fn vqa_finetuning_from_a_run_reports_the_official_accuracy() {
    let dir = temp_dir("finetune-vqa");
    let data = dir.join("vqa2");
    assert!(export_small("vqa2", &data, &[]).status.success());
    let config = dir.join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let (pre, out) = (dir.join("pre"), dir.join("vqa"));
    let path = |p: &Path| p.display().to_string();
    let pretrain = [
        "pretrain",
        "--config",
        &path(&config),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--out",
        &path(&pre),
    ];
    assert!(xtask(&pretrain).status.success());
    let file = |name: &str| path(&data.join(name));
    let finetune = |pattern: &str| {
        xtask(&[
            "finetune",
            "vqa",
            "--questions",
            &file("v2_OpenEnded_mscoco_train2014_questions.json"),
            "--annotations",
            &file("v2_mscoco_train2014_annotations.json"),
            "--images",
            &file("train2014"),
            "--val-questions",
            &file("v2_OpenEnded_mscoco_val2014_questions.json"),
            "--val-annotations",
            &file("v2_mscoco_val2014_annotations.json"),
            "--val-images",
            &file("val2014"),
            "--image-pattern",
            pattern,
            "--init",
            &path(&pre),
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--out",
            &path(&out),
        ])
    };
    let output = finetune("COCO_{split}2014_{image_id:012}.png");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("unknown word pieces"), "{stderr}");
    for name in ["config.toml", "tokenizer.json", "answers.json", "model.mpk"] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    // The page: the curves and the first five held-out questions' images.
    let answered = read_json(&out.join("eval.json"))["examples"].clone();
    assert_eq!(answered.as_array().unwrap().len(), 5, "{answered}");
    report::assert_renders(&out.join("report.html"), "vqa", 6);
    let held_out = read_json(&data.join("v2_OpenEnded_mscoco_val2014_questions.json"));
    let vqa = &read_json(&out.join("eval.json"))["vqa"];
    assert_eq!(
        vqa["questions"],
        held_out["questions"].as_array().unwrap().len()
    );
    let accuracy = vqa["accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&accuracy), "{vqa}");
    let types: Vec<&String> = vqa["per_answer_type"].as_object().unwrap().keys().collect();
    assert_eq!(types, ["number", "other", "yes/no"]);
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"], 3);
    assert!(last["vqa_loss"].as_f64().unwrap().is_finite(), "{last}");

    // `eval vqa` of the saved run on the held-out split scores what the
    // fine-tuning's own evaluation scored.
    let scores = dir.join("scores.json");
    let output = xtask(&[
        "eval",
        "vqa",
        "--run",
        &path(&out),
        "--questions",
        &file("v2_OpenEnded_mscoco_val2014_questions.json"),
        "--annotations",
        &file("v2_mscoco_val2014_annotations.json"),
        "--images",
        &file("val2014"),
        "--image-pattern",
        "COCO_{split}2014_{image_id:012}.png",
        "--out",
        &path(&scores),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(&read_json(&scores)["vqa"], vqa);
    assert_usage_error(&xtask(&["eval"]), "--run");

    let question = &held_out["questions"][0];
    let image = data.join(format!(
        "val2014/COCO_val2014_{:012}.png",
        question["image_id"].as_u64().unwrap()
    ));
    let run = path(&out);
    let text = question["question"].as_str().unwrap();
    let output = xtask(&["answer", "--run", &run, &path(&image), text, "--top", "3"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let answers: Vec<String> =
        serde_json::from_value(read_json(&out.join("answers.json"))).unwrap();
    let listed: Vec<(f64, &str)> = stdout
        .lines()
        .map(|line| {
            let (p, answer) = line.split_once("  ").unwrap();
            (p.parse().unwrap(), answer)
        })
        .collect();
    assert_eq!(listed.len(), 3, "{stdout}");
    for (p, answer) in &listed {
        assert!(
            (0.0..=1.0).contains(p) && answers.iter().any(|a| a == answer),
            "{stdout}"
        );
    }
    assert!(
        listed.windows(2).all(|w| w[0].0 >= w[1].0),
        "ranked: {stdout}"
    );

    assert_usage_error(&finetune("{id}.png"), "{id}");
    let output = finetune("COCO_{split}2014_{image_id:012}.jpg");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("COCO_train2014_") && stderr.contains(".jpg"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `caption` with a tiny PrefixLM run on pixels: one `path<TAB>caption`
/// line per image, in order, for greedy and beam decoding; `finetune
/// caption` trains that run on an exported COCO dataset and scores held-out
/// captions with the flags' decoding; a run of another architecture is a
/// usage error naming it, a missing image an error naming the file.
#[test]
fn caption_and_caption_finetuning_from_a_prefix_lm_run() {
    let dir = temp_dir("caption");
    let data = dir.join("coco");
    assert!(export_small("coco", &data, &[]).status.success());
    let path = |p: &Path| p.display().to_string();
    let pretrain = |name: &str, extra: &str| {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, format!("{TINY}{extra}")).unwrap();
        let run = dir.join(name);
        let args = ["pretrain", "--config", &path(&config), "--steps", "2"];
        let output = xtask(&[&args[..], &["--batch-size", "8", "--out", &path(&run)]].concat());
        assert!(output.status.success(), "{output:?}");
        path(&run)
    };
    let prefix_lm = pretrain("prefix", "[model.architecture]\nkind = \"prefix_lm\"\n");
    let images: Vec<String> = ["000000000001.png", "000000000002.png"]
        .iter()
        .map(|name| path(&data.join("train2017").join(name)))
        .collect();
    for beam in ["1", "3"] {
        let mut args = vec!["caption", "--run", &prefix_lm, "--beam-size", beam];
        args.extend(images.iter().map(String::as_str));
        let output = xtask(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{output:?}");
        let lines: Vec<(&str, &str)> = stdout
            .lines()
            .map(|line| line.split_once('\t').unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        for ((image, caption), expected) in lines.iter().zip(&images) {
            assert_eq!(image, expected);
            assert!(
                !caption.contains("[SEP]") && !caption.contains("##"),
                "{caption}"
            );
        }
    }
    let file = |name: &str| path(&data.join(name));
    let finetune = |init: &str| {
        let args = ["finetune", "caption", "--init", init, "--steps", "2"];
        let decoding = ["--beam-size", "1", "--length-penalty", "0.5"];
        let coco = [
            "--format",
            "coco",
            "--annotations",
            &file("annotations/captions_train2017.json"),
            "--images",
            &file("train2017"),
            "--val-annotations",
            &file("annotations/captions_val2017.json"),
            "--val-images",
            &file("val2017"),
        ];
        let out = path(&dir.join("finetuned"));
        xtask(&[&args[..], &decoding, &coco, &["--out", &out]].concat())
    };
    let output = finetune(&prefix_lm);
    assert!(output.status.success(), "{output:?}");
    let captioning = &read_json(&dir.join("finetuned/eval.json"))["captioning"];
    assert_eq!(captioning["beam_size"], 1, "{captioning}");
    assert_eq!(captioning["images"], 12, "{captioning}");
    assert!(captioning["cider"].as_f64().unwrap() >= 0.0, "{captioning}");
    let saved = std::fs::read_to_string(dir.join("finetuned/config.toml")).unwrap();
    assert!(saved.contains("caption_length_penalty = 0.5"), "{saved}");
    assert!(saved.contains("format = \"coco\""), "{saved}");

    let uniter = pretrain("uniter", "");
    let output = xtask(&["caption", "--run", &uniter, &images[0]]);
    assert_usage_error(&output, "model.architecture");
    assert_usage_error(&finetune(&uniter), "model.architecture");
    let missing = path(&data.join("missing.png"));
    let output = xtask(&["caption", "--run", &prefix_lm, &missing]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.png"));
    std::fs::remove_dir_all(dir).unwrap();
}
