//! The conditional DCGAN of the DCGAN lesson's bonus section (RDFIA practical 3-d,
//! section 2.2; Mirza & Osindero, 2014): G and D each project their input and the one-hot label
//! in two branches, then concatenate them along the channels. With ngf = ndf = 64 (the defaults)
//! the widths are the lesson's:
//!
//! D: image → conv(64, k4 s2 p1)+LeakyReLU(0.2); label map 10×32×32 → conv(64, k4 s2 p1)+LeakyReLU;
//!    concatenate (128) → conv(256, no bias)+BN+LeakyReLU → conv(512, no bias)+BN+LeakyReLU →
//!    conv(1, k4 s1 p0) (the sigmoid lives in the loss, as in the DCGAN)
//! G: z → convT(256, k4 s1 p0, no bias)+BN+ReLU; label → the same; concatenate (512) →
//!    convT(256, k4 s2 p1, no bias)+BN+ReLU → convT(128)+BN+ReLU → convT(1, k4 s2 p1) → tanh
//!
//! The lesson marks "no bias" on the layers BatchNorm follows; the others keep their bias (0 at init).
//!
//! At 64×64 (`image_size: 64`, for the course texts' face sets) each network gains a block, as
//! the DCGAN does: G ends convT(2ngf→ngf)+BN+ReLU → convT(C) at 64×64, D's branches read 64×64
//! and it adds conv(8ndf→8ndf, no bias)+BN+LeakyReLU before the score.

use super::dcgan::Init;
use super::{leaky_relu, one_hot, DiscriminatorNet, GeneratorNet, Judgement};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// The architecture's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdcganConfig {
    /// Image channels: 1 for MNIST.
    pub channels: i64,
    /// Side of the images: 32 (the lesson's) or 64.
    #[serde(default = "super::side_32")]
    pub image_size: i64,
    /// Dimension n_z of the prior N(0, I).
    pub latent_dim: i64,
    /// Number of classes the label takes (10 digits).
    pub classes: i64,
    /// G's widths are 4·ngf per branch, 4·ngf, 2·ngf: the lesson's 256, 256, 128 at ngf = 64.
    pub ngf: i64,
    /// D's widths are ndf per branch, 4·ndf, 8·ndf: the lesson's 64, 256, 512 at ndf = 64.
    pub ndf: i64,
    pub init: Init,
}

impl Default for CdcganConfig {
    fn default() -> Self {
        Self::mnist32()
    }
}

impl CdcganConfig {
    /// The lesson's: 32×32 grey digits, 10 classes, n_z = 100, its layer widths, DCGAN init.
    pub fn mnist32() -> Self {
        CdcganConfig { channels: 1, image_size: 32, latent_dim: 100, classes: 10, ngf: 64, ndf: 64, init: Init::Dcgan }
    }
}

/// Exercise `conditional.label_map`: the label expanded to a stack of constant planes, `[B, classes, size, size]`,
/// plane `y` all ones and the others all zeros, so a convolution can read it beside the image.
pub fn label_map(labels: &Tensor, classes: i64, size: i64) -> Tensor {
    // BEGIN SOLUTION conditional.label_map
    let b = labels.size()[0];
    one_hot(labels, classes).view([b, classes, 1, 1]).expand([b, classes, size, size], false)
    // END SOLUTION
}

/// The conditional generator cG(z, y).
#[derive(Debug)]
pub struct Generator {
    latent_dim: i64,
    classes: i64,
    z_branch: (nn::ConvTranspose2D, nn::BatchNorm),
    y_branch: (nn::ConvTranspose2D, nn::BatchNorm),
    blocks: Vec<(nn::ConvTranspose2D, nn::BatchNorm)>,
    to_image: nn::ConvTranspose2D,
}

impl Generator {
    pub fn new(p: &nn::Path, c: &CdcganConfig) -> Generator {
        let i = c.init;
        let branch = |name: &str, input: i64| {
            let conv =
                nn::conv_transpose2d(p / format!("{name}_convt"), input, 4 * c.ngf, 4, i.convt_config(1, 0, false));
            (conv, nn::batch_norm2d(p / format!("{name}_bn"), 4 * c.ngf, i.bn_config()))
        };
        let (z_branch, y_branch) = (branch("z", c.latent_dim), branch("y", c.classes));
        let mut widths = vec![(8 * c.ngf, 4 * c.ngf), (4 * c.ngf, 2 * c.ngf)];
        if c.image_size == 64 {
            widths.push((2 * c.ngf, c.ngf));
        }
        let mut blocks = Vec::new();
        for (n, &(from, to)) in widths.iter().enumerate() {
            let conv = nn::conv_transpose2d(p / format!("convt{}", n + 1), from, to, 4, i.convt_config(2, 1, false));
            blocks.push((conv, nn::batch_norm2d(p / format!("bn{}", n + 1), to, i.bn_config())));
        }
        let (last, n) = (widths[widths.len() - 1].1, widths.len() + 1);
        let to_image = nn::conv_transpose2d(p / format!("convt{n}"), last, c.channels, 4, i.convt_config(2, 1, true));
        Generator { latent_dim: c.latent_dim, classes: c.classes, z_branch, y_branch, blocks, to_image }
    }

    /// z `[B, n_z]` and labels `[B]` → images `[B, C, S, S]` in [-1, 1] (S = 32 or 64).
    pub fn forward_t(&self, z: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = z.size()[0];
        assert_eq!(z.size(), [b, self.latent_dim], "generator input: expected [batch, {}]", self.latent_dim);
        assert_eq!(labels.size(), [b], "generator labels: expected [{b}]");
        let mut h = self.fuse(z, labels, train); // [B, 8ngf, 4, 4]
        for (conv, bn) in &self.blocks {
            h = bn.forward_t(&conv.forward(&h), train).relu(); // [B, 4ngf, 8, 8] → [B, 2ngf, 16, 16] (→ [B, ngf, 32, 32])
        }
        self.to_image.forward(&h).tanh() // [B, C, S, S]
    }

