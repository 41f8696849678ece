//! High-level builders, one per lesson: the constructor takes the lesson's defaults, setters
//! change one experiment's knob, and `train` does the work. Every family shares one
//! [`Builder`] (the settings, checks, training and outputs) and says what differs through
//! [`Family`]: its networks and its architecture settings.
//!
//! ```no_run
//! # use gan_lab::{builders::{Cdcgan, Dcgan}, data::{Dataset, Split}};
//! let data = Dataset::mnist(Split::Train)?;
//! let gan = Dcgan::mnist32().latent_dim(100).steps(1500).seed(0).train(&data)?;
//! let conditional = Cdcgan::mnist32().steps(1000).train(&data)?;
//! # anyhow::Ok(())
//! ```

use crate::checkpoint;
use crate::data::Dataset;
use crate::losses::{Auxiliary, CriticSchedule, Objective};
use crate::models::acgan::{self, AcganConfig};
use crate::models::cdcgan::{self, CdcganConfig};
use crate::models::dcgan::{DcganConfig, Discriminator, Generator, Init};
use crate::models::infogan::{self, Codes, InfoganConfig, Networks};
use crate::models::layers::{Norm, Upsample};
use crate::models::sagan::{self, SaganConfig};
use crate::models::{DiscriminatorNet, GeneratorNet};
use crate::optim::{AdamConfig, Optimizer, OptimizerConfig, RmsPropConfig};
use crate::train::{self, check_data, Gan, History, RunSettings, TrainConfig};
use crate::vae::{Reconstruction, VaeConfig, VaeModel, VaeTraining};
use crate::viz;
use anyhow::{bail, ensure, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn, nn::VarStore, Device};

/// The setters every builder has, GAN or VAE, over the settings every run has (its `train`
/// settings' `steps`, `batch_size`, `seed`, `channels_last`, `bf16`, `checkpoint_every`, and
/// its `device` and `out_dir`): written once, expanded in each builder's `impl`.
macro_rules! run_setters {
    () => {
        /// Total training steps; on resume, the step count to reach.
        pub fn steps(mut self, n: i64) -> Self {
            self.train.steps = n;
            self
        }
        pub fn batch_size(mut self, n: i64) -> Self {
            self.train.batch_size = n;
            self
        }
        /// Seeds weights, batches and noise: the same seed gives the same run on CPU.
        pub fn seed(mut self, seed: u64) -> Self {
            self.train.seed = seed;
            self
        }
        /// Channels-last weights and batches (on by default; the fast backend's layout, see
        /// [`crate::backend`]).
        pub fn channels_last(mut self, on: bool) -> Self {
            self.train.channels_last = on;
            self
        }
        /// Forward passes in bfloat16 on CPUs with `avx512_bf16` (off by default; see
        /// [`crate::backend::perf::with_bf16`]). Building fails with a clear error on other CPUs.
        pub fn bf16(mut self, on: bool) -> Self {
            self.train.bf16 = on;
            self
        }
        /// Where the run computes: [`Device::Cpu`] (the default, where the fast backend's kernels
        /// run) or `Device::Cuda(n)` through libtorch. Weights start from the same seeded values
        /// on every device ([`crate::device`]); building fails in one line where libtorch cannot
        /// reach the device.
        pub fn device(mut self, device: Device) -> Self {
            self.device = device;
            self
        }
        /// Saves the run every `n` steps when it has an output folder (0: at the end only).
        pub fn checkpoint_every(mut self, n: i64) -> Self {
            self.train.checkpoint_every = n;
            self
        }
        /// Writes the run's checkpoints, pictures and history into `dir`.
        pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
            self.out_dir = Some(dir.into());
            self
        }
    };
}

/// What a model family tells the shared [`Builder`].
pub trait Family: Clone + std::fmt::Debug + Serialize + DeserializeOwned {
    /// The family's name, stored in checkpoints (`"dcgan"`).
    const NAME: &'static str;
    fn latent_dim(&self) -> i64;
    fn set_latent_dim(&mut self, n: i64);
    /// Classes a conditional generator takes; 0 for unconditional families.
    fn classes(&self) -> i64 {
        0
    }
    /// Sets the number of classes (conditional families; the others have none to set).
    fn set_classes(&mut self, _n: i64) {}
    /// The latent codes G takes after its noise (InfoGAN); none by default.
    fn codes(&self) -> Codes {
        Codes::default()
    }
    /// (channels, side) of the images.
    fn image(&self) -> (i64, i64);
    /// Sets (channels, side); `validate` says which the family builds.
    fn set_image(&mut self, channels: i64, side: i64);
    /// Checks the architecture settings.
    fn validate(&self) -> Result<()>;
    /// The untrained networks, their variables under `g` and `d`.
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>);
    /// The architecture settings as JSON (stored in checkpoints): `architecture_json(self)`.
    fn architecture(&self) -> Result<serde_json::Value>;
    /// The family's training defaults.
    fn training() -> TrainConfig {
        TrainConfig::default()
    }
    /// Adjusts the architecture to a newly chosen objective (a DCGAN critic drops BatchNorm for
    /// the gradient penalty).
    fn adapt_to(&mut self, _objective: Objective) {}
}

/// A family's settings as JSON, for [`Family::architecture`]. Each family's impl calls it, so that
/// it is compiled once, in the library.
fn architecture_json(model: &impl Serialize) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(model)?)
}

