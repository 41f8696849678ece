//! DCGAN (Radford et al., 2016, arXiv:1511.06434) as specified by the DCGAN 32×32 MNIST lesson
//! (RDFIA practical 3-d, section 1.2), with the lesson's 64×64 experiment (one more block).
//!
//! D: conv(ndf, k4 s2 p1, no bias)+BN+LeakyReLU(0.2) → conv(2·ndf) → conv(4·ndf) → conv(1, k4 s1 p0)
//! G: convT(4·ngf, k4 s1 p0, no bias)+BN+ReLU → convT(2·ngf, k4 s2 p1) → convT(ngf) → convT(C)+tanh
//!
//! The lesson puts a sigmoid after D's last convolution and uses BCE; here D returns the logit and
//! the loss applies the sigmoid (`binary_cross_entropy_with_logits`), which is the same function
//! computed without overflow. [`Discriminator::probability`] gives D(x) as the lesson defines it.

use super::layers::{Norm, NormLayer, UpLayer, Upsample};
use super::{leaky_relu, DiscriminatorNet, GeneratorNet, Judgement};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// How weights are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// The DCGAN paper's: conv weights N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0.
    Dcgan,
    /// PyTorch's defaults (Kaiming-uniform convolutions with a = √5, BatchNorm weight 1 and
    /// bias 0): the lesson's "replace the custom initialisation with pytorch's default" experiment.
    Default,
}

/// The architecture's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DcganConfig {
    /// Side of the generated images: 32 (the lesson) or 64 (one more block).
    pub image_size: i64,
    /// Image channels: 1 for MNIST, 3 for colour datasets.
    pub channels: i64,
    /// Dimension n_z of the prior N(0, I).
    pub latent_dim: i64,
    /// Width of G's last hidden layer; the others are 2·ngf, 4·ngf (and 8·ngf at 64×64).
    pub ngf: i64,
    /// Width of D's first layer; the others are 2·ndf, 4·ndf (and 8·ndf at 64×64).
    pub ndf: i64,
    /// Weight initialisation.
    pub init: Init,
    /// D's normalisation after its hidden convolutions (BatchNorm in the lesson; LayerNorm or
    /// InstanceNorm for a WGAN-GP critic).
    #[serde(default)]
    pub norm: Norm,
    /// How G doubles its feature maps after the first block (transposed convolutions in the lesson).
    #[serde(default)]
    pub upsample: Upsample,
}

impl Default for DcganConfig {
    fn default() -> Self {
        Self::mnist32()
    }
}

impl DcganConfig {
    /// The lesson's defaults: 32×32 grey digits, n_z = 100, ngf = ndf = 32, DCGAN init.
    pub fn mnist32() -> Self {
        DcganConfig {
            image_size: 32,
            channels: 1,
            latent_dim: 100,
            ngf: 32,
            ndf: 32,
            init: Init::Dcgan,
            norm: Norm::Batch,
            upsample: Upsample::TransposedConv,
        }
    }

    /// Channel widths from the 4×4 end to the image end: [4, 2, 1] at 32×32, [8, 4, 2, 1] at 64×64.
    pub fn widths(&self, base: i64) -> Vec<i64> {
        super::widths(self.image_size, base)
    }

    /// A convolution without bias (BatchNorm follows), initialised by [`weight_init`].
    pub fn conv_config(&self, stride: i64, padding: i64) -> nn::ConvConfig {
        self.init.conv_config(stride, padding, false)
    }

    /// A transposed convolution without bias, initialised by [`weight_init`].
    pub fn convt_config(&self, stride: i64, padding: i64) -> nn::ConvTransposeConfig {
        self.init.convt_config(stride, padding, false)
    }

    /// BatchNorm initialised by [`weight_init`].
    pub fn bn_config(&self) -> nn::BatchNormConfig {
        self.init.bn_config()
    }

    /// D's normalisation layer number `i` (`bn<i>` for BatchNorm) for `channels` maps of `side`×`side`.
    pub fn norm_layer(&self, p: &nn::Path, i: usize, channels: i64, side: i64) -> NormLayer {
        NormLayer::new(self.norm, p, i, channels, side, self.bn_config())
    }

    /// A layer of G that doubles the side, `from` → `to` channels, no bias: a transposed
    /// convolution k4 s2 p1, or a resize and a convolution k3 s1 p1 (see [`Upsample`]).
    pub fn up_layer(&self, p: nn::Path, from: i64, to: i64) -> UpLayer {
        UpLayer::new(self.upsample, p, from, to, false, weight_init(self.init).conv_weight)
    }
}

