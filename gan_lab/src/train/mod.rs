//! The one training loop. Every GAN family runs through [`Gan::train_step`]: (1) a D step, (2) a
//! G step, each marked with the objective it optimises and each family's extra term one line;
//! what differs between families (the networks, the objective, the optimizers) is data the loop
//! reads. The DCGAN lesson's runs take the student's own step ([`crate::step::train_step`]).

mod config;
mod run;

pub use crate::history::{History, MetricRecord, StepRecord};
pub use config::TrainConfig;
pub(crate) use run::{after_run, check_data, run_steps, RunSettings};
pub use run::{parameter_summary, quick_mode, quick_steps, request_stop, stop_requested, Outcome, QUICK_STEPS};

use crate::backend::ops::profiled;
use crate::backend::perf::with_bf16;
use crate::data::{Batcher, Dataset};
use crate::losses::{Auxiliary, InformationTerm, Objective};
use crate::models::infogan::{sample_codes, Codes};
use crate::models::{DiscriminatorNet, GeneratorNet};
use crate::optim::Optimizer;
use crate::rng::{mix, sample_prior, with_seed};
use anyhow::{bail, ensure, Context, Result};
use tch::{nn, nn::VarStore, Device, Kind, Tensor};

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
    penalty: Option<Tensor>,
}

/// Adds a family's extra term, when it has one, to a loss.
fn add(loss: &mut Tensor, term: Option<&Tensor>) {
    if let Some(term) = term {
        *loss += term;
    }
}

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

impl Gan {
    /// `n` latent vectors drawn with `seed`: noise from the prior N(0, I), then the codes, if
    /// any, from theirs ([`sample_codes`]); drawn on the CPU, the same on every device, then
    /// moved to the model's.
    pub fn draw_latent(&self, n: i64, seed: u64) -> Tensor {
        with_seed(seed, || {
            let noise = sample_prior(n, self.noise_dim());
            match self.codes.is_empty() {
                true => noise,
                false => Tensor::cat(&[noise, sample_codes(n, &self.codes)], 1),
            }
        })
        .to_device(self.device())
    }

    /// Where the model computes (see [`crate::device`]).
    pub fn device(&self) -> Device {
        self.vs_g.device()
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
        let (fake, critique) = self.d_step(real, labels, z, index);
        self.g_step(&fake, labels, z, critique)
    }

    /// The lesson's own step ([`crate::step::train_step`], exercise `dcgan.train_step`) for the
    /// runs it covers: networks that are plain modules (the DCGAN), no labels, no auxiliary term
    /// and an objective that is its two losses alone (not WGAN's clipping or penalty). `None`
    /// for the other runs, which take [`Gan::d_step`] and [`Gan::g_step`].
    fn lesson_step(&mut self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor) -> Option<StepRecord> {
        let objective = self.config.objective;
        let plain = labels.is_none() && self.config.auxiliary == Auxiliary::None && !objective.is_wasserstein();
        let (Some(g), Some(d), true) = (self.generator.module(), self.discriminator.module(), plain) else {
            return None;
        };
        let (opt_g, opt_d) = (&mut self.opt_g, &mut self.opt_d);
        let s = with_bf16(self.config.bf16, || crate::step::train_step(g, d, opt_g, opt_d, real, z, &objective));
        if let Some(average) = &mut self.average {
            average.update();
        }
        let critique = Critique {
            d_loss: s.d_loss.double_value(&[]),
            d_real: objective.mean_judgement(&s.on_real),
            d_fake: objective.mean_judgement(&s.on_fake),
            class_loss: None,
            wasserstein: None,
            penalty: None,
        };
        Some(self.record(critique, &s.g_loss, None))
    }

    /// (1) Update D on a real batch and the fakes of `z`: maximise log D(x) + log(1 − D(G(z)))
    /// (or the objective's own D loss), plus the family's extra terms. Returns the fakes (still
    /// attached to G's graph, for the G step) and what D measured. `index` counts D's updates
    /// and seeds the gradient penalty's mixing weights.
    pub fn d_step(&mut self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor, index: i64) -> (Tensor, Critique) {
        let objective = self.config.objective;
        let c = with_bf16(self.config.bf16, || self.d_loss(real, labels, z, index));
        self.opt_d.minimize(&c.d_loss);
        if let Objective::Wasserstein { clip } = objective {
            crate::losses::clip_weights(&self.vs_d, clip); // WGAN: clip D's weights to [−c, c]
        }
        let (d_real, d_fake) = (objective.mean_judgement(&c.on_real), objective.mean_judgement(&c.on_fake));
        let critique = Critique {
            d_loss: c.d_loss.double_value(&[]),
            d_real,
            d_fake,
            class_loss: c.class_loss.map(|t| t.double_value(&[])),
            wasserstein: objective.is_wasserstein().then_some(d_real - d_fake),
            penalty: c.penalty.map(|t| t.double_value(&[])),
        };
        (c.fake, critique)
    }

