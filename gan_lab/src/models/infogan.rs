//! InfoGAN (Chen et al., 2016, arXiv:1606.03657) as `003_3d452f94987d22c3.txt` builds it from its
//! ACGAN: the generator's input is the noise with latent codes appended, and the discriminator's
//! auxiliary output becomes the Q network, one more dense layer followed by one dense output per
//! code, that recovers the codes from an image. The MNIST set-up of the paper (and of the text's
//! discussion (3)) is the default: 62-d noise, one 10-way categorical code and two continuous codes
//! drawn from U(−1, 1). Both networks are the DCGAN lesson's, so `ngf`, `ndf` and the init work as there.

use super::dcgan::{self, DcganConfig};
use super::{DiscriminatorNet, GeneratorNet, Judgement};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

/// The latent codes c a generator takes after its noise, and how Q models them.
///
/// Layout of c (the tail of the generator's input): one one-hot block per categorical code, then
/// the continuous codes. Layout of Q's output: one block of logits per categorical code, then the
/// continuous codes' means, then (with `learn_std`) their log standard deviations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Codes {
    /// The number of values of each categorical code (the paper's MNIST: `[10]`; the text's
    /// CelebA variant: five 10-way codes).
    pub categorical: Vec<i64>,
    /// The number of continuous codes, each drawn from U(−1, 1).
    pub continuous: i64,
    /// Q also predicts a log standard deviation per continuous code (else σ = 1, as the paper's
    /// MNIST code does).
    pub learn_std: bool,
}

impl Codes {
    /// The paper's MNIST codes: one 10-way categorical code and two continuous codes.
    pub fn mnist() -> Codes {
        Codes { categorical: vec![10], continuous: 2, learn_std: false }
    }

    /// No codes: a plain GAN.
    pub fn is_empty(&self) -> bool {
        self.width() == 0
    }

    /// Entries of c.
    pub fn width(&self) -> i64 {
        self.categorical.iter().sum::<i64>() + self.continuous
    }

    /// Entries of Q's output.
    pub fn q_width(&self) -> i64 {
        self.width() + if self.learn_std { self.continuous } else { 0 }
    }

    /// Offset of categorical code `i` in c (and in Q's output).
    pub fn categorical_offset(&self, i: usize) -> i64 {
        self.categorical[..i].iter().sum()
    }

    /// Offset of the continuous codes in c (and of their means in Q's output).
    pub fn continuous_offset(&self) -> i64 {
        self.categorical.iter().sum()
    }

    /// H(c) of the categorical codes, Σ ln kᵢ nats: the most a categorical code can tell about
    /// the image, the ceiling of the mutual-information bound.
    pub fn categorical_entropy(&self) -> f64 {
        self.categorical.iter().map(|&k| (k as f64).ln()).sum()
    }

    pub fn validate(&self) -> Result<()> {
        for (i, &k) in self.categorical.iter().enumerate() {
            ensure!(k >= 2, "categorical code {i} has {k} values: expected 2 or more");
        }
        ensure!(self.continuous >= 0, "continuous = {}: expected 0 or more codes", self.continuous);
        Ok(())
    }
}

/// Exercise `infogan.sample_codes`: `n` draws of the codes, `[n, codes.width()]`: for each
/// categorical code a one-hot row of a value drawn uniformly from its `k` values, then the
/// continuous codes drawn from U(−1, 1). Draw with libtorch's random generator (`Tensor::randint`,
/// `Tensor::rand`) so that runs stay seeded.
pub fn sample_codes(n: i64, codes: &Codes) -> Tensor {
    // BEGIN SOLUTION infogan.sample_codes
    let mut parts: Vec<Tensor> = codes
        .categorical
        .iter()
        .map(|&k| Tensor::randint(k, [n], (Kind::Int64, Device::Cpu)).one_hot(k).to_kind(Kind::Float))
        .collect();
    parts.push(Tensor::rand([n, codes.continuous], (Kind::Float, Device::Cpu)) * 2.0 - 1.0);
    Tensor::cat(&parts, 1)
    // END SOLUTION
}

/// The architecture's hyperparameters: the DCGAN's, the codes and Q's hidden width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoganConfig {
    /// The DCGAN networks; `latent_dim` is the noise's dimension, without the codes.
    #[serde(flatten)]
    pub dcgan: DcganConfig,
    pub codes: Codes,
    /// Width of Q's hidden dense layer (the paper's 128).
    pub q_hidden: i64,
}

impl Default for InfoganConfig {
    fn default() -> Self {
        Self::mnist32()
    }
}

impl InfoganConfig {
    /// The DCGAN lesson's networks on 32×32 digits, 62-d noise and the paper's MNIST codes.
    pub fn mnist32() -> Self {
        InfoganConfig {
            dcgan: DcganConfig { latent_dim: 62, ..DcganConfig::mnist32() },
            codes: Codes::mnist(),
            q_hidden: 128,
        }
    }
}

/// G(z, c): the DCGAN generator fed `[z, c]` (the codes are part of its latent vector).
#[derive(Debug)]
pub struct Generator {
    net: dcgan::Generator,
}

impl Generator {
    pub fn new(p: &nn::Path, c: &InfoganConfig) -> Generator {
        let widened = DcganConfig { latent_dim: c.dcgan.latent_dim + c.codes.width(), ..c.dcgan.clone() };
        Generator { net: dcgan::Generator::new(p, &widened) }
    }
}

impl GeneratorNet for Generator {
    fn generate(&self, z: &Tensor, _labels: Option<&Tensor>, train: bool) -> Tensor {
        self.net.forward_t(z, train)
    }
}

/// The DCGAN discriminator, with Q sharing its body: dense(q_hidden), BatchNorm, LeakyReLU(0.2),
/// dense to Q's outputs.
#[derive(Debug)]
pub struct Discriminator {
    net: dcgan::Discriminator,
    q_hidden: nn::Linear,
    q_norm: nn::BatchNorm,
    q_out: nn::Linear,
}

impl Discriminator {
    pub fn new(p: &nn::Path, c: &InfoganConfig) -> Discriminator {
        let features = c.dcgan.widths(c.dcgan.ndf)[0] * 4 * 4;
        let dense = nn::LinearConfig {
            ws_init: dcgan::weight_init(c.dcgan.init).conv_weight,
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let q = p / "q";
        Discriminator {
            net: dcgan::Discriminator::new(p, &c.dcgan),
            q_hidden: nn::linear(&q / "hidden", features, c.q_hidden, dense),
            q_norm: nn::batch_norm1d(&q / "bn", c.q_hidden, c.dcgan.bn_config()),
            q_out: nn::linear(&q / "out", c.q_hidden, c.codes.q_width(), dense),
        }
    }
}

impl DiscriminatorNet for Discriminator {
    /// The real/fake logit from the DCGAN head, and Q's outputs `[B, codes.q_width()]`.
    fn judge(&self, x: &Tensor, _labels: Option<&Tensor>, train: bool) -> Judgement {
        let h = self.net.features(x, train);
        let q = self.q_hidden.forward(&h.flatten(1, -1));
        let q = self.q_out.forward(&dcgan::leaky_relu_02(&self.q_norm.forward_t(&q, train)));
        Judgement { score: self.net.head(&h), classes: None, codes: Some(q) }
    }
}
