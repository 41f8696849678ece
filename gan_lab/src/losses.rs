//! Losses, one function per formula. The adversarial ones take discriminator logits `l` with
//! D(x) = sigmoid(l); the training loop reads which ones to use from an [`Objective`]. The VAE's
//! ([`vae_loss`]) close the file.

use crate::models::infogan::Codes;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

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

/// Exercise `conditional.class_loss`: the auxiliary classifier's loss (ACGAN, DLCV HW4 problem 3): the
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
    /// InfoGAN: the information loss of Q's outputs against the codes G was given,
    /// `lambda_cat` × the categorical codes' cross-entropy + `lambda_cont` × the continuous codes'
    /// Gaussian negative log-likelihood (see [`information_loss`]). D adds it on the fakes
    /// (training Q and the body it shares), G on the fakes (making its codes recoverable): the
    /// variational lower bound on I(c; G(z, c)) that both maximise.
    Information { lambda_cat: f64, lambda_cont: f64 },
}

/// The information term of one judgement.
pub struct InformationTerm {
    /// λ_cat · cross-entropy + λ_cont · NLL, to add to a player's loss.
    pub weighted: Tensor,
    /// The lower bound on I(c_cat; G(z, c)) in nats, H(c_cat) − cross-entropy: at most Σ ln kᵢ.
    pub mutual_information: f64,
}

impl Auxiliary {
    /// The weighted class loss of a judgement's class logits, if this objective has one.
    pub fn class_term(&self, classes: Option<&Tensor>, labels: Option<&Tensor>) -> Option<Tensor> {
        match (self, classes, labels) {
            (Auxiliary::Class { weight }, Some(logits), Some(labels)) => Some(class_loss(logits, labels) * *weight),
            _ => None,
        }
    }

    /// The weighted information term of Q's outputs `q` for the generator input `z` (noise then
    /// codes), if this objective has one.
    pub fn information_term(&self, q: Option<&Tensor>, z: &Tensor, codes: &Codes) -> Option<InformationTerm> {
        let (Auxiliary::Information { lambda_cat, lambda_cont }, Some(q)) = (self, q) else { return None };
        let width = codes.width();
        let c = z.narrow(1, z.size()[1] - width, width);
        let (categorical, continuous) = information_loss(q, &c, codes);
        let mutual_information = codes.categorical_entropy() - categorical.double_value(&[]);
        Some(InformationTerm { weighted: categorical * *lambda_cat + continuous * *lambda_cont, mutual_information })
    }
}

/// Exercise `infogan.information_loss`: Q's losses for the codes `c` `[B, codes.width()]` (layout
/// in [`Codes`]) given its outputs `q` `[B, codes.q_width()]`, each averaged over the batch:
/// - categorical: the cross-entropy of each categorical code's logits against the value drawn
///   (the argmax of its one-hot block), summed over the codes; on logits, so no softmax first;
/// - continuous: the Gaussian negative log-likelihood of each continuous code under
///   N(mean, σ²), ½((c − μ)/σ)² + ln σ + ½ ln 2π, summed over the codes; σ = exp(log-std) from
///   Q with `codes.learn_std`, else 1.
///
/// Returns (categorical, continuous); 0 for a kind of code that is absent.
pub fn information_loss(q: &Tensor, c: &Tensor, codes: &Codes) -> (Tensor, Tensor) {
    // BEGIN SOLUTION infogan.information_loss
    let mut categorical = Tensor::zeros([], (Kind::Float, q.device()));
    for (i, &k) in codes.categorical.iter().enumerate() {
        let at = codes.categorical_offset(i);
        let value = c.narrow(1, at, k).argmax(1, false);
        categorical += q.narrow(1, at, k).cross_entropy_loss::<Tensor>(&value, None, Reduction::Mean, -100, 0.0);
    }
    let (at, n) = (codes.continuous_offset(), codes.continuous);
    let mean = q.narrow(1, at, n);
    let log_std = if codes.learn_std { q.narrow(1, at + n, n) } else { mean.zeros_like() };
    let z = (c.narrow(1, at, n) - mean) * (-&log_std).exp();
    let nll = z.square() * 0.5 + log_std + 0.5 * (2.0 * std::f64::consts::PI).ln();
    (categorical, nll.sum_dim_intlist(1, false, Kind::Float).mean(Kind::Float))
    // END SOLUTION
}

/// Least squares (LSGAN, Mao et al., 2017, a = 0, b = c = 1) for D: ½E[(D(x) − 1)²] + ½E[D(G(z))²],
/// on D's raw outputs (no sigmoid).
pub fn least_squares_discriminator_loss(real: &Tensor, fake: &Tensor) -> Tensor {
    (real - 1.0).square().mean(Kind::Float) * 0.5 + fake.square().mean(Kind::Float) * 0.5
}

/// Least squares for G: ½E[(D(G(z)) − 1)²].
pub fn least_squares_generator_loss(fake: &Tensor) -> Tensor {
    (fake - 1.0).square().mean(Kind::Float) * 0.5
}

