//! The convolutional VAE of the VAE vs GAN lesson (DLCV HW4, problem 1), with the
//! text's 64×64×3 faces adapted to 32×32 (or 64×64) images of any channel count.
//!
//! Encoder: conv(nf, k4 s2 p1)+BN+LeakyReLU(0.01) → conv(2nf) → conv(4nf) → conv(8nf), each halving
//! the side (32 → 2), then two dense heads: the mean μ and the log-variance log σ² of q(z|x).
//! Decoder: dense(8nf·s·s)+BN+LeakyReLU → convT(4nf, k4 s2 p1)+BN+LeakyReLU → convT(2nf) →
//! convT(nf) → convT(C)+tanh, each doubling the side back to the image's.
//!
//! BatchNorm uses ε = 1e-5 and the text's momentum 0.9 (TensorFlow's convention: PyTorch's 0.1);
//! LeakyReLU the text's slope 0.01. Weights start at PyTorch's defaults.

use super::dcgan::Init;
use super::leaky_relu;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// The architecture's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Side of the images: 32 or 64.
    pub image_size: i64,
    /// Image channels: 1 for MNIST, 3 for colour datasets.
    pub channels: i64,
    /// Dimension of the latent space (the text's 512 is for 64×64 faces; 32 suits digits).
    pub latent_dim: i64,
    /// Width of the encoder's first convolution (and of the decoder's last hidden one); the others
    /// are 2·nf, 4·nf and 8·nf.
    pub nf: i64,
    /// Slope of the LeakyReLUs (the text's α = 0.01).
    pub slope: f64,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self::mnist32()
    }
}

impl VaeConfig {
    /// 32×32 grey digits, a 32-dimensional latent space, nf = 32.
    pub fn mnist32() -> Self {
        VaeConfig { image_size: 32, channels: 1, latent_dim: 32, nf: 32, slope: 0.01 }
    }

    /// Refuses settings the networks cannot be built with, naming the parameter.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.image_size == 32 || self.image_size == 64, "image_size = {}: expected 32 or 64", self.image_size);
        ensure!(self.channels == 1 || self.channels == 3, "channels = {}: expected 1 or 3", self.channels);
        ensure!(self.latent_dim >= 1, "latent_dim = {}: expected 1 or more", self.latent_dim);
        ensure!(self.nf >= 1, "nf = {}: expected 1 or more", self.nf);
        ensure!(self.slope.is_finite() && self.slope >= 0.0, "slope = {}: expected 0 or more", self.slope);
        Ok(())
    }

    /// Side of the encoder's last feature maps: four halvings of the image's.
    pub fn bottom_side(&self) -> i64 {
        self.image_size / 16
    }

    /// Channel widths of the encoder's convolutions, from the image end.
    pub fn widths(&self) -> [i64; 4] {
        [self.nf, 2 * self.nf, 4 * self.nf, 8 * self.nf]
    }

    fn bn_config() -> nn::BatchNormConfig {
        nn::BatchNormConfig { momentum: 0.1, eps: 1e-5, ..Default::default() }
    }
}

/// The encoder q(z|x) and the decoder p(x|z).
#[derive(Debug)]
pub struct VaeNet {
    config: VaeConfig,
    down: Vec<(nn::Conv2D, nn::BatchNorm)>,
    mean: nn::Linear,
    log_variance: nn::Linear,
    from_latent: nn::Linear,
    bn0: nn::BatchNorm,
    up: Vec<(nn::ConvTranspose2D, nn::BatchNorm)>,
    to_image: nn::ConvTranspose2D,
}

impl VaeNet {
    /// Layers `conv1..4`/`bn1..4`, `mean`, `log_variance` (encoder) and `dense`, `bn0`,
    /// `convt1..3`/`bnt1..3`, `convt4` (decoder) under `p`.
    pub fn new(p: &nn::Path, c: &VaeConfig) -> VaeNet {
        let widths = c.widths();
        let bottom = widths[3] * c.bottom_side() * c.bottom_side();
        let mut down = Vec::new();
        let mut in_ch = c.channels;
        for (i, &w) in widths.iter().enumerate() {
            let conv = nn::conv2d(p / format!("conv{}", i + 1), in_ch, w, 4, Init::Default.conv_config(2, 1, false));
            down.push((conv, nn::batch_norm2d(p / format!("bn{}", i + 1), w, VaeConfig::bn_config())));
            in_ch = w;
        }
        let linear = nn::LinearConfig::default();
        let mean = nn::linear(p / "mean", bottom, c.latent_dim, linear);
        let log_variance = nn::linear(p / "log_variance", bottom, c.latent_dim, linear);
        let from_latent = nn::linear(p / "dense", c.latent_dim, bottom, nn::LinearConfig { bias: false, ..linear });
        let bn0 = nn::batch_norm1d(p / "bn0", bottom, VaeConfig::bn_config());
        let mut up = Vec::new();
        for (i, pair) in widths.windows(2).rev().enumerate() {
            let (from, to) = (pair[1], pair[0]);
            let conv = nn::conv_transpose2d(
                p / format!("convt{}", i + 1),
                from,
                to,
                4,
                Init::Default.convt_config(2, 1, false),
            );
            up.push((conv, nn::batch_norm2d(p / format!("bnt{}", i + 1), to, VaeConfig::bn_config())));
        }
        let to_image =
            nn::conv_transpose2d(p / "convt4", widths[0], c.channels, 4, Init::Default.convt_config(2, 1, true));
        VaeNet { config: c.clone(), down, mean, log_variance, from_latent, bn0, up, to_image }
    }

    /// Images `[B, C, S, S]` → (μ, log σ²), each `[B, latent_dim]`.
    pub fn encode(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut h = x.shallow_clone();
        for (conv, bn) in &self.down {
            h = leaky_relu(&bn.forward_t(&conv.forward(&h), train), self.config.slope);
            // side 16 → 8 → 4 → 2
        }
        let h = h.flatten(1, -1);
        (self.mean.forward(&h), self.log_variance.forward(&h))
    }

    /// Latent vectors `[B, latent_dim]` → images `[B, C, S, S]` in [-1, 1].
    pub fn decode(&self, z: &Tensor, train: bool) -> Tensor {
        let (b, side) = (z.size()[0], self.config.bottom_side());
        let h = leaky_relu(&self.bn0.forward_t(&self.from_latent.forward(z), train), self.config.slope);
        let mut h = h.view([b, self.config.widths()[3], side, side]);
        for (conv, bn) in &self.up {
            h = leaky_relu(&bn.forward_t(&conv.forward(&h), train), self.config.slope);
            // side 2 → 4 → 8 → 16
        }
        self.to_image.forward(&h).tanh()
    }
}
