//! InfoGAN (Chen et al., 2016, arXiv:1606.03657) as DLCV HW4 builds it from its
//! ACGAN: the generator's input is the noise with latent codes appended, and the discriminator's
//! auxiliary output becomes the Q network, one more dense layer followed by one dense output per
//! code, that recovers the codes from an image. The MNIST set-up of the paper (and of the text's
//! discussion (3)) is the default: 62-d noise, one 10-way categorical code and two continuous codes
//! drawn from U(−1, 1). Both networks are the DCGAN lesson's, so `ngf`, `ndf` and the init work as there.

use super::dcgan::{self, DcganConfig};
use super::{leaky_relu, DiscriminatorNet, GeneratorNet, Judgement};
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

/// Which networks an InfoGAN uses; Q sits on the discriminator's body either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Networks {
    /// The DCGAN lesson's networks (the text: "very similar to ACGAN"); `ngf`, `ndf` apply.
    Dcgan,
    /// The paper's MNIST networks (Chen et al., 2016, appendix C.1) at 32×32: G = dense 1024,
    /// dense 128·8·8, convT 64, convT to the image; D = conv 64, conv 128, dense 1024, and Q a
    /// dense 128 on D's dense features.
    #[default]
    Paper,
}

/// The architecture's hyperparameters: the DCGAN's, the codes and Q's hidden width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoganConfig {
    /// The DCGAN settings (image size and channels, init; the widths for `Networks::Dcgan`);
    /// `latent_dim` is the noise's dimension, without the codes.
    #[serde(flatten)]
    pub dcgan: DcganConfig,
    pub codes: Codes,
    /// Width of Q's hidden dense layer (the paper's 128).
    pub q_hidden: i64,
    pub networks: Networks,
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
            networks: Networks::Paper,
        }
    }
}

/// The networks of `c`, their variables under `g` and `d`.
pub fn networks(c: &InfoganConfig, g: &nn::Path, d: &nn::Path) -> (Box<dyn GeneratorNet>, Box<dyn DiscriminatorNet>) {
    match c.networks {
        Networks::Dcgan => (Box::new(Generator::new(g, c)), Box::new(Discriminator::new(d, c))),
        Networks::Paper => (Box::new(PaperGenerator::new(g, c)), Box::new(PaperDiscriminator::new(d, c))),
    }
}

fn dense(p: nn::Path, from: i64, to: i64, c: &InfoganConfig, bias: bool) -> nn::Linear {
    dcgan::dense(p, from, to, c.dcgan.init, bias)
}

/// Q: dense(q_hidden), BatchNorm, LeakyReLU(0.2), dense to the codes' outputs (`codes.q_width()`).
#[derive(Debug)]
struct QHead {
    hidden: nn::Linear,
    norm: nn::BatchNorm,
    out: nn::Linear,
}

impl QHead {
    fn new(p: &nn::Path, features: i64, c: &InfoganConfig) -> QHead {
        let q = p / "q";
        QHead {
            hidden: dense(&q / "hidden", features, c.q_hidden, c, true),
            norm: nn::batch_norm1d(&q / "bn", c.q_hidden, c.dcgan.bn_config()),
            out: dense(&q / "out", c.q_hidden, c.codes.q_width(), c, true),
        }
    }

    fn forward_t(&self, features: &Tensor, train: bool) -> Tensor {
        self.out.forward(&leaky_relu(&self.norm.forward_t(&self.hidden.forward(features), train), 0.2))
    }
}

/// The paper's MNIST generator at 32×32.
#[derive(Debug)]
pub struct PaperGenerator {
    fc1: nn::Linear,
    bn1: nn::BatchNorm,
    fc2: nn::Linear,
    bn2: nn::BatchNorm,
    convt1: nn::ConvTranspose2D,
    bn3: nn::BatchNorm,
    convt2: nn::ConvTranspose2D,
}

