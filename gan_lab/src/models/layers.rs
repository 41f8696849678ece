//! Layers the loss-families lesson adds to the DCGAN's (IFT6135 assignment 4, the UPenn GAN
//! report, the IISc final project): normalisations a critic can use instead of BatchNorm, the
//! three ways to double a feature map, spectral normalisation and the SAGAN self-attention block.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

/// The normalisation after each hidden convolution of D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Norm {
    /// BatchNorm (DCGAN). It couples the images of a batch, which the gradient penalty assumes
    /// independent: not for WGAN-GP's critic.
    #[default]
    Batch,
    /// LayerNorm over each image's [C, H, W] (WGAN-GP, the UPenn GAN report).
    Layer,
    /// InstanceNorm: each image's channels separately, with a learned scale and shift (SAGAN's D, the IISc final project).
    Instance,
    /// None.
    None,
}

/// A normalisation layer of a [`Norm`] kind.
#[derive(Debug)]
pub enum NormLayer {
    Batch(nn::BatchNorm),
    Layer(nn::LayerNorm),
    Instance { weight: Tensor, bias: Tensor },
    None,
}

impl NormLayer {
    /// A layer for `channels` maps of `side`×`side`; BatchNorm is named `bn<i>`, LayerNorm `ln<i>`,
    /// InstanceNorm `in<i>` under `p`.
    pub fn new(kind: Norm, p: &nn::Path, i: usize, channels: i64, side: i64, bn: nn::BatchNormConfig) -> NormLayer {
        match kind {
            Norm::Batch => NormLayer::Batch(nn::batch_norm2d(p / format!("bn{i}"), channels, bn)),
            Norm::Layer => {
                NormLayer::Layer(nn::layer_norm(p / format!("ln{i}"), vec![channels, side, side], Default::default()))
            }
            Norm::Instance => {
                let q = p / format!("in{i}");
                NormLayer::Instance {
                    weight: q.var("weight", &[channels], nn::Init::Const(1.0)),
                    bias: q.var("bias", &[channels], nn::Init::Const(0.0)),
                }
            }
            Norm::None => NormLayer::None,
        }
    }
}

impl ModuleT for NormLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            NormLayer::Batch(bn) => bn.forward_t(x, train),
            NormLayer::Layer(ln) => ln.forward(x),
            NormLayer::Instance { weight, bias } => {
                x.instance_norm::<&Tensor>(Some(weight), Some(bias), None, None, true, 0.1, 1e-5, false)
            }
            NormLayer::None => x.shallow_clone(),
        }
    }
}

/// How the generator doubles its feature maps (IFT6135 assignment 4, section 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Upsample {
    /// Transposed convolution k4 s2 p1 (DCGAN): uneven kernel overlap, checkerboard artefacts.
    #[default]
    TransposedConv,
    /// Nearest-neighbour resize ×2, then convolution k3 s1 p1.
    NearestConv,
    /// Bilinear resize ×2, then convolution k3 s1 p1.
    BilinearConv,
}

/// A layer that doubles the side of its input.
#[derive(Debug)]
pub enum UpLayer {
    Transposed(nn::ConvTranspose2D),
    Resize { bilinear: bool, conv: nn::Conv2D },
}

impl UpLayer {
    /// `from` → `to` channels at twice the side, its weights initialised by `ws_init`.
    pub fn new(kind: Upsample, p: nn::Path, from: i64, to: i64, bias: bool, ws_init: nn::Init) -> UpLayer {
        let bs_init = nn::Init::Const(0.0);
        match kind {
            Upsample::TransposedConv => {
                let c = nn::ConvTransposeConfig { stride: 2, padding: 1, bias, ws_init, bs_init, ..Default::default() };
                UpLayer::Transposed(nn::conv_transpose2d(p, from, to, 4, c))
            }
            Upsample::NearestConv | Upsample::BilinearConv => {
                let c = nn::ConvConfig { stride: 1, padding: 1, bias, ws_init, bs_init, ..Default::default() };
                UpLayer::Resize { bilinear: kind == Upsample::BilinearConv, conv: nn::conv2d(p, from, to, 3, c) }
            }
        }
    }
}

impl Module for UpLayer {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            UpLayer::Transposed(conv) => conv.forward(x),
            UpLayer::Resize { bilinear, conv } => {
                let s = x.size();
                let size = [s[2] * 2, s[3] * 2];
                let up = if *bilinear {
                    x.upsample_bilinear2d(size, false, None, None)
                } else {
                    x.upsample_nearest2d(size, None, None)
                };
                conv.forward(&up)
            }
        }
    }
}