    /// Exercise `conditional.fusion` (generator half): branch 1 projects z `[B, n_z]` (as
    /// `[B, n_z, 1, 1]`), branch 2 the one-hot label (as `[B, classes, 1, 1]`), each through its
    /// convT + BatchNorm + ReLU to `[B, 4ngf, 4, 4]`; concatenate them, z first → `[B, 8ngf, 4, 4]`.
    pub fn fuse(&self, z: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = z.size()[0];
        let ((zc, zbn), (yc, ybn)) = (&self.z_branch, &self.y_branch);
        // BEGIN SOLUTION conditional.fusion
        let hz = zbn.forward_t(&zc.forward(&z.view([b, self.latent_dim, 1, 1])), train).relu();
        let y = one_hot(labels, self.classes).view([b, self.classes, 1, 1]);
        let hy = ybn.forward_t(&yc.forward(&y), train).relu();
        Tensor::cat(&[hz, hy], 1)
        // END SOLUTION
    }
}

impl GeneratorNet for Generator {
    fn generate(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor {
        self.forward_t(z, labels.expect("the conditional generator needs labels"), train)
    }
}

/// The conditional discriminator cD(x, y); returns logits.
#[derive(Debug)]
pub struct Discriminator {
    classes: i64,
    x_branch: nn::Conv2D,
    y_branch: nn::Conv2D,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// At 64×64 only: conv3 + bn3, 8ndf → 8ndf.
    block64: Option<(nn::Conv2D, nn::BatchNorm)>,
    to_score: nn::Conv2D,
}

impl Discriminator {
    pub fn new(p: &nn::Path, c: &CdcganConfig) -> Discriminator {
        let i = c.init;
        let x_branch = nn::conv2d(p / "x_conv", c.channels, c.ndf, 4, i.conv_config(2, 1, true));
        let y_branch = nn::conv2d(p / "y_conv", c.classes, c.ndf, 4, i.conv_config(2, 1, true));
        let conv1 = nn::conv2d(p / "conv1", 2 * c.ndf, 4 * c.ndf, 4, i.conv_config(2, 1, false));
        let bn1 = nn::batch_norm2d(p / "bn1", 4 * c.ndf, i.bn_config());
        let conv2 = nn::conv2d(p / "conv2", 4 * c.ndf, 8 * c.ndf, 4, i.conv_config(2, 1, false));
        let bn2 = nn::batch_norm2d(p / "bn2", 8 * c.ndf, i.bn_config());
        let block64 = (c.image_size == 64).then(|| {
            let conv3 = nn::conv2d(p / "conv3", 8 * c.ndf, 8 * c.ndf, 4, i.conv_config(2, 1, false));
            (conv3, nn::batch_norm2d(p / "bn3", 8 * c.ndf, i.bn_config()))
        });
        let score_name = if block64.is_some() { "conv4" } else { "conv3" };
        let to_score = nn::conv2d(p / score_name, 8 * c.ndf, 1, 4, i.conv_config(1, 0, true));
        Discriminator { classes: c.classes, x_branch, y_branch, conv1, bn1, conv2, bn2, block64, to_score }
    }

    /// Images `[B, C, S, S]` and labels `[B]` → logits `[B]`.
    pub fn forward_t(&self, x: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = x.size()[0];
        assert_eq!(labels.size(), [b], "discriminator labels: expected [{b}]");
        let h = self.fuse(x, &label_map(labels, self.classes, x.size()[2])); // [B, 2ndf, S/2, S/2]
        self.score(&h, train)
    }

    /// The fused maps `[B, 2ndf, S/2, S/2]` ([`Discriminator::fuse`]) → logits `[B]`.
    pub fn score(&self, h: &Tensor, train: bool) -> Tensor {
        let b = h.size()[0];
        let h = leaky_relu(&self.bn1.forward_t(&self.conv1.forward(h), train), 0.2); // [B, 4ndf, S/4, S/4]
        let mut h = leaky_relu(&self.bn2.forward_t(&self.conv2.forward(&h), train), 0.2); // [B, 8ndf, S/8, S/8]
        if let Some((conv3, bn3)) = &self.block64 {
            h = leaky_relu(&bn3.forward_t(&conv3.forward(&h), train), 0.2); // [B, 8ndf, 4, 4] at 64×64
        }
        self.to_score.forward(&h).view([b]) // [B, 1, 1, 1] → [B]
    }

    /// Exercise `conditional.fusion` (discriminator half): branch 1 is the image `[B, C, S, S]`
    /// through its conv + LeakyReLU(0.2), branch 2 the label planes `[B, classes, S, S]` (made
    /// by [`label_map`]) through its conv + LeakyReLU(0.2), each `[B, ndf, S/2, S/2]`; concatenate
    /// them, image first → `[B, 2ndf, S/2, S/2]` (S = 32 in the lesson).
    pub fn fuse(&self, x: &Tensor, planes: &Tensor) -> Tensor {
        // BEGIN SOLUTION conditional.fusion
        let hx = leaky_relu(&self.x_branch.forward(x), 0.2);
        let hy = leaky_relu(&self.y_branch.forward(planes), 0.2);
        Tensor::cat(&[hx, hy], 1)
        // END SOLUTION
    }
}

impl DiscriminatorNet for Discriminator {
    fn judge(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Judgement {
        let labels = labels.expect("the conditional discriminator needs labels");
        Judgement { score: self.forward_t(x, labels, train), classes: None, codes: None }
    }
}
