//! One file per model family. Each family's `Generator` and `Discriminator` implement the traits
//! below, so the one training loop in [`crate::train`] drives them all.

pub mod classifier;
pub mod dcgan;

use tch::Tensor;

/// Maps latent vectors `[B, latent_dim]` (and, for conditional families, labels `[B]`) to
/// images `[B, C, S, S]` in [-1, 1].
pub trait GeneratorNet {
    fn generate(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor;
}

/// Maps images `[B, C, S, S]` (and labels) to one score per image `[B]`: a logit for the
/// minimax objectives (the sigmoid lives in the loss), a critic value for Wasserstein ones.
pub trait DiscriminatorNet {
    fn score(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor;
}
