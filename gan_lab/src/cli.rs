//! The `gan-lab` command line: train the lessons, fetch data, manage the evaluator.

use crate::builders::Vae;
use crate::builders::{Acgan, Builder, Cdcgan, Dcgan, Family, Infogan, Sagan};
use crate::course::sandbox::Limits;
use crate::data::{self, Dataset, Source, Split};
use crate::losses::{CriticSchedule, Objective};
use crate::metrics::{ConfidenceReport, Evaluator};
use crate::models::dcgan::Init;
use crate::vae::Reconstruction;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "gan-lab", version, about = "Train and inspect the gan_lab course's GANs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Train a lesson's model.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// The frozen digit classifier that judges generated samples.
    #[command(subcommand)]
    Evaluator(EvaluatorCommand),
    /// Sample a grid of images from a trained model's checkpoint.
    Sample {
        /// A checkpoint folder (e.g. runs/dcgan/checkpoint).
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long, default_value_t = 64)]
        n: i64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
    },
    /// Explore a trained model's latent space: a scan of every dimension and sweeps of the five
    /// with the largest visible effect, a sweep of one, latent vs screen-space interpolation (a
    /// picture and a GIF), and looping GIFs of an interpolation and of the training progress.
    Explore {
        #[arg(long)]
        checkpoint: PathBuf,
        /// The latent dimension to sweep (default: the one with the largest visible effect).
        #[arg(long)]
        dim: Option<i64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "runs/explore")]
        out: PathBuf,
    },
    /// Grade the exercises: each exercise's tests in their own process, with a time limit.
    Grade {
        /// Only these lessons (e.g. dcgan); all by default.
        #[arg(long)]
        lesson: Vec<String>,
        /// Seconds each test may take.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Print the results as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Grade students' submissions (student editions: folders, .zip or .tar.gz) against this
    /// master's exercise tests, hidden ones included; writes grades.csv and, per submission,
    /// feedback.md and Gradescope's results.json.
    Autograde {
        #[arg(required = true)]
        submissions: Vec<PathBuf>,
        /// Only these lessons (e.g. dcgan); all by default.
        #[arg(long)]
        lesson: Vec<String>,
        /// Submissions graded at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long)]
        out: PathBuf,
        /// Seconds each test may take.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Memory (address space) each test process may use, in GB.
        #[arg(long, default_value_t = 8.0)]
        memory_gb: f64,
    },
    /// Write the files an autograding service runs for each submission.
    Autograder {
        /// The Gradescope autograder zip to write.
        #[arg(long)]
        gradescope: PathBuf,
    },
    /// Write the student edition of this repository (the instructors' master) to a new folder.
    Release {
        #[arg(long)]
        out: PathBuf,
    },
    /// The lesson notebooks.
    #[command(subcommand)]
    Notebooks(NotebooksCommand),
    /// Trains the models of a lesson's comparison and prints its table.
    #[command(subcommand)]
    Compare(CompareCommand),
    /// Training speed of the lesson models beside the PyTorch reference run as an informed user
    /// runs it (eager, channels-last, torch.compile), alternating runs.
    Bench {
        /// Models (comma-separated: dcgan, cdcgan, vae, wgan-gp, infogan); default: every lesson
        /// model at batch 64, and the DCGAN at 128 too.
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Batch sizes for --models (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = [64])]
        batch: Vec<i64>,
        /// Runs of each side per case; the table shows medians.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Threads for both sides (default: libtorch's, one per core).
        #[arg(long)]
        threads: Option<i64>,
        /// Writes the table here as well (Markdown).
        #[arg(long)]
        out: Option<PathBuf>,
        /// How to run the PyTorch reference (comma-separated: eager, channels-last, compile);
        /// default: all three in float32, eager and channels-last in bfloat16. The speed-up is
        /// against the fastest.
        #[arg(long, value_delimiter = ',')]
        reference: Vec<String>,
        /// Run the cases with bfloat16 forward passes on both sides (gan_lab's bf16, the reference
        /// under torch.autocast; CPUs with avx512_bf16); % of matmul peak stays against fp32's.
        #[arg(long)]
        bf16: bool,
        /// Measure gan_lab's side of one case in this process (used by the benchmark itself).
        #[arg(long, hide = true)]
        worker: bool,
        /// Time gan_lab's side of one case op by op, in this process, and print where a step goes
        /// (no reference run; timing every op slows the step a little).
        #[arg(long)]
        profile: bool,
    },
}