/// What the builder's work (checks, building, training, outputs) needs of a family, as a trait
/// object: that work is compiled once, in the library, instead of once per family in each crate
/// that trains one (in a notebook, every cell that trains a model would compile it again).
trait FamilyObject {
    fn name(&self) -> &'static str;
    fn architecture(&self) -> Result<serde_json::Value>;
    fn latent_dim(&self) -> i64;
    fn classes(&self) -> i64;
    fn codes(&self) -> Codes;
    fn image(&self) -> (i64, i64);
    fn validate(&self) -> Result<()>;
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>);
}

impl<F: Family> FamilyObject for F {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn architecture(&self) -> Result<serde_json::Value> {
        Family::architecture(self)
    }
    fn latent_dim(&self) -> i64 {
        Family::latent_dim(self)
    }
    fn classes(&self) -> i64 {
        Family::classes(self)
    }
    fn codes(&self) -> Codes {
        Family::codes(self)
    }
    fn image(&self) -> (i64, i64) {
        Family::image(self)
    }
    fn validate(&self) -> Result<()> {
        Family::validate(self)
    }
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
        Family::networks(self, g, d)
    }
}

/// The cDCGAN's default decay of the averaged generator.
pub const CDCGAN_AVERAGE: f64 = 0.997;

/// Each objective's optimizers and critic schedule, from the papers the seeds follow: WGAN
/// RMSProp(5e-5) with the WGAN schedule; WGAN-GP Adam(1e-4, β 0 and 0.9) with 5 critic updates;
/// the others (minimax, LSGAN, hinge) the DCGAN's Adam(2e-4, β1 0.5), one D update per step.
pub fn objective_defaults(objective: Objective) -> (OptimizerConfig, CriticSchedule) {
    match objective {
        Objective::Wasserstein { .. } => (RmsPropConfig::wgan().into(), CriticSchedule::Wgan),
        Objective::WassersteinGp { .. } => {
            (AdamConfig { lr: 1e-4, beta1: 0.0, beta2: 0.9, eps: 1e-8 }.into(), CriticSchedule::Fixed(5))
        }
        _ => (AdamConfig::dcgan().into(), CriticSchedule::One),
    }
}

fn check_dcgan(m: &DcganConfig) -> Result<()> {
    ensure!(m.latent_dim >= 1, "latent_dim = {}: expected 1 or more", m.latent_dim);
    ensure!(m.ngf >= 1, "ngf = {}: expected 1 or more", m.ngf);
    ensure!(m.ndf >= 1, "ndf = {}: expected 1 or more", m.ndf);
    ensure!(crate::data::IMAGE_SIZES.contains(&m.image_size), "image_size = {}: expected 32 or 64", m.image_size);
    ensure!(m.channels == 1 || m.channels == 3, "channels = {}: expected 1 or 3", m.channels);
    Ok(())
}

/// ACGAN and InfoGAN build on the lesson's DCGAN layers: BatchNorm in D, transposed convolutions in G.
fn check_lesson_layers(m: &DcganConfig) -> Result<()> {
    ensure!(m.norm == Norm::Batch, "dcgan.norm = {:?}: this family's D uses BatchNorm (expected Batch)", m.norm);
    ensure!(
        m.upsample == Upsample::TransposedConv,
        "dcgan.upsample = {:?}: this family's G uses transposed convolutions (expected TransposedConv)",
        m.upsample
    );
    Ok(())
}

/// A run's device: one libtorch can reach ([`crate::device::check`]), and the CPU for bfloat16
/// (its forward passes use the CPU's bf16 units).
fn check_device(device: Device, bf16: bool) -> Result<()> {
    crate::device::check(device)?;
    ensure!(
        !bf16 || device == Device::Cpu,
        "bf16 on {}: bfloat16 forward passes are a CPU setting; leave bf16 off on a GPU",
        crate::device::name(device)
    );
    Ok(())
}

fn check_classes(classes: i64) -> Result<()> {
    ensure!(classes >= 2, "classes = {classes}: expected 2 or more");
    Ok(())
}

impl Family for DcganConfig {
    const NAME: &'static str = "dcgan";
    fn architecture(&self) -> Result<serde_json::Value> {
        architecture_json(self)
    }
    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
    fn set_latent_dim(&mut self, n: i64) {
        self.latent_dim = n;
    }
    fn image(&self) -> (i64, i64) {
        (self.channels, self.image_size)
    }
    fn set_image(&mut self, channels: i64, side: i64) {
        (self.channels, self.image_size) = (channels, side);
    }
    fn validate(&self) -> Result<()> {
        check_dcgan(self)
    }
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
        // The lesson's networks, or the loss-families lesson's layer choices.
        let generator: Box<dyn GeneratorNet> = match self.upsample {
            Upsample::TransposedConv => Box::new(Generator::new(g, self)),
            _ => Box::new(Generator::with_upsampling(g, self)),
        };
        let discriminator: Box<dyn DiscriminatorNet> = match self.norm {
            Norm::Batch => Box::new(Discriminator::new(d, self)),
            _ => Box::new(Discriminator::with_norm(d, self)),
        };
        (generator, discriminator)
    }
    fn adapt_to(&mut self, objective: Objective) {
        if matches!(objective, Objective::WassersteinGp { .. }) && self.norm == Norm::Batch {
            self.norm = Norm::Layer;
        }
    }
}

