//! The VAE of the VAE vs GAN lesson (DLCV HW4, problems 1 and 5): its builder,
//! its training loop and what the lesson looks at. A VAE has no adversary, so its loop is the
//! plain one: encode, draw z with the reparameterisation, decode, one optimizer on one loss.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use gan_lab::{Dataset, Split, Vae};
//! let (train, test) = (Dataset::mnist(Split::Train)?, Dataset::mnist(Split::Test)?);
//! let vae = Vae::mnist32().held_out(&test).train(&train)?;
//! println!("test MSE {:.5}", vae.test_mse(&test)?);
//! # Ok(()) }
//! ```

use crate::data::{Batcher, Dataset};
use crate::losses::{reparameterize, vae_loss};
pub use crate::losses::{Reconstruction, VaeLoss};
pub use crate::models::vae::{VaeConfig, VaeNet};
use crate::optim::{AdamConfig, Optimizer, OptimizerConfig};
use crate::train::{self, mix, with_seed, Outcome, Progress};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// The VAE's training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeTraining {
    /// Optimizer updates (one mini-batch each).
    pub steps: i64,
    pub batch_size: i64,
    /// Seeds weights, batches and the reparameterisation's noise.
    pub seed: u64,
    /// Weight λ_KL of the KL term (the text's 1e-2, with both terms averaged).
    pub lambda_kl: f64,
    pub reconstruction: Reconstruction,
    pub optimizer: OptimizerConfig,
    /// Channels-last weights and batches ([`crate::perf`]).
    #[serde(default = "yes")]
    pub channels_last: bool,
    /// Forward passes in bfloat16 ([`crate::backend::perf::with_bf16`]; CPUs with `avx512_bf16`).
    #[serde(default)]
    pub bf16: bool,
}

fn yes() -> bool {
    true
}

impl Default for VaeTraining {
    /// The text's settings (Adam 2e-4, β1 0.5, batch 64, λ_KL 1e-2, MSE) for the DCGAN lesson's
    /// budget of 1500 steps, so that the two models compare at equal cost.
    fn default() -> Self {
        VaeTraining {
            steps: 1500,
            batch_size: 64,
            seed: 0,
            lambda_kl: 1e-2,
            reconstruction: Reconstruction::Mse,
            optimizer: AdamConfig::dcgan().into(),
            channels_last: true,
            bf16: false,
        }
    }
}

/// What one training step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VaeStep {
    pub step: i64,
    /// reconstruction + λ_KL · kl.
    pub loss: f64,
    pub reconstruction: f64,
    /// KL per latent dimension, averaged (unweighted).
    pub kl: f64,
}

/// The held-out set's reconstruction error after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs done (fractional for a run that ends mid-epoch).
    pub epoch: f64,
    pub step: i64,
    /// [`VaeModel::test_mse`] on the held-out set.
    pub test_mse: f64,
}

/// Per-step losses and per-epoch held-out MSE of a VAE run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VaeHistory {
    /// The backend the run computed on (`gan_lab::backend`).
    #[serde(default)]
    pub backend: Option<crate::backend::Backend>,
    pub steps: Vec<VaeStep>,
    pub epochs: Vec<EpochRecord>,
}

/// The VAE lesson's model and training settings, ready to train.
#[derive(Debug)]
pub struct Vae {
    pub model: VaeConfig,
    pub train: VaeTraining,
    held_out: Option<Dataset>,
    out_dir: Option<PathBuf>,
}