#[derive(Subcommand)]
enum CompareCommand {
    /// VAE vs GAN (problem 5): the DCGAN and VAEs for each λ_KL at the same budget, scored side by side.
    VaeGan {
        #[arg(long, default_value_t = 1500)]
        steps: i64,
        /// λ_KL values for the VAEs; the first is the one shown beside the GAN.
        #[arg(long, value_delimiter = ',', default_values_t = [1e-2, 1e-3, 1e-1, 1.0])]
        lambdas: Vec<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "runs/vae-vs-gan")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum NotebooksCommand {
    /// Regenerate notebooks/ (the student edition) from solutions/.
    Student {
        /// Change nothing; fail if notebooks/ is out of date.
        #[arg(long)]
        check: bool,
    },
    /// Re-run solutions/ through the gan-lab kernel to refresh their outputs (quick mode unless
    /// --full), then regenerate notebooks/. A full run also gives the student edition its
    /// pictures of correct runs and their times (before the cells tagged `reference`).
    Execute {
        #[arg(long)]
        full: bool,
        /// Only these notebooks (e.g. 01-dcgan); default: all.
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TrainCommand {
    /// The DCGAN 32×32 lesson: writes samples.png, losses.svg, history.json and a checkpoint.
    Dcgan(DcganArgs),
    /// The DCGAN lesson's conditional DCGAN (section 2.2): also class_grid.png (a row per digit,
    /// a column per noise vector) and the class accuracy of 10,000 samples.
    Cdcgan(RunArgs),
    /// ACGAN (auxiliary classifier): the DCGAN with a class input and a class head on D.
    Acgan(RunArgs),
    /// SAGAN (the IISc final project): self-attention and spectral normalisation in both
    /// networks, the WGAN-GP loss, TTUR learning rates; --conditional for the class-conditional
    /// SAGAN (a label embedding in G, a projection discriminator).
    Sagan(SaganArgs),
    /// InfoGAN: latent codes and a Q head; also code_grid.png (columns sweep the categorical
    /// code), continuous_<i>.png (a continuous code from -2 to 2) and the code accuracy.
    Infogan(RunArgs),
    /// The VAE of the VAE vs GAN lesson: learning curves, reconstructions, samples, t-SNE map.
    Vae(VaeArgs),
}

#[derive(Args)]
struct VaeArgs {
    #[arg(long, default_value_t = 1500)]
    steps: i64,
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    #[arg(long, default_value_t = 32)]
    latent_dim: i64,
    /// Weight of the KL term (both terms averaged, as in the text).
    #[arg(long, default_value_t = 1e-2)]
    lambda_kl: f64,
    /// Binary cross-entropy instead of MSE for the reconstruction term.
    #[arg(long)]
    bce: bool,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// Where to compute: cpu, cuda (the first GPU) or cuda:N, through libtorch.
    #[arg(long, default_value = "cpu", value_parser = crate::device::parse)]
    device: tch::Device,
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The training data, for every model.
#[derive(Args)]
struct DataArgs {
    /// mnist, mnist-full, fashion-mnist, cifar10, celeba, or a folder of PNG/JPEG images
    /// (labelled when it holds one sub-folder per class).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// With --dataset celeba: label each face by this attribute (e.g. Smiling; two classes).
    #[arg(long)]
    attribute: Option<String>,
    /// Train on at most this many images (CelebA's default: 50,000).
    #[arg(long)]
    limit: Option<usize>,
    /// 32 or 64 (64 adds a block to the networks).
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    /// 1 (grey) or 3 (RGB). Default: 3 for cifar10 and celeba, 1 otherwise.
    #[arg(long)]
    channels: Option<i64>,
}

impl DataArgs {
    /// The source, and its split at the chosen size and channels.
    fn load(&self, split: Split) -> Result<(Source, Dataset)> {
        let mut source: Source = self.dataset.parse().context("--dataset")?;
        let channels = self.channels.unwrap_or(default_channels(&source));
        if let Some(n) = self.limit {
            anyhow::ensure!(n >= 1, "--limit {n}: expected 1 or more images");
        }
        match &mut source {
            Source::Celeba(options) => {
                options.attribute = self.attribute.clone();
                options.limit = self.limit;
            }
            _ => anyhow::ensure!(self.attribute.is_none(), "--attribute: only --dataset celeba has attributes"),
        }
        let mut data = match &source {
            // A folder reads only the images it keeps, spread over its classes.
            Source::Folder(dir) => Dataset::from_folder_at_most(dir, self.image_size, channels, self.limit)?,
            _ => Dataset::load(&source, split, self.image_size, channels)?,
        };
        if let Some(n) = self.limit {
            data = data.take(n as i64);
        }
        Ok((source, data))
    }
}

/// Settings every model's training takes.
#[derive(Args)]
struct RunArgs {
    /// Total training steps (default: the lesson's; on --resume: the step count to reach).
    #[arg(long)]
    steps: Option<i64>,
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// n_z, the dimension of the prior N(0, I) (default: the model's, 100; InfoGAN's 62).
    #[arg(long)]
    latent_dim: Option<i64>,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The players' objective: nonsaturating, saturating, lsgan, wgan (clip 0.01, RMSProp,
    /// the n_critic schedule of IFT6135), wgan-gp (λ 10, Adam(1e-4, 0, 0.9), n_critic 5) or
    /// hinge. Default: the model's (nonsaturating; SAGAN's wgan-gp).
    #[arg(long)]
    objective: Option<String>,
    /// Critic (D) updates per generator update (default: the objective's).
    #[arg(long)]
    n_critic: Option<i64>,
    /// Generator updates per step, after D's: 2 for "train D once and G twice".
    #[arg(long, default_value_t = 1)]
    g_steps: i64,
    /// Learning rate of both players (default: the model's and objective's, 2e-4 for the DCGAN lesson's Adam).
    #[arg(long)]
    lr: Option<f64>,
    /// The generator's learning rate, if it differs (e.g. InfoGAN's paper: 1e-3).
    #[arg(long)]
    lr_g: Option<f64>,
    /// The discriminator's learning rate, if it differs.
    #[arg(long)]
    lr_d: Option<f64>,
    /// Keep a grid of the fixed noise's images every this many steps (snapshots/); 0: never.
    #[arg(long, default_value_t = 250)]
    snapshot_every: i64,
    /// Score the generator (IS, Mode score, FID on the frozen evaluator) every this many steps; 0:
    /// off. Default: the model's where the data has an evaluator (SAGAN: 500, as the IISc final
    /// project tracks FID), else off.
    #[arg(long)]
    metrics_every: Option<i64>,
    /// Keep a moving average of G's weights with this decay (e.g. 0.997) and report the averaged
    /// generator's class accuracy and scores beside the live one's; 0: off. Default: the model's
    /// (0.997 for cdcgan, off for the others).
    #[arg(long)]
    average_generator: Option<f64>,
    /// Run the forward passes in bfloat16 (CPUs with avx512_bf16; weights and optimizers stay float32).
    #[arg(long)]
    bf16: bool,
    /// Where to compute: cpu, cuda (the first GPU) or cuda:N, through libtorch.
    #[arg(long, default_value = "cpu", value_parser = crate::device::parse)]
    device: tch::Device,
    /// Output folder (default: runs/<model>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from a checkpoint folder (e.g. runs/dcgan/checkpoint).
    #[arg(long)]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct SaganArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The class-conditional SAGAN: G takes the label, D projects it onto its features (takes
    /// as many classes as the dataset has).
    #[arg(long)]
    conditional: bool,
}

#[derive(Args)]
struct DcganArgs {
    #[command(flatten)]
    run: RunArgs,
    #[arg(long, default_value_t = 32)]
    ngf: i64,
    #[arg(long, default_value_t = 32)]
    ndf: i64,
    /// Use the saturating ("true" minimax) generator loss.
    #[arg(long)]
    saturating: bool,
    /// Use the library's default weight initialisation instead of DCGAN's N(0, 0.02).
    #[arg(long)]
    default_init: bool,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a dataset's official files and verify their checksums (resumes an interrupted
    /// download when run again).
    Fetch {
        /// mnist (the full 60k/10k set), cifar10 (the binary version) or celeba (aligned faces,
        /// attributes and the official partition).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(data::FETCHABLE))]
        name: String,
        /// Where to put the files (default: datasets/mnist-full, datasets/cifar10, datasets/celeba).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Base URL of a mirror serving the files under their official names.
        #[arg(long)]
        mirror: Option<String>,
    },
}

#[derive(Subcommand)]
enum EvaluatorCommand {
    /// Train the evaluator of a labelled dataset (at 32×32) and write its weights, checksum and
    /// classes, by default to datasets/evaluator/<dataset>_lenet.safetensors, where the scores
    /// of models trained on that set find it.
    Train {
        /// mnist (the shipped digits), fashion-mnist, cifar10, mnist-full, or a labelled folder.
        #[arg(long, default_value = "mnist")]
        dataset: String,
        #[arg(long, default_value_t = 12)]
        epochs: i64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where to write the weights (default: the dataset's evaluator).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An evaluator's accuracy on its dataset's held-out part.
    Accuracy {
        #[arg(long, default_value = "mnist")]
        dataset: String,
    },
}

/// Runs the command line; returns the process exit code. Errors are printed on one line.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.to_string().starts_with("interrupted") {
                130
            } else {
                1
            }
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(TrainCommand::Dcgan(a)) => {
            let mut builder = Dcgan::mnist32().ngf(a.ngf).ndf(a.ndf);
            if a.saturating {
                builder = builder.objective(Objective::Saturating);
            }
            if a.default_init {
                builder = builder.init(Init::Default);
            }
            train(builder, &a.run)
        }
        Command::Train(TrainCommand::Cdcgan(a)) => train(Cdcgan::mnist32(), &a),
        Command::Train(TrainCommand::Acgan(a)) => train(Acgan::mnist32(), &a),
        Command::Train(TrainCommand::Infogan(a)) => train(Infogan::mnist32(), &a),
        Command::Train(TrainCommand::Sagan(a)) => match a.conditional {
            true => train(Sagan::mnist32().classes(10), &a.run),
            false => train(Sagan::mnist32(), &a.run),
        },
        Command::Train(TrainCommand::Vae(a)) => train_vae(&a),
        Command::Bench { models, batch, rounds, threads, reference, bf16, out, worker, profile } => {
            let threads = threads.unwrap_or(tch::get_num_threads() as i64);
            let mode = match (worker, profile) {
                (_, true) => BenchMode::Profile,
                (true, false) => BenchMode::Worker,
                (false, false) => BenchMode::Compare,
            };
            for r in &reference {
                anyhow::ensure!(
                    crate::bench::VARIANTS.contains(&r.as_str()),
                    "--reference {r}: expected {}",
                    crate::bench::VARIANTS.join(", ")
                );
            }
            let references = if reference.is_empty() { crate::bench::default_references(bf16) } else { reference };
            bench(&models, &batch, rounds, threads, (bf16, references), out.as_deref(), mode)
        }
        Command::Compare(CompareCommand::VaeGan { steps, lambdas, seed, out }) => {
            compare_vae_gan(steps, &lambdas, seed, &out)
        }
        Command::Data(DataCommand::Fetch { name, dir, mirror }) => {
            let mut set = data::RemoteSet::named(&name)?;
            if let Some(base) = mirror {
                set = set.from_mirror(&base);
            }
            let default_dir = data::datasets_dir().join(set.folder);
            let dir = dir.unwrap_or_else(|| default_dir.clone());
            data::fetch(&set, &dir, true)?;
            let dataset = if name == "mnist" { "mnist-full" } else { &name };
            if dir == default_dir {
                println!("{name} is in {}; train on it with --dataset {dataset}", dir.display());
            } else {
                println!(
                    "{name} is in {}; to train on it, set GAN_LAB_DATA to its parent and name it {}",
                    dir.display(),
                    set.folder
                );
            }
            Ok(())
        }
        Command::Evaluator(EvaluatorCommand::Train { dataset, epochs, seed, out }) => {
            anyhow::ensure!(epochs >= 1, "--epochs {epochs}: expected 1 or more");
            let (train, test) = evaluator_data(&dataset)?;
            let out = out.unwrap_or_else(|| crate::metrics::shipped_path(&crate::metrics::evaluator_name(&train)));
            let started = Instant::now();
            let ev = Evaluator::train(&train, epochs, seed)?;
            let accuracy = ev.accuracy(&test)?;
            ev.save(&out)?;
            println!(
                "{} evaluator trained in {:.0} s on {}: {:.2}% on {} ({} images); weights in {} (SHA-256 {})",
                ev.info.dataset,
                started.elapsed().as_secs_f64(),
                train.describe(),
                100.0 * accuracy,
                test.name,
                test.len(),
                out.display(),
                data::sha256_file(&out)?
            );
            Ok(())
        }
        Command::Sample { checkpoint, n, seed, out } => {
            anyhow::ensure!(n >= 1, "--n {n}: expected 1 or more");
            let gan = crate::builders::load_checkpoint(&checkpoint)?;
            crate::viz::save_grid(&gan.sample(n, seed), crate::viz::default_columns(n), &out)?;
            println!("{n} samples of {} (step {}) in {}", checkpoint.display(), gan.step, out.display());
            Ok(())
        }
        Command::Explore { checkpoint, dim, seed, out } => explore(&checkpoint, dim, seed, &out),
        Command::Grade { lesson, timeout, json } => {
            let limits = Limits { timeout: Duration::from_secs(timeout), ..Limits::default() };
            let results = crate::course::grade::grade(&repo_root(), &lesson, limits)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", crate::course::grade::table(&results));
            }
            Ok(())
        }
        Command::Autograde { submissions, lesson, jobs, out, timeout, memory_gb } => {
            anyhow::ensure!(jobs >= 1, "--jobs {jobs}: expected 1 or more");
            anyhow::ensure!(memory_gb > 0.0, "--memory-gb {memory_gb}: expected a positive number");
            // One build tree per machine (scripts/setup.sh exports GAN_LAB_HOME), else per checkout.
            let work = match std::env::var_os("GAN_LAB_HOME") {
                Some(home) => PathBuf::from(home).join("autograde"),
                None => repo_root().join("target/autograde"),
            };
            let options = crate::course::autograde::Options {
                lessons: lesson,
                jobs,
                limits: Limits {
                    timeout: Duration::from_secs(timeout),
                    memory: (memory_gb * (1u64 << 30) as f64) as u64,
                },
                work,
            };
            let started = Instant::now();
            let reports = crate::course::autograde::autograde(&repo_root(), &submissions, &out, &options)?;
            println!(
                "{} submissions graded in {:.0} s; grades in {}",
                reports.len(),
                started.elapsed().as_secs_f64(),
                out.join("grades.csv").display()
            );
            Ok(())
        }
        Command::Autograder { gradescope } => {
            let n = crate::course::gradescope::write_bundle(&repo_root(), &gradescope)?;
            println!(
                "Gradescope autograder in {} ({n} files): upload it as the assignment's autograder",
                gradescope.display()
            );
            Ok(())
        }
        Command::Release { out } => {
            let s = crate::course::release::release(&repo_root(), &out)?;
            println!(
                "student edition in {}: {} files, {} notebooks, {} solution regions replaced by stubs",
                out.display(),
                s.files,
                s.notebooks,
                s.stubs
            );
            Ok(())
        }
        Command::Notebooks(NotebooksCommand::Student { check }) => {
            let stale = crate::course::notebooks::write_student_notebooks(&repo_root(), check)?;
            for path in &stale {
                println!("{} {}", if check { "out of date:" } else { "wrote" }, path.display());
            }
            anyhow::ensure!(!check || stale.is_empty(), "notebooks/ is out of date: run `gan-lab notebooks student`");
            Ok(())
        }
        Command::Notebooks(NotebooksCommand::Execute { full, names }) => {
            // Executing records the kernel's metadata in solutions/: the student edition follows.
            crate::course::notebooks::execute(&repo_root(), full, &names)?;
            for path in crate::course::notebooks::write_student_notebooks(&repo_root(), false)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Evaluator(EvaluatorCommand::Accuracy { dataset }) => {
            let (_, test) = evaluator_data(&dataset)?;
            let ev = Evaluator::for_data(&test)?;
            let accuracy = ev.accuracy(&test)?;
            println!(
                "{} evaluator accuracy on {} ({} images): {:.2}%",
                ev.info.dataset,
                test.name,
                test.len(),
                100.0 * accuracy
            );
            Ok(())
        }
    }
}

fn explore(checkpoint: &std::path::Path, dim: Option<i64>, seed: u64, out: &std::path::Path) -> Result<()> {
    use crate::explore::{latent_vs_screen_frames, strongest_dimensions, sweep};
    use crate::viz;
    let gan = crate::builders::load_checkpoint(checkpoint)?;
    if let Some(dim) = dim {
        anyhow::ensure!(
            (0..gan.latent_dim).contains(&dim),
            "--dim {dim}: expected a latent dimension between 0 and {}",
            gan.latent_dim - 1
        );
    }
    crate::files::ensure_writable_dir(out)?;
    let z = gan.draw_latent(16, seed);
    // Every dimension scanned at ±3 on the 16 z; the five of largest visible effect swept, 2 rows each.
    let strongest = strongest_dimensions(&gan, &z, 3.0, 5)?;
    let sweeps: Vec<tch::Tensor> =
        strongest.iter().map(|&(d, _)| sweep(&gan, &z.narrow(0, 0, 2), d, -3.0, 3.0, 11)).collect::<Result<_>>()?;
    viz::save_grid(&tch::Tensor::cat(&sweeps, 0), 11, &out.join("strongest.png"))?;
    let ranking: Vec<String> = strongest.iter().map(|(d, e)| format!("{d} ({e:.3})")).collect();
    println!("dimensions of largest visible effect (mean pixel change from -3 to 3): {}", ranking.join(", "));
    // One dimension from -3 to 3, the others fixed: 8 rows of z, 11 columns.
    let dim = dim.unwrap_or(strongest[0].0);
    viz::save_grid(&sweep(&gan, &z.narrow(0, 0, 8), dim, -3.0, 3.0, 11)?, 11, &out.join("sweep.png"))?;
    // Latent interpolation above the pixel blend of its two ends, for 4 pairs.
    let mut rows = Vec::new();
    for i in 0..4 {
        let (z1, z2) = (z.get(2 * i), z.get(2 * i + 1));
        let latent = crate::explore::interpolation(&gan, &z1, &z2, 10);
        let screen = crate::explore::blend(&latent.get(0), &latent.get(9), 10);
        rows.extend([latent, screen]);
    }
    viz::save_grid(&tch::Tensor::cat(&rows, 0), 10, &out.join("latent-vs-screen.png"))?;
    // A looping GIF: 16 images walking from z to a second z and back.
    viz::save_gif(&crate::explore::interpolation_frames(&gan, &z, 24, 4), 80, &out.join("interpolation.gif"))?;
    // The same kind of walk in latent space (left) and in screen space (right), 4 pairs.
    let frames = latent_vs_screen_frames(&gan, &z.narrow(0, 0, 4), &z.narrow(0, 4, 4), 24);
    viz::save_gif(&frames, 80, &out.join("latent-vs-screen.gif"))?;
    // The training progress, from the run's fixed-noise snapshots.
    let snaps = checkpoint.parent().map(|p| p.join("snapshots"));
    let mut pngs: Vec<PathBuf> = snaps
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "png")).collect()
        })
        .unwrap_or_default();
    pngs.sort();
    if pngs.is_empty() {
        println!("no snapshots beside {}: progress.gif skipped", checkpoint.display());
    } else {
        let frames = pngs
            .iter()
            .map(|p| Ok(image::open(p).with_context(|| format!("snapshot {}", p.display()))?.to_rgb8()))
            .collect::<Result<Vec<_>>>()?;
        viz::save_gif(&frames, 400, &out.join("progress.gif"))?;
    }
    println!(
        "strongest.png, sweep.png (dimension {dim}), latent-vs-screen.png, interpolation.gif, latent-vs-screen.gif{} in {}",
        if pngs.is_empty() { "" } else { ", progress.gif" },
        out.display()
    );
    Ok(())
}