/// Exercise `losses.wasserstein_critic`: the critic maximises E[f(x)] − E[f(G(z))], the
/// Kantorovich–Rubinstein estimate of the Wasserstein distance; as a loss to minimise,
/// E[f(G(z))] − E[f(x)], on the critic's raw values (no sigmoid).
pub fn wasserstein_critic_loss(real: &Tensor, fake: &Tensor) -> Tensor {
    // BEGIN SOLUTION losses.wasserstein_critic
    fake.mean(Kind::Float) - real.mean(Kind::Float)
    // END SOLUTION
}

/// Exercise `losses.wasserstein_generator`: G maximises E[f(G(z))]: minimise −E[f(G(z))].
pub fn wasserstein_generator_loss(fake: &Tensor) -> Tensor {
    // BEGIN SOLUTION losses.wasserstein_generator
    -fake.mean(Kind::Float)
    // END SOLUTION
}

/// Hinge loss (Lim & Ye, 2017; SAGAN's option) for D: E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))].
pub fn hinge_discriminator_loss(real: &Tensor, fake: &Tensor) -> Tensor {
    (-real + 1.0).relu().mean(Kind::Float) + (fake + 1.0).relu().mean(Kind::Float)
}

/// Exercise `losses.gradient_penalty` (Gulrajani et al., 2017): at x̂ = α·x + (1 − α)·x̃, with one α
/// per image `[B, 1, 1, 1]`, λ·E[(‖∇ₓ̂ f(x̂)‖₂ − 1)²]. The gradient is taken with `create_graph`
/// so that the penalty itself can be differentiated with respect to the critic's weights.
pub fn gradient_penalty(
    critic: &dyn Fn(&Tensor) -> Tensor,
    real: &Tensor,
    fake: &Tensor,
    alpha: &Tensor,
    lambda: f64,
) -> Tensor {
    // BEGIN SOLUTION losses.gradient_penalty
    let mixed = (alpha * real + (-alpha + 1.0) * fake).detach().set_requires_grad(true);
    let score = critic(&mixed).sum(Kind::Float);
    let grad = Tensor::run_backward(&[score], &[&mixed], true, true).remove(0);
    let norm = (grad.flatten(1, -1).square().sum_dim_intlist(1, false, Kind::Float) + 1e-12).sqrt();
    (norm - 1.0).square().mean(Kind::Float) * lambda
    // END SOLUTION
}

/// Exercise `losses.clip_weights`: WGAN's Lipschitz constraint, each of the critic's weights
/// clamped into [−c, c] after each of its updates.
pub fn clip_weights(vs: &tch::nn::VarStore, c: f64) {
    // BEGIN SOLUTION losses.clip_weights
    tch::no_grad(|| {
        for mut w in vs.trainable_variables() {
            let _ = w.clamp_(-c, c);
        }
    });
    // END SOLUTION
}

/// What the two players optimise. The training loop reads it; it never copies itself per family.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Objective {
    /// Minimax D loss with the non-saturating G loss (the lesson's default).
    NonSaturating,
    /// Minimax D loss with the saturating ("true") G loss.
    Saturating,
    /// LSGAN: least squares on D's raw output.
    LeastSquares,
    /// WGAN: the Wasserstein estimate, the critic's weights clipped into [−clip, clip].
    Wasserstein { clip: f64 },
    /// WGAN-GP: the Wasserstein estimate plus λ × the gradient penalty.
    WassersteinGp { lambda: f64 },
    /// Hinge loss for D, −E[D(G(z))] for G.
    Hinge,
}

impl Objective {
    pub fn discriminator_loss(&self, real: &Tensor, fake: &Tensor) -> Tensor {
        match self {
            Objective::NonSaturating | Objective::Saturating => discriminator_loss(real, fake),
            Objective::LeastSquares => least_squares_discriminator_loss(real, fake),
            Objective::Wasserstein { .. } | Objective::WassersteinGp { .. } => wasserstein_critic_loss(real, fake),
            Objective::Hinge => hinge_discriminator_loss(real, fake),
        }
    }

    pub fn generator_loss(&self, fake: &Tensor) -> Tensor {
        match self {
            Objective::NonSaturating => generator_loss_non_saturating(fake),
            Objective::Saturating => generator_loss_saturating(fake),
            Objective::LeastSquares => least_squares_generator_loss(fake),
            Objective::Wasserstein { .. } | Objective::WassersteinGp { .. } | Objective::Hinge => {
                wasserstein_generator_loss(fake)
            }
        }
    }

    /// The mean of D's judgement of a batch from its scores: the mean D(x) = sigmoid(score) for
    /// the objectives on logits, the mean raw score otherwise.
    pub fn mean_judgement(&self, scores: &Tensor) -> f64 {
        let s = if self.uses_sigmoid() { scores.sigmoid() } else { scores.shallow_clone() };
        s.mean(Kind::Float).double_value(&[])
    }