    /// D's loss in [`Gan::d_step`], before the update: the fakes of `z`, detached for D, and
    /// D's judgements of them and of the real batch.
    fn d_loss(&self, real: &Tensor, labels: Option<&Tensor>, z: &Tensor, index: i64) -> CriticLoss {
        let (objective, auxiliary, codes) = (self.config.objective, self.config.auxiliary, &self.codes);
        let fake = self.generator.generate(z, labels, true);
        let on_real = self.discriminator.judge(real, labels, true);
        let on_fake = self.discriminator.judge(&fake.detach(), labels, true);
        let mut d_loss = objective.discriminator_loss(&on_real.score, &on_fake.score);
        let class_loss = auxiliary.class_term(on_real.classes.as_ref(), labels);
        add(&mut d_loss, class_loss.as_ref()); // ACGAN: + class loss on the real batch
        add(&mut d_loss, auxiliary.class_term(on_fake.classes.as_ref(), labels).as_ref()); // ACGAN: + on the fakes
        let info = auxiliary.information_term(on_fake.codes.as_ref(), z, codes);
        add(&mut d_loss, info.as_ref().map(|i| &i.weighted)); // InfoGAN: + λ · Q's loss on the fakes' codes
        let penalty = self.gradient_penalty(real, &fake, labels, index);
        add(&mut d_loss, penalty.as_ref()); // WGAN-GP: + λ (‖∇D(x̂)‖ − 1)²
        CriticLoss { fake, on_real: on_real.score, on_fake: on_fake.score, d_loss, class_loss, penalty }
    }

    /// WGAN-GP's penalty at random mixes x̂ of the real batch and the fakes (mixing weights
    /// seeded by D's update `index`); `None` for the other objectives.
    fn gradient_penalty(&self, real: &Tensor, fake: &Tensor, labels: Option<&Tensor>, index: i64) -> Option<Tensor> {
        let Objective::WassersteinGp { lambda } = self.config.objective else {
            return None;
        };
        let b = real.size()[0];
        let alpha = with_seed(mix(self.config.seed ^ 0x6A7E, index as u64 + 1), || {
            Tensor::rand([b, 1, 1, 1], (Kind::Float, Device::Cpu))
        })
        .to_device(real.device());
        let critic = |x: &Tensor| self.discriminator.score(x, labels, true);
        Some(crate::losses::gradient_penalty(&critic, real, &fake.detach(), &alpha, lambda))
    }

    /// (2) Update G through D on `fake` = G(`z`) from the last D step: maximise log D(G(z)) (or
    /// the objective's own G loss), plus the family's extra terms. Only G's weights move: on
    /// the way back through D, autograd computes gradients for D's activations, not its weights.
    pub fn g_step(&mut self, fake: &Tensor, labels: Option<&Tensor>, z: &Tensor, critique: Critique) -> StepRecord {
        let (g_loss, info) = with_bf16(self.config.bf16, || self.g_loss(fake, labels, z));
        self.opt_g.minimize(&g_loss);
        if let Some(average) = &mut self.average {
            average.update();
        }
        self.record(critique, &g_loss, info)
    }

    /// Another update of G in the same step, for a D:G update ratio of 1:k (`g_steps`): fresh
    /// fakes of the same `z` from the G just updated, G's loss on them, one optimizer step.
    /// Updates the step's `record` with its loss.
    fn g_step_again(&mut self, labels: Option<&Tensor>, z: &Tensor, record: &mut StepRecord) {
        let (g_loss, info) = with_bf16(self.config.bf16, || {
            let fake = self.generator.generate(z, labels, true);
            self.g_loss(&fake, labels, z)
        });
        self.opt_g.minimize(&g_loss);
        if let Some(average) = &mut self.average {
            average.update();
        }
        record.g_loss = g_loss.double_value(&[]);
        record.information = info.as_ref().map(|i| i.weighted.double_value(&[]));
        record.mutual_information = info.map(|i| i.mutual_information);
        record.g_updates += 1;
    }

    /// G's loss in [`Gan::g_step`] on `fake` = G(`z`), and InfoGAN's information term.
    pub fn g_loss(&self, fake: &Tensor, labels: Option<&Tensor>, z: &Tensor) -> (Tensor, Option<InformationTerm>) {
        let (objective, auxiliary, codes) = (self.config.objective, self.config.auxiliary, &self.codes);
        let judged = self.discriminator.judge(fake, labels, true);
        let mut g_loss = objective.generator_loss(&judged.score);
        add(&mut g_loss, auxiliary.class_term(judged.classes.as_ref(), labels).as_ref()); // ACGAN: + class loss
        let info = auxiliary.information_term(judged.codes.as_ref(), z, codes);
        add(&mut g_loss, info.as_ref().map(|i| &i.weighted)); // InfoGAN: + λ · information loss
        (g_loss, info)
    }

