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

use super::dcgan::{leaky_relu_02, Init};
use super::layers::{UpLayer, WindowConv};
use super::{one_hot, DiscriminatorNet, GeneratorNet, Judgement};
use crate::backend::ops::{batch_norm_leaky_relu, batch_norm_relu};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The architecture's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdcganConfig {
    /// Image channels: 1 for MNIST.
    pub channels: i64,
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
        CdcganConfig { channels: 1, latent_dim: 100, classes: 10, ngf: 64, ndf: 64, init: Init::Dcgan }
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
    blocks: Vec<(UpLayer, nn::BatchNorm)>,
    to_image: UpLayer,
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
        let mut blocks = Vec::new();
        for (n, (from, to)) in [(8 * c.ngf, 4 * c.ngf), (4 * c.ngf, 2 * c.ngf)].into_iter().enumerate() {
            let (path, config) = (p / format!("convt{}", n + 1), i.convt_config(2, 1, false));
            // 4×4 → 8×8 (512 → 256 channels) as a matrix product, 8×8 → 16×16 by oneDNN: the
            // faster of the two at each shape (see UpLayer::overlapped; so is the layer onto the image).
            let conv = if n == 0 {
                UpLayer::overlapped(path, from, to, config)
            } else {
                UpLayer::Transposed(nn::conv_transpose2d(path, from, to, 4, config))
            };
            blocks.push((conv, nn::batch_norm2d(p / format!("bn{}", n + 1), to, i.bn_config())));
        }
        let to_image = UpLayer::overlapped(p / "convt3", 2 * c.ngf, c.channels, i.convt_config(2, 1, true));
        Generator { latent_dim: c.latent_dim, classes: c.classes, z_branch, y_branch, blocks, to_image }
    }

    /// z `[B, n_z]` and labels `[B]` → images `[B, C, 32, 32]` in [-1, 1].
    pub fn forward_t(&self, z: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = z.size()[0];
        assert_eq!(z.size(), [b, self.latent_dim], "generator input: expected [batch, {}]", self.latent_dim);
        assert_eq!(labels.size(), [b], "generator labels: expected [{b}]");
        let mut h = self.fuse(z, labels, train); // [B, 8ngf, 4, 4]
        for (n, (conv, bn)) in self.blocks.iter().enumerate() {
            // convt1 reads the fused maps: in two parts, as D's conv1 (see `overlapped_in_two_parts`).
            let y = match conv {
                UpLayer::Overlapped(c)
                    if n == 0 && crate::backend::fast() && !crate::backend::perf::autocast_active() =>
                {
                    overlapped_in_two_parts(c, &h, labels)
                }
                _ => conv.forward(&h),
            };
            h = batch_norm_relu(&y, bn, train); // [B, 4ngf, 8, 8] → [B, 2ngf, 16, 16]
        }
        self.to_image.forward(&h).tanh() // [B, C, 32, 32]
    }

    /// Exercise `conditional.fusion` (generator half): branch 1 projects z `[B, n_z]` (as
    /// `[B, n_z, 1, 1]`), branch 2 the one-hot label (as `[B, classes, 1, 1]`), each through its
    /// convT + BatchNorm + ReLU to `[B, 4ngf, 4, 4]`; concatenate them, z first → `[B, 8ngf, 4, 4]`.
    pub fn fuse(&self, z: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = z.size()[0];
        let ((zc, zbn), (yc, ybn)) = (&self.z_branch, &self.y_branch);
        // BEGIN SOLUTION conditional.fusion
        let hz = batch_norm_relu(&zc.forward(&z.view([b, self.latent_dim, 1, 1])), zbn, train);
        let y = one_hot(labels, self.classes).view([b, self.classes, 1, 1]);
        let hy = batch_norm_relu(&yc.forward(&y), ybn, train);
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
    x_branch: WindowConv,
    y_branch: nn::Conv2D,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: WindowConv,
    bn2: nn::BatchNorm,
    to_score: nn::Conv2D,
}