/// Exercise `losses.power_iteration`: one step of the power method on the weight matrix `w`
/// `[m, n]` from the left vector `u` `[m]`: v = Wᵀu / ‖Wᵀu‖, u' = Wv / ‖Wv‖, σ = u'ᵀWv, the
/// estimate of W's largest singular value. Returns (u', v, σ); no gradient flows into u' and v.
pub fn power_iteration(w: &Tensor, u: &Tensor) -> (Tensor, Tensor, Tensor) {
    // BEGIN SOLUTION losses.power_iteration
    let (u, v) = tch::no_grad(|| {
        let v = w.detach().tr().mv(u);
        let v = &v / (v.norm() + 1e-12);
        let u = w.detach().mv(&v);
        let u = &u / (u.norm() + 1e-12);
        (u, v)
    });
    let sigma = u.dot(&w.mv(&v));
    (u, v, sigma)
    // END SOLUTION
}

/// Spectral normalisation (Miyato et al., 2018) of one weight: W / σ(W), σ estimated by one power
/// iteration per training forward pass from a persistent vector `u` (kept in the VarStore, not
/// trained, so checkpoints hold it).
#[derive(Debug)]
pub struct SpectralNorm {
    pub weight: Tensor,
    pub u: Tensor,
    /// The dimension of the weight that indexes output channels (0 for conv, 1 for transposed conv).
    dim: i64,
}

impl SpectralNorm {
    pub fn new(p: &nn::Path, weight: Tensor, dim: i64) -> SpectralNorm {
        let rows = weight.size()[dim as usize];
        let u = p.zeros_no_train("sn_u", &[rows]);
        tch::no_grad(|| {
            let start = Tensor::randn([rows], (Kind::Float, u.device()));
            u.shallow_clone().copy_(&(&start / start.norm()));
        });
        SpectralNorm { weight, u, dim }
    }

    /// The weight as a matrix: its `dim` dimension rows, the rest flattened.
    pub fn matrix(&self) -> Tensor {
        let w = if self.dim == 0 { self.weight.shallow_clone() } else { self.weight.transpose(0, self.dim) };
        w.flatten(1, -1)
    }

    /// W / σ(W). In training, one power-iteration step first moves `u`; in inference σ comes from
    /// the stored `u`.
    pub fn normalized(&self, train: bool) -> Tensor {
        let w = self.matrix();
        let sigma = if train {
            let (u, _, sigma) = power_iteration(&w, &self.u);
            tch::no_grad(|| self.u.shallow_clone().copy_(&u));
            sigma
        } else {
            let v = tch::no_grad(|| {
                let v = w.detach().tr().mv(&self.u);
                &v / (v.norm() + 1e-12)
            });
            self.u.dot(&w.mv(&v))
        };
        &self.weight / sigma
    }
}

/// A convolution whose weight is spectrally normalised (or used as is, to compare).
#[derive(Debug)]
pub struct SnConv {
    sn: SpectralNorm,
    normalise: bool,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    transposed: bool,
}

impl SnConv {
    /// conv(from → to, k×k) under `p`, weights N(0, 0.02), bias 0; `normalise` false keeps the raw weight.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &nn::Path,
        from: i64,
        to: i64,
        k: i64,
        stride: i64,
        padding: i64,
        transposed: bool,
        normalise: bool,
    ) -> SnConv {
        let bias = true;
        let init = nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let (shape, dim) = if transposed { ([from, to, k, k], 1) } else { ([to, from, k, k], 0) };
        let weight = p.var("weight", &shape, init);
        let bias = bias.then(|| p.var("bias", &[to], nn::Init::Const(0.0)));
        SnConv { sn: SpectralNorm::new(p, weight, dim), normalise, bias, stride, padding, transposed }
    }

    pub fn spectral_norm(&self) -> &SpectralNorm {
        &self.sn
    }
}

impl ModuleT for SnConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let w = if self.normalise { self.sn.normalized(train) } else { self.sn.weight.shallow_clone() };
        if self.transposed {
            x.conv_transpose2d(&w, self.bias.as_ref(), [self.stride], [self.padding], [0], 1, [1])
        } else {
            x.conv2d(&w, self.bias.as_ref(), [self.stride], [self.padding], [1], 1)
        }
    }
}

/// The SAGAN self-attention block (Zhang et al., 2019; the IISc final project, section 2.2): 1×1 projections f, g
/// and h to C/8 channels and v back to C; attention β = softmax over positions of f(x)ᵀg(x);
/// output γ·o + x with γ a learned scalar starting at 0.
#[derive(Debug)]
pub struct SelfAttention {
    f: nn::Conv2D,
    g: nn::Conv2D,
    h: nn::Conv2D,
    v: nn::Conv2D,
    pub gamma: Tensor,
    /// β of the last forward pass (detached), for pictures of what the block attends to.
    last: std::cell::RefCell<Option<Tensor>>,
}