    /// The step's record: D's measures, G's loss and, for InfoGAN, its information terms.
    fn record(&self, critique: Critique, g_loss: &Tensor, info: Option<InformationTerm>) -> StepRecord {
        StepRecord {
            step: self.step,
            d_loss: critique.d_loss,
            g_loss: g_loss.double_value(&[]),
            g_updates: 1,
            d_real: critique.d_real,
            d_fake: critique.d_fake,
            class_loss: critique.class_loss,
            wasserstein: critique.wasserstein,
            penalty: critique.penalty,
            information: info.as_ref().map(|i| i.weighted.double_value(&[])),
            mutual_information: info.map(|i| i.mutual_information),
        }
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
        let device = self.device();
        self.history.backend = Some(crate::backend::current());
        let scorer = match c.metrics_every > 0 {
            true => Some(Scorer::new(data, device)?),
            false => None,
        };
        if let Some(scorer) = &scorer {
            self.history.evaluator = Some(scorer.evaluator.info.dataset.clone());
        }
        let (started, seconds_before) = (std::time::Instant::now(), self.seconds);
        run_steps(self.step, c.steps, |progress| {
            // n_critic updates of D, each on its own batch and noise, then g_steps updates of G, the
            // first on the last fakes. With one D update per step, D's update i is step i.
            let (first, updates) = (c.n_critic.updates_before(self.step), c.n_critic.updates(self.step));
            ensure!(updates >= 1, "n_critic: expected at least one critic update per step");
            let mut batch = |gan: &Gan, index: i64| {
                profiled(c"gan_lab::batch_and_latent", || {
                    let (real, labels) = batcher.batch(data, index);
                    let real = crate::backend::perf::batch_layout(real.to_device(device), c.channels_last);
                    (real, labels.map(|l| l.to_device(device)), gan.latent_for_step(index))
                })
            };
            let (mut record, labels, z) = if updates == 1 {
                let (real, labels, z) = batch(self, first);
                (self.step_on(&real, labels.as_ref(), &z, first), labels, z)
            } else {
                let mut last = None;
                for index in first..first + updates {
                    let (real, labels, z) = batch(self, index);
                    let (fake, critique) = self.d_step(&real, labels.as_ref(), &z, index);
                    last = Some((fake, labels, z, critique));
                }
                let (fake, labels, z, critique) = last.expect("at least one critic update");
                (self.g_step(&fake, labels.as_ref(), &z, critique), labels, z)
            };
            for _ in 1..c.g_steps {
                self.g_step_again(labels.as_ref(), &z, &mut record); // D:G ratio 1:g_steps
            }
            let r = record;
            ensure!(
                r.d_loss.is_finite() && r.g_loss.is_finite(),
                "step {}: the losses became {} (D) and {} (G); try a lower learning rate",
                self.step,
                r.d_loss,
                r.g_loss
            );
            self.history.steps.push(record);
            self.step += 1;
            self.seconds = seconds_before + started.elapsed().as_secs_f64();
            if c.snapshot_every > 0 && self.step % c.snapshot_every == 0 {
                let images = self.generate(&self.fixed_noise);
                self.snapshots.push((self.step, images));
            }
            if let (Some(scorer), true) = (&scorer, c.metrics_every > 0 && self.step % c.metrics_every == 0) {
                let record = scorer.score(self, c.metrics_samples);
                progress.note(&format!("step {}: {}  ({:.1} s)", self.step, record.scores, record.seconds));
                self.history.metrics.push(record);
            }
            after_step(self)?;
            let line = format!("D {:.3}  G {:.3}  D(x) {:.2}  D(G(z)) {:.2}", r.d_loss, r.g_loss, r.d_real, r.d_fake);
            Ok((self.step, line))
        })
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
        Tensor::arange(n, (Kind::Int64, self.device())).remainder(self.classes.max(1))
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

    /// The networks' parameters, one line each: name, shape, count.
    pub fn summary(&self) -> String {
        parameter_summary("Generator", &self.vs_g) + &parameter_summary("Discriminator", &self.vs_d)
    }

    fn image_shape(&self) -> Vec<i64> {
        self.generate(&Tensor::zeros([1, self.latent_dim], (Kind::Float, self.device()))).size()[1..].to_vec()
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
    fn new(data: &Dataset, device: Device) -> Result<Scorer> {
        let mut evaluator = crate::metrics::Evaluator::for_data(data).context("metrics_every")?;
        evaluator.set_device(device);
        evaluator.check_reads(&format!("metrics_every on {}", data.name), &data.images)?;
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