/// The repository this build of gan-lab belongs to.
fn repo_root() -> PathBuf {
    crate::course::checkout()
}

/// Where a run computes, for its first line: the CPU's backend, or the GPU libtorch drives.
fn placement(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => crate::backend::current().describe(),
        gpu => format!("{} through libtorch (gan_lab's own kernels are CPU-only)", crate::device::name(gpu)),
    }
}

/// Trains `builder` with the command line's settings, then reports what the evaluator sees.
fn train<F: Family>(builder: Builder<F>, a: &RunArgs) -> Result<()> {
    let (source, data) = a.data.load(Split::Train)?;
    let (image_size, channels) = (data.image_size(), data.channels());
    // A conditional model takes as many classes as the data has.
    let builder = match (Family::classes(&builder.model), data.classes.len()) {
        (0, _) | (_, 0) => builder,
        (_, n) => builder.classes(n as i64),
    }
    .image_size(image_size)
    .channels(channels);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(F::NAME));
    let steps = a.steps.unwrap_or(builder.train.steps);
    let scorable = crate::metrics::shipped_path(&crate::metrics::evaluator_name(&data)).is_file();
    let metrics_every = match (a.metrics_every, scorable) {
        (Some(n), _) => n,
        (None, true) => builder.train.metrics_every,
        (None, false) => 0,
    };
    let mut builder = match &a.objective {
        Some(name) => builder.objective(parse_objective(name)?),
        None => builder,
    };
    if let Some(n) = a.n_critic {
        builder = builder.n_critic(CriticSchedule::Fixed(n));
    }
    if let Some(lr) = a.lr {
        builder = builder.lr(lr);
    }
    let mut builder = builder
        .steps(steps)
        .batch_size(a.batch_size)
        .seed(a.seed)
        .g_steps(a.g_steps)
        .metrics_every(metrics_every)
        .snapshot_every(a.snapshot_every)
        .bf16(a.bf16)
        .device(a.device)
        .out_dir(&out);
    if let Some(n) = a.latent_dim {
        builder = builder.latent_dim(n);
    }
    if let Some(decay) = a.average_generator {
        builder = builder.average_generator(decay);
    }
    if let Some(lr) = a.lr_g {
        builder = builder.lr_g(lr);
    }
    if let Some(lr) = a.lr_d {
        builder = builder.lr_d(lr);
    }
    let untrained = builder.build()?;
    let mut first_step = 0;
    if let Some(dir) = &a.resume {
        first_step = crate::checkpoint::step_of(dir)?;
        builder = builder.resume(dir);
    }
    stop_on_ctrl_c("stopping after this step and saving a checkpoint");
    builder.check(&data)?;
    eprintln!(
        "training a {} for {steps} steps on {}; Ctrl-C stops and saves a checkpoint\n  data: {}",
        F::NAME,
        placement(a.device),
        data.describe(),
    );
    let started = Instant::now();
    let gan = builder.train(&data)?;
    let seconds = started.elapsed().as_secs_f64();
    let done = (gan.step - first_step).max(1);
    println!(
        "trained {} steps in {:.1} s ({:.1} ms per step, {} threads, {}); outputs in {}",
        gan.step - first_step,
        seconds,
        1000.0 * seconds / done as f64,
        tch::get_num_threads(),
        if gan.config.bf16 { "bfloat16 forward passes" } else { "float32" },
        out.display()
    );
    if source == Source::Mnist && image_size == 32 && channels == 1 {
        let ev = Evaluator::shipped()?;
        let report = ConfidenceReport::measure(&ev, &gan.sample(1000, 1), &untrained.sample(1000, 1))?;
        println!("{report}");
        if gan.classes > 0 {
            println!("live generator: {}", crate::explore::class_accuracy(&gan, &ev, 10_000, 1)?);
            if let Some(average) = &gan.average {
                let accuracy = gan.with_average(|g| crate::explore::class_accuracy(g, &ev, 10_000, 1))??;
                println!("averaged generator (β {}): {accuracy}", average.decay);
            }
        }
        if !gan.codes.categorical.is_empty() {
            println!("{}", crate::explore::code_accuracy(&gan, &ev, 10_000, 1, 0)?);
        }
        let reference = crate::metrics::RealReference::new(&ev, &data.images);
        let started = Instant::now();
        let score = |g: &crate::Gan| reference.score(&ev, &g.sample(reference.ceiling.n, 2));
        let scores = score(&gan);
        let averaged = match &gan.average {
            Some(_) => format!("\n  averaged generator {}", gan.with_average(score)?),
            None => String::new(),
        };
        println!(
            "scores on the MNIST evaluator (not ImageNet Inception), {:.1} s to compute:\n  \
             trained generator  {scores}{averaged}\n  real digits        {}",
            started.elapsed().as_secs_f64(),
            reference.ceiling
        );
    } else if let Ok(ev) = Evaluator::for_data(&data) {
        if ev.check_reads(&data.name, &data.images).is_ok() {
            let reference = crate::metrics::RealReference::new(&ev, &data.images);
            let scores = reference.score(&ev, &gan.sample(reference.ceiling.n, 2));
            println!(
                "scores on the {} evaluator (`gan-lab evaluator train --dataset ...`):\n  trained generator  {scores}\n  \
                 real images        {}",
                ev.info.dataset, reference.ceiling
            );
        }
    }
    Ok(())
}