impl Family for SaganConfig {
    const NAME: &'static str = "sagan";
    fn architecture(&self) -> Result<serde_json::Value> {
        architecture_json(self)
    }
    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
    fn set_latent_dim(&mut self, n: i64) {
        self.latent_dim = n;
    }
    fn classes(&self) -> i64 {
        self.classes
    }
    fn set_classes(&mut self, n: i64) {
        self.classes = n;
    }
    fn image(&self) -> (i64, i64) {
        (self.channels, self.image_size)
    }
    fn set_image(&mut self, channels: i64, side: i64) {
        (self.channels, self.image_size) = (channels, side);
    }
    fn validate(&self) -> Result<()> {
        ensure!(self.latent_dim >= 1, "latent_dim = {}: expected 1 or more", self.latent_dim);
        if self.classes != 0 {
            check_classes(self.classes)?;
        }
        ensure!(
            crate::data::IMAGE_SIZES.contains(&self.image_size),
            "image_size = {}: expected 32 or 64",
            self.image_size
        );
        ensure!(self.ngf >= 8 && self.ndf >= 8, "ngf = {}, ndf = {}: expected 8 or more", self.ngf, self.ndf);
        ensure!(self.channels == 1 || self.channels == 3, "channels = {}: expected 1 or 3", self.channels);
        let sides: Vec<i64> = (2..).map(|k| 1 << k).take_while(|&side| side < self.image_size).collect();
        ensure!(
            self.attention_at == 0 || sides.contains(&self.attention_at),
            "attention_at = {}: expected one of {sides:?} (the side of the feature maps it follows), or 0 for none",
            self.attention_at
        );
        Ok(())
    }
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
        match self.classes {
            0 => (Box::new(sagan::Generator::new(g, self)), Box::new(sagan::Discriminator::new(d, self))),
            _ => (
                Box::new(sagan::ConditionalGenerator::new(g, self)),
                Box::new(sagan::ProjectionDiscriminator::new(d, self)),
            ),
        }
    }
    /// The IISc final project's: WGAN-GP (λ 10, 5 critic updates) with TTUR, Adam β 0 and 0.9, G 1e-4,
    /// D 4e-4, and FID tracked every 500 iterations.
    fn training() -> TrainConfig {
        let adam = |lr| AdamConfig { lr, beta1: 0.0, beta2: 0.9, eps: 1e-8 }.into();
        TrainConfig {
            objective: Objective::wgan_gp(),
            n_critic: CriticSchedule::Fixed(5),
            optimizer_g: adam(1e-4),
            optimizer_d: adam(4e-4),
            metrics_every: 500,
            ..TrainConfig::default()
        }
    }
}

impl Family for CdcganConfig {
    const NAME: &'static str = "cdcgan";
    fn architecture(&self) -> Result<serde_json::Value> {
        architecture_json(self)
    }
    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
    fn set_latent_dim(&mut self, n: i64) {
        self.latent_dim = n;
    }
    fn classes(&self) -> i64 {
        self.classes
    }
    fn set_classes(&mut self, n: i64) {
        self.classes = n;
    }
    fn image(&self) -> (i64, i64) {
        (self.channels, self.image_size)
    }
    fn set_image(&mut self, channels: i64, side: i64) {
        (self.channels, self.image_size) = (channels, side);
    }
    fn validate(&self) -> Result<()> {
        ensure!(self.latent_dim >= 1, "latent_dim = {}: expected 1 or more", self.latent_dim);
        ensure!(self.ngf >= 1 && self.ndf >= 1, "ngf = {}, ndf = {}: expected 1 or more", self.ngf, self.ndf);
        ensure!(
            crate::data::IMAGE_SIZES.contains(&self.image_size),
            "image_size = {}: expected 32 or 64",
            self.image_size
        );
        ensure!(self.channels == 1 || self.channels == 3, "channels = {}: expected 1 or 3", self.channels);
        check_classes(self.classes)
    }
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
        (Box::new(cdcgan::Generator::new(g, self)), Box::new(cdcgan::Discriminator::new(d, self)))
    }
    /// The lesson's: Adam(2e-4, β1 0.5), batch 64, 1000 steps ("realistic-looking conditioned
    /// digits by 1000 batches"), and a moving average of G's weights with β 0.997 to sample from
    /// ([`Gan::with_average`]; training is unchanged): after 1000 batches the live generator's
    /// class accuracy swings by several points from one batch to the next, the average's does not.
    fn training() -> TrainConfig {
        TrainConfig { steps: 1000, average_generator: CDCGAN_AVERAGE, ..TrainConfig::default() }
    }
}

impl Family for AcganConfig {
    const NAME: &'static str = "acgan";
    fn architecture(&self) -> Result<serde_json::Value> {
        architecture_json(self)
    }
    fn latent_dim(&self) -> i64 {
        self.dcgan.latent_dim
    }
    fn set_latent_dim(&mut self, n: i64) {
        self.dcgan.latent_dim = n;
    }
    fn classes(&self) -> i64 {
        self.classes
    }
    fn set_classes(&mut self, n: i64) {
        self.classes = n;
    }
    fn image(&self) -> (i64, i64) {
        (self.dcgan.channels, self.dcgan.image_size)
    }
    fn set_image(&mut self, channels: i64, side: i64) {
        self.dcgan.set_image(channels, side);
    }
    fn validate(&self) -> Result<()> {
        check_dcgan(&self.dcgan)?;
        check_lesson_layers(&self.dcgan)?;
        check_classes(self.classes)
    }
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
        (Box::new(acgan::Generator::new(g, self)), Box::new(acgan::Discriminator::new(d, self)))
    }
    /// Problem 3's: the DCGAN's, plus the class loss with weight 1 for both players.
    fn training() -> TrainConfig {
        TrainConfig { auxiliary: Auxiliary::Class { weight: 1.0 }, ..TrainConfig::default() }
    }
}

