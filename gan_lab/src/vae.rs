//! The VAE of the VAE vs GAN lesson (DLCV HW4, problems 1 and 5): its model, its training
//! loop on the run skeleton every model shares ([`crate::train`]), and the comparison table.
//! Its builder, [`crate::builders::Vae`], sits with the GAN families'. A VAE has no adversary, so its loop is the
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
pub use crate::history::{EpochRecord, VaeHistory, VaeStep};
use crate::losses::{reparameterize, vae_loss};
pub use crate::losses::{Reconstruction, VaeLoss};
pub use crate::models::vae::{VaeConfig, VaeNet};
use crate::optim::{AdamConfig, Optimizer, OptimizerConfig};
use crate::rng::{mix, with_seed};
use crate::train::{self, Outcome, RunSettings};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
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
    /// Save the model every this many steps when the run has an output folder (0: at the end only).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: i64,
}

fn default_checkpoint_every() -> i64 {
    500
}

fn yes() -> bool {
    true
}

impl VaeTraining {
    /// Checks the settings (and the backend switch).
    pub fn validate(&self) -> Result<()> {
        let t = self;
        let lr = [("lr", t.optimizer.lr())];
        let settings = RunSettings {
            steps: t.steps,
            batch_size: t.batch_size,
            min_batch: (2, " (BatchNorm needs two images)"),
            learning_rates: &lr,
            bf16: t.bf16,
        };
        settings.check()?;
        ensure!(t.lambda_kl.is_finite() && t.lambda_kl >= 0.0, "lambda_kl = {}: expected 0 or more", t.lambda_kl);
        ensure!(
            t.checkpoint_every >= 0,
            "checkpoint_every = {}: expected 0 (at the end only) or more",
            t.checkpoint_every
        );
        Ok(())
    }
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
            checkpoint_every: default_checkpoint_every(),
        }
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
    /// The untrained networks and optimizer for `config` and `train`, seeded.
    pub fn new(config: &VaeConfig, train: &VaeTraining) -> Result<VaeModel> {
        VaeModel::on(Device::Cpu, config, train)
    }

    /// [`VaeModel::new`] on `device`: the weights are drawn on the CPU, then moved.
    pub fn on(device: Device, config: &VaeConfig, train: &VaeTraining) -> Result<VaeModel> {
        config.validate()?;
        train.validate()?;
        crate::device::check(device)?;
        let mut vs = VarStore::new(Device::Cpu);
        let net = with_seed(mix(train.seed, 1), || VaeNet::new(&vs.root(), config));
        if device != Device::Cpu {
            vs.set_device(device); // before the optimizer takes its state
        }
        if train.channels_last {
            crate::backend::perf::use_channels_last(&vs);
        }
        Ok(VaeModel {
            config: config.clone(),
            opt: Optimizer::new(&vs, train.optimizer),
            train: train.clone(),
            vs,
            net,
            step: 0,
            history: VaeHistory::default(),
        })
    }

    /// Trains until `self.train.steps` steps are done, measuring the MSE on `held_out` after every
    /// epoch and at the end. Stops early, in a consistent state, on [`train::request_stop`].
    pub fn fit(&mut self, data: &Dataset, held_out: Option<&Dataset>) -> Result<Outcome> {
        self.train_with(data, held_out, &mut |_| Ok(()))
    }

    /// [`VaeModel::fit`], calling `after_step` after each step (for checkpoints).
    pub(crate) fn train_with(
        &mut self,
        data: &Dataset,
        held_out: Option<&Dataset>,
        after_step: &mut dyn FnMut(&VaeModel) -> Result<()>,
    ) -> Result<Outcome> {
        let t = self.train.clone();
        let mut batcher = Batcher::new(data, t.batch_size, t.seed)?;
        let per_epoch = batcher.batches_per_epoch(data);
        self.history.backend = Some(crate::backend::current());
        train::run_steps(self.step, t.steps, |progress| {
            let (x, _) = batcher.batch(data, self.step);
            let x = crate::backend::perf::batch_layout(x.to_device(self.vs.device()), t.channels_last);
            // Minimise the reconstruction error + λ_KL · KL(q(z|x) ‖ N(0, I)).
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
            ensure!(
                record.loss.is_finite(),
                "step {}: the loss became {}; try a lower learning rate",
                self.step,
                record.loss
            );
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
            after_step(self)?;
            let r = record;
            Ok((self.step, format!("loss {:.4}  reconstruction {:.4}  KL {:.3}", r.loss, r.reconstruction, r.kl)))
        })
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
        let parts: Vec<(Tensor, Tensor)> = tch::no_grad(|| {
            images.split(CHUNK, 0).iter().map(|x| self.net.encode(&x.to_device(self.vs.device()), false)).collect()
        });
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
        Ok(decoded.mse_loss(&data.images.to_device(decoded.device()), tch::Reduction::Mean).double_value(&[]))
    }

    /// `n` latent vectors from the prior N(0, I), drawn with `seed`.
    pub fn draw_latent(&self, n: i64, seed: u64) -> Tensor {
        with_seed(seed, || crate::rng::sample_prior(n, self.config.latent_dim)).to_device(self.vs.device())
    }

    /// `n` new images: the decoder on draws from the prior.
    pub fn sample(&self, n: i64, seed: u64) -> Tensor {
        self.decode(&self.draw_latent(n, seed)).expect("the VAE's own latent draws have its shape")
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
        let mut vae = VaeModel::new(&state.config, &state.train)?;
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