impl Vae {
    /// 32×32 MNIST, a 32-dimensional latent space, the text's training settings ([`VaeTraining`]).
    pub fn mnist32() -> Vae {
        Vae { model: VaeConfig::mnist32(), train: VaeTraining::default(), held_out: None, out_dir: None }
    }
    pub fn latent_dim(mut self, n: i64) -> Self {
        self.model.latent_dim = n;
        self
    }
    pub fn nf(mut self, n: i64) -> Self {
        self.model.nf = n;
        self
    }
    pub fn image_size(mut self, n: i64) -> Self {
        self.model.image_size = n;
        self
    }
    pub fn channels(mut self, n: i64) -> Self {
        self.model.channels = n;
        self
    }
    pub fn lambda_kl(mut self, lambda: f64) -> Self {
        self.train.lambda_kl = lambda;
        self
    }
    pub fn reconstruction(mut self, kind: Reconstruction) -> Self {
        self.train.reconstruction = kind;
        self
    }
    pub fn lr(mut self, lr: f64) -> Self {
        self.train.optimizer.set_lr(lr);
        self
    }
    pub fn steps(mut self, n: i64) -> Self {
        self.train.steps = n;
        self
    }
    pub fn batch_size(mut self, n: i64) -> Self {
        self.train.batch_size = n;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.train.seed = seed;
        self
    }
    /// Forward passes in bfloat16 on CPUs with `avx512_bf16` (off by default).
    pub fn bf16(mut self, on: bool) -> Self {
        self.train.bf16 = on;
        self
    }
    /// Measures the reconstruction MSE on `data` after every epoch (`VaeHistory::epochs`).
    pub fn held_out(mut self, data: &Dataset) -> Self {
        self.held_out = Some(data.shallow_clone());
        self
    }
    /// Writes the weights, the history and the pictures into `dir`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    fn validate(&self) -> Result<()> {
        crate::backend::init()?;
        self.model.validate()?;
        let t = &self.train;
        ensure!(t.steps >= 0, "steps = {}: expected 0 or more", t.steps);
        ensure!(t.batch_size >= 2, "batch_size = {}: expected 2 or more (BatchNorm needs two images)", t.batch_size);
        ensure!(t.lambda_kl.is_finite() && t.lambda_kl >= 0.0, "lambda_kl = {}: expected 0 or more", t.lambda_kl);
        let lr = t.optimizer.lr();
        ensure!(lr.is_finite() && lr > 0.0, "lr = {lr}: expected a positive learning rate");
        if t.bf16 {
            crate::backend::perf::check_bf16()?;
        }
        Ok(())
    }

    /// Checks the settings against `data`, the held-out set and the output folder, without training.
    pub fn check(&self, data: &Dataset) -> Result<()> {
        self.validate()?;
        let (c, s) = (self.model.channels, self.model.image_size);
        for d in std::iter::once(data).chain(self.held_out.as_ref()) {
            ensure!(
                d.channels() == c && d.image_size() == s,
                "dataset {} has {}-channel {}×{} images, but the VAE is set for {c}-channel {s}×{s}: \
                 use .channels() / .image_size() or load the dataset at that size",
                d.name,
                d.channels(),
                d.image_size(),
                d.image_size()
            );
        }
        data.check_batch_size(self.train.batch_size)?;
        if let Some(out) = &self.out_dir {
            crate::files::ensure_writable_dir(out)?;
        }
        Ok(())
    }

    /// The untrained networks and optimizer, seeded.
    pub fn build(&self) -> Result<VaeModel> {
        self.validate()?;
        let vs = VarStore::new(Device::Cpu);
        let net = with_seed(mix(self.train.seed, 1), || VaeNet::new(&vs.root(), &self.model));
        if self.train.channels_last {
            crate::backend::perf::use_channels_last(&vs);
        }
        Ok(VaeModel {
            config: self.model.clone(),
            opt: Optimizer::new(&vs, self.train.optimizer),
            train: self.train.clone(),
            vs,
            net,
            step: 0,
            history: VaeHistory::default(),
        })
    }

    /// Trains on `data` and returns the trained model with its history; with an output folder,
    /// saves it and its pictures there. In quick mode (`GAN_LAB_QUICK=1`) the run is cut to a few steps.
    pub fn train(&self, data: &Dataset) -> Result<VaeModel> {
        self.check(data)?;
        let mut vae = self.build()?;
        if train::quick_mode() {
            vae.train.steps = vae.train.steps.min(train::QUICK_STEPS);
        }
        let outcome = vae.fit(data, self.held_out.as_ref())?;
        if let Some(dir) = &self.out_dir {
            save_run(&vae, self.held_out.as_ref().unwrap_or(data), dir)?;
            if outcome == Outcome::Interrupted {
                bail!("interrupted at step {}; the model so far is saved in {}", vae.step, dir.display());
            }
        }
        Ok(vae)
    }
}