/// An objective by its command-line name.
fn parse_objective(name: &str) -> Result<Objective> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "nonsaturating" | "non-saturating" | "dcgan" => Objective::NonSaturating,
        "saturating" => Objective::Saturating,
        "lsgan" | "least-squares" => Objective::LeastSquares,
        "wgan" => Objective::wgan(),
        "wgan-gp" | "wgangp" => Objective::wgan_gp(),
        "hinge" => Objective::Hinge,
        other => bail!("--objective {other}: expected nonsaturating, saturating, lsgan, wgan, wgan-gp or hinge"),
    })
}

/// An evaluator's training and held-out sets at 32×32 (a folder is both).
fn evaluator_data(dataset: &str) -> Result<(Dataset, Dataset)> {
    let source: Source = dataset.parse().context("--dataset")?;
    anyhow::ensure!(
        !matches!(source, Source::Celeba(_)),
        "--dataset celeba: an evaluator needs classes; CelebA's attributes are not one"
    );
    let channels = default_channels(&source);
    let train = Dataset::load(&source, Split::Train, 32, channels)?;
    anyhow::ensure!(
        train.labels.is_some(),
        "--dataset {dataset}: unlabelled; an evaluator needs one sub-folder per class"
    );
    Ok((train, Dataset::load(&source, Split::Test, 32, channels)?))
}

