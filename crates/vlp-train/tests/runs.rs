//! Whole runs: a stopped run resumed from its checkpoint logs what the
//! uninterrupted run logs (survey §5's pre-training made to survive being
//! stopped), and VQA fine-tuning (survey §6) learns beyond the answer
//! priors. Both train on Flex, whose generator is one per process: each
//! holds [`DRAWS`] for its whole run, so that under `cargo test` (threads of
//! one process) neither draws in the middle of the other's run; under
//! cargo-nextest each runs in a process of its own anyway. One backend
//! rather than one each halves what this binary compiles.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use burn::backend::{Autodiff, Flex};
use vlp_data::source::{export, CorruptBudget, ExportFormat, ExportOptions, ImagePattern};
use vlp_data::synthetic::SyntheticWorld;
use vlp_train::checkpoint::{read_metrics, METRICS_FILE};
use vlp_train::finetune::vqa_data::read_examples;
use vlp_train::finetune::{accuracy, VqaExample, VqaFiles, VqaFinetune, VqaSettings};
use vlp_train::resume::{checkpoint_dir, latest_checkpoint};
use vlp_train::{MetricsRecord, PretrainConfig, PretrainRun, TrainEnd, TrainError, TrainObserver};

type B = Autodiff<Flex>;

/// Held by each test for its whole run (see the module's doc).
static DRAWS: Mutex<()> = Mutex::new(());

