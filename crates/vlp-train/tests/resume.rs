//! A stopped run resumed from its checkpoint logs what the uninterrupted run
//! logs (survey §5's pre-training made to survive being stopped). A test
//! binary of its own: the backend's generator is one global, and another
//! test drawing from it in parallel would change this one's dropout masks.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex};
use vlp_train::checkpoint::{read_metrics, METRICS_FILE};
use vlp_train::resume::{checkpoint_dir, latest_checkpoint};
use vlp_train::{MetricsRecord, PretrainConfig, PretrainRun, TrainError, TrainObserver};

type B = Autodiff<Flex>;

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

fn temp_run(dir: &Path, name: &str) -> PretrainRun {
    let file = dir.join("tiny.toml");
    std::fs::write(&file, TINY).unwrap();
    PretrainRun {
        config: PretrainConfig::from_layers(None, Some(&file)).unwrap(),
        out: dir.join(name),
        tokenizer: None,
        init_text: None,
    }
}

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
            max_diff = max_diff.max((g - e).abs());
        }
    }
    assert!(max_diff <= 1e-6, "max |diff| {max_diff}");
    max_diff
}

#[test]
fn a_run_stopped_after_6_steps_and_resumed_logs_what_the_whole_run_logs() {
    let dir: PathBuf = std::env::temp_dir().join(format!("vlp-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let device = Default::default();

    let whole = temp_run(&dir, "whole");
    whole.run::<B>(&device, &mut ()).unwrap();
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
    eprintln!("resumed vs uninterrupted: max |diff| {max_diff:e}");
    assert!(stopped.out.join("model.mpk").is_file());
    assert!(stopped.out.join("eval.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