impl Discriminator {
    pub fn new(p: &nn::Path, c: &CdcganConfig) -> Discriminator {
        let i = c.init;
        let x_branch = WindowConv::new(p / "x_conv", c.channels, c.ndf, i.conv_config(2, 1, true));
        let y_branch = nn::conv2d(p / "y_conv", c.classes, c.ndf, 4, i.conv_config(2, 1, true));
        // 16×16 → 8×8 by oneDNN (in two parts, see `conv1_in_two_parts`), 8×8 → 4×4 (256 → 512
        // channels) as a matrix product: the faster of the two at each shape (see WindowConv; so is
        // the image branch).
        let conv1 = nn::conv2d(p / "conv1", 2 * c.ndf, 4 * c.ndf, 4, i.conv_config(2, 1, false));
        let bn1 = nn::batch_norm2d(p / "bn1", 4 * c.ndf, i.bn_config());
        let conv2 = WindowConv::new(p / "conv2", 4 * c.ndf, 8 * c.ndf, i.conv_config(2, 1, false));
        let bn2 = nn::batch_norm2d(p / "bn2", 8 * c.ndf, i.bn_config());
        let to_score = nn::conv2d(p / "conv3", 8 * c.ndf, 1, 4, i.conv_config(1, 0, true));
        Discriminator { classes: c.classes, x_branch, y_branch, conv1, bn1, conv2, bn2, to_score }
    }

    /// Images `[B, C, 32, 32]` and labels `[B]` → logits `[B]`.
    pub fn forward_t(&self, x: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = x.size()[0];
        assert_eq!(labels.size(), [b], "discriminator labels: expected [{b}]");
        let h = self.fuse(x, &label_map(labels, self.classes, x.size()[2])); // [B, 2ndf, 16, 16]
        self.score(&h, labels, train)
    }

    /// The fused maps `[B, 2ndf, 16, 16]` ([`Discriminator::fuse`]) and their labels `[B]` → logits `[B]`.
    pub fn score(&self, h: &Tensor, labels: &Tensor, train: bool) -> Tensor {
        let b = h.size()[0];
        // conv1 in two parts on the fast backend (see `conv1_in_two_parts`).
        let y = if crate::backend::fast() { conv1_in_two_parts(&self.conv1, h, labels) } else { self.conv1.forward(h) };
        let h = batch_norm_leaky_relu(&y, &self.bn1, train, 0.2); // [B, 4ndf, 8, 8]
        let h = batch_norm_leaky_relu(&self.conv2.forward(&h), &self.bn2, train, 0.2); // [B, 8ndf, 4, 4]
        self.to_score.forward(&h).view([b]) // [B, 1, 1, 1] → [B]
    }

    /// Exercise `conditional.fusion` (discriminator half): branch 1 is the image `[B, C, 32, 32]`
    /// through its conv + LeakyReLU(0.2), branch 2 the label planes `[B, classes, 32, 32]` (made
    /// by [`label_map`]) through its conv + LeakyReLU(0.2), each `[B, ndf, 16, 16]`; concatenate
    /// them, image first → `[B, 2ndf, 16, 16]`.
    pub fn fuse(&self, x: &Tensor, planes: &Tensor) -> Tensor {
        // BEGIN SOLUTION conditional.fusion
        let hx = leaky_relu_02(&self.x_branch.forward(x));
        let hy = leaky_relu_02(&self.y_branch.forward(planes));
        Tensor::cat(&[hx, hy], 1)
        // END SOLUTION
    }
}

/// For labels `[B]`: the first row of each class present, in class order, and for each row the
/// position of its class in that list.
fn class_rows(labels: &Tensor) -> (Tensor, Tensor) {
    let (present, inverse, _) = labels.internal_unique2(true, true, false);
    let classes = Tensor::arange(present.size()[0], (Kind::Int64, labels.device()));
    // argmax gives the first of equal maxima.
    let first = inverse.unsqueeze(0).eq_tensor(&classes.unsqueeze(1)).to_kind(Kind::Uint8).argmax(1, false);
    (first, inverse)
}

/// The rows `index` of the maps `x` `[B, C, H, W]` (channels-last), `[R, C, H, W]` channels-last:
/// picked from x as a matrix of rows in memory order, so that the gradient (a sum into zeros) is
/// such a matrix too, in x's layout. Indexing the maps themselves gave a gradient in the other
/// layout, which slowed every op it reached (the LeakyReLU backward of D's branches among them).
fn pick_rows(x: &Tensor, index: &Tensor) -> Tensor {
    let s = x.size();
    let rows = x.permute([0, 2, 3, 1]).reshape([s[0], -1]);
    rows.index_select(0, index).view([-1, s[2], s[3], s[1]]).permute([0, 3, 1, 2])
}

