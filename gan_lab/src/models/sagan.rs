//! SAGAN (Zhang et al., 2019) as the IISc final project builds it, at 32×32 or 64×64: the DCGAN's
//! layout with spectral normalisation on every convolution of both networks, a self-attention
//! block at a chosen resolution in each, BatchNorm in G and InstanceNorm in D, trained with the
//! Wasserstein loss and gradient penalty and TTUR (see [`crate::builders::Sagan`]). With
//! `classes` > 0 it is the project's conditional SAGAN: G appends a learned embedding of the label
//! to z, and D is a projection discriminator (Miyato and Koyama, 2018), adding the inner product of
//! a label embedding with D's pooled features to its score.
//!
//! G (32×32): SN-convT(4ngf, k4 s1 p0)+BN+ReLU → SN-convT(2ngf, k4 s2 p1)+BN+ReLU
//!    → SN-convT(ngf)+BN+ReLU → [attention] → SN-convT(C)+tanh, the attention after the block of
//!    side `attention_at`
//! D (32×32): SN-conv(ndf, k4 s2 p1)+LeakyReLU(0.2) → SN-conv(2ndf)+IN+LeakyReLU
//!    → SN-conv(4ndf)+IN+LeakyReLU → SN-conv(1, k4 s1 p0), the attention after the block of side
//!    `attention_at`
//! At 64×64 each network has one more block, widths 8ngf … ngf and ndf … 8ndf (as the DCGAN's).

use super::layers::{Norm, NormLayer, SelfAttention, SnConv};
use super::{leaky_relu, DiscriminatorNet, GeneratorNet, Judgement};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// The architecture's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaganConfig {
    pub channels: i64,
    /// Side of the images: 32 or 64.
    #[serde(default = "super::side_32")]
    pub image_size: i64,
    pub latent_dim: i64,
    pub ngf: i64,
    pub ndf: i64,
    /// Side of the feature maps the attention block follows, in both networks: 4, 8 or 16, and
    /// 32 at 64×64 (0: no attention).
    pub attention_at: i64,
    /// Spectral normalisation on every convolution.
    pub spectral_norm: bool,
    /// D's normalisation after its hidden convolutions (the seed's InstanceNorm).
    pub d_norm: Norm,
    /// Classes of the conditional SAGAN (0: unconditional).
    #[serde(default)]
    pub classes: i64,
}

/// Width of the conditional generator's label embedding, appended to z.
pub const LABEL_EMBEDDING: i64 = 32;

impl Default for SaganConfig {
    fn default() -> Self {
        Self::mnist32()
    }
}

impl SaganConfig {
    /// Channel widths from the 4×4 end to the image end (see [`super::widths`]).
    pub fn widths(&self, base: i64) -> Vec<i64> {
        super::widths(self.image_size, base)
    }

    /// 32×32 digits, n_z = 100, ngf = ndf = 32 (as the DCGAN lesson), attention at 16×16.
    pub fn mnist32() -> Self {
        SaganConfig {
            channels: 1,
            image_size: 32,
            latent_dim: 100,
            ngf: 32,
            ndf: 32,
            attention_at: 16,
            spectral_norm: true,
            d_norm: Norm::Instance,
            classes: 0,
        }
    }
}

/// The SAGAN generator.
#[derive(Debug)]
pub struct Generator {
    latent_dim: i64,
    blocks: Vec<(SnConv, nn::BatchNorm, Option<SelfAttention>)>,
    to_image: SnConv,
}