impl Family for InfoganConfig {
    const NAME: &'static str = "infogan";
    fn architecture(&self) -> Result<serde_json::Value> {
        architecture_json(self)
    }
    fn latent_dim(&self) -> i64 {
        self.dcgan.latent_dim
    }
    fn set_latent_dim(&mut self, n: i64) {
        self.dcgan.latent_dim = n;
    }
    fn codes(&self) -> Codes {
        self.codes.clone()
    }
    fn image(&self) -> (i64, i64) {
        (self.dcgan.channels, self.dcgan.image_size)
    }
    fn set_image(&mut self, channels: i64, side: i64) {
        self.dcgan.set_image(channels, side);
    }
    fn validate(&self) -> Result<()> {
        check_dcgan(&self.dcgan)?;
        check_lesson_layers(&self.dcgan)?;
        self.codes.validate()?;
        ensure!(!self.codes.is_empty(), "codes: expected at least one categorical or continuous code");
        ensure!(self.q_hidden >= 1, "q_hidden = {}: expected 1 or more", self.q_hidden);
        if self.networks == Networks::Paper {
            ensure!(
                self.dcgan.image_size == 32,
                "image_size = {}: the paper's InfoGAN networks make 32×32 images (Networks::Dcgan makes 64×64)",
                self.dcgan.image_size
            );
        }
        Ok(())
    }
    fn networks(&self, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
        infogan::networks(self, g, d)
    }
    /// The paper's MNIST settings: Adam with β1 0.5, 1e-3 for G and 2e-4 for D (and Q, which
    /// trains with D), batch 64, plus the information term: λ 1 for the categorical code and 0.1
    /// for the continuous ones (its continuous codes need a smaller weight).
    fn training() -> TrainConfig {
        TrainConfig {
            steps: 3000,
            optimizer_g: AdamConfig { lr: 1e-3, ..AdamConfig::dcgan() }.into(),
            auxiliary: Auxiliary::Information { lambda_cat: 1.0, lambda_cont: 0.1 },
            ..TrainConfig::default()
        }
    }
}

/// A lesson's model and training settings, ready to train.
#[derive(Debug, Clone)]
pub struct Builder<F: Family> {
    pub model: F,
    pub train: TrainConfig,
    device: Device,
    out_dir: Option<PathBuf>,
    resume: Option<PathBuf>,
}

/// The DCGAN lesson (RDFIA practical 3-d, section 1): every experiment it lists is one
/// setter away (ngf/ndf, default init, the "true" loss, learning rates, longer training,
/// n_z, 64×64 images, another dataset).
pub type Dcgan = Builder<DcganConfig>;

/// The conditional DCGAN of the DCGAN lesson's bonus section (RDFIA practical 3-d, section 2.2).
pub type Cdcgan = Builder<CdcganConfig>;

/// SAGAN (the IISc final project): spectral normalisation, self-attention, WGAN-GP and TTUR.
pub type Sagan = Builder<SaganConfig>;

/// ACGAN (DLCV HW4, problem 3): the DCGAN with the class appended to z and a
/// class head on D, both players adding the class loss.
pub type Acgan = Builder<AcganConfig>;

/// InfoGAN (DLCV HW4, bonus): latent codes appended to the noise, and a Q head
/// on D that recovers them, both players adding the information loss.
pub type Infogan = Builder<InfoganConfig>;

impl<F: Family> Builder<F> {
    /// A builder for `model` with the family's training defaults.
    pub fn with_model(model: F) -> Self {
        Builder { model, train: F::training(), device: Device::Cpu, out_dir: None, resume: None }
    }

    pub fn latent_dim(mut self, n: i64) -> Self {
        self.model.set_latent_dim(n);
        self
    }
    /// 32 or 64 (64 adds a block to the networks).
    pub fn image_size(mut self, n: i64) -> Self {
        let (channels, _) = self.model.image();
        self.model.set_image(channels, n);
        self
    }
    /// 1 (grey) or 3 (RGB).
    pub fn channels(mut self, n: i64) -> Self {
        let (_, side) = self.model.image();
        self.model.set_image(n, side);
        self
    }
    /// The number of classes a conditional model takes (e.g. a dataset's `classes.len()`);
    /// unconditional families ignore it.
    pub fn classes(mut self, n: i64) -> Self {
        self.model.set_classes(n);
        self
    }

