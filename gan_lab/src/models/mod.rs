//! One file per model family. Each family's `Generator` and `Discriminator` implement the traits
//! below, so the one training loop in [`crate::train`] drives them all.

pub mod acgan;
pub mod cdcgan;
pub mod classifier;
pub mod dcgan;
pub mod infogan;
pub mod layers;
pub mod sagan;
pub mod vae;

use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

/// LeakyReLU with negative slope `slope`: PyTorch's `F.leaky_relu(x, slope)` (tch's own
/// `leaky_relu` has the slope fixed at 0.01). The lessons use 0.2.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    crate::backend::ops::leaky_relu(x, slope)
}

/// Maps latent vectors `[B, latent_dim]` (and, for conditional families, class labels `[B]`) to
/// images `[B, C, S, S]` in [-1, 1].
pub trait GeneratorNet {
    fn generate(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor;

    /// The network as a plain tch module (z → images), for a family that needs no labels:
    /// such a family trains through the lesson's own step ([`crate::step::train_step`]).
    fn module(&self) -> Option<&dyn tch::nn::ModuleT> {
        None
    }

    /// The self-attention block, for a family that has one (SAGAN).
    fn attention(&self) -> Option<&layers::SelfAttention> {
        None
    }
}

/// What a discriminator says about a batch of images.
#[derive(Debug)]
pub struct Judgement {
    /// One score per image `[B]`: a logit for the minimax objectives (the sigmoid lives in the
    /// loss), a critic value for Wasserstein ones.
    pub score: Tensor,
    /// Class logits `[B, classes]` from an auxiliary classifier head (ACGAN), if the family has one.
    pub classes: Option<Tensor>,
    /// The Q network's outputs `[B, codes.q_width()]` (InfoGAN): logits of the categorical codes,
    /// means (and log standard deviations) of the continuous ones.
    pub codes: Option<Tensor>,
}

/// Maps images `[B, C, S, S]` (and, for conditional families, labels `[B]`) to a [`Judgement`].
pub trait DiscriminatorNet {
    fn judge(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Judgement;

    /// The network as a plain tch module (images → scores), for a family whose D gives a score
    /// alone (see [`GeneratorNet::module`]).
    fn module(&self) -> Option<&dyn tch::nn::ModuleT> {
        None
    }

    /// The self-attention block, for a family that has one (SAGAN).
    fn attention(&self) -> Option<&layers::SelfAttention> {
        None
    }

    /// The score alone.
    fn score(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor {
        self.judge(x, labels, train).score
    }
}

/// One-hot rows `[B, classes]` (float) for integer labels `[B]`.
pub fn one_hot(labels: &Tensor, classes: i64) -> Tensor {
    labels.to_kind(Kind::Int64).one_hot(classes).to_kind(Kind::Float)
}

/// Checks user-given labels for a conditional model: a 1-D integer tensor of `batch` entries, each
/// in `0..classes`.
pub fn check_labels(labels: &Tensor, batch: i64, classes: i64) -> Result<()> {
    ensure!(
        matches!(labels.kind(), Kind::Int64 | Kind::Int | Kind::Int16 | Kind::Int8 | Kind::Uint8),
        "labels: expected integer class labels, got a {:?} tensor",
        labels.kind()
    );
    ensure!(
        labels.size() == [batch],
        "labels: expected {batch} labels (one per noise vector), got a tensor of shape {:?}",
        labels.size()
    );
    if batch > 0 {
        let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
        ensure!(lo >= 0 && hi < classes, "labels: expected classes 0..={}, got values from {lo} to {hi}", classes - 1);
    }
    Ok(())
}

/// Channel widths of a DCGAN-shaped network from its 4×4 end to its image end, `base` times
/// [4, 2, 1] at 32×32 and [8, 4, 2, 1] at 64×64: one block per doubling of the side.
pub fn widths(image_size: i64, base: i64) -> Vec<i64> {
    let blocks = if image_size == 64 { 4 } else { 3 };
    (0..blocks).rev().map(|i| base << i).collect()
}

/// The image side of checkpoints saved before a family took `image_size`.
pub(crate) fn side_32() -> i64 {
    32
}