/// A VAE with its weights, optimizer and history.
pub struct VaeModel {
    pub config: VaeConfig,
    pub train: VaeTraining,
    pub vs: VarStore,
    pub net: VaeNet,
    pub opt: Optimizer,
    /// Steps done so far.
    pub step: i64,
    pub history: VaeHistory,
}

/// Images per forward pass when encoding or scoring whole datasets.
const CHUNK: i64 = 500;

impl VaeModel {
    /// Trains until `self.train.steps` steps are done, measuring the MSE on `held_out` after every
    /// epoch and at the end. Stops early, in a consistent state, on [`train::request_stop`].
    pub fn fit(&mut self, data: &Dataset, held_out: Option<&Dataset>) -> Result<Outcome> {
        let t = self.train.clone();
        let mut batcher = Batcher::new(data, t.batch_size, t.seed)?;
        let per_epoch = batcher.batches_per_epoch(data);
        crate::backend::perf::tune_allocator();
        self.history.backend = Some(crate::backend::current());
        let mut progress = Progress::new(t.steps, self.step);
        while self.step < t.steps {
            if train::stop_requested() {
                progress.finish();
                return Ok(Outcome::Interrupted);
            }
            let (x, _) = batcher.batch(data, self.step);
            let x = crate::backend::perf::batch_layout(x, t.channels_last);
            let loss = crate::backend::perf::with_bf16(t.bf16, || {
                let (mu, log_variance) = self.net.encode(&x, true);
                let z = with_seed(mix(t.seed, 1_000_003 + self.step as u64), || reparameterize(&mu, &log_variance));
                let decoded = self.net.decode(&z, true);
                vae_loss(&decoded, &x, &mu, &log_variance, t.lambda_kl, t.reconstruction)
            });
            self.opt.minimize(&loss.total);
            let record = VaeStep {
                step: self.step,
                loss: loss.total.double_value(&[]),
                reconstruction: loss.reconstruction.double_value(&[]),
                kl: loss.kl.double_value(&[]),
            };
            if !record.loss.is_finite() {
                bail!("step {}: the loss became {}; try a lower learning rate", self.step, record.loss);
            }
            self.history.steps.push(record);
            self.step += 1;
            if let Some(test) = held_out {
                if self.step % per_epoch == 0 || self.step == t.steps {
                    let test_mse = self.test_mse(test)?;
                    let epoch = self.step as f64 / per_epoch as f64;
                    progress.note(&format!("epoch {epoch:.2}: held-out MSE {test_mse:.5}"));
                    self.history.epochs.push(EpochRecord { epoch, step: self.step, test_mse });
                }
            }
            progress.update(self.step, t.steps, || {
                format!("loss {:.4}  reconstruction {:.4}  KL {:.3}", record.loss, record.reconstruction, record.kl)
            });
        }
        progress.finish();
        Ok(Outcome::Finished)
    }

    fn check_images(&self, images: &Tensor, what: &str) -> Result<()> {
        let c = &self.config;
        let expected = [c.channels, c.image_size, c.image_size];
        ensure!(
            images.dim() == 4 && images.size()[1..] == expected && images.kind() == Kind::Float,
            "{what}: expected float images [N, {}, {}, {}], got a {:?} tensor of shape {:?}",
            expected[0],
            expected[1],
            expected[2],
            images.kind(),
            images.size()
        );
        Ok(())
    }

    /// The layers' parameters by name with their shapes.
    pub fn summary(&self) -> String {
        train::parameter_summary("VAE (encoder conv1-4, mean, log_variance; decoder dense, convt1-4)", &self.vs)
    }

    /// Checks latent vectors `[N, latent_dim]`.
    pub fn check_latent(&self, z: &Tensor) -> Result<()> {
        ensure!(
            z.dim() == 2 && z.size()[1] == self.config.latent_dim,
            "z: expected latent vectors [N, {}], got shape {:?}",
            self.config.latent_dim,
            z.size()
        );
        Ok(())
    }

    /// The encoder's means and log-variances `[N, latent_dim]` of `images`, BatchNorm in inference mode.
    pub fn encode(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_images(images, "images")?;
        let parts: Vec<(Tensor, Tensor)> =
            tch::no_grad(|| images.split(CHUNK, 0).iter().map(|x| self.net.encode(x, false)).collect());
        let (mu, lv): (Vec<Tensor>, Vec<Tensor>) = parts.into_iter().unzip();
        Ok((Tensor::cat(&mu, 0), Tensor::cat(&lv, 0)))
    }