impl Generator {
    /// Exercise `losses.sagan`, with [`Discriminator::new`] and the two networks' forward passes:
    /// G as the module's layer list gives it, one block per width of `c.widths(c.ngf)` (3 at
    /// 32×32, 4 at 64×64). Name the layers `convt1`, `bn1`, `convt2`, … through `p`, the image
    /// layer after the last block, the attention block `attention`. Every convolution is an [`SnConv`]
    /// (transposed here; `c.spectral_norm` says whether it normalises), the BatchNorm weights start
    /// from N(1, 0.02), and a [`SelfAttention`] follows the block whose maps are `c.attention_at`
    /// pixels wide.
    pub fn new(p: &nn::Path, c: &SaganConfig) -> Generator {
        // BEGIN SOLUTION losses.sagan
        let widths = c.widths(c.ngf);
        let bn = nn::BatchNormConfig { ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.02 }, ..Default::default() };
        let mut blocks = Vec::new();
        let (mut from, mut side) = (c.latent_dim, 4);
        for (i, &w) in widths.iter().enumerate() {
            let q = p / format!("convt{}", i + 1);
            let conv = if i == 0 {
                SnConv::new(&q, from, w, 4, 1, 0, true, c.spectral_norm)
            } else {
                SnConv::new(&q, from, w, 4, 2, 1, true, c.spectral_norm)
            };
            let attention = (side == c.attention_at).then(|| SelfAttention::new(&(p / "attention"), w));
            blocks.push((conv, nn::batch_norm2d(p / format!("bn{}", i + 1), w, bn), attention));
            from = w;
            side *= 2;
        }
        let last = format!("convt{}", widths.len() + 1);
        let to_image = SnConv::new(&(p / last.as_str()), from, c.channels, 4, 2, 1, true, c.spectral_norm);
        Generator { latent_dim: c.latent_dim, blocks, to_image }
        // END SOLUTION
    }
}

impl GeneratorNet for Generator {
    /// z `[B, n_z]` → images `[B, C, S, S]` in [-1, 1] (exercise `losses.sagan`).
    fn generate(&self, z: &Tensor, _labels: Option<&Tensor>, train: bool) -> Tensor {
        // BEGIN SOLUTION losses.sagan
        let b = z.size()[0];
        let mut x = z.view([b, self.latent_dim, 1, 1]);
        for (conv, bn, attention) in &self.blocks {
            x = bn.forward_t(&conv.forward_t(&x, train), train).relu();
            if let Some(a) = attention {
                x = a.forward(&x);
            }
        }
        self.to_image.forward_t(&x, train).tanh()
        // END SOLUTION
    }

    fn attention(&self) -> Option<&SelfAttention> {
        self.blocks.iter().find_map(|(_, _, a)| a.as_ref())
    }
}

/// The SAGAN discriminator (a critic: no sigmoid).
#[derive(Debug)]
pub struct Discriminator {
    blocks: Vec<(SnConv, NormLayer, Option<SelfAttention>)>,
    to_score: SnConv,
}

impl Discriminator {
    /// Exercise `losses.sagan`: D as the module's layer list gives it, one block per width of
    /// `c.widths(c.ndf)` reversed. Name the convolutions `conv1`, `conv2`, … (each an [`SnConv`],
    /// not transposed; the last maps 4×4 to one score), the normalisations through
    /// [`NormLayer::new`] (`c.d_norm`, none after `conv1`), the attention block `attention`.
    pub fn new(p: &nn::Path, c: &SaganConfig) -> Discriminator {
        // BEGIN SOLUTION losses.sagan
        let mut widths = c.widths(c.ndf);
        widths.reverse();
        let mut blocks = Vec::new();
        let (mut from, mut side) = (c.channels, c.image_size / 2);
        for (i, &w) in widths.iter().enumerate() {
            let conv = SnConv::new(&(p / format!("conv{}", i + 1)), from, w, 4, 2, 1, false, c.spectral_norm);
            // The first block has no normalisation, as in DCGAN practice.
            let kind = if i == 0 { Norm::None } else { c.d_norm };
            let norm = NormLayer::new(kind, p, i + 1, w, side, Default::default());
            let attention = (side == c.attention_at).then(|| SelfAttention::new(&(p / "attention"), w));
            blocks.push((conv, norm, attention));
            from = w;
            side /= 2;
        }
        let last = format!("conv{}", widths.len() + 1);
        let to_score = SnConv::new(&(p / last.as_str()), from, 1, 4, 1, 0, false, c.spectral_norm);
        Discriminator { blocks, to_score }
        // END SOLUTION
    }
}

