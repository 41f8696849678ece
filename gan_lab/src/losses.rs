//! Adversarial losses, one function per formula, all on discriminator logits `l` with
//! D(x) = sigmoid(l). The training loop reads which ones to use from an [`Objective`].

use serde::{Deserialize, Serialize};
use tch::{Reduction, Tensor};

/// Binary cross-entropy of logits against a constant target (1 = real, 0 = fake), averaged:
/// −mean(t·log σ(l) + (1 − t)·log(1 − σ(l))), computed stably.
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(&logits.full_like(target), None, None, Reduction::Mean)
}

/// Exercise `dcgan.discriminator_loss`: lesson eq. (7) negated to a minimisation (Goodfellow et al., 2014):
/// −E[log D(x*)] − E[log(1 − D(G(z)))], the BCE of real against 1 plus fake against 0.
pub fn discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Tensor {
    // BEGIN SOLUTION dcgan.discriminator_loss
    bce_with_logits(real_logits, 1.0) + bce_with_logits(fake_logits, 0.0)
    // END SOLUTION
}

/// Exercise `dcgan.generator_loss_non_saturating`: lesson eq. (6): maximise E[log D(G(z))], i.e. minimise
/// −E[log D(G(z))], the BCE of the fakes against the "real" label.
pub fn generator_loss_non_saturating(fake_logits: &Tensor) -> Tensor {
    // BEGIN SOLUTION dcgan.generator_loss_non_saturating
    bce_with_logits(fake_logits, 1.0)
    // END SOLUTION
}

/// Exercise `dcgan.generator_loss_saturating`: the "true" minimax loss of lesson question 3: minimise E[log(1 − D(G(z)))]
/// as in eq. (5). Its gradient vanishes when D confidently rejects the fakes.
pub fn generator_loss_saturating(fake_logits: &Tensor) -> Tensor {
    // BEGIN SOLUTION dcgan.generator_loss_saturating
    -bce_with_logits(fake_logits, 0.0)
    // END SOLUTION
}

/// Exercise `conditional.class_loss`: the auxiliary classifier's loss (ACGAN, `003` problem 3): the
/// cross-entropy of class logits `[B, classes]` against labels `[B]`, averaged,
/// −mean(log softmax(l)[y]). On logits: a softmax before it would be applied twice.
pub fn class_loss(class_logits: &Tensor, labels: &Tensor) -> Tensor {
    // BEGIN SOLUTION conditional.class_loss
    class_logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0)
    // END SOLUTION
}

/// A term both players add to their adversarial loss, read by the training loop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Auxiliary {
    /// None: the plain GAN.
    #[default]
    None,
    /// ACGAN: `weight` × [`class_loss`] of D's class head, on the real batch and the fakes for D
    /// (L_C of Odena et al.), on the fakes for G: both players minimise it.
    Class { weight: f64 },
}

impl Auxiliary {
    /// The weighted class loss of a judgement's class logits, if this objective has one.
    pub fn class_term(&self, classes: Option<&Tensor>, labels: Option<&Tensor>) -> Option<Tensor> {
        match (self, classes, labels) {
            (Auxiliary::Class { weight }, Some(logits), Some(labels)) => Some(class_loss(logits, labels) * *weight),
            _ => None,
        }
    }
}

/// What the two players optimise. The training loop reads it; it never copies itself per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// Minimax D loss with the non-saturating G loss (the lesson's default).
    NonSaturating,
    /// Minimax D loss with the saturating ("true") G loss.
    Saturating,
}

impl Objective {
    pub fn discriminator_loss(&self, real_logits: &Tensor, fake_logits: &Tensor) -> Tensor {
        match self {
            Objective::NonSaturating | Objective::Saturating => discriminator_loss(real_logits, fake_logits),
        }
    }

    pub fn generator_loss(&self, fake_logits: &Tensor) -> Tensor {
        match self {
            Objective::NonSaturating => generator_loss_non_saturating(fake_logits),
            Objective::Saturating => generator_loss_saturating(fake_logits),
        }
    }
}