/// G's convt1 (a k4 s2 p1 transposed convolution computed as [`UpLayer::overlapped`] does) of the
/// fused maps `h` `[B, 8ngf, 4, 4]`, in two parts as D's conv1 ([`conv1_in_two_parts`]): the
/// label half (after its BatchNorm with this batch's statistics) is one map per class present,
/// so its matrix product runs on one row per class, and each row adds its class's product to
/// the latent half's before the windows are summed. Same value up to rounding.
fn overlapped_in_two_parts(convt: &nn::ConvTranspose2D, h: &Tensor, labels: &Tensor) -> Tensor {
    let s = h.size();
    let (half, pixels) = (s[1] / 2, s[2] * s[3]);
    let (first, inverse) = class_rows(labels);
    let (hs, ws) = (h.split(half, 1), convt.ws.split(half, 0)); // ws: [half, to, 4, 4] each
    let rows = |x: &Tensor| x.permute([0, 2, 3, 1]).reshape([-1, half]);
    let matrix = |w: &Tensor| w.permute([0, 2, 3, 1]).reshape([half, -1]);
    let per_class = rows(&pick_rows(&hs[1], &first)).mm(&matrix(&ws[1]));
    let label_part = per_class.view([first.size()[0], -1]).index_select(0, &inverse).view([s[0] * pixels, -1]);
    let y = crate::backend::ops::overlap_k4s2(&label_part.addmm(&rows(&hs[0]), &matrix(&ws[0])), s[0], s[2], s[3]);
    match &convt.bs {
        Some(b) => y + b.view([1, -1, 1, 1]),
        None => y,
    }
}

/// conv1 of the fused maps `h` `[B, 2ndf, 16, 16]`, computed in two parts: a convolution is a
/// sum over its input channels, so conv1(cat(hx, hy)) = conv1_x(hx) + conv1_y(hy), the weight
/// split the same way. The label half hy depends on the label alone: one map per class
/// present, so conv1_y runs on one row per class (the first with that label) and each row
/// takes its class's result. Same value up to rounding, for half of conv1's work (the
/// cDCGAN's largest oneDNN layer; docs/performance.md has the figures); the
/// gradient reaching the label branch is the same sum, gathered per class. It takes `h` as
/// [`Discriminator::fuse`] makes it: image half first, label half second.
fn conv1_in_two_parts(conv1: &nn::Conv2D, h: &Tensor, labels: &Tensor) -> Tensor {
    let half = h.size()[1] / 2;
    let (first, inverse) = class_rows(labels);
    let (hs, ws) = (h.split(half, 1), conv1.ws.split(half, 1));
    let conv = |x: &Tensor, w: &Tensor| x.conv2d(w, None::<Tensor>, [2, 2], [1, 1], [1, 1], 1);
    conv(&hs[0], &ws[0]) + pick_rows(&conv(&pick_rows(&hs[1], &first), &ws[1]), &inverse)
}

impl DiscriminatorNet for Discriminator {
    fn judge(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Judgement {
        let labels = labels.expect("the conditional discriminator needs labels");
        Judgement { score: self.forward_t(x, labels, train), classes: None, codes: None }
    }
}

#[cfg(all(test, gan_lab_kernels))]
mod tests {
    use super::*;
    use crate::backend::ops::relative;

    #[test]
    fn picked_rows_are_the_indexed_maps_and_their_gradient_keeps_the_layout() {
        let cpu = (Kind::Float, tch::Device::Cpu);
        let (x, q) = crate::rng::with_seed(6, || (Tensor::randn([5, 3, 4, 4], cpu), Tensor::randn([4, 3, 4, 4], cpu)));
        let x = crate::backend::perf::channels_last(&x).set_requires_grad(true);
        let index = Tensor::from_slice(&[3i64, 0, 3, 4]);
        let y = pick_rows(&x, &index);
        assert!(y.equal(&x.index_select(0, &index)), "the rows `index` of x");
        let g = &Tensor::run_backward(&[(&y * &q).sum(Kind::Float)], &[&x], false, false)[0];
        let expected = Tensor::zeros([5, 3, 4, 4], cpu).index_add(0, &index, &q);
        assert!(g.equal(&expected), "the gradient: each row's share summed onto the row it was picked from");
        for (t, name) in [(&y, "the rows"), (g, "their gradient")] {
            assert_eq!(t.stride(), [48, 1, 12, 3], "{name}: channels-last strides");
        }
    }