impl Init {
    /// A convolution initialised by [`weight_init`]; a bias, if any, starts at 0.
    pub fn conv_config(self, stride: i64, padding: i64, bias: bool) -> nn::ConvConfig {
        let mut c = nn::ConvConfig { stride, padding, bias, bs_init: nn::Init::Const(0.0), ..Default::default() };
        c.ws_init = weight_init(self).conv_weight;
        c
    }

    /// A transposed convolution initialised by [`weight_init`]; a bias, if any, starts at 0.
    pub fn convt_config(self, stride: i64, padding: i64, bias: bool) -> nn::ConvTransposeConfig {
        let mut c =
            nn::ConvTransposeConfig { stride, padding, bias, bs_init: nn::Init::Const(0.0), ..Default::default() };
        c.ws_init = weight_init(self).conv_weight;
        c
    }

    /// BatchNorm initialised by [`weight_init`].
    pub fn bn_config(self) -> nn::BatchNormConfig {
        let w = weight_init(self);
        nn::BatchNormConfig { ws_init: w.bn_weight, bs_init: w.bn_bias, ..Default::default() }
    }
}

/// How each kind of parameter starts.
pub struct WeightInit {
    /// Convolution weights.
    pub conv_weight: nn::Init,
    pub bn_weight: nn::Init,
    pub bn_bias: nn::Init,
}

/// Exercise `dcgan.init`: the DCGAN paper's initialisation (section 4: "all weights were
/// initialized from a zero-centered Normal distribution with standard deviation 0.02"; BatchNorm
/// weights from N(1, 0.02), biases 0), or PyTorch's defaults: convolutions Kaiming-uniform with
/// a = √5, i.e. U(−1/√fan_in, 1/√fan_in), BatchNorm weight 1 and bias 0.
pub fn weight_init(init: Init) -> WeightInit {
    // BEGIN SOLUTION dcgan.init
    match init {
        Init::Dcgan => WeightInit {
            conv_weight: nn::Init::Randn { mean: 0.0, stdev: 0.02 },
            bn_weight: nn::Init::Randn { mean: 1.0, stdev: 0.02 },
            bn_bias: nn::Init::Const(0.0),
        },
        Init::Default => WeightInit {
            conv_weight: nn::Init::Kaiming {
                dist: nn::init::NormalOrUniform::Uniform,
                fan: nn::init::FanInOut::FanIn,
                non_linearity: nn::init::NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
            },
            bn_weight: nn::Init::Const(1.0),
            bn_bias: nn::Init::Const(0.0),
        },
    }
    // END SOLUTION
}

/// A dense layer `from` → `to` with its weights initialised like the convolutions ([`weight_init`]),
/// its bias, if any, at 0 (the dense heads of ACGAN and InfoGAN).
pub fn dense(p: nn::Path, from: i64, to: i64, init: Init, bias: bool) -> nn::Linear {
    let config = nn::LinearConfig {
        ws_init: weight_init(init).conv_weight,
        bs_init: bias.then_some(nn::Init::Const(0.0)),
        bias,
    };
    nn::linear(p, from, to, config)
}

/// The DCGAN generator. `Up` is the layer that doubles the side: the lesson's transposed
/// convolution; the loss-families lesson swaps in a resize and a convolution
/// ([`Generator::with_upsampling`]).
#[derive(Debug)]
pub struct Generator<Up = nn::ConvTranspose2D> {
    latent_dim: i64,
    blocks: Vec<(Up, nn::BatchNorm)>,
    to_image: Up,
}

impl Generator {
    /// Exercise `dcgan.generator`: the lesson's layer list. Name the layers `convt1`, `bn1`,
    /// `convt2`, ... through `p`; use `c.widths(c.ngf)`, `nn::conv_transpose2d(path, from, to, 4,
    /// c.convt_config(stride, padding))` and `nn::batch_norm2d(path, channels, c.bn_config())`.
    pub fn new(p: &nn::Path, c: &DcganConfig) -> Generator {
        // BEGIN SOLUTION dcgan.generator
        let widths = c.widths(c.ngf);
        let mut blocks = Vec::new();
        let mut in_ch = c.latent_dim;
        for (i, &w) in widths.iter().enumerate() {
            // The first block maps the 1×1 latent to 4×4 (k4 s1 p0); the others double the side (k4 s2 p1).
            let (stride, padding) = if i == 0 { (1, 0) } else { (2, 1) };
            let conv =
                nn::conv_transpose2d(p / format!("convt{}", i + 1), in_ch, w, 4, c.convt_config(stride, padding));
            let bn = nn::batch_norm2d(p / format!("bn{}", i + 1), w, c.bn_config());
            blocks.push((conv, bn));
            in_ch = w;
        }
        let n = widths.len() + 1;
        let to_image = nn::conv_transpose2d(p / format!("convt{n}"), in_ch, c.channels, 4, c.convt_config(2, 1));
        Generator { latent_dim: c.latent_dim, blocks, to_image }
        // END SOLUTION
    }
}

