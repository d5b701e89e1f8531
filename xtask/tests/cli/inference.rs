//! `embed --run`, `search` and `classify` on a tiny CLIP run folder: what
//! they print and write, and one-line usage errors for a missing folder, a
//! template without `{}`, a single class, `--run` with `--checkpoint` and a
//! run whose model has no joint text-image space.

use super::*;

/// A CLIP dual encoder as small as the runner allows: one layer per tower.
const CLIP: &str = r#"
eval_candidates = 8
log_every = 2
[data]
image_size = 32
tokenizer_corpus_scenes = 100
[model]
patch_size = 16
hidden_size = 16
num_heads = 2
intermediate_size = 32
[model.architecture]
kind = "dual_encoder"
text_layers = 1
image_layers = 1
projection_dim = 8
"#;

/// The run folder `dir/name` of a 2-step pre-training with `toml`.
fn pretrain(dir: &Path, name: &str, toml: &str) -> String {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml).unwrap();
    let run = dir.join(name).display().to_string();
    let config = config.display().to_string();
    let args = [
        "pretrain",
        "--config",
        &config,
        "--steps",
        "2",
        "--batch-size",
        "8",
    ];
    let output = xtask(&[&args[..], &["--out", &run]].concat());
    assert!(output.status.success(), "{output:?}");
    run
}

fn success(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn embed_search_and_classify_read_a_run_folder() {
    let dir = temp_dir("inference");
    let run = pretrain(&dir, "clip", CLIP);
    let s = |p: &Path| p.display().to_string();
    let data = dir.join("data");
    let export = ["data", "export", "--format", "jsonl", "--scenes", "4"];
    let output = xtask(&[&export[..], &["--image-size", "32", "--out", &s(&data)]].concat());
    assert!(output.status.success(), "{output:?}");
    let images = data.join("images");
    std::fs::write(images.join("zz-broken.png"), b"not a png").unwrap();
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, "a red circle\na large blue square\n").unwrap();

    let out = dir.join("emb.npy");
    let stdout = success(&xtask(&[
        "embed",
        "--run",
        &run,
        "--texts",
        &s(&texts),
        "--images",
        &s(&images),
        "--out",
        &s(&out),
    ]));
    assert!(
        stdout.contains("2 texts and 6 images, 8-dimensional"),
        "{stdout}"
    );
    assert!(stdout.contains("1 unreadable images skipped"), "{stdout}");
    let (shape, values) = read_npy_f32(&out);
    assert_eq!(shape, [8, 8]);
    for row in values.chunks(8) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let index = std::fs::read_to_string(dir.join("emb.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = index
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8);
    assert_eq!(
        (&rows[1]["kind"], &rows[1]["text"]),
        (&"text".into(), &"a large blue square".into())
    );
    let paths: Vec<&str> = rows[2..]
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(
        rows.iter().enumerate().all(|(i, r)| r["row"] == i),
        "{index}"
    );
    assert!(rows[2..].iter().all(|r| r["kind"] == "image"), "{index}");
    assert!(paths.windows(2).all(|w| w[0] < w[1]) && paths[0].ends_with("000000000001.png"));

    let output = xtask(&[
        "search",
        "--run",
        &run,
        "--images",
        &s(&images),
        "a red circle",
        "--top",
        "3",
    ]);
    let stdout = success(&output);
    let hits: Vec<(f32, &str)> = stdout
        .lines()
        .map(|line| {
            let (score, path) = line.split_once("  ").unwrap();
            (score.parse().unwrap(), path)
        })
        .collect();
    assert_eq!(hits.len(), 3, "{stdout}");
    assert!(hits.windows(2).all(|w| w[0].0 >= w[1].0), "{stdout}");
    assert!(hits
        .iter()
        .all(|(score, path)| score.abs() <= 1.0 + 1e-4 && paths.contains(path)));
    assert!(String::from_utf8_lossy(&output.stderr).contains("zz-broken.png"));

    let classes = dir.join("classes");
    for (i, path) in paths.iter().enumerate() {
        let class = classes.join(["red_things", "blue_things"][i % 2]);
        std::fs::create_dir_all(&class).unwrap();
        std::fs::copy(path, class.join(format!("{i}.png"))).unwrap();
    }
    let classify = |extra: &[&str]| {
        let args = [
            "classify",
            "--run",
            &run,
            "--images",
            &s(&classes),
            "--top",
            "2",
        ];
        xtask(&[&args[..], extra].concat())
    };
    let stdout = success(&classify(&[]));
    assert!(
        stdout.contains("of 6 images into 2 classes (3 templates)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("red things") && stdout.contains("top-2"),
        "{stdout}"
    );
    let report = read_json(&Path::new(&run).join("classify.json"));
    assert_eq!(report["k"], 2);
    // Two classes: the true one is always in the top 2.
    assert_eq!(report["top_k"], 1.0);
    let per_class = report["per_class"].as_array().unwrap();
    let names: Vec<&str> = per_class
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blue things", "red things"]);
    assert!(per_class.iter().all(|c| c["images"] == 3));
    let templates = dir.join("templates.txt");
    std::fs::write(&templates, "a {}\n\nthere is a {}\n").unwrap();
    let stdout = success(&classify(&["--json", "--templates", &s(&templates)]));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["templates"],
        serde_json::json!(["a {}", "there is a {}"])
    );

    std::fs::write(&templates, "a {}\na photo\n").unwrap();
    assert_usage_error(&classify(&["--templates", &s(&templates)]), "\"a photo\"");
    std::fs::remove_dir_all(classes.join("red_things")).unwrap();
    assert_usage_error(&classify(&[]), "at least 2");
    let missing = s(&dir.join("missing"));
    assert_usage_error(
        &xtask(&["search", "--run", &run, "--images", &missing, "x"]),
        &missing,
    );
    let embed = [
        "embed",
        "--run",
        &run,
        "--checkpoint",
        &run,
        "--texts",
        &s(&texts),
    ];
    assert_usage_error(
        &xtask(&[&embed[..], &["--out", &s(&out)]].concat()),
        "cannot be used with",
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_without_a_joint_space_is_refused_naming_its_architecture() {
    let dir = temp_dir("inference-matching");
    let run = pretrain(&dir, "uniter", &format!("{TINY}[objectives]\nitc = 0\n"));
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, "a red circle\n").unwrap();
    let (texts, out) = (
        texts.display().to_string(),
        dir.join("e.npy").display().to_string(),
    );
    let output = xtask(&["embed", "--run", &run, "--texts", &texts, "--out", &out]);
    assert_usage_error(
        &output,
        "single_stream model ranks image-text pairs with its matching head",
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("clip-tiny"));
    let output = xtask(&[
        "search",
        "--run",
        &run,
        "--images",
        &dir.display().to_string(),
        "x",
    ]);
    assert_usage_error(&output, "has no image file");
    // The model is refused before any image is read.
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("x.png"), b"not read").unwrap();
    let output = xtask(&[
        "search",
        "--run",
        &run,
        "--images",
        &images.display().to_string(),
        "x",
    ]);
    assert_usage_error(&output, "no joint text-image space");
    std::fs::remove_dir_all(dir).unwrap();
}