fn draws() -> MutexGuard<'static, ()> {
    DRAWS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A tiny single-stream model with dropout (so the backend's draws matter),
/// a metrics line every 3 steps and a checkpoint every 4: the checkpoint
/// after step 4 holds step 4's values, pending for the line of step 6.
const TINY: &str = r#"
seed = 5
steps = 8
batch_size = 8
warmup_steps = 2
log_every = 3
checkpoint_every = 4
eval_candidates = 8
[data]
image_size = 32
tokenizer_corpus_scenes = 100
fused_pairs = 4
[model]
patch_size = 16
hidden_size = 16
num_layers = 1
num_heads = 2
intermediate_size = 32
itc_embed_dim = 8
dropout = 0.1
"#;

/// Stops the run at its metrics line of step `0`, as a kill after that
/// step would (the line itself is already in `metrics.jsonl`).
struct StopAt(usize);

impl TrainObserver for StopAt {
    fn logged(&mut self, record: &MetricsRecord) -> vlp_train::Result<()> {
        match record.step == self.0 {
            true => Err(TrainError::file("metrics.jsonl", "stopped by the test")),
            false => Ok(()),
        }
    }
}

/// The number of distinct batch shapes a run reports at its end.
#[derive(Default)]
struct Shapes(Option<usize>);

impl TrainObserver for Shapes {
    fn finished(&mut self, end: &TrainEnd) {
        self.0 = Some(end.batch_shapes);
    }
}

fn temp_run(dir: &Path, name: &str) -> PretrainRun {
    let file = dir.join("tiny.toml");
    std::fs::write(&file, TINY).unwrap();
    PretrainRun {
        config: PretrainConfig::from_layers(None, Some(&file)).unwrap(),
        out: dir.join(name),
        tokenizer: None,
        init_text: None,
        init: None,
    }
}

/// Asserts that two runs logged the same steps, learning rates and values,
/// each value to 1e-6 relative (at least 1e-6 absolute); returns the
/// largest relative difference.
fn assert_same_lines(got: &[MetricsRecord], expected: &[MetricsRecord]) -> f32 {
    let steps = |records: &[MetricsRecord]| records.iter().map(|r| r.step).collect::<Vec<_>>();
    assert_eq!(steps(got), steps(expected));
    let mut max_diff = 0.0f32;
    for (got, expected) in got.iter().zip(expected) {
        assert_eq!(got.learning_rate, expected.learning_rate);
        assert_eq!(
            got.objectives.keys().collect::<Vec<_>>(),
            expected.objectives.keys().collect::<Vec<_>>()
        );
        let pairs = std::iter::once((&got.loss, &expected.loss))
            .chain(got.objectives.values().zip(expected.objectives.values()));
        for (g, e) in pairs {
            max_diff = max_diff.max((g - e).abs() / e.abs().max(1.0));
        }
    }
    assert!(max_diff <= 1e-6, "max relative diff {max_diff}");
    max_diff
}

#[test]
fn a_run_stopped_after_6_steps_and_resumed_logs_what_the_whole_run_logs() {
    let _draws = draws();
    let dir: PathBuf = std::env::temp_dir().join(format!("vlp-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let device = Default::default();

    let whole = temp_run(&dir, "whole");
    let mut shapes = Shapes::default();
    whole.run::<B>(&device, &mut shapes).unwrap();
    // Shape-stable batches (the defaults: text buckets, padded targets)
    // against exact ones, whose MLM target count changes nearly every step.
    let mut exact = temp_run(&dir, "exact");
    (
        exact.config.data.text_buckets,
        exact.config.data.pad_targets,
    ) = (0, false);
    let mut exact_shapes = Shapes::default();
    exact.run::<B>(&device, &mut exact_shapes).unwrap();
    let (stable, exact) = (shapes.0.unwrap(), exact_shapes.0.unwrap());
    assert!(
        stable <= 4 && exact >= 6,
        "{stable} stable, {exact} exact shapes in 8 steps"
    );
    let expected = read_metrics(&whole.out.join(METRICS_FILE)).unwrap();
    assert_eq!(expected.len(), 3, "lines after steps 3, 6 and 8");
    let last = latest_checkpoint(&whole.out).unwrap().unwrap();
    assert_eq!(
        last.path,
        checkpoint_dir(&whole.out, 8),
        "the end's checkpoint"
    );

    let stopped = temp_run(&dir, "stopped");
    let err = stopped.run::<B>(&device, &mut StopAt(6)).unwrap_err();
    assert!(err.to_string().contains("stopped by the test"), "{err}");
    let logged = read_metrics(&stopped.out.join(METRICS_FILE)).unwrap();
    assert_eq!(logged.len(), 2, "lines after steps 3 and 6");
    let checkpoint = latest_checkpoint(&stopped.out).unwrap().unwrap();
    assert_eq!(checkpoint.step, 4);
    assert!(!stopped.out.join("model.mpk").exists());

    let resumed = PretrainRun::resuming(&stopped.out).unwrap();
    assert_eq!(resumed.config, whole.config);
    resumed.resume::<B>(&device, &mut ()).unwrap();
    let got = read_metrics(&stopped.out.join(METRICS_FILE)).unwrap();
    let max_diff = assert_same_lines(&got, &expected);
    eprintln!("resumed vs uninterrupted: max relative diff {max_diff:e}");
    assert!(stopped.out.join("model.mpk").is_file());
    assert!(stopped.out.join("eval.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The official accuracy of answering every held-out question with what
/// the training questions that start with the same `words` words answer
/// most often (`words` = 0: the majority answer of all of them).
fn prior_baseline(train: &[VqaExample], val: &[VqaExample], words: usize) -> f64 {
    let key = |e: &VqaExample| {
        e.question
            .split(' ')
            .take(words)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut counts: HashMap<String, HashMap<&str, usize>> = HashMap::new();
    for e in train {
        *counts
            .entry(key(e))
            .or_default()
            .entry(&e.answer)
            .or_default() += 1;
    }
    let best = |answers: &HashMap<&str, usize>| {
        let best = answers
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)));
        best.map_or(String::new(), |(answer, _)| answer.to_string())
    };
    let predictions: Vec<String> = val
        .iter()
        .map(|e| counts.get(&key(e)).map_or(String::new(), best))
        .collect();
    accuracy(val, &predictions).accuracy
}

/// A tiny single-stream model pre-trained for one step, fine-tuned on the
/// world's questions exported in the VQA v2 layout: its held-out accuracy
/// beats answering every question with the training split's majority
/// answer by a wide margin, and the answer prior of the question's first
/// three words (which knows each question kind's likeliest answer but not
/// the image) as well. Then a short fine-tuning stopped after step 4 and
/// resumed logs what the uninterrupted one logs.
#[test]
fn vqa_fine_tuning_beats_the_answer_priors_and_resumes_exactly() {
    let _draws = draws();
    let dir: PathBuf = std::env::temp_dir().join(format!("vlp-vqa-learn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("vqa2");
    let options = ExportOptions {
        scenes: 600,
        held_out: 150,
        ..ExportOptions::new(ExportFormat::Vqa2)
    };
    export(&SyntheticWorld::new(3, 32), &options, &data).unwrap();

    let mut pretrain = temp_run(&dir, "pretrain");
    pretrain.config.steps = 1;
    pretrain.config.checkpoint_every = 0;
    pretrain.config.model.dropout = 0.0;
    pretrain.run::<B>(&Default::default(), &mut ()).unwrap();

    let pattern = ImagePattern::parse("COCO_{split}2014_{image_id:012}.png").unwrap();
    let files = |split: &str| VqaFiles {
        questions: data.join(format!("v2_OpenEnded_mscoco_{split}2014_questions.json")),
        annotations: data.join(format!("v2_mscoco_{split}2014_annotations.json")),
        images: data.join(format!("{split}2014")),
        split: split.to_string(),
        image_pattern: pattern.clone(),
    };
    let finetune = VqaFinetune {
        train: files("train"),
        val: files("val"),
        init: Some(pretrain.out.clone()),
        tokenizer: None,
        out: dir.join("vqa"),
        settings: VqaSettings {
            steps: 300,
            batch_size: 32,
            learning_rate: 3e-3,
            warmup_steps: 30,
            min_answer_count: 1,
            ..VqaSettings::default()
        },
        resume: false,
    };
    let budget = CorruptBudget::new(Default::default());
    let train = read_examples(&finetune.train, &budget).unwrap();
    let val = read_examples(&finetune.val, &budget).unwrap();
    let report = finetune
        .clone()
        .prepare()
        .unwrap()
        .run::<B>(&Default::default(), &mut ())
        .unwrap();
    let (majority, prior) = (
        prior_baseline(&train, &val, 0),
        prior_baseline(&train, &val, 3),
    );
    let got = report.vqa.accuracy;
    eprintln!(
        "held-out VQA accuracy {got:.2}% ({:?}); majority answer {majority:.2}%, \
         three-word prior {prior:.2}%",
        report.vqa.per_answer_type
    );
    assert!(
        got > majority + 15.0,
        "{got:.2}% vs majority {majority:.2}%"
    );
    assert!(got > prior + 8.0, "{got:.2}% vs prior {prior:.2}%");

    let short = |name: &str, resume: bool| VqaFinetune {
        out: dir.join(name),
        settings: VqaSettings {
            steps: 6,
            warmup_steps: 2,
            log_every: 2,
            checkpoint_every: 2,
            ..finetune.settings.clone()
        },
        resume,
        ..finetune.clone()
    };
    let run = |finetune: VqaFinetune, observer: &mut dyn TrainObserver| {
        let prepared = finetune.prepare()?;
        prepared.run::<B>(&Default::default(), observer)
    };
    run(short("whole", false), &mut ()).unwrap();
    let expected = read_metrics(&dir.join("whole").join(METRICS_FILE)).unwrap();
    let err = run(short("stopped", false), &mut StopAt(4)).unwrap_err();
    assert!(err.to_string().contains("stopped by the test"), "{err}");
    assert_eq!(
        latest_checkpoint(&dir.join("stopped"))
            .unwrap()
            .unwrap()
            .step,
        2
    );
    run(short("stopped", true), &mut ()).unwrap();
    let got = read_metrics(&dir.join("stopped").join(METRICS_FILE)).unwrap();
    let max_diff = assert_same_lines(&got, &expected);
    eprintln!("resumed vs uninterrupted fine-tuning: max relative diff {max_diff:e}");
    let err = run(
        VqaFinetune {
            settings: VqaSettings {
                seed: 1,
                ..short("x", true).settings
            },
            ..short("stopped", true)
        },
        &mut (),
    )
    .unwrap_err();
    assert!(err.to_string().contains("other settings"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