/// The colour sets are RGB; the digits, Fashion-MNIST and folders grey unless asked.
fn default_channels(source: &Source) -> i64 {
    match source {
        Source::Cifar10 | Source::Celeba(_) => 3,
        _ => 1,
    }
}

fn train_vae(a: &VaeArgs) -> Result<()> {
    let ((_, data), (_, test)) = (a.data.load(Split::Train)?, a.data.load(Split::Test)?);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs/vae"));
    let kind = if a.bce { Reconstruction::Bce } else { Reconstruction::Mse };
    let builder = Vae::mnist32()
        .image_size(data.image_size())
        .channels(data.channels())
        .steps(a.steps)
        .batch_size(a.batch_size)
        .latent_dim(a.latent_dim)
        .lambda_kl(a.lambda_kl)
        .reconstruction(kind)
        .seed(a.seed)
        .lr(a.lr)
        .held_out(&test)
        .device(a.device)
        .out_dir(&out);
    builder.check(&data)?;
    stop_on_ctrl_c("stopping after this step and saving the model");
    eprintln!(
        "training a VAE for {} steps on {}; Ctrl-C stops and saves\n  data: {}",
        a.steps,
        placement(a.device),
        data.describe()
    );
    let started = Instant::now();
    let vae = builder.train(&data)?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "trained {} steps in {seconds:.1} s ({:.1} ms per step, {} threads); outputs in {}",
        vae.step,
        1000.0 * seconds / vae.step.max(1) as f64,
        tch::get_num_threads(),
        out.display()
    );
    println!(
        "MSE of the {} held-out images' reconstructions (pixels in [-1, 1]): {:.5}",
        test.len(),
        vae.test_mse(&test)?
    );
    let started = Instant::now();
    let map = crate::explore::latent_map(&vae, &test, 2000)?;
    crate::viz::save_chart(&map, &out.join("tsne.png"))?;
    println!(
        "t-SNE of {} held-out latents in {:.1} s: {}",
        map.points.size()[0],
        started.elapsed().as_secs_f64(),
        out.join("tsne.png").display()
    );
    if let Ok(ev) = Evaluator::for_data(&data) {
        if ev.check_reads(&data.name, &data.images).is_ok() {
            let reference = crate::metrics::RealReference::new(&ev, &data.images);
            let scores = reference.score(&ev, &vae.sample(reference.ceiling.n, 2));
            println!(
                "scores on the {} evaluator:\n  VAE samples {scores}\n  real images {}",
                ev.info.dataset, reference.ceiling
            );
        }
    }
    Ok(())
}