impl Discriminator {
    /// Images `[B, C, S, S]` → D's feature maps before its last convolution, `[B, 4ndf, 4, 4]`
    /// (`8ndf` at 64×64)
    /// (exercise `losses.sagan`).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        // BEGIN SOLUTION losses.sagan
        let mut h = x.shallow_clone();
        for (conv, norm, attention) in &self.blocks {
            h = leaky_relu(&norm.forward_t(&conv.forward_t(&h, train), train), 0.2);
            if let Some(a) = attention {
                h = a.forward(&h);
            }
        }
        h
        // END SOLUTION
    }

    /// The last convolution on [`Discriminator::features`]: one score per image `[B]`.
    fn score(&self, h: &Tensor, train: bool) -> Tensor {
        self.to_score.forward_t(h, train).view([h.size()[0]])
    }
}

impl DiscriminatorNet for Discriminator {
    /// Images `[B, C, S, S]` → one score per image `[B]`.
    fn judge(&self, x: &Tensor, _labels: Option<&Tensor>, train: bool) -> Judgement {
        Judgement { score: self.score(&self.features(x, train), train), classes: None, codes: None }
    }

    fn attention(&self) -> Option<&SelfAttention> {
        self.blocks.iter().find_map(|(_, _, a)| a.as_ref())
    }
}

/// The conditional SAGAN's generator: a learned embedding of the label appended to z
/// `[B, n_z]` → `[B, n_z + 32]`, then the SAGAN generator, its first layer that much wider.
#[derive(Debug)]
pub struct ConditionalGenerator {
    embed: nn::Embedding,
    net: Generator,
}

impl ConditionalGenerator {
    pub fn new(p: &nn::Path, c: &SaganConfig) -> ConditionalGenerator {
        let wider = SaganConfig { latent_dim: c.latent_dim + LABEL_EMBEDDING, ..c.clone() };
        let embed = nn::embedding(p / "embed", c.classes, LABEL_EMBEDDING, Default::default());
        ConditionalGenerator { embed, net: Generator::new(p, &wider) }
    }
}

impl GeneratorNet for ConditionalGenerator {
    fn generate(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Tensor {
        let labels = labels.expect("the conditional SAGAN generates by class: labels are required");
        let input = Tensor::cat(&[z.shallow_clone(), self.embed.forward(labels)], 1);
        self.net.generate(&input, None, train)
    }

    fn attention(&self) -> Option<&SelfAttention> {
        self.net.attention()
    }
}

/// The projection discriminator: the SAGAN critic's score of x plus ⟨embed(y), Σ features(x)⟩,
/// the label's embedding against D's features summed over positions `[B, 4ndf]` (`8ndf` at 64×64).
#[derive(Debug)]
pub struct ProjectionDiscriminator {
    embed: nn::Embedding,
    net: Discriminator,
}

impl ProjectionDiscriminator {
    pub fn new(p: &nn::Path, c: &SaganConfig) -> ProjectionDiscriminator {
        let embed = nn::embedding(p / "embed", c.classes, c.widths(c.ndf)[0], Default::default());
        ProjectionDiscriminator { embed, net: Discriminator::new(p, c) }
    }
}

impl DiscriminatorNet for ProjectionDiscriminator {
    fn judge(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Judgement {
        let labels = labels.expect("the projection discriminator judges by class: labels are required");
        let h = self.net.features(x, train);
        let pooled = h.sum_dim_intlist([2, 3].as_slice(), false, Kind::Float);
        let projection = (self.embed.forward(labels) * pooled).sum_dim_intlist([1].as_slice(), false, Kind::Float);
        Judgement { score: self.net.score(&h, train) + projection, classes: None, codes: None }
    }

    fn attention(&self) -> Option<&SelfAttention> {
        self.net.attention()
    }
}