impl PaperGenerator {
    pub fn new(p: &nn::Path, c: &InfoganConfig) -> PaperGenerator {
        let input = c.dcgan.latent_dim + c.codes.width();
        let bn = c.dcgan.bn_config();
        PaperGenerator {
            fc1: dense(p / "fc1", input, 1024, c, false),
            bn1: nn::batch_norm1d(p / "bn1", 1024, bn),
            fc2: dense(p / "fc2", 1024, 128 * 8 * 8, c, false),
            bn2: nn::batch_norm1d(p / "bn2", 128 * 8 * 8, bn),
            convt1: nn::conv_transpose2d(p / "convt1", 128, 64, 4, c.dcgan.convt_config(2, 1)),
            bn3: nn::batch_norm2d(p / "bn3", 64, bn),
            convt2: nn::conv_transpose2d(p / "convt2", 64, c.dcgan.channels, 4, c.dcgan.init.convt_config(2, 1, true)),
        }
    }
}

impl GeneratorNet for PaperGenerator {
    fn generate(&self, z: &Tensor, _labels: Option<&Tensor>, train: bool) -> Tensor {
        let b = z.size()[0];
        let h = self.bn1.forward_t(&self.fc1.forward(z), train).relu();
        let h = self.bn2.forward_t(&self.fc2.forward(&h), train).relu().view([b, 128, 8, 8]);
        let h = self.bn3.forward_t(&self.convt1.forward(&h), train).relu(); // [B, 64, 16, 16]
        self.convt2.forward(&h).tanh() // [B, C, 32, 32]
    }
}

/// The paper's MNIST discriminator at 32×32, with Q on its dense features.
#[derive(Debug)]
pub struct PaperDiscriminator {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    fc: nn::Linear,
    bn3: nn::BatchNorm,
    score: nn::Linear,
    q: QHead,
}

impl PaperDiscriminator {
    pub fn new(p: &nn::Path, c: &InfoganConfig) -> PaperDiscriminator {
        let bn = c.dcgan.bn_config();
        PaperDiscriminator {
            conv1: nn::conv2d(p / "conv1", c.dcgan.channels, 64, 4, c.dcgan.init.conv_config(2, 1, true)),
            conv2: nn::conv2d(p / "conv2", 64, 128, 4, c.dcgan.conv_config(2, 1)),
            bn2: nn::batch_norm2d(p / "bn2", 128, bn),
            fc: dense(p / "fc", 128 * 8 * 8, 1024, c, false),
            bn3: nn::batch_norm1d(p / "bn3", 1024, bn),
            score: dense(p / "score", 1024, 1, c, true),
            q: QHead::new(p, 1024, c),
        }
    }
}

impl DiscriminatorNet for PaperDiscriminator {
    fn judge(&self, x: &Tensor, _labels: Option<&Tensor>, train: bool) -> Judgement {
        let b = x.size()[0];
        let h = leaky_relu(&self.conv1.forward(x), 0.2); // [B, 64, 16, 16]
        let h = leaky_relu(&self.bn2.forward_t(&self.conv2.forward(&h), train), 0.2); // [B, 128, 8, 8]
        let h = leaky_relu(&self.bn3.forward_t(&self.fc.forward(&h.reshape([b, 128 * 8 * 8])), train), 0.2);
        Judgement { score: self.score.forward(&h).view([b]), classes: None, codes: Some(self.q.forward_t(&h, train)) }
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

/// The DCGAN discriminator, with Q on its last feature maps.
#[derive(Debug)]
pub struct Discriminator {
    net: dcgan::Discriminator,
    q: QHead,
}

impl Discriminator {
    pub fn new(p: &nn::Path, c: &InfoganConfig) -> Discriminator {
        let features = c.dcgan.widths(c.dcgan.ndf)[0] * 4 * 4;
        Discriminator { net: dcgan::Discriminator::new(p, &c.dcgan), q: QHead::new(p, features, c) }
    }
}

impl DiscriminatorNet for Discriminator {
    /// The real/fake logit from the DCGAN head, and Q's outputs `[B, codes.q_width()]`.
    fn judge(&self, x: &Tensor, _labels: Option<&Tensor>, train: bool) -> Judgement {
        let h = self.net.features(x, train);
        let q = self.q.forward_t(&h.flatten(1, -1), train);
        Judgement { score: self.net.head(&h), classes: None, codes: Some(q) }
    }
}