impl Generator<UpLayer> {
    /// The student's generator ([`Generator::new`]) with `c.upsample`'s way of doubling the side
    /// (IFT6135 assignment 4, section 2.2): built once aside, then its first block (1×1 → 4×4)
    /// and its BatchNorms are kept as they are, and each transposed convolution after the first
    /// becomes `c.up_layer(..)` with the same channels, under the same name.
    pub fn with_upsampling(p: &nn::Path, c: &DcganConfig) -> Generator<UpLayer> {
        let aside = nn::VarStore::new(p.device());
        let plain = Generator::new(&aside.root(), c);
        let mut blocks = Vec::new();
        for (i, (mut conv, mut bn)) in plain.blocks.into_iter().enumerate() {
            let name = p / format!("convt{}", i + 1);
            let up = if i == 0 {
                keep_under(&name, &mut conv.ws, &mut conv.bs);
                UpLayer::Transposed(conv)
            } else {
                let size = conv.ws.size(); // [from, to, k, k]
                c.up_layer(name, size[0], size[1])
            };
            keep_batch_norm_under(&(p / format!("bn{}", i + 1)), &mut bn);
            blocks.push((up, bn));
        }
        let size = plain.to_image.ws.size();
        let to_image = c.up_layer(p / format!("convt{}", blocks.len() + 1), size[0], size[1]);
        Generator { latent_dim: plain.latent_dim, blocks, to_image }
    }
}

/// Makes a layer's weight and bias, built in another var store, variables of `p` (same values,
/// the names `weight` and `bias`).
fn keep_under(p: &nn::Path, ws: &mut Tensor, bs: &mut Option<Tensor>) {
    *ws = p.var_copy("weight", ws);
    if let Some(b) = bs {
        *b = p.var_copy("bias", b);
    }
}

/// [`keep_under`] for a BatchNorm, its running statistics as non-trainable variables.
fn keep_batch_norm_under(p: &nn::Path, bn: &mut nn::BatchNorm) {
    if let Some(w) = &mut bn.ws {
        *w = p.var_copy("weight", w);
    }
    if let Some(b) = &mut bn.bs {
        *b = p.var_copy("bias", b);
    }
    for (name, t) in [("running_mean", &mut bn.running_mean), ("running_var", &mut bn.running_var)] {
        let mut kept = p.zeros_no_train(name, &t.size());
        tch::no_grad(|| kept.copy_(t));
        *t = kept;
    }
}

impl<Up: Module> Generator<Up> {
    /// z `[B, n_z]` → images `[B, C, S, S]` in [-1, 1].
    pub fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        let b = z.size()[0];
        assert_eq!(z.size(), [b, self.latent_dim], "generator input: expected [batch, {}]", self.latent_dim);
        // BEGIN SOLUTION dcgan.generator
        let mut x = z.view([b, self.latent_dim, 1, 1]); // [B, n_z, 1, 1]
        for (conv, bn) in &self.blocks {
            // [B, 4ngf, 4, 4] → [B, 2ngf, 8, 8] → [B, ngf, 16, 16]
            x = bn.forward_t(&conv.forward(&x), train).relu();
        }
        self.to_image.forward(&x).tanh() // [B, C, 32, 32]
                                         // END SOLUTION
    }
}

impl<Up: Module> GeneratorNet for Generator<Up> {
    fn generate(&self, z: &Tensor, _labels: Option<&Tensor>, train: bool) -> Tensor {
        self.forward_t(z, train)
    }

    fn module(&self) -> Option<&dyn nn::ModuleT> {
        Some(self)
    }
}

impl<Up: Module> nn::ModuleT for Generator<Up> {
    fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        Generator::forward_t(self, z, train)
    }
}

/// The DCGAN discriminator; returns logits. `N` is the normalisation after each hidden
/// convolution: the lesson's BatchNorm; a WGAN-GP critic's LayerNorm or another
/// ([`Discriminator::with_norm`]).
#[derive(Debug)]
pub struct Discriminator<N = nn::BatchNorm> {
    blocks: Vec<(nn::Conv2D, N)>,
    to_score: nn::Conv2D,
}