    /// The players' objective, with its optimizers and critic schedule (see [`objective_defaults`]);
    /// setters called after this one override them.
    pub fn objective(mut self, objective: Objective) -> Self {
        let (optimizer, schedule) = objective_defaults(objective);
        self.train.objective = objective;
        self.train.optimizer_g = optimizer;
        self.train.optimizer_d = optimizer;
        self.train.n_critic = schedule;
        self.model.adapt_to(objective);
        self
    }
    /// Critic updates per generator update.
    pub fn n_critic(mut self, schedule: CriticSchedule) -> Self {
        self.train.n_critic = schedule;
        self
    }
    /// Generator updates per step, after the critic's: 2 for "train D once and G twice" (the
    /// UPenn report; DLCV HW4's 1:2 ratio).
    pub fn g_steps(mut self, n: i64) -> Self {
        self.train.g_steps = n;
        self
    }
    /// Both players' optimizers.
    pub fn optimizers(mut self, g: impl Into<OptimizerConfig>, d: impl Into<OptimizerConfig>) -> Self {
        self.train.optimizer_g = g.into();
        self.train.optimizer_d = d.into();
        self
    }
    run_setters!();

    /// Sets both players' learning rates.
    pub fn lr(self, lr: f64) -> Self {
        self.lr_g(lr).lr_d(lr)
    }
    pub fn lr_g(mut self, lr: f64) -> Self {
        self.train.optimizer_g.set_lr(lr);
        self
    }
    pub fn lr_d(mut self, lr: f64) -> Self {
        self.train.optimizer_d.set_lr(lr);
        self
    }
    pub fn snapshot_every(mut self, n: i64) -> Self {
        self.train.snapshot_every = n;
        self
    }
    /// Scores the generator (IS, Mode score, FID) every `n` steps into `History::metrics`.
    pub fn metrics_every(mut self, n: i64) -> Self {
        self.train.metrics_every = n;
        self
    }
    /// Keeps a moving average of G's weights with decay `decay` (β in [0, 1); 0 turns it off),
    /// to sample from with [`Gan::with_average`]. Training is unchanged.
    pub fn average_generator(mut self, decay: f64) -> Self {
        self.train.average_generator = decay;
        self
    }
    /// Continues the run saved in the checkpoint folder `dir` (same architecture required);
    /// the seed, batch size, objective and optimizers come from the checkpoint.
    pub fn resume(mut self, dir: impl Into<PathBuf>) -> Self {
        self.resume = Some(dir.into());
        self
    }

    /// The run saved in the checkpoint folder `dir`, to continue or to sample from: its
    /// architecture and settings, resuming from it.
    pub fn from_checkpoint(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let (family, architecture, train) = checkpoint::setup_of(&dir)?;
        ensure!(family == F::NAME, "checkpoint {} holds a {family}, not a {}", dir.display(), F::NAME);
        let model = serde_json::from_value(architecture)
            .map_err(|e| anyhow::anyhow!("checkpoint {}: architecture not readable: {e}", dir.display()))?;
        Ok(Builder { model, train, device: Device::Cpu, out_dir: None, resume: Some(dir) })
    }

    /// The settings with the family as a trait object: what [`Builder::build`], [`Builder::check`]
    /// and [`Builder::train`] hand to the library's one compiled copy of their work.
    fn setup(&self) -> Setup<'_> {
        Setup {
            model: &self.model,
            train: &self.train,
            device: self.device,
            out_dir: self.out_dir.as_deref(),
            resume: self.resume.as_deref(),
        }
    }

    /// The untrained networks and optimizers, seeded (or loaded from the resumed checkpoint).
    pub fn build(&self) -> Result<Gan> {
        self.setup().build()
    }

    /// Checks the settings against `data` and the output folder, without training.
    pub fn check(&self, data: &Dataset) -> Result<()> {
        self.setup().check(data)
    }

    /// Trains on `data` and returns the trained model with its history. With an output folder,
    /// writes a checkpoint every `checkpoint_every` steps and at the end, plus the pictures.
    /// In quick mode (`GAN_LAB_QUICK=1`) the run is cut to a few steps.
    pub fn train(&self, data: &Dataset) -> Result<Gan> {
        self.setup().train(data)
    }
}

/// The trained model in the checkpoint folder `dir`, whatever its family: to sample from and to
/// explore (`gan-lab sample`, `gan-lab explore`).
pub fn load_checkpoint(dir: &Path) -> Result<Gan> {
    let (family, _, _) = checkpoint::setup_of(dir)?;
    match family.as_str() {
        DcganConfig::NAME => Dcgan::from_checkpoint(dir)?.build(),
        CdcganConfig::NAME => Cdcgan::from_checkpoint(dir)?.build(),
        AcganConfig::NAME => Acgan::from_checkpoint(dir)?.build(),
        InfoganConfig::NAME => Infogan::from_checkpoint(dir)?.build(),
        SaganConfig::NAME => Sagan::from_checkpoint(dir)?.build(),
        other => {
            bail!("checkpoint {} holds a {other}: expected one of dcgan, cdcgan, acgan, infogan, sagan", dir.display())
        }
    }
}

/// A [`Builder`]'s settings, the family behind a trait object.
struct Setup<'a> {
    model: &'a dyn FamilyObject,
    train: &'a TrainConfig,
    device: Device,
    out_dir: Option<&'a Path>,
    resume: Option<&'a Path>,
}