/// First Ctrl-C: ask the training loop to stop after its step (it then saves). Second: exit at once.
fn stop_on_ctrl_c(message: &'static str) {
    let _ = ctrlc::set_handler(move || {
        static PRESSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if PRESSED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\n{message} (Ctrl-C again to quit at once)");
        crate::train::request_stop();
    });
}

fn compare_vae_gan(steps: i64, lambdas: &[f64], seed: u64, out: &std::path::Path) -> Result<()> {
    anyhow::ensure!(!lambdas.is_empty(), "--lambdas: expected at least one λ_KL");
    crate::files::ensure_writable_dir(out)?;
    let (data, test) = (Dataset::mnist(Split::Train)?, Dataset::mnist(Split::Test)?);
    let ev = Evaluator::shipped()?;
    let reference = crate::metrics::RealReference::new(&ev, &data.images);
    let n = reference.ceiling.n;
    let mut table = crate::vae::Comparison::new(&reference);
    stop_on_ctrl_c("stopping after this step");
    eprintln!("DCGAN, {steps} steps");
    let started = Instant::now();
    let gan = Dcgan::mnist32().steps(steps).seed(seed).snapshot_every(0).out_dir(out.join("dcgan")).train(&data)?;
    table.push(
        "DCGAN",
        Some(gan.step),
        Some(started.elapsed().as_secs_f64()),
        None,
        reference.score(&ev, &gan.sample(n, 2)),
    );
    let mut rows = Vec::new();
    for (i, &lambda) in lambdas.iter().enumerate() {
        eprintln!("VAE λ_KL = {lambda}, {steps} steps");
        let started = Instant::now();
        let vae = Vae::mnist32().steps(steps).seed(seed).lambda_kl(lambda).held_out(&test);
        let vae = vae.out_dir(out.join(format!("vae-lambda-{lambda}"))).train(&data)?;
        let seconds = started.elapsed().as_secs_f64();
        let scores = reference.score(&ev, &vae.sample(n, 2));
        table.push(&format!("VAE λ_KL = {lambda}"), Some(vae.step), Some(seconds), Some(vae.test_mse(&test)?), scores);
        if i == 0 {
            let side = tch::Tensor::cat(&[vae.sample(32, 3), gan.sample(32, 3)], 0);
            crate::viz::save_grid(&side, 8, &out.join("vae_vs_gan.png"))?;
        }
        rows.push(tch::Tensor::cat(
            &[crate::explore::reconstruction_rows(&vae, &test.images, 8)?, vae.sample(8, 3)],
            0,
        ));
    }
    crate::viz::save_grid(&tch::Tensor::cat(&rows, 0), 8, &out.join("lambda_sweep.png"))?;
    crate::files::write_atomic(&out.join("table.md"), table.to_string().as_bytes())?;
    crate::files::write_atomic(&out.join("table.json"), &serde_json::to_vec_pretty(&table)?)?;
    println!("{table}");
    println!(
        "{} threads; vae_vs_gan.png: 32 VAE samples (top 4 rows) above 32 DCGAN samples; lambda_sweep.png: per λ_KL \
         in the order given, 8 held-out digits, their reconstructions and 8 samples; all in {}",
        tch::get_num_threads(),
        out.display()
    );
    Ok(())
}