impl SelfAttention {
    pub fn new(p: &nn::Path, channels: i64) -> SelfAttention {
        let inner = (channels / 8).max(1);
        let c = nn::ConvConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 }, ..Default::default() };
        SelfAttention {
            f: nn::conv2d(p / "f", channels, inner, 1, c),
            g: nn::conv2d(p / "g", channels, inner, 1, c),
            h: nn::conv2d(p / "h", channels, inner, 1, c),
            v: nn::conv2d(p / "v", inner, channels, 1, c),
            gamma: p.var("gamma", &[1], nn::Init::Const(0.0)),
            last: Default::default(),
        }
    }

    /// The attention map of the last forward pass `[B, N, N]` (see [`SelfAttention::attention_map`]).
    pub fn last_attention_map(&self) -> Option<Tensor> {
        self.last.borrow().as_ref().map(|t| t.shallow_clone())
    }

    /// The attention map `[B, N, N]`: entry (j, i) is β_{j,i}, how much output position j draws
    /// on input position i (each row sums to 1).
    pub fn attention_map(&self, x: &Tensor) -> Tensor {
        let (b, _, hh, ww) = x.size4().expect("feature maps [B, C, H, W]");
        let n = hh * ww;
        let f = self.f.forward(x).reshape([b, -1, n]);
        let g = self.g.forward(x).reshape([b, -1, n]);
        attention_weights(&f, &g)
    }
}

/// Exercise `losses.attention`: from f(x) and g(x) `[B, C/8, N]`, the attention weights
/// β `[B, N, N]` with β[b, j, i] = softmax over i of s_ij = f(x_i)ᵀ g(x_j).
pub fn attention_weights(f: &Tensor, g: &Tensor) -> Tensor {
    // BEGIN SOLUTION losses.attention
    let s = g.transpose(1, 2).bmm(f); // [B, N (j), N (i)]: s[b, j, i] = g(x_j) · f(x_i)
    s.softmax(-1, Kind::Float)
    // END SOLUTION
}

impl Module for SelfAttention {
    fn forward(&self, x: &Tensor) -> Tensor {
        let (b, c, hh, ww) = x.size4().expect("feature maps [B, C, H, W]");
        let n = hh * ww;
        let beta = self.attention_map(x); // [B, N (j), N (i)]
        *self.last.borrow_mut() = Some(beta.detach());
        let h = self.h.forward(x).reshape([b, -1, n]); // [B, C/8, N (i)]
        let o = h.bmm(&beta.transpose(1, 2)).view([b, -1, hh, ww]); // o_j = Σ_i β_{j,i} h(x_i)
        let o = self.v.forward(&o); // [B, C, H, W]
        debug_assert_eq!(o.size()[1], c);
        &self.gamma * o + x
    }
}

/// The 1-D toy example of IFT6135 assignment 4, section 2.2 (after Odena et al., 2016): x = (0.9, 0.7, 0.5, 0.3,
/// 0.1) doubled to 10 samples by `kind` with the kernel (1/3, 1/3, 1/3): the transposed
/// convolution has stride 2 (padding 1, output padding 1); the resize variants resize ×2 and
/// convolve with padding 1. Returns (Cᵀ `[10, 5]`, y = Cᵀx `[10]`): each column of Cᵀ is the
/// operation applied to a unit vector, computed with the same libtorch operations as the layers.
pub fn toy_upsampling(kind: Upsample) -> (Tensor, Tensor) {
    let opts = (Kind::Double, tch::Device::Cpu);
    let kernel = Tensor::full([1, 1, 3], 1.0 / 3.0, opts);
    let apply = |x: &Tensor| -> Tensor {
        let x = x.view([1, 1, -1]);
        let y = match kind {
            Upsample::TransposedConv => x.conv_transpose1d(&kernel, None::<Tensor>, [2], [1], [1], 1, [1]),
            Upsample::NearestConv => x.upsample_nearest1d([10], None).conv1d(&kernel, None::<Tensor>, [1], [1], [1], 1),
            Upsample::BilinearConv => {
                x.upsample_linear1d([10], false, None).conv1d(&kernel, None::<Tensor>, [1], [1], [1], 1)
            }
        };
        y.view([-1])
    };
    let columns: Vec<Tensor> = (0..5).map(|i| apply(&Tensor::eye(5, opts).get(i))).collect();
    let x = Tensor::from_slice(&[0.9f64, 0.7, 0.5, 0.3, 0.1]);
    (Tensor::stack(&columns, 1), apply(&x))
}