impl Setup<'_> {
    fn validate(&self) -> Result<()> {
        let t = &self.train;
        let learning_rates = [("lr_g", t.optimizer_g.lr()), ("lr_d", t.optimizer_d.lr())];
        let settings = RunSettings {
            steps: t.steps,
            batch_size: t.batch_size,
            min_batch: (1, ""),
            learning_rates: &learning_rates,
            bf16: t.bf16,
        };
        settings.check()?;
        check_device(self.device, t.bf16)?;
        self.model.validate()?;
        if let CriticSchedule::Fixed(n) = t.n_critic {
            ensure!(n >= 1, "n_critic = {n}: expected 1 or more critic updates per generator update");
        }
        ensure!(t.g_steps >= 1, "g_steps = {}: expected 1 or more generator updates per step", t.g_steps);
        match t.objective {
            Objective::Wasserstein { clip } => {
                ensure!(clip.is_finite() && clip > 0.0, "clip = {clip}: expected a positive weight bound")
            }
            Objective::WassersteinGp { lambda } => {
                ensure!(lambda.is_finite() && lambda >= 0.0, "lambda = {lambda}: expected 0 or more")
            }
            _ => {}
        }
        ensure!(
            (0.0..1.0).contains(&t.average_generator),
            "average_generator = {}: expected a decay in [0, 1) (0: off)",
            t.average_generator
        );
        ensure!(t.metrics_every >= 0, "metrics_every = {}: expected 0 (off) or more", t.metrics_every);
        ensure!(t.metrics_samples >= 20, "metrics_samples = {}: expected 20 or more", t.metrics_samples);
        Ok(())
    }

    fn build(&self) -> Result<Gan> {
        self.validate()?;
        let (mut vs_g, mut vs_d) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
        let (generator, discriminator) = crate::rng::with_seed(crate::rng::mix(self.train.seed, 1), || {
            self.model.networks(&vs_g.root(), &vs_d.root())
        });
        if self.device != Device::Cpu {
            vs_g.set_device(self.device); // before the optimizers and the average take their state
            vs_d.set_device(self.device);
        }
        if self.train.channels_last {
            crate::backend::perf::use_channels_last(&vs_g);
            crate::backend::perf::use_channels_last(&vs_d);
        }
        let mut gan = Gan {
            family: self.model.name().into(),
            architecture: self.model.architecture()?,
            latent_dim: self.model.latent_dim() + self.model.codes().width(),
            classes: self.model.classes(),
            codes: self.model.codes(),
            opt_g: Optimizer::new(&vs_g, self.train.optimizer_g),
            opt_d: Optimizer::new(&vs_d, self.train.optimizer_d),
            average: (self.train.average_generator > 0.0)
                .then(|| crate::optim::Average::new(&vs_g, self.train.average_generator)),
            vs_g,
            vs_d,
            generator,
            discriminator,
            config: self.train.clone(),
            step: 0,
            history: History::default(),
            seconds: 0.0,
            fixed_noise: tch::Tensor::new(),
            snapshots: Vec::new(),
        };
        if let Some(dir) = self.resume {
            checkpoint::load(&mut gan, dir)?;
        }
        gan.fixed_noise = gan.draw_latent(64, crate::rng::mix(gan.config.seed, 2));
        Ok(gan)
    }

    fn check(&self, data: &Dataset) -> Result<()> {
        self.validate()?;
        check_data(data, "the model", self.model.image(), Some(self.train.batch_size), self.out_dir)?;
        let classes = self.model.classes();
        if classes > 0 {
            let Some(labels) = &data.labels else {
                bail!(
                    "dataset {} has no labels, but {} generates by class: use a labelled dataset such as mnist",
                    data.name,
                    self.model.name()
                )
            };
            let top = labels.max().int64_value(&[]);
            ensure!(
                top < classes && labels.min().int64_value(&[]) >= 0,
                "dataset {} has labels up to {top}, but the model is set for classes 0..={}",
                data.name,
                classes - 1
            );
        }
        Ok(())
    }

    fn train(&self, data: &Dataset) -> Result<Gan> {
        self.check(data)?;
        let mut gan = self.build()?;
        if train::quick_mode() {
            gan.config.steps = train::quick_steps(gan.config.steps, gan.step);
            gan.config.snapshot_every = gan.config.snapshot_every.min(10);
            if gan.config.metrics_every > 0 {
                gan.config.metrics_every = 10;
                gan.config.metrics_samples = gan.config.metrics_samples.min(500);
            }
        }
        let out = self.out_dir;
        let every = gan.config.checkpoint_every;
        let outcome = gan.train(data, |g| match &out {
            Some(dir) if every > 0 && g.step % every == 0 => checkpoint::save(g, &dir.join("checkpoint")),
            _ => Ok(()),
        })?;
        if let Some(dir) = self.out_dir {
            save_run(&gan, dir)?;
            train::after_run(outcome, gan.step, &dir.join("checkpoint"), true)?;
        }
        Ok(gan)
    }
}

impl Dcgan {
    /// The lesson's defaults: 32×32 MNIST, n_z = 100, ngf = ndf = 32, Adam(2e-4, β1 0.5),
    /// batch 64, 1500 steps, non-saturating G loss.
    pub fn mnist32() -> Dcgan {
        Builder::with_model(DcganConfig::mnist32())
    }