    /// Images `[N, C, S, S]` for latent vectors `z` `[N, latent_dim]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        self.check_latent(z)?;
        let parts: Vec<Tensor> = tch::no_grad(|| z.split(CHUNK, 0).iter().map(|z| self.net.decode(z, false)).collect());
        Ok(Tensor::cat(&parts, 0))
    }

    /// The reconstructions of `images`: decoded from the mean of q(z|x), without sampling.
    pub fn reconstruct(&self, images: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(images)?.0)
    }

    /// The mean squared error of the reconstructions over every pixel of `data` (pixels in [-1, 1]).
    pub fn test_mse(&self, data: &Dataset) -> Result<f64> {
        let decoded = self.reconstruct(&data.images)?;
        Ok(decoded.mse_loss(&data.images, tch::Reduction::Mean).double_value(&[]))
    }

    /// `n` latent vectors from the prior N(0, I), drawn with `seed`.
    pub fn draw_latent(&self, n: i64, seed: u64) -> Tensor {
        with_seed(seed, || train::sample_prior(n, self.config.latent_dim))
    }

    /// `n` new images: the decoder on draws from the prior.
    pub fn sample(&self, n: i64, seed: u64) -> Tensor {
        self.decode(&self.draw_latent(n, seed)).expect("the VAE's own latent draws have its shape")
    }

    /// `steps` images along the line between the encodings (means) of the images `a` and `b`
    /// (each `[C, S, S]`).
    pub fn interpolate(&self, a: &Tensor, b: &Tensor, steps: i64) -> Result<Tensor> {
        ensure!(steps >= 2, "steps = {steps}: expected 2 or more");
        let (mu, _) = self.encode(&Tensor::stack(&[a, b], 0))?;
        self.decode(&crate::viz::interpolate(&mu.get(0), &mu.get(1), steps))
    }

    /// Saves the weights (`vae.safetensors`) and the settings and history (`vae.json`) in `dir`,
    /// each written atomically. [`VaeModel::load`] reads them back.
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::files::ensure_writable_dir(dir)?;
        let weights = crate::checkpoint::variables(&self.vs);
        crate::files::write_atomic_with(&dir.join("vae.safetensors"), |tmp| {
            crate::checkpoint::write_tensors(&weights, tmp).map_err(|e| std::io::Error::other(format!("{e:#}")))
        })?;
        let state = Saved {
            config: self.config.clone(),
            train: self.train.clone(),
            step: self.step,
            history: self.history.clone(),
        };
        crate::files::write_atomic(&dir.join("vae.json"), &serde_json::to_vec_pretty(&state)?)
    }

    /// The VAE saved in `dir` by [`VaeModel::save`], to sample from and to encode with.
    pub fn load(dir: &Path) -> Result<VaeModel> {
        let path = dir.join("vae.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read it", path.display()))?;
        let state: Saved =
            serde_json::from_str(&text).with_context(|| format!("{}: not a VAE saved by gan_lab", path.display()))?;
        let builder = Vae { model: state.config, train: state.train, held_out: None, out_dir: None };
        let mut vae = builder.build()?;
        let weights = dir.join("vae.safetensors");
        vae.vs.load(&weights).with_context(|| format!("{}: cannot load the weights", weights.display()))?;
        vae.step = state.step;
        vae.history = state.history;
        Ok(vae)
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    config: VaeConfig,
    train: VaeTraining,
    step: i64,
    history: VaeHistory,
}

