//! The one training loop. Every GAN family runs through [`Gan::train_step`]: what differs between
//! families (the networks, the objective, the optimizers) is data the loop reads.

use crate::backend::ops::profiled;
use crate::data::{Batcher, Dataset};
use crate::losses::{Auxiliary, CriticSchedule, InformationTerm, Objective};
use crate::models::infogan::{sample_codes, Codes};
use crate::models::{DiscriminatorNet, GeneratorNet};
use crate::optim::{AdamConfig, Optimizer, OptimizerConfig};
use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{nn, nn::VarStore, Device, Kind, Tensor};

/// Training settings shared by the GAN families.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Total number of training steps (one G update each, after `n_critic` D updates).
    pub steps: i64,
    /// Images per mini-batch.
    pub batch_size: i64,
    /// Seeds weights, batches and noise: the same seed gives the same run on CPU.
    pub seed: u64,
    /// The players' objective.
    pub objective: Objective,
    /// A term both players add (ACGAN's class loss), if any.
    #[serde(default)]
    pub auxiliary: Auxiliary,
    /// Critic (D) updates per generator update.
    #[serde(default)]
    pub n_critic: CriticSchedule,
    /// Generator optimizer.
    pub optimizer_g: OptimizerConfig,
    /// Discriminator optimizer.
    pub optimizer_d: OptimizerConfig,
    /// Keep a grid of the fixed noise's images every this many steps (0: never).
    pub snapshot_every: i64,
    /// Score the generator (IS, Mode score, FID on the frozen evaluator) every this many steps
    /// (0: never). Needs 1-channel 32×32 images.
    #[serde(default)]
    pub metrics_every: i64,
    /// Images generated for each scoring.
    #[serde(default = "default_metrics_samples")]
    pub metrics_samples: i64,
    /// Write a checkpoint every this many steps when the run has an output folder (0: at the end only).
    pub checkpoint_every: i64,
    /// Store convolution weights and batches channels-last ([`crate::perf`]): faster on CPUs,
    /// the same numbers up to float rounding.
    #[serde(default = "yes")]
    pub channels_last: bool,
    /// Run the players' forward passes in bfloat16 ([`crate::backend::perf::with_bf16`]; CPUs with
    /// `avx512_bf16` only), with weights, gradients and optimizers in float32. Not always faster:
    /// measured slower than float32 on a CPU with `avx512_bf16` but no AMX (`docs/performance.md`).
    #[serde(default)]
    pub bf16: bool,
    /// Keep an exponential moving average of G's weights with this decay β (0: off), for sampling
    /// from an averaged generator ([`Gan::with_average`]); training itself is unchanged.
    #[serde(default)]
    pub average_generator: f64,
}

fn yes() -> bool {
    true
}

impl Default for TrainConfig {
    /// The DCGAN lesson's settings: 1500 steps of batch 64, Adam(2e-4, β1 0.5) for both players.
    fn default() -> Self {
        TrainConfig {
            steps: 1500,
            batch_size: 64,
            seed: 0,
            objective: Objective::NonSaturating,
            auxiliary: Auxiliary::None,
            n_critic: CriticSchedule::One,
            optimizer_g: AdamConfig::dcgan().into(),
            optimizer_d: AdamConfig::dcgan().into(),
            snapshot_every: 250,
            metrics_every: 0,
            metrics_samples: default_metrics_samples(),
            checkpoint_every: 500,
            channels_last: true,
            bf16: false,
            average_generator: 0.0,
        }
    }
}

fn default_metrics_samples() -> i64 {
    4500
}

/// What one training step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: i64,
    pub d_loss: f64,
    pub g_loss: f64,
    /// Mean D(x) on the real batch.
    pub d_real: f64,
    /// Mean D(G(z)) on the fake batch, before D's update.
    pub d_fake: f64,
    /// D's auxiliary class loss on the real batch (ACGAN, weighted), before its update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_loss: Option<f64>,
    /// The critic's estimate of the Wasserstein distance, E[f(x)] − E[f(G(z))], at its last
    /// update (Wasserstein objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<f64>,
    /// The gradient penalty (weighted) at the critic's last update (WGAN-GP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty: Option<f64>,
    /// G's weighted information loss on its fakes (InfoGAN), after D and Q's update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub information: Option<f64>,
    /// The lower bound on the mutual information between the categorical codes and the image
    /// (InfoGAN), H(c) − cross-entropy in nats, on the same fakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_information: Option<f64>,
}

/// What one critic update measured, passed on to the generator step's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Critique {
    pub d_loss: f64,
    pub d_real: f64,
    pub d_fake: f64,
    pub class_loss: Option<f64>,
    pub wasserstein: Option<f64>,
    pub penalty: Option<f64>,
}

/// D's loss and what goes with it, before D's update.
struct CriticLoss {
    fake: Tensor,
    on_real: Tensor,
    on_fake: Tensor,
    d_loss: Tensor,
    class_loss: Option<Tensor>,
    penalty: Option<f64>,
}

/// Per-step records of a run; what training returns for notebooks and the CLI to show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The backend the run computed on (`gan_lab::backend`).
    #[serde(default)]
    pub backend: Option<crate::backend::Backend>,
    pub steps: Vec<StepRecord>,
    /// Scores taken every `metrics_every` steps.
    #[serde(default)]
    pub metrics: Vec<MetricRecord>,
}