    /// Whether D's score is a logit (D(x) = sigmoid(score)); otherwise it is used raw.
    pub fn uses_sigmoid(&self) -> bool {
        matches!(self, Objective::NonSaturating | Objective::Saturating)
    }

    /// Whether the critic's mean score gap estimates the Wasserstein distance.
    pub fn is_wasserstein(&self) -> bool {
        matches!(self, Objective::Wasserstein { .. } | Objective::WassersteinGp { .. })
    }

    /// WGAN's defaults: clip 0.01.
    pub fn wgan() -> Objective {
        Objective::Wasserstein { clip: 0.01 }
    }

    /// WGAN-GP's defaults: λ = 10.
    pub fn wgan_gp() -> Objective {
        Objective::WassersteinGp { lambda: 10.0 }
    }
}

/// How many critic updates precede each generator update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CriticSchedule {
    /// One D update per G update (DCGAN, LSGAN).
    #[default]
    One,
    /// A fixed number (WGAN-GP and SAGAN: 5).
    Fixed(i64),
    /// The WGAN schedule of IFT6135 assignment 4: 20 while G has done fewer than 50
    /// updates or when G's next update is a multiple of 500, else 5.
    Wgan,
}

impl CriticSchedule {
    /// Critic updates before generator update number `g` (counting from 0).
    pub fn updates(&self, g: i64) -> i64 {
        match *self {
            CriticSchedule::One => 1,
            CriticSchedule::Fixed(n) => n,
            CriticSchedule::Wgan if g < 50 || (g + 1) % 500 == 0 => 20,
            CriticSchedule::Wgan => 5,
        }
    }

    /// Critic updates done before generator update `g`: where a resumed run picks up its batches.
    pub fn updates_before(&self, g: i64) -> i64 {
        match *self {
            CriticSchedule::One => g,
            CriticSchedule::Fixed(n) => n * g,
            CriticSchedule::Wgan => (0..g).map(|i| self.updates(i)).sum(),
        }
    }
}

/// How a VAE measures the distance between an image and its reconstruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Reconstruction {
    /// Mean squared error over every pixel of the batch, on the [-1, 1] pixels (the text's choice).
    #[default]
    Mse,
    /// Binary cross-entropy over every pixel of the batch, with pixels mapped to [0, 1]: the
    /// Bernoulli likelihood of grey levels, as in Kingma and Welling's MNIST experiments.
    Bce,
}

/// Exercise `vae.reparameterize`: a draw z = μ + σ·ε with σ = exp(½ log σ²) and ε ~ N(0, I) from
/// libtorch's random generator, shaped like `mu`. The draw is a function of μ and log σ², so
/// gradients reach the encoder.
pub fn reparameterize(mu: &Tensor, log_variance: &Tensor) -> Tensor {
    // BEGIN SOLUTION vae.reparameterize
    let eps = mu.randn_like();
    mu + (log_variance * 0.5).exp() * eps
    // END SOLUTION
}

/// Exercise `vae.kl_divergence`: KL(N(μ, σ²) ‖ N(0, 1)) in closed form, per latent dimension
/// ½(σ² + μ² − 1 − log σ²), then averaged over the latent dimensions and the batch (the text's
/// mean reduction; its formula writes μ where the closed form has μ²).
pub fn kl_divergence(mu: &Tensor, log_variance: &Tensor) -> Tensor {
    // BEGIN SOLUTION vae.kl_divergence
    ((log_variance.exp() + mu.square() - 1.0 - log_variance) * 0.5).mean(Kind::Float)
    // END SOLUTION
}

/// The VAE's loss and its two parts, each a scalar tensor.
#[derive(Debug)]
pub struct VaeLoss {
    /// reconstruction + λ_KL · kl: what the optimizer minimises.
    pub total: Tensor,
    pub reconstruction: Tensor,
    /// [`kl_divergence`], unweighted.
    pub kl: Tensor,
}

/// Exercise `vae.vae_loss`: the reconstruction term of `decoded` (`[B, C, S, S]` in [-1, 1])
/// against `images` by `kind` ([`Reconstruction`]: both averaged over every pixel of the batch;
/// for BCE both images are first mapped to [0, 1] by (x + 1)/2), plus `lambda_kl` × [`kl_divergence`].
pub fn vae_loss(
    decoded: &Tensor,
    images: &Tensor,
    mu: &Tensor,
    log_variance: &Tensor,
    lambda_kl: f64,
    kind: Reconstruction,
) -> VaeLoss {
    // BEGIN SOLUTION vae.vae_loss
    let reconstruction = match kind {
        Reconstruction::Mse => decoded.mse_loss(images, Reduction::Mean),
        Reconstruction::Bce => {
            ((decoded + 1.0) * 0.5).binary_cross_entropy::<Tensor>(&((images + 1.0) * 0.5), None, Reduction::Mean)
        }
    };
    let kl = kl_divergence(mu, log_variance);
    VaeLoss { total: &reconstruction + &kl * lambda_kl, reconstruction, kl }
    // END SOLUTION
}
