//! What a user sees of a training run: a progress bar on a terminal, a
//! line every few metrics records otherwise, and the loss curves at the end.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use vlp_train::checkpoint::{read_metrics, CURVES_FILE, METRICS_FILE};
use vlp_train::{MetricsRecord, PretrainConfig, TrainEnd, TrainObserver, TrainStart};

/// Progress of one run: bar or lines on stderr, curves into the run folder.
pub struct Progress {
    bar: ProgressBar,
    steps: usize,
    log_every: usize,
    /// Where the run's curves go (`None`: no curves).
    out: Option<PathBuf>,
    records: Vec<MetricsRecord>,
    /// The architecture, device and folder named in the start lines.
    architecture: &'static str,
    context: String,
    /// What is trained on what: ("pre-training", "pairs") by default.
    task: (&'static str, &'static str),
}

impl Progress {
    /// Progress of a run of `config` on `device`, drawing its curves into
    /// `out` when given.
    pub fn new(config: &PretrainConfig, device: &str, out: Option<PathBuf>) -> Self {
        let precision = config.precision;
        let context = match &out {
            Some(out) => format!("on {device} in {precision} (run folder {})", out.display()),
            None => format!("on {device} in {precision}"),
        };
        Self {
            bar: progress_bar(config.steps),
            steps: config.steps,
            log_every: config.log_every,
            out,
            records: Vec::new(),
            architecture: config.model.architecture.name(),
            context,
            task: ("pre-training", "pairs"),
        }
    }

    /// The start line names `verb` (`fine-tuning`) and `examples` (`questions`).
    pub fn with_task(mut self, verb: &'static str, examples: &'static str) -> Self {
        self.task = (verb, examples);
        self
    }
}

fn progress_bar(steps: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:25}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

impl TrainObserver for Progress {
    fn started(&mut self, start: &TrainStart) {
        eprintln!(
            "model: {} architecture, {:.2} M parameters",
            self.architecture,
            start.parameters as f64 / 1e6
        );
        if let Some(mix) = &start.task_mix {
            eprintln!("task sampling: one objective per step, {mix}");
        }
        let micro_batches = match start.micro_batches {
            1 => String::new(),
            parts => format!(
                " ({parts} micro-batches of {} at once)",
                start.batch_size / parts
            ),
        };
        let (verb, examples) = self.task;
        eprintln!(
            "{verb} {} steps of {} {examples}{micro_batches} {}",
            start.steps, start.batch_size, self.context
        );
        if start.first_step > 0 {
            eprintln!("resuming after step {}", start.first_step);
            self.bar.set_position(start.first_step as u64);
            // The curves start with the lines the stopped run logged.
            let logged = self
                .out
                .as_ref()
                .map(|out| read_metrics(&out.join(METRICS_FILE)));
            self.records = logged.and_then(Result::ok).unwrap_or_default();
        }
    }

    fn stepped(&mut self, _step: usize) {
        self.bar.inc(1);
    }

    fn logged(&mut self, record: &MetricsRecord) -> vlp_train::Result<()> {
        let message = record.summary();
        if !self.bar.is_hidden() {
            self.bar.set_message(message);
        } else if record.step.is_multiple_of(self.log_every * 5) || record.step == self.steps {
            eprintln!(
                "step {}/{} {message} elapsed {:.0}s",
                record.step, self.steps, record.elapsed_seconds
            );
        }
        self.records.push(record.clone());
        Ok(())
    }

    fn finished(&mut self, end: &TrainEnd) {
        self.bar.finish_and_clear();
        eprintln!(
            "trained {} steps in {:.1}s ({} distinct batch shapes)",
            self.steps, end.seconds, end.batch_shapes
        );
        if let Some(out) = &self.out {
            if let Err(err) = crate::plot::loss_curves(&self.records, &out.join(CURVES_FILE)) {
                eprintln!("warning: no loss curves: {err:#}");
            }
        }
    }
}