/// What `gan-lab bench` does: compare with the reference, measure one case for a comparison, or
/// time one case op by op.
#[derive(Clone, Copy, PartialEq)]
enum BenchMode {
    Compare,
    Worker,
    Profile,
}

fn bench(
    models: &[String],
    batches: &[i64],
    rounds: usize,
    threads: i64,
    (bf16, references): (bool, Vec<String>),
    out: Option<&std::path::Path>,
    mode: BenchMode,
) -> Result<()> {
    use crate::bench::{self, Case};
    if bf16 {
        crate::backend::perf::check_bf16().context("--bf16")?;
    }
    anyhow::ensure!(threads >= 1, "--threads {threads}: expected 1 or more");
    let cases = if models.is_empty() {
        Case::lessons()
    } else {
        let mut cases = Vec::new();
        for m in models {
            for &b in batches {
                cases.push(Case::new(m, b).context("--models/--batch")?);
            }
        }
        cases
    };
    let profile = mode == BenchMode::Profile;
    anyhow::ensure!(
        !profile || crate::backend::ops::PROFILER_BUILT,
        "--profile: the op profiler is part of the C++ kernels, which this build of gan_lab does not have"
    );
    crate::backend::init()?;
    let cases: Vec<Case> =
        cases.into_iter().map(|c| Case { bf16, profile, references: references.clone(), ..c }).collect();
    if mode != BenchMode::Compare {
        let flag = if profile { "--profile" } else { "--worker" };
        anyhow::ensure!(cases.len() == 1, "{flag} measures one case: give one model and one batch size");
        let measure = bench::measure(&cases[0], threads)?;
        if !profile {
            println!("{}", serde_json::to_string(&measure)?);
        }
        return Ok(());
    }
    let python = std::env::var("GAN_LAB_PYTHON")
        .context("GAN_LAB_PYTHON: run through scripts/setup.sh or cargo (.cargo/config.toml sets it)")?;
    let script = repo_root().join("tests/reference/bench_reference.py");
    tch::set_num_threads(threads as i32);
    // The machine's fp32 matmul peak: the faster of gan_lab's product (oneDNN) and libtorch's own
    // (MKL), each measured before and after the runs.
    let rates = || [true, false].map(|onednn| bench::matmul_peak(2048, 10, onednn));
    let before = rates();
    eprintln!(
        "fp32 matmul (2048×2048, best of 10) on {threads} threads: {:.1} GFLOP/s (oneDNN's; 0: not in this build \
         or refused by this CPU), {:.1} (libtorch's own, MKL's)",
        before[0], before[1]
    );
    eprintln!("{}", bench::replacements());
    let rows = bench::compare(&cases, rounds, threads, &std::env::current_exe()?, &python, &script)?;
    let after = rates();
    let peak = before.into_iter().chain(after).fold(0.0, f64::max);
    let table = bench::table(&rows, peak);
    println!("{table}");
    println!(
        "{threads} threads; fp32 matmul peak {peak:.1} GFLOP/s (the best of oneDNN's product and libtorch's own, \
         measured before and after: oneDNN's {:.1} and {:.1}, libtorch's {:.1} and {:.1}); medians of {rounds} \
         alternating runs per side; FLOPs per step counted by PyTorch's flop counter{}",
        before[0],
        after[0],
        before[1],
        after[1],
        if bf16 { "; bfloat16 forward passes on both sides" } else { "" }
    );
    if let Some(path) = out {
        crate::files::write_atomic(path, table.as_bytes())?;
    }
    Ok(())
}