    #[test]
    fn conv1_in_two_parts_is_conv1_of_the_fused_maps() {
        crate::backend::tests::require_fast();
        // Fused maps as `fuse` makes them: an image half, and a label half that is one map per
        // class (here a table of random maps, indexed by the labels).
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = nn::ConvConfig { stride: 2, padding: 1, bias: false, ..Default::default() };
        let conv1 = crate::rng::with_seed(2, || nn::conv2d(vs.root() / "conv1", 16, 32, 4, config));
        let cpu = (Kind::Float, tch::Device::Cpu);
        let (hx, table, q) = crate::rng::with_seed(3, || {
            (Tensor::randn([7, 8, 16, 16], cpu), Tensor::randn([10, 8, 16, 16], cpu), Tensor::randn([7, 32, 8, 8], cpu))
        });
        // Repeated labels, out of order, and classes absent.
        let labels = Tensor::from_slice(&[4i64, 1, 4, 9, 1, 1, 0]);
        let [split, whole] = [true, false].map(|split| {
            let (hx, table) = (hx.copy().set_requires_grad(true), table.copy().set_requires_grad(true));
            let h = crate::backend::perf::channels_last(&Tensor::cat(&[&hx, &table.index_select(0, &labels)], 1));
            let y = if split { conv1_in_two_parts(&conv1, &h, &labels) } else { conv1.forward(&h) };
            let grads = Tensor::run_backward(&[(&y * &q).sum(Kind::Float)], &[&conv1.ws, &hx, &table], false, false);
            (y.detach(), grads)
        });
        let diff = relative(&split.0, &whole.0);
        assert!(diff < 1e-5, "conv1's output off by {diff:e} of its largest");
        for ((a, b), name) in split.1.iter().zip(&whole.1).zip(["conv1's weight", "the image half", "the label maps"]) {
            let diff = relative(a, b);
            assert!(diff < 1e-5, "the gradient of {name} off by {diff:e} of its largest");
        }
    }

    #[test]
    fn convt1_in_two_parts_is_the_overlapped_layer_of_the_fused_maps() {
        crate::backend::tests::require_fast();
        // As above, for G: a latent half and a per-class label half, [7, 2·6, 4, 4] → 5 channels.
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let config = nn::ConvTransposeConfig { stride: 2, padding: 1, bias: true, ..Default::default() };
        let convt = crate::rng::with_seed(5, || {
            let UpLayer::Overlapped(convt) = UpLayer::overlapped(vs.root() / "convt1", 12, 5, config) else {
                unreachable!("UpLayer::overlapped makes an overlapped layer")
            };
            let _ = tch::no_grad(|| convt.bs.as_ref().unwrap().shallow_clone().uniform_(-0.5, 0.5));
            convt
        });
        let cpu = (Kind::Float, tch::Device::Cpu);
        let (hz, table, q) = crate::rng::with_seed(4, || {
            (Tensor::randn([7, 6, 4, 4], cpu), Tensor::randn([10, 6, 4, 4], cpu), Tensor::randn([7, 5, 8, 8], cpu))
        });
        let labels = Tensor::from_slice(&[2i64, 7, 2, 2, 0, 7, 5]);
        let whole_layer = UpLayer::Overlapped(convt);
        let UpLayer::Overlapped(convt) = &whole_layer else { unreachable!() };
        let params = [&convt.ws, convt.bs.as_ref().unwrap()];
        let [split, whole] = [true, false].map(|split| {
            let (hz, table) = (hz.copy().set_requires_grad(true), table.copy().set_requires_grad(true));
            let h = crate::backend::perf::channels_last(&Tensor::cat(&[&hz, &table.index_select(0, &labels)], 1));
            let y = if split { overlapped_in_two_parts(convt, &h, &labels) } else { whole_layer.forward(&h) };
            let inputs = [params[0], params[1], &hz, &table];
            let grads = Tensor::run_backward(&[(&y * &q).sum(Kind::Float)], &inputs, false, false);
            (y.detach(), grads)
        });
        let diff = relative(&split.0, &whole.0);
        assert!(diff < 1e-5, "convt1's output off by {diff:e} of its largest");
        let names = ["convt1's weight", "convt1's bias", "the latent half", "the label maps"];
        for ((a, b), name) in split.1.iter().zip(&whole.1).zip(names) {
            let diff = relative(a, b);
            assert!(diff < 1e-5, "the gradient of {name} off by {diff:e} of its largest");
        }
    }
}