/// The generator's scores after a step, and what computing them cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub step: i64,
    pub scores: crate::metrics::Scores,
    pub seconds: f64,
}

impl History {
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn last(&self) -> Option<&StepRecord> {
        self.steps.last()
    }
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks running training loops to stop after their current step (Ctrl-C in the CLI).
pub fn request_stop() {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested since the last call (which clears the request).
pub fn stop_requested() -> bool {
    STOP_REQUESTED.swap(false, Ordering::SeqCst)
}

/// `GAN_LAB_QUICK=1` caps every run at a few steps: notebooks and examples smoke-run in seconds.
pub fn quick_mode() -> bool {
    std::env::var("GAN_LAB_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Steps a quick-mode run is cut to.
pub const QUICK_STEPS: i64 = 20;

/// Batches [`Gan::recompute_batch_norm`] draws, and their size: 1024 latent vectors in all.
pub const RECALIBRATION_BATCHES: i64 = 4;
pub const RECALIBRATION_BATCH: i64 = 256;

/// A generator and a discriminator with their weights, optimizers and progress.
pub struct Gan {
    /// The model family (`"dcgan"`), checked when a checkpoint is loaded.
    pub family: String,
    /// The family's architecture settings, checked when a checkpoint is loaded.
    pub architecture: serde_json::Value,
    pub config: TrainConfig,
    pub latent_dim: i64,
    /// Classes a conditional generator takes (0: unconditional).
    pub classes: i64,
    /// The latent codes at the end of G's input (InfoGAN; empty otherwise): `latent_dim` counts
    /// the noise and the codes.
    pub codes: Codes,
    pub vs_g: VarStore,
    pub vs_d: VarStore,
    pub generator: Box<dyn GeneratorNet>,
    pub discriminator: Box<dyn DiscriminatorNet>,
    pub opt_g: Optimizer,
    pub opt_d: Optimizer,
    /// The moving average of G's weights, when the run keeps one (`average_generator` > 0).
    pub average: Option<crate::optim::Average>,
    /// Steps done so far.
    pub step: i64,
    pub history: History,
    /// Wall-clock seconds this model has spent in [`Gan::train`] in this process, scoring
    /// included. Not part of what a run computes: the same seed gives the same history, not the
    /// same time, and checkpoints do not keep it.
    pub seconds: f64,
    /// Noise fixed at the start of the run, for snapshots that show progress on the same z.
    pub fixed_noise: Tensor,
    /// (step, images) taken every `snapshot_every` steps from the fixed noise.
    pub snapshots: Vec<(i64, Tensor)>,
}

/// How a call to [`Gan::train`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped early by [`request_stop`]; the state is consistent and can be checkpointed.
    Interrupted,
}

impl Gan {
    /// `n` latent vectors drawn with `seed`: noise from the prior N(0, I), then the codes, if
    /// any, from theirs ([`sample_codes`]).
    pub fn draw_latent(&self, n: i64, seed: u64) -> Tensor {
        with_seed(seed, || {
            let noise = sample_prior(n, self.noise_dim());
            match self.codes.is_empty() {
                true => noise,
                false => Tensor::cat(&[noise, sample_codes(n, &self.codes)], 1),
            }
        })
    }

    /// Latent vectors for D's update `index` of a run: drawn with a seed per update, so a resumed
    /// run draws exactly what an uninterrupted one would.
    pub fn latent_for_step(&self, index: i64) -> Tensor {
        self.draw_latent(self.config.batch_size, mix(self.config.seed, index as u64 + 1))
    }

    /// Dimension of the noise part of G's input (all of it but the codes).
    pub fn noise_dim(&self) -> i64 {
        self.latent_dim - self.codes.width()
    }

    /// One D update then one G update on a real batch (with its labels, which conditional
    /// families also give the fakes: y = attribute(x*)), with latent vectors `z`.
    pub fn train_step(&mut self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor) -> StepRecord {
        self.step_on(real, labels, z, self.step)
    }

    /// [`Gan::train_step`] with D's update counted as `index` (it seeds the gradient penalty).
    fn step_on(&mut self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor, index: i64) -> StepRecord {
        if let Some(record) = self.lesson_step(real, labels, z) {
            return record;
        }
        let (fake, critic) = self.critic_step(real, labels, z, index);
        self.generator_step(&fake, labels, z, critic)
    }

    /// The lesson's own step ([`crate::step::train_step`], exercise `dcgan.train_step`) for the
    /// runs it covers: networks that are plain modules (the DCGAN), no labels, no auxiliary term
    /// and an objective that is its two losses alone (not WGAN's clipping or penalty). `None`
    /// for the other runs, which take [`Gan::critic_step`] and [`Gan::generator_step`].
    fn lesson_step(&mut self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor) -> Option<StepRecord> {
        let objective = self.config.objective;
        let plain = labels.is_none() && self.config.auxiliary == Auxiliary::None && !objective.is_wasserstein();
        let (Some(g), Some(d), true) = (self.generator.module(), self.discriminator.module(), plain) else {
            return None;
        };
        let (opt_g, opt_d) = (&mut self.opt_g, &mut self.opt_d);
        let s = crate::backend::perf::with_bf16(self.config.bf16, || {
            crate::step::train_step(g, d, opt_g, opt_d, real, z, &objective)
        });
        if let Some(average) = &mut self.average {
            average.update();
        }
        Some(StepRecord {
            step: self.step,
            d_loss: s.d_loss.double_value(&[]),
            g_loss: s.g_loss.double_value(&[]),
            d_real: objective.mean_judgement(&s.on_real),
            d_fake: objective.mean_judgement(&s.on_fake),
            class_loss: None,
            wasserstein: None,
            penalty: None,
            information: None,
            mutual_information: None,
        })
    }

    /// One update of D on a real batch and the fakes of `z`; returns the fakes (still attached
    /// to G's graph, for the generator step) and what D measured. `index` counts D's updates
    /// and seeds the gradient penalty's mixing weights.
    pub fn critic_step(
        &mut self,
        real: &Tensor,
        labels: Option<&Tensor>,
        z: &Tensor,
        index: i64,
    ) -> (Tensor, Critique) {
        let objective = self.config.objective;
        let c = crate::backend::perf::with_bf16(self.config.bf16, || self.critic_loss(real, labels, z, index));
        self.opt_d.minimize(&c.d_loss);
        if let Objective::Wasserstein { clip } = objective {
            crate::losses::clip_weights(&self.vs_d, clip);
        }

        let (d_real, d_fake) = (objective.mean_judgement(&c.on_real), objective.mean_judgement(&c.on_fake));
        let critique = Critique {
            d_loss: c.d_loss.double_value(&[]),
            d_real,
            d_fake,
            class_loss: c.class_loss.map(|t| t.double_value(&[])),
            wasserstein: objective.is_wasserstein().then_some(d_real - d_fake),
            penalty: c.penalty,
        };
        (c.fake, critique)
    }

    /// The forward half of [`Gan::critic_step`]: the fakes of `z` and D's loss on them and on
    /// the real batch.
    fn critic_loss(&self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor, index: i64) -> CriticLoss {
        let (objective, auxiliary) = (self.config.objective, self.config.auxiliary);
        let fake = self.generator.generate(z, labels, true);

        // Maximise log D(x) + log(1 − D(G(z))) (or the objective's own D loss; plus the class
        // log-likelihood in ACGAN; minus the gradient penalty in WGAN-GP).
        let on_real = self.discriminator.judge(real, labels, true);
        let on_fake = self.discriminator.judge(&fake.detach(), labels, true);
        let mut d_loss = objective.discriminator_loss(&on_real.score, &on_fake.score);
        let class_loss = auxiliary.class_term(on_real.classes.as_ref(), labels);
        if let (Some(real_term), Some(fake_term)) =
            (&class_loss, auxiliary.class_term(on_fake.classes.as_ref(), labels))
        {
            d_loss += real_term + fake_term;
        }
        // InfoGAN: Q (and the body it shares with D) learns to recover the codes of the fakes.
        if let Some(info) = auxiliary.information_term(on_fake.codes.as_ref(), z, &self.codes) {
            d_loss += info.weighted;
        }
        let mut penalty = None;
        if let Objective::WassersteinGp { lambda } = objective {
            let b = real.size()[0];
            let alpha = with_seed(mix(self.config.seed ^ 0x6A7E, index as u64 + 1), || {
                Tensor::rand([b, 1, 1, 1], (Kind::Float, Device::Cpu))
            });
            let critic = |x: &Tensor| self.discriminator.score(x, labels, true);
            let gp = crate::losses::gradient_penalty(&critic, real, &fake.detach(), &alpha, lambda);
            d_loss += &gp;
            penalty = Some(gp.double_value(&[]));
        }
        CriticLoss { fake, on_real: on_real.score, on_fake: on_fake.score, d_loss, class_loss, penalty }
    }

    /// One update of G on `fake` = G(`z`) (from the last critic step): maximise log D(G(z)) (or
    /// the objective's own G loss, plus the class term in ACGAN, the information term in InfoGAN).
    pub fn generator_step(
        &mut self,
        fake: &Tensor,
        labels: Option<&Tensor>,
        z: &Tensor,
        critic: Critique,
    ) -> StepRecord {
        // Only G's weights get gradients: on the way back through D, autograd computes the
        // gradients with respect to D's activations, not D's weights.
        let (g_loss, info) = crate::backend::perf::with_bf16(self.config.bf16, || self.generator_loss(fake, labels, z));
        self.opt_g.minimize(&g_loss);
        if let Some(average) = &mut self.average {
            average.update();
        }
        StepRecord {
            step: self.step,
            d_loss: critic.d_loss,
            g_loss: g_loss.double_value(&[]),
            d_real: critic.d_real,
            d_fake: critic.d_fake,
            class_loss: critic.class_loss,
            wasserstein: critic.wasserstein,
            penalty: critic.penalty,
            information: info.as_ref().map(|i| i.weighted.double_value(&[])),
            mutual_information: info.map(|i| i.mutual_information),
        }
    }

    /// G's loss on `fake` = G(`z`): the objective's, plus the class term (ACGAN) and the information
    /// term (InfoGAN) when the run has them; and the information term alone.
    pub fn generator_loss(
        &self,
        fake: &Tensor,
        labels: Option<&Tensor>,
        z: &Tensor,
    ) -> (Tensor, Option<InformationTerm>) {
        let (objective, auxiliary) = (self.config.objective, self.config.auxiliary);
        let judged = self.discriminator.judge(fake, labels, true);
        let mut g_loss = objective.generator_loss(&judged.score);
        if let Some(term) = auxiliary.class_term(judged.classes.as_ref(), labels) {
            g_loss += term;
        }
        let info = auxiliary.information_term(judged.codes.as_ref(), z, &self.codes);
        if let Some(info) = &info {
            g_loss += &info.weighted;
        }
        (g_loss, info)
    }

    /// Trains until `self.config.steps` steps are done, calling `after_step` after each (for
    /// checkpoints). Stops early, in a consistent state, when [`request_stop`] is called.
    pub fn train(&mut self, data: &Dataset, mut after_step: impl FnMut(&Gan) -> Result<()>) -> Result<Outcome> {
        self.train_with(data, &mut after_step)
    }

    /// [`Gan::train`] with the callback behind a reference: the loop is compiled once, in the
    /// library, not again for each callback in each crate (each notebook cell) that trains.
    fn train_with(&mut self, data: &Dataset, after_step: &mut dyn FnMut(&Gan) -> Result<()>) -> Result<Outcome> {
        let c = self.config.clone();
        ensure!(c.steps >= 0, "steps = {}: expected 0 or more", c.steps);
        ensure!(
            data.channels() * data.image_size() * data.image_size() == self.image_numel(),
            "dataset {} has {}×{}×{} images, but the model was built for {:?}",
            data.name,
            data.channels(),
            data.image_size(),
            data.image_size(),
            self.image_shape()
        );
        ensure!(
            self.classes == 0 || data.labels.is_some(),
            "dataset {} has no labels, but this {} generates by class: use a labelled dataset such as mnist",
            data.name,
            self.family
        );
        let mut batcher = Batcher::new(data, c.batch_size, c.seed)?;
        crate::backend::perf::tune_allocator();
        self.history.backend = Some(crate::backend::current());
        let scorer = match c.metrics_every > 0 {
            true => Some(Scorer::new(data)?),
            false => None,
        };
        let mut progress = Progress::new(c.steps, self.step);
        let (started, seconds_before) = (std::time::Instant::now(), self.seconds);
        while self.step < c.steps {
            if stop_requested() {
                progress.finish();
                return Ok(Outcome::Interrupted);
            }
            // n_critic updates of D, each on its own batch and noise, then one update of G on the
            // last fakes. With one D update per step, D's update i is step i.
            let (first, updates) = (c.n_critic.updates_before(self.step), c.n_critic.updates(self.step));
            ensure!(updates >= 1, "n_critic: expected at least one critic update per step");
            let mut batch = |gan: &Gan, index: i64| {
                profiled(c"gan_lab::batch_and_latent", || {
                    let (real, labels) = batcher.batch(data, index);
                    let real = crate::backend::perf::batch_layout(real, c.channels_last);
                    (real, labels, gan.latent_for_step(index))
                })
            };
            let record = if updates == 1 {
                let (real, labels, z) = batch(self, first);
                self.step_on(&real, labels.as_ref(), &z, first)
            } else {
                let mut last = None;
                for index in first..first + updates {
                    let (real, labels, z) = batch(self, index);
                    let (fake, critique) = self.critic_step(&real, labels.as_ref(), &z, index);
                    last = Some((fake, labels, z, critique));
                }
                let (fake, labels, z, critique) = last.expect("at least one critic update");
                self.generator_step(&fake, labels.as_ref(), &z, critique)
            };
            if !record.d_loss.is_finite() || !record.g_loss.is_finite() {
                bail!(
                    "step {}: the losses became {} (D) and {} (G); try a lower learning rate",
                    self.step,
                    record.d_loss,
                    record.g_loss
                );
            }
            self.history.steps.push(record);
            self.step += 1;
            self.seconds = seconds_before + started.elapsed().as_secs_f64();
            if c.snapshot_every > 0 && self.step % c.snapshot_every == 0 {
                let images = self.generate(&self.fixed_noise);
                self.snapshots.push((self.step, images));
            }
            if let Some(scorer) = &scorer {
                if self.step % c.metrics_every == 0 {
                    let record = scorer.score(self, c.metrics_samples);
                    progress.note(&format!("step {}: {}  ({:.1} s)", self.step, record.scores, record.seconds));
                    self.history.metrics.push(record);
                }
            }
            progress.update(self.step, c.steps, || {
                let r = record;
                format!("D {:.3}  G {:.3}  D(x) {:.2}  D(G(z)) {:.2}", r.d_loss, r.g_loss, r.d_real, r.d_fake)
            });
            after_step(self)?;
        }
        progress.finish();
        Ok(Outcome::Finished)
    }

    /// Images for latent vectors `z` `[B, latent_dim]`, with BatchNorm in inference mode. A
    /// conditional generator draws the classes in turn: row i gets class i mod `classes`.
    pub fn generate(&self, z: &Tensor) -> Tensor {
        let labels = (self.classes > 0).then(|| self.cycled_labels(z.size()[0]));
        tch::no_grad(|| self.generator.generate(z, labels.as_ref(), false))
    }

    /// Images for latent vectors `z` `[B, latent_dim]` of the classes `labels` `[B]`.
    pub fn generate_labeled(&self, z: &Tensor, labels: &Tensor) -> Result<Tensor> {
        ensure!(self.classes > 0, "this {} is not conditional: use generate(z) without labels", self.family);
        self.check_latent(z)?;
        let b = z.size()[0];
        crate::models::check_labels(labels, b, self.classes)?;
        Ok(tch::no_grad(|| self.generator.generate(z, Some(labels), false)))
    }

    /// Runs `f` on this model with the averaged generator's weights in G, then puts the live
    /// weights back exactly: `gan.with_average(|g| g.class_accuracy(&ev, 10_000, 1))??`.
    /// G's BatchNorm statistics are measured afresh for the averaged weights
    /// ([`Gan::recompute_batch_norm`]): the average of the running statistics belongs to no
    /// single set of weights, and sampling with it turns digits into blots.
    pub fn with_average<T>(&self, f: impl FnOnce(&Gan) -> T) -> Result<T> {
        let Some(average) = &self.average else {
            bail!("this run keeps no averaged generator: build it with .average_generator(0.997)")
        };
        Ok(average.apply(|| {
            self.recompute_batch_norm();
            f(self)
        }))
    }

    /// Sets G's BatchNorm running statistics to the statistics G's current weights produce on
    /// the prior: each layer's mean and (unbiased) variance over [`RECALIBRATION_BATCHES`]
    /// batches of [`RECALIBRATION_BATCH`] latent vectors (classes in turn), as in training mode,
    /// averaged over the batches. Deterministic by the run's seed.
    pub fn recompute_batch_norm(&self) {
        let stats: Vec<Tensor> = self
            .vs_g
            .variables()
            .into_iter()
            .filter(|(name, _)| name.ends_with("running_mean") || name.ends_with("running_var"))
            .map(|(_, t)| t)
            .collect();
        if stats.is_empty() {
            return;
        }
        // Training mode folds a batch's statistics s into each running statistic r as
        // r ← (1 − m) r + m s; from r = 0 that leaves m s.
        let momentum = nn::BatchNormConfig::default().momentum;
        let mut sums: Vec<Tensor> = stats.iter().map(|t| t.zeros_like()).collect();
        tch::no_grad(|| {
            for batch in 0..RECALIBRATION_BATCHES {
                for t in &stats {
                    let _ = t.shallow_clone().zero_();
                }
                let z = self.draw_latent(RECALIBRATION_BATCH, mix(self.config.seed ^ 0xB47C, batch as u64));
                let labels = (self.classes > 0).then(|| self.cycled_labels(RECALIBRATION_BATCH));
                let _ = self.generator.generate(&z, labels.as_ref(), true);
                for (sum, t) in sums.iter_mut().zip(&stats) {
                    *sum += t / momentum;
                }
            }
            for (sum, t) in sums.iter().zip(&stats) {
                t.shallow_clone().copy_(&(sum / RECALIBRATION_BATCHES as f64));
            }
        });
    }

    /// `n` images from the prior, drawn with `seed` (a conditional generator's cycle through the classes).
    pub fn sample(&self, n: i64, seed: u64) -> Tensor {
        self.generate(&self.draw_latent(n, mix(seed, 0xA11CE)))
    }

    /// The frozen evaluator's accuracy on `n` conditional samples (classes in turn, noise drawn
    /// with `seed`): how often it reads the class that was asked for.
    pub fn class_accuracy(
        &self,
        ev: &crate::metrics::Evaluator,
        n: i64,
        seed: u64,
    ) -> Result<crate::metrics::ClassAccuracy> {
        ensure!(self.classes > 0, "class accuracy: this {} is not conditional", self.family);
        let labels = self.cycled_labels(n);
        let z = self.draw_latent(n, mix(seed, 0xC1A55));
        let images = self.generate_labeled(&z, &labels)?;
        Ok(crate::metrics::ClassAccuracy::measure(ev, &images, &labels, self.classes))
    }

    /// Columns for grids of [`Gan::generate`]'s images: one per class for a conditional generator
    /// (each column one class), else 8.
    pub fn grid_columns(&self) -> i64 {
        if self.classes > 0 {
            self.classes
        } else {
            8
        }
    }

    /// Labels 0, 1, …, classes − 1, 0, 1, … for `n` images.
    pub fn cycled_labels(&self, n: i64) -> Tensor {
        Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(self.classes.max(1))
    }

    /// The lesson's final test: one row per class, one column per noise vector of `z` `[k, latent_dim]`,
    /// → images `[classes · k, C, S, S]` (show with `k` columns).
    pub fn class_grid(&self, z: &Tensor) -> Result<Tensor> {
        let k = z.size()[0];
        let labels = Tensor::arange(self.classes, (Kind::Int64, Device::Cpu)).repeat_interleave_self_int(k, 0, None);
        self.generate_labeled(&z.repeat([self.classes, 1]), &labels)
    }

    /// For each class, `steps` images along the line from `z1` to `z2` → `[classes · steps, C, S, S]`.
    pub fn class_interpolation(&self, z1: &Tensor, z2: &Tensor, steps: i64) -> Result<Tensor> {
        let line = crate::viz::interpolate(z1, z2, steps);
        let labels =
            Tensor::arange(self.classes, (Kind::Int64, Device::Cpu)).repeat_interleave_self_int(steps, 0, None);
        self.generate_labeled(&line.repeat([self.classes, 1]), &labels)
    }

    /// Checks that `z` holds latent vectors of this model, one per row.
    pub fn check_latent(&self, z: &Tensor) -> Result<()> {
        ensure!(
            z.dim() == 2 && z.size()[1] == self.latent_dim,
            "z: expected shape [rows, {}], got {:?}",
            self.latent_dim,
            z.size()
        );
        Ok(())
    }

    /// `z` `[k, latent_dim]` with categorical code `code` set to `value` in every row.
    pub fn with_code(&self, z: &Tensor, code: usize, value: i64) -> Result<Tensor> {
        self.check_latent(z)?;
        let k = self.categorical_values(code)?;
        ensure!((0..k).contains(&value), "value = {value}: categorical code {code} takes 0..={}", k - 1);
        let z = z.copy();
        let at = self.noise_dim() + self.codes.categorical_offset(code);
        let _ = z.narrow(1, at, k).fill_(0.0);
        let _ = z.select(1, at + value).fill_(1.0);
        Ok(z)
    }

    /// `z` `[k, latent_dim]` with every continuous code set to `value`.
    pub fn with_continuous(&self, z: &Tensor, value: f64) -> Result<Tensor> {
        self.check_latent(z)?;
        let z = z.copy();
        let _ = z.narrow(1, self.noise_dim() + self.codes.continuous_offset(), self.codes.continuous).fill_(value);
        Ok(z)
    }

    /// Each row of `z` `[rows, latent_dim]` with every value of categorical code `code` in turn
    /// (the rest fixed) → `[rows · k, latent_dim]`.
    pub fn code_values(&self, z: &Tensor, code: usize) -> Result<Tensor> {
        let k = self.categorical_values(code)?;
        let rows = z.size()[0];
        let per_value: Vec<Tensor> = (0..k).map(|v| self.with_code(z, code, v)).collect::<Result<_>>()?;
        // [k, rows, latent] → [rows, k, latent]: row r holds z_r with each value in turn.
        Ok(Tensor::stack(&per_value, 0).transpose(0, 1).reshape([rows * k, self.latent_dim]))
    }

    /// For each row of `z` `[rows, latent_dim]`, the images of every value of categorical code
    /// `code` (the rest of z fixed) → `[rows · k, C, S, S]`: show with k columns.
    pub fn code_grid(&self, z: &Tensor, code: usize) -> Result<Tensor> {
        Ok(self.generate(&self.code_values(z, code)?))
    }

    /// Rows for a continuous-code sweep from one latent vector `z` `[1, latent_dim]`: one per value
    /// of the first categorical code (the paper's figure), or `z` itself without one.
    pub fn sweep_rows(&self, z: &Tensor) -> Result<Tensor> {
        self.check_latent(z)?;
        match self.codes.categorical.is_empty() {
            true => Ok(z.shallow_clone()),
            false => self.code_values(z, 0),
        }
    }

    /// Continuous code `code` of each row of `z` `[rows, latent_dim]` swept over `steps` values
    /// from `from` to `to` → `[rows · steps, C, S, S]` (the codes are drawn from U(−1, 1): beyond
    /// that range the sweep extrapolates).
    pub fn code_sweep(&self, z: &Tensor, code: i64, from: f64, to: f64, steps: i64) -> Result<Tensor> {
        ensure!(
            (0..self.codes.continuous).contains(&code),
            "continuous code {code}: this {} has {} continuous codes",
            self.family,
            self.codes.continuous
        );
        self.check_latent(z)?;
        ensure!(steps >= 1, "steps = {steps}: expected 1 or more");
        Ok(self.sweep(z, self.noise_dim() + self.codes.continuous_offset() + code, from, to, steps))
    }

    /// How well categorical code `code` captures the digit: `n` samples (values in turn, the rest
    /// of z drawn with `seed`) judged by the frozen evaluator, each value mapped to a digit by the
    /// Hungarian assignment.
    pub fn code_accuracy(
        &self,
        ev: &crate::metrics::Evaluator,
        n: i64,
        seed: u64,
        code: usize,
    ) -> Result<crate::metrics::CodeAccuracy> {
        let k = self.categorical_values(code)?;
        ensure!(n >= 1, "n = {n}: expected 1 or more samples");
        let z = self.draw_latent(n, mix(seed, 0xC0DE));
        let values = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(k);
        let at = self.noise_dim() + self.codes.categorical_offset(code);
        z.narrow(1, at, k).copy_(&crate::models::one_hot(&values, k));
        crate::metrics::CodeAccuracy::measure(ev, &self.generate(&z), &values, k)
    }

    fn categorical_values(&self, code: usize) -> Result<i64> {
        match self.codes.categorical.get(code) {
            Some(&k) => Ok(k),
            None => bail!(
                "categorical code {code}: this {} has {} categorical codes",
                self.family,
                self.codes.categorical.len()
            ),
        }
    }

    /// The networks' parameters, one line each: name, shape, count.
    pub fn summary(&self) -> String {
        parameter_summary("Generator", &self.vs_g) + &parameter_summary("Discriminator", &self.vs_d)
    }

    /// Sweeps latent dimension `dim` of each row of `z` `[k, latent_dim]` over `steps` values from
    /// `from` to `to` (the others fixed) → images `[k · steps, C, S, S]`, one row per z.
    pub fn sweep(&self, z: &Tensor, dim: i64, from: f64, to: f64, steps: i64) -> Tensor {
        assert!((0..self.latent_dim).contains(&dim), "sweep: dimension {dim} is outside 0..{}", self.latent_dim);
        let k = z.size()[0];
        let values = Tensor::linspace(from, to, steps, (Kind::Float, Device::Cpu));
        let zs = z.unsqueeze(1).repeat([1, steps, 1]); // [k, steps, latent_dim]
        zs.select(2, dim).copy_(&values.unsqueeze(0).expand([k, steps], false));
        self.generate(&zs.view([k * steps, self.latent_dim]))
    }

    /// Images along the line from `z1` to `z2` (each `[latent_dim]`), `steps` of them.
    pub fn interpolate(&self, z1: &Tensor, z2: &Tensor, steps: i64) -> Tensor {
        self.generate(&crate::viz::interpolate(z1, z2, steps))
    }

    fn image_shape(&self) -> Vec<i64> {
        self.generate(&Tensor::zeros([1, self.latent_dim], (Kind::Float, Device::Cpu))).size()[1..].to_vec()
    }

    fn image_numel(&self) -> i64 {
        self.image_shape().iter().product()
    }
}

/// The frozen evaluator and the real reference, for scoring during training.
struct Scorer {
    evaluator: crate::metrics::Evaluator,
    reference: crate::metrics::RealReference,
}

impl Scorer {
    fn new(data: &Dataset) -> Result<Scorer> {
        ensure!(
            data.channels() == 1 && data.image_size() == 32,
            "metrics_every: the evaluator scores 1-channel 32×32 digits, but {} has {}-channel {}×{} images",
            data.name,
            data.channels(),
            data.image_size(),
            data.image_size()
        );
        let evaluator = crate::metrics::Evaluator::shipped()?;
        let reference = crate::metrics::RealReference::new(&evaluator, &data.images);
        Ok(Scorer { evaluator, reference })
    }

    fn score(&self, gan: &Gan, n: i64) -> MetricRecord {
        let started = std::time::Instant::now();
        let images = gan.sample(n, mix(gan.config.seed, gan.step as u64));
        let scores = self.reference.score(&self.evaluator, &images);
        MetricRecord { step: gan.step, scores, seconds: started.elapsed().as_secs_f64() }
    }
}

/// The trainable parameters of `vs` by name with their shapes, under `title` and their total.
pub fn parameter_summary(title: &str, vs: &VarStore) -> String {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let total: i64 = vars.iter().map(|(_, t)| t.numel() as i64).sum();
    let mut out = format!("{title}: {total} parameters\n");
    for (name, t) in vars {
        out += &format!("  {name:<16} {:?}\n", t.size());
    }
    out
}

/// Exercise `dcgan.sample_prior`: `n` draws from the prior N(0, I) in `latent_dim` dimensions,
/// `[n, latent_dim]`, from libtorch's random generator.
pub fn sample_prior(n: i64, latent_dim: i64) -> Tensor {
    // BEGIN SOLUTION dcgan.sample_prior
    Tensor::randn([n, latent_dim], (Kind::Float, Device::Cpu))
    // END SOLUTION
}

static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with libtorch's global random generator seeded with `seed`, holding a lock so that
/// draws from other threads cannot interleave: every random draw in gan_lab goes through here,
/// which keeps runs deterministic by seed even when several train in one process.
pub fn with_seed<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    let _guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    struct Seeded;
    impl Drop for Seeded {
        fn drop(&mut self) {
            crate::backend::ops::set_seeded(false);
        }
    }
    crate::backend::ops::set_seeded(true);
    let _seeded = Seeded; // dropped before the lock, also when `f` panics
    tch::manual_seed(seed as i64);
    f()
}

/// SplitMix64 of `seed` and `salt`: independent seeds for independent streams.
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed.wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 1 // non-negative as i64
}

/// A live progress bar in a terminal; a compact line every N steps elsewhere (notebooks, logs),
/// where carriage returns do not animate. `GAN_LAB_PROGRESS=bar|lines|off` overrides the choice.
pub(crate) enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { every: i64 },
    Off,
}