/// Saves `vae` and the lesson's pictures into `dir`: learning curves, the first 10 images of
/// `shown` above their reconstructions, 32 samples, and an interpolation between two of `shown`.
pub fn save_run(vae: &VaeModel, shown: &Dataset, dir: &Path) -> Result<()> {
    vae.save(dir)?;
    crate::viz::save_vae_curves(&vae.history, &dir.join("learning_curves.png"))?;
    // A held-out set smaller than the pictures want shows what it has.
    let n = shown.len().min(10);
    if n >= 1 {
        crate::viz::save_grid(&reconstruction_rows(vae, &shown.images, n)?, n, &dir.join("reconstructions.png"))?;
    }
    crate::viz::save_grid(&vae.sample(32, mix(vae.train.seed, 2)), 8, &dir.join("samples.png"))?;
    if n >= 2 {
        let (a, b) = (shown.images.get(0), shown.images.get(1));
        crate::viz::save_grid(&vae.interpolate(&a, &b, 10)?, 10, &dir.join("interpolation.png"))?;
    }
    Ok(())
}

/// The first `n` of `images` in one row and their reconstructions in the row below, `[2n, C, S, S]`.
pub fn reconstruction_rows(vae: &VaeModel, images: &Tensor, n: i64) -> Result<Tensor> {
    ensure!(n >= 1 && n <= images.size()[0], "n = {n}: expected between 1 and the {} images given", images.size()[0]);
    let originals = images.narrow(0, 0, n);
    Ok(Tensor::cat(&[originals.shallow_clone(), vae.reconstruct(&originals)?], 0))
}

/// The t-SNE map of the encoder's means for the first `n` images of `data` (all of them if
/// fewer), coloured by label when `data` has labels.
pub fn latent_map(vae: &VaeModel, data: &Dataset, n: i64) -> Result<crate::viz::Scatter> {
    ensure!(n >= 10, "n = {n}: expected 10 or more points for a t-SNE map");
    let shown = data.take(n);
    let (mu, _) = vae.encode(&shown.images)?;
    let tsne = crate::tsne::Tsne { perplexity: 30f64.min((shown.len() as f64 - 1.0) / 3.0), ..Default::default() };
    Ok(crate::viz::Scatter {
        caption: format!("t-SNE of {} latent means ({})", shown.len(), shown.name),
        points: tsne.fit(&mu)?,
        labels: shown.labels.as_ref().map(|l| l.shallow_clone()),
    })
}

/// One model's line in the VAE vs GAN table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub model: String,
    /// Training steps and seconds, if the model was trained (not for real data).
    pub steps: Option<i64>,
    pub seconds: Option<f64>,
    /// Reconstruction MSE on the held-out set (VAEs only).
    pub test_mse: Option<f64>,
    pub scores: crate::metrics::Scores,
}

/// The VAE vs GAN table (problem 5): IS, Mode score, FID and sharpness of each model's samples on
/// the frozen evaluator, with real digits as the ceiling. Prints as a Markdown table; shows as
/// an HTML table in notebooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rows: Vec<ComparisonRow>,
}

impl Comparison {
    /// A table whose first row is the real digits' ceiling of `reference`.
    pub fn new(reference: &crate::metrics::RealReference) -> Comparison {
        let real = ComparisonRow {
            model: "real digits (ceiling)".into(),
            steps: None,
            seconds: None,
            test_mse: None,
            scores: reference.ceiling,
        };
        Comparison { rows: vec![real] }
    }

    /// Adds a row for `model`.
    pub fn push(
        &mut self,
        model: &str,
        steps: Option<i64>,
        seconds: Option<f64>,
        test_mse: Option<f64>,
        scores: crate::metrics::Scores,
    ) {
        self.rows.push(ComparisonRow { model: model.into(), steps, seconds, test_mse, scores });
    }

    /// The table: a row per model.
    pub fn table(&self) -> crate::viz::Table {
        let mut table = crate::viz::Table::new(&[
            "model",
            "steps",
            "train s",
            "held-out MSE",
            "IS",
            "Mode score",
            "FID",
            "sharpness",
        ]);
        let opt = |v: Option<f64>, digits: usize| v.map_or("–".to_string(), |v| format!("{v:.digits$}"));
        table.rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.model.clone(),
                    r.steps.map_or("–".into(), |s| s.to_string()),
                    opt(r.seconds, 0),
                    opt(r.test_mse, 5),
                    format!("{:.3}", r.scores.inception.mean),
                    format!("{:.3}", r.scores.mode.mean),
                    format!("{:.2}", r.scores.fid),
                    format!("{:.4}", r.scores.sharpness),
                ]
            })
            .collect();
        table
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.table().fmt(f)
    }
}