impl Discriminator {
    /// Exercise `dcgan.discriminator`: the lesson's layer list, returning logits (no sigmoid:
    /// the loss applies it). Name the layers `conv1`, `bn1`, `conv2`, ... through `p`; use
    /// `c.widths(c.ndf)` (reversed), `nn::conv2d(path, from, to, 4, c.conv_config(stride, padding))`,
    /// `nn::batch_norm2d(path, channels, c.bn_config())`, and `leaky_relu(x, 0.2)`; the last layer
    /// maps 4×4 to 1×1.
    pub fn new(p: &nn::Path, c: &DcganConfig) -> Discriminator {
        // BEGIN SOLUTION dcgan.discriminator
        let mut widths = c.widths(c.ndf);
        widths.reverse();
        let mut blocks = Vec::new();
        let mut in_ch = c.channels;
        for (i, &w) in widths.iter().enumerate() {
            let conv = nn::conv2d(p / format!("conv{}", i + 1), in_ch, w, 4, c.conv_config(2, 1));
            let bn = nn::batch_norm2d(p / format!("bn{}", i + 1), w, c.bn_config());
            blocks.push((conv, bn));
            in_ch = w;
        }
        let n = widths.len() + 1;
        let to_score = nn::conv2d(p / format!("conv{n}"), in_ch, 1, 4, c.conv_config(1, 0));
        Discriminator { blocks, to_score }
        // END SOLUTION
    }
}

impl Discriminator<NormLayer> {
    /// The student's discriminator ([`Discriminator::new`]) with `c.norm` after each hidden
    /// convolution (`bn<i>`, `ln<i>` or `in<i>`; see [`Norm`]): the loss-families lesson's
    /// critics. Built once aside; its convolutions are kept, each normalisation sized by the maps
    /// its convolution gives.
    pub fn with_norm(p: &nn::Path, c: &DcganConfig) -> Discriminator<NormLayer> {
        let aside = nn::VarStore::new(p.device());
        let plain = Discriminator::new(&aside.root(), c);
        let mut maps = Tensor::zeros([1, c.channels, c.image_size, c.image_size], (tch::Kind::Float, p.device()));
        let mut blocks = Vec::new();
        for (i, (mut conv, _)) in plain.blocks.into_iter().enumerate() {
            maps = tch::no_grad(|| conv.forward(&maps));
            keep_under(&(p / format!("conv{}", i + 1)), &mut conv.ws, &mut conv.bs);
            let (channels, side) = (maps.size()[1], maps.size()[2]);
            blocks.push((conv, c.norm_layer(p, i + 1, channels, side)));
        }
        let mut to_score = plain.to_score;
        keep_under(&(p / format!("conv{}", blocks.len() + 1)), &mut to_score.ws, &mut to_score.bs);
        Discriminator { blocks, to_score }
    }
}

impl<N: ModuleT> Discriminator<N> {
    /// Images `[B, C, S, S]` → logits `[B]`: [`Discriminator::features`], then [`Discriminator::head`].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.head(&self.features(x, train))
    }

    /// The last conv block's maps `[B, 4ndf, 4, 4]` → one logit per image `[B]`.
    pub fn head(&self, h: &Tensor) -> Tensor {
        // BEGIN SOLUTION dcgan.discriminator
        let b = h.size()[0];
        self.to_score.forward(h).view([b]) // [B, 1, 1, 1] → [B]
                                           // END SOLUTION
    }

    /// Images `[B, C, S, S]` → the last conv block's maps `[B, 4ndf, 4, 4]` (`[B, 8ndf, 4, 4]` at 64×64).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        // BEGIN SOLUTION dcgan.discriminator
        let mut h = x.shallow_clone();
        for (conv, bn) in &self.blocks {
            // [B, ndf, 16, 16] → [B, 2ndf, 8, 8] → [B, 4ndf, 4, 4]
            h = leaky_relu(&bn.forward_t(&conv.forward(&h), train), 0.2);
        }
        h
        // END SOLUTION
    }

    /// D(x) ∈ [0, 1] as the lesson defines it: the sigmoid of the logit.
    pub fn probability(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false).sigmoid()
    }
}

impl<N: ModuleT> DiscriminatorNet for Discriminator<N> {
    fn judge(&self, x: &Tensor, _labels: Option<&Tensor>, train: bool) -> Judgement {
        Judgement { score: self.forward_t(x, train), classes: None, codes: None }
    }

    fn module(&self) -> Option<&dyn nn::ModuleT> {
        Some(self)
    }
}

impl<N: ModuleT> nn::ModuleT for Discriminator<N> {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        Discriminator::forward_t(self, x, train)
    }
}