    pub fn ngf(mut self, n: i64) -> Self {
        self.model.ngf = n;
        self
    }
    pub fn ndf(mut self, n: i64) -> Self {
        self.model.ndf = n;
        self
    }
    pub fn init(mut self, init: Init) -> Self {
        self.model.init = init;
        self
    }
    /// D's normalisation (BatchNorm in the lesson; a WGAN-GP objective switches it to LayerNorm).
    pub fn norm(mut self, norm: Norm) -> Self {
        self.model.norm = norm;
        self
    }
    /// How G doubles its feature maps (IFT6135 assignment 4, section 2.2).
    pub fn upsample(mut self, upsample: Upsample) -> Self {
        self.model.upsample = upsample;
        self
    }
}

impl Cdcgan {
    /// The lesson's: its layer widths on 32×32 MNIST, n_z = 100, 10 classes, and its training
    /// settings (see the family's [`Family::training`]).
    pub fn mnist32() -> Cdcgan {
        Builder::with_model(CdcganConfig::mnist32())
    }
    /// G's width: branches 4·ngf, then 4·ngf, 2·ngf (the lesson's 64).
    pub fn ngf(mut self, n: i64) -> Self {
        self.model.ngf = n;
        self
    }
    /// D's width: branches ndf, then 4·ndf, 8·ndf (the lesson's 64).
    pub fn ndf(mut self, n: i64) -> Self {
        self.model.ndf = n;
        self
    }
}

impl Sagan {
    /// The IISc final project's SAGAN at 32×32: spectral norm everywhere, attention at 16×16, WGAN-GP, TTUR.
    pub fn mnist32() -> Sagan {
        Builder::with_model(SaganConfig::mnist32())
    }
    /// Side of the feature maps the attention block follows (4, 8, 16; 0 for none).
    pub fn attention_at(mut self, side: i64) -> Self {
        self.model.attention_at = side;
        self
    }
    pub fn spectral_norm(mut self, on: bool) -> Self {
        self.model.spectral_norm = on;
        self
    }
}

impl Acgan {
    /// The DCGAN lesson's networks and settings (1500 steps) with 10 classes and the class loss
    /// at weight 1.
    pub fn mnist32() -> Acgan {
        Builder::with_model(AcganConfig::mnist32())
    }
    /// Weight of the class loss in both players' objectives.
    pub fn class_weight(mut self, w: f64) -> Self {
        self.train.auxiliary = Auxiliary::Class { weight: w };
        self
    }
}

impl Infogan {
    /// The paper's MNIST set-up: its networks at 32×32, 62-d noise, one 10-way categorical code,
    /// two continuous codes, λ_cat 1, λ_cont 0.1, Adam 1e-3 (G) and 2e-4 (D), 3000 steps of batch 64.
    pub fn mnist32() -> Infogan {
        Builder::with_model(InfoganConfig::mnist32())
    }
    /// The number of values of each categorical code (the text's CelebA variant: `&[10; 5]`).
    pub fn categorical(mut self, sizes: &[i64]) -> Self {
        self.model.codes.categorical = sizes.to_vec();
        self
    }
    /// The number of continuous codes.
    pub fn continuous(mut self, n: i64) -> Self {
        self.model.codes.continuous = n;
        self
    }
    /// Q also predicts each continuous code's log standard deviation (else σ = 1).
    pub fn learn_std(mut self, on: bool) -> Self {
        self.model.codes.learn_std = on;
        self
    }
    /// The paper's MNIST networks (default) or the DCGAN lesson's.
    pub fn networks(mut self, networks: Networks) -> Self {
        self.model.networks = networks;
        self
    }
    /// Weights of the information loss's categorical and continuous parts.
    pub fn information_weights(mut self, lambda_cat: f64, lambda_cont: f64) -> Self {
        self.train.auxiliary = Auxiliary::Information { lambda_cat, lambda_cont };
        self
    }
    pub fn ngf(mut self, n: i64) -> Self {
        self.model.dcgan.ngf = n;
        self
    }
    pub fn ndf(mut self, n: i64) -> Self {
        self.model.dcgan.ndf = n;
        self
    }
}

/// Writes a run's checkpoint, `samples.png` (the fixed noise), `losses.svg` and `losses.png`,
/// `history.json`, `interpolation.png` and the snapshots into `dir`. The pictures of the trained
/// generator come from its averaged weights when the run keeps them ([`Gan::with_average`]); the
/// snapshots show the live weights as training went.
pub fn save_run(gan: &Gan, dir: &Path) -> Result<()> {
    crate::files::ensure_writable_dir(dir)?;
    checkpoint::save(gan, &dir.join("checkpoint"))?;
    match gan.average {
        Some(_) => gan.with_average(|g| save_pictures(g, dir))??,
        None => save_pictures(gan, dir)?,
    }
    Ok(())
}