impl Progress {
    pub(crate) fn new(total: i64, start: i64) -> Progress {
        let mode = std::env::var("GAN_LAB_PROGRESS").unwrap_or_default();
        let terminal = std::io::stderr().is_terminal();
        match mode.as_str() {
            "off" => Progress::Off,
            "bar" => Progress::bar(total, start),
            "lines" => Progress::Lines { every: (total / 10).max(1) },
            _ if terminal => Progress::bar(total, start),
            _ => Progress::Lines { every: (total / 10).max(1) },
        }
    }

    fn bar(total: i64, start: i64) -> Progress {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps [{elapsed} < {eta}] {msg}")
                .expect("valid template"),
        );
        bar.set_position(start as u64);
        Progress::Bar(bar)
    }

    /// Moves to `step` of `total`; `message` (the latest losses) is formatted only when shown.
    pub(crate) fn update(&mut self, step: i64, total: i64, message: impl FnOnce() -> String) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(step as u64);
                bar.set_message(message());
            }
            Progress::Lines { every } if step % *every == 0 => {
                eprintln!("step {step:>6}/{total}  {}", message());
            }
            _ => {}
        }
    }

    /// A line that stays: above the bar in a terminal, as is elsewhere.
    pub(crate) fn note(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.println(line),
            Progress::Lines { .. } => eprintln!("{line}"),
            Progress::Off => {}
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Calls in test code that draw from libtorch's global generator: tensors' random
    /// constructors and fills, gan_lab's samplers, layer constructors (their initial weights), and
    /// anything handed a parameter path (`vs.root()`) but for constant parameters.
    const DRAWS: [&str; 15] = [
        "Tensor::randn(",
        "Tensor::rand(",
        "Tensor::randint(",
        "Tensor::randperm(",
        ".randn_like(",
        ".rand_like(",
        ".uniform_(",
        ".normal_(",
        ".bernoulli",
        ".randn_standard(",
        "sample_prior(",
        "sample_codes(",
        "reparameterize(",
        "nn::conv",
        "nn::linear(",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if entry.is_dir() {
                rust_files(&entry, out);
            } else if entry.extension().is_some_and(|e| e == "rs") {
                out.push(entry);
            }
        }
    }

    /// `s` with comments, string and character literals blanked (same byte offsets and lines), so
    /// that only code is searched and parentheses match.
    fn code_only(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = b.to_vec();
        let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
            for c in &mut out[from..to] {
                if *c != b'\n' {
                    *c = b' ';
                }
            }
        };
        let mut i = 0;
        while i < b.len() {
            let end = match b[i] {
                b'/' if b.get(i + 1) == Some(&b'/') => s[i..].find('\n').map_or(b.len(), |e| i + e),
                b'"' => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    j + 1
                }
                b'\'' if b.get(i + 2) == Some(&b'\'') => i + 3,
                b'\'' if b.get(i + 1) == Some(&b'\\') => i + s[i + 2..].find('\'').map_or(b.len(), |e| i + 3 + e),
                _ => {
                    i += 1;
                    continue;
                }
            };
            let end = end.min(b.len());
            blank(&mut out, i, end);
            i = end;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Byte ranges of `with_seed(...)` calls: from the name to the closing parenthesis.
    fn seeded_spans(s: &str) -> Vec<(usize, usize)> {
        s.match_indices("with_seed(")
            .map(|(start, m)| {
                let mut depth = 1;
                let end = s[start + m.len()..]
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(s.len(), |(i, _)| start + m.len() + i);
                (start, end)
            })
            .collect()
    }

    /// The draws in `text[from..]` outside `with_seed`, as "line: text".
    fn unseeded_draws(text: &str, from: usize) -> Vec<String> {
        let code = code_only(text);
        let s = code.as_str();
        let spans = seeded_spans(s);
        let constant = [".root().ones(", ".root().zeros(", ".root().zeros_no_train("];
        let mut found: Vec<usize> =
            DRAWS.iter().flat_map(|d| s[from..].match_indices(d).map(|(i, _)| from + i)).collect();
        found.extend(s[from..].match_indices(".root()").map(|(i, _)| from + i).filter(|&i| {
            let rest = &s[i..];
            let line = rest.lines().next().unwrap_or("");
            !constant.iter().any(|c| rest.starts_with(c)) && !line.contains("Init::Const")
        }));
        found.sort_unstable();
        found
            .into_iter()
            .filter(|&i| !spans.iter().any(|&(a, b)| a <= i && i < b))
            .map(|i| {
                let line = s[..i].matches('\n').count();
                format!("{}: {}", line + 1, text.lines().nth(line).unwrap_or("").trim())
            })
            .collect()
    }

    #[test]
    fn test_code_draws_random_numbers_only_under_the_seed_lock() {
        // Tests run in parallel threads of one process. A draw outside `with_seed` in one test can
        // land between another test's seeding and its draws, so that test sees other numbers than
        // the ones it compares with (this failed a layer test about once in fifty runs).
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![];
        rust_files(&root.join("src"), &mut files);
        rust_files(&root.join("../tests"), &mut files);
        let mut unseeded = vec![];
        for file in files {
            let s = std::fs::read_to_string(&file).unwrap();
            // Library modules: their tests, which sit after `#[cfg(test)]` at the end.
            let from = match file.starts_with(root.join("src")) {
                true => s.find("#[cfg(test)]").map(|i| i + "#[cfg(test)]".len()),
                false => Some(0),
            };
            if let Some(from) = from {
                unseeded.extend(unseeded_draws(&s, from).into_iter().map(|d| format!("{}:{d}", file.display())));
            }
        }
        assert!(unseeded.is_empty(), "random draws outside `with_seed` in test code:\n{}", unseeded.join("\n"));
    }

    #[test]
    fn a_draw_outside_with_seed_is_found_and_one_inside_is_not() {
        let code = "let a = with_seed(1, || (Tensor::randn([2], o), f(Tensor::rand([1], o))));\n\
                    let vs = nn::VarStore::new(cpu);\n\
                    let b = nn::conv2d(vs.root() / \"c\", 1, 2, 3, c);\n\
                    let w = vs.root().var(\"w\", &[4], nn::Init::Const(0.0));\n";
        assert_eq!(unseeded_draws(code, 0), ["3: let b = nn::conv2d(vs.root() / \"c\", 1, 2, 3, c);"; 2]);
    }
}