/// The pictures, losses and history of [`save_run`].
fn save_pictures(gan: &Gan, dir: &Path) -> Result<()> {
    let columns = gan.grid_columns();
    viz::save_grid(&gan.generate(&gan.fixed_noise), columns, &dir.join("samples.png"))?;
    if gan.classes > 0 {
        let z = gan.fixed_noise.narrow(0, 0, 8);
        viz::save_grid(&crate::explore::class_grid(gan, &z)?, 8, &dir.join("class_grid.png"))?;
        let line = crate::explore::class_interpolation(gan, &gan.fixed_noise.get(0), &gan.fixed_noise.get(1), 10)?;
        viz::save_grid(&line, 10, &dir.join("class_interpolation.png"))?;
    }
    if let Some(&k) = gan.codes.categorical.first() {
        let rows = crate::explore::with_continuous(gan, &gan.fixed_noise.narrow(0, 0, 10), 0.0)?;
        viz::save_grid(&crate::explore::code_grid(gan, &rows, 0)?, k, &dir.join("code_grid.png"))?;
    }
    for code in 0..gan.codes.continuous {
        let rows = crate::explore::sweep_rows(gan, &gan.fixed_noise.narrow(0, 0, 1))?;
        viz::save_grid(
            &crate::explore::code_sweep(gan, &rows, code, -2.0, 2.0, 10)?,
            10,
            &dir.join(format!("continuous_{code}.png")),
        )?;
    }
    viz::save_loss_curves(&gan.history, &dir.join("losses.svg"))?;
    viz::save_loss_curves(&gan.history, &dir.join("losses.png"))?;
    crate::files::write_atomic(&dir.join("history.json"), &serde_json::to_vec_pretty(&gan.history)?)?;
    let rows: Vec<tch::Tensor> = (0..4)
        .map(|i| crate::explore::interpolation(gan, &gan.fixed_noise.get(2 * i), &gan.fixed_noise.get(2 * i + 1), 10))
        .collect();
    viz::save_grid(&tch::Tensor::cat(&rows, 0), 10, &dir.join("interpolation.png"))?;
    if !gan.snapshots.is_empty() {
        let snaps = dir.join("snapshots");
        crate::files::ensure_writable_dir(&snaps)?;
        for (step, images) in &gan.snapshots {
            viz::save_grid(images, columns, &snaps.join(format!("step_{step:06}.png")))?;
        }
    }
    Ok(())
}

/// The VAE lesson's model and training settings, ready to train.
#[derive(Debug)]
pub struct Vae {
    pub model: VaeConfig,
    pub train: VaeTraining,
    held_out: Option<Dataset>,
    device: Device,
    out_dir: Option<PathBuf>,
}

impl Vae {
    /// 32×32 MNIST, a 32-dimensional latent space, the text's training settings ([`VaeTraining`]).
    pub fn mnist32() -> Vae {
        Vae {
            model: VaeConfig::mnist32(),
            train: VaeTraining::default(),
            held_out: None,
            device: Device::Cpu,
            out_dir: None,
        }
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
    run_setters!();

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
    /// Measures the reconstruction MSE on `data` after every epoch (`VaeHistory::epochs`).
    pub fn held_out(mut self, data: &Dataset) -> Self {
        self.held_out = Some(data.shallow_clone());
        self
    }

    fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        check_device(self.device, self.train.bf16)
    }

    /// Checks the settings against `data`, the held-out set and the output folder, without training.
    pub fn check(&self, data: &Dataset) -> Result<()> {
        self.validate()?;
        let image = (self.model.channels, self.model.image_size);
        check_data(data, "the VAE", image, Some(self.train.batch_size), self.out_dir.as_deref())?;
        if let Some(held_out) = &self.held_out {
            check_data(held_out, "the VAE", image, None, None)?;
        }
        Ok(())
    }

    /// The untrained networks and optimizer, seeded.
    pub fn build(&self) -> Result<VaeModel> {
        self.validate()?;
        VaeModel::on(self.device, &self.model, &self.train)
    }

    /// Trains on `data` and returns the trained model with its history; with an output folder,
    /// saves it there every `checkpoint_every` steps, and at the end with its pictures. In quick
    /// mode (`GAN_LAB_QUICK=1`) the run is cut to a few steps.
    pub fn train(&self, data: &Dataset) -> Result<VaeModel> {
        self.check(data)?;
        let mut vae = self.build()?;
        vae.train.steps = train::quick_steps(vae.train.steps, vae.step);
        let (out, every) = (self.out_dir.as_deref(), vae.train.checkpoint_every);
        let outcome = vae.train_with(data, self.held_out.as_ref(), &mut |v| match out {
            Some(dir) if every > 0 && v.step % every == 0 => v.save(dir),
            _ => Ok(()),
        })?;
        if let Some(dir) = out {
            save_vae_run(&vae, self.held_out.as_ref().unwrap_or(data), dir)?;
            train::after_run(outcome, vae.step, dir, false)?;
        }
        Ok(vae)
    }
}

/// Saves `vae` and the lesson's pictures into `dir`: learning curves, the first 10 images of
/// `shown` above their reconstructions, 32 samples, and an interpolation between two of `shown`.
pub fn save_vae_run(vae: &VaeModel, shown: &Dataset, dir: &Path) -> Result<()> {
    vae.save(dir)?;
    crate::viz::save_vae_curves(&vae.history, &dir.join("learning_curves.png"))?;
    // A held-out set smaller than the pictures want shows what it has.
    let n = shown.len().min(10);
    if n >= 1 {
        crate::viz::save_grid(
            &crate::explore::reconstruction_rows(vae, &shown.images, n)?,
            n,
            &dir.join("reconstructions.png"),
        )?;
    }
    crate::viz::save_grid(&vae.sample(32, crate::rng::mix(vae.train.seed, 2)), 8, &dir.join("samples.png"))?;
    if n >= 2 {
        let (a, b) = (shown.images.get(0), shown.images.get(1));
        crate::viz::save_grid(
            &crate::explore::encoded_interpolation(vae, &a, &b, 10)?,
            10,
            &dir.join("interpolation.png"),
        )?;
    }
    Ok(())
}
