//! Exercises of the DCGAN lesson (RDFIA practical 3-d, section 1), graded by `cargo test`
//! and `gan-lab grade`. Tests are named `<exercise>__<check>`; see `gan_lab::course::EXERCISES`
//! for the points.
//!
//! Reference numbers come from PyTorch 2.13 (tests/reference/dcgan_reference.py), e.g. for the
//! losses, with `real = [2, -1, 0.5, 3]`, `fake = [-3, 0, 1.5, -0.5]` as logits:
//! `nn.BCELoss()(sigmoid(real), ones) + nn.BCELoss()(sigmoid(fake), zeros)` = 1.2200197.

// `<exercise>__<check>` names map tests to exercises for `gan-lab grade`.
#![allow(non_snake_case)]

mod common;

use common::{
    assert_gradients_reach_every_layer, assert_layer_list, close, fake, fill_like_reference, logits, real, shapes,
    values,
};
use gan_lab::data::{Dataset, Split};
use gan_lab::explore::interpolate;
use gan_lab::losses;
use gan_lab::models::dcgan::{DcganConfig, Discriminator, Generator, Init};
use gan_lab::optim::{AdamConfig, Optimizer};
use gan_lab::rng::{sample_prior, with_seed};
use gan_lab::step::{train_step, Losses, Step};
use tch::{nn, Kind, Tensor};

fn reference_z() -> Tensor {
    (Tensor::arange(400, (Kind::Float, tch::Device::Cpu)) * 0.11).cos().view([4, 100])
}

fn reference_x() -> Tensor {
    (Tensor::arange(4096, (Kind::Float, tch::Device::Cpu)) * 0.07).sin().view([4, 1, 32, 32])
}

// ---- dcgan.sample_prior ----

#[test]
fn sample_prior__has_shape_n_by_latent_dim() {
    let z = with_seed(11, || sample_prior(7, 13));
    assert_eq!(z.size(), [7, 13], "expected shape [7, 13], got {:?}", z.size());
    assert_eq!(z.kind(), Kind::Float, "expected f32 values");
}

#[test]
fn sample_prior__is_standard_normal() {
    let z = with_seed(1, || sample_prior(1000, 100));
    let v = values(&z);
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let tails = v.iter().filter(|x| x.abs() > 2.0).count() as f64 / n;
    close("mean", mean, 0.0, 0.02);
    close("standard deviation", std, 1.0, 0.02);
    // N(0, 1) puts 4.55% beyond ±2; a uniform prior puts none there.
    assert!((tails - 0.0455).abs() < 0.005, "share beyond ±2: expected 0.0455 (normal), got {tails:.4}");
}

#[test]
fn sample_prior__follows_the_seed() {
    let a = with_seed(3, || sample_prior(4, 10));
    let b = with_seed(3, || sample_prior(4, 10));
    let c = with_seed(4, || sample_prior(4, 10));
    assert!(a.equal(&b), "the same seed must give the same z: draw from libtorch's generator (Tensor::randn)");
    assert!(!a.equal(&c), "different seeds must give different z");
}

// ---- dcgan.init ----

fn conv_weights(init: Init) -> Tensor {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let c = DcganConfig { init, ..DcganConfig::mnist32() };
    with_seed(2, || nn::conv2d(vs.root() / "c", 64, 64, 4, c.conv_config(2, 1))).ws.detach()
}

fn batch_norm(init: Init) -> nn::BatchNorm {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let c = DcganConfig { init, ..DcganConfig::mnist32() };
    with_seed(2, || nn::batch_norm2d(vs.root() / "bn", 4096, c.bn_config()))
}

#[test]
fn init__dcgan_conv_weights_are_normal_0_002() {
    let w = values(&conv_weights(Init::Dcgan));
    let n = w.len() as f64;
    let mean = w.iter().sum::<f64>() / n;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    close("conv weight mean", mean, 0.0, 0.001);
    close("conv weight std", std, 0.02, 0.03);
    let tails = w.iter().filter(|x| x.abs() > 0.04).count() as f64 / n;
    assert!(
        (tails - 0.0455).abs() < 0.006,
        "share of conv weights beyond 2σ: expected 0.0455 (normal), got {tails:.4}"
    );
}

#[test]
fn init__dcgan_batchnorm_weight_is_normal_1_002_and_bias_0() {
    let bn = batch_norm(Init::Dcgan);
    let w = bn.ws.as_ref().expect("BatchNorm weight");
    close("BatchNorm weight mean", w.mean(Kind::Float).double_value(&[]), 1.0, 0.003);
    // 4096 draws: the sample std of N(1, 0.02) is within 0.0007 of 0.02; PyTorch's default (all
    // 1.0) and N(1, 0.1) are far outside 0.002.
    close("BatchNorm weight std", w.std(true).double_value(&[]), 0.02, 0.002);
    let b = bn.bs.as_ref().expect("BatchNorm bias");
    assert_eq!(b.abs().max().double_value(&[]), 0.0, "BatchNorm bias must start at 0");
}

#[test]
fn init__default_keeps_pytorch_defaults() {
    let w = conv_weights(Init::Default);
    // PyTorch's default for conv weights is Kaiming-uniform: |w| ≤ 1/sqrt(fan_in) = 1/32.
    let max = w.abs().max().double_value(&[]);
    assert!(
        max <= 1.0 / 32.0 + 1e-6,
        "default init: conv weights should be uniform within ±1/32, got max |w| = {max:.4}"
    );
    let bn = batch_norm(Init::Default);
    assert_eq!(bn.ws.as_ref().expect("weight").min().double_value(&[]), 1.0, "default init: BatchNorm weight is 1");
    assert_eq!(bn.bs.as_ref().expect("bias").abs().max().double_value(&[]), 0.0, "default init: BatchNorm bias is 0");
}

// ---- dcgan.generator ----

fn generator(c: &DcganConfig) -> (nn::VarStore, Generator) {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let g = with_seed(0, || Generator::new(&vs.root(), c));
    (vs, g)
}

#[test]
fn generator__maps_z_to_32x32_images_in_tanh_range() {
    let (_vs, g) = generator(&DcganConfig::mnist32());
    let x = g.forward_t(&with_seed(0, || sample_prior(64, 100)), true);
    assert_eq!(x.size(), [64, 1, 32, 32], "expected shape [64, 1, 32, 32], got {:?}", x.size());
    let max = x.abs().max().double_value(&[]);
    assert!(max <= 1.0 && max > 0.0, "images must be in [-1, 1] (tanh), got max |x| = {max}");
}

#[test]
fn generator__has_the_lesson_layers() {
    let (vs, _g) = generator(&DcganConfig::mnist32());
    let expected = [
        ("convt1.weight", vec![100, 128, 4, 4]),
        ("bn1.weight", vec![128]),
        ("bn1.bias", vec![128]),
        ("convt2.weight", vec![128, 64, 4, 4]),
        ("bn2.weight", vec![64]),
        ("bn2.bias", vec![64]),
        ("convt3.weight", vec![64, 32, 4, 4]),
        ("bn3.weight", vec![32]),
        ("bn3.bias", vec![32]),
        ("convt4.weight", vec![32, 1, 4, 4]),
    ];
    assert_layer_list(&vs, &expected);
}

#[test]
fn generator__matches_pytorch_on_fixed_weights() {
    let (vs, g) = generator(&DcganConfig::mnist32());
    fill_like_reference(&vs);
    let x = g.forward_t(&reference_z(), true);
    // PyTorch: G(z).sum() = 57.054512, G(z).abs().sum() = 1924.7229, G(z)[0,0,5,7] = -0.60160697.
    close("sum of G(z)", x.sum(Kind::Double).double_value(&[]), 57.054512, 1e-3);
    close("sum of |G(z)|", x.abs().sum(Kind::Double).double_value(&[]), 1924.7229, 1e-4);
    close("G(z)[0,0,5,7]", x.double_value(&[0, 0, 5, 7]), -0.60160697, 1e-4);
    close("G(z)[3,0,20,11]", x.double_value(&[3, 0, 20, 11]), -0.58451098, 1e-4);
}

#[test]
fn generator__64x64_adds_a_block() {
    let c = DcganConfig { image_size: 64, ngf: 8, ..DcganConfig::mnist32() };
    let (vs, g) = generator(&c);
    let x = g.forward_t(&with_seed(0, || sample_prior(2, 100)), true);
    assert_eq!(x.size(), [2, 1, 64, 64], "image_size 64: expected shape [2, 1, 64, 64], got {:?}", x.size());
    assert_eq!(
        shapes(&vs).get("convt1.weight"),
        Some(&vec![100, 64, 4, 4]),
        "64×64: the first layer has 8·ngf filters"
    );
}

// BEGIN HIDDEN TESTS
#[test]
fn generator__gradients_reach_every_layer() {
    let (vs, g) = generator(&DcganConfig::mnist32());
    g.forward_t(&with_seed(0, || sample_prior(8, 100)), true).mean(Kind::Float).backward();
    assert_gradients_reach_every_layer(&vs);
}
// END HIDDEN TESTS

// ---- dcgan.discriminator ----

fn discriminator(c: &DcganConfig) -> (nn::VarStore, Discriminator) {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let d = with_seed(0, || Discriminator::new(&vs.root(), c));
    (vs, d)
}

#[test]
fn discriminator__maps_images_to_one_logit_each() {
    let (_vs, d) = discriminator(&DcganConfig::mnist32());
    let real = Dataset::mnist(Split::Test).expect("shipped digits").take(16).images;
    let out = d.forward_t(&real, true);
    assert_eq!(out.size(), [16], "expected one score per image, shape [16], got {:?}", out.size());
}

#[test]
fn discriminator__has_the_lesson_layers() {
    let (vs, _d) = discriminator(&DcganConfig::mnist32());
    let expected = [
        ("conv1.weight", vec![32, 1, 4, 4]),
        ("bn1.weight", vec![32]),
        ("bn1.bias", vec![32]),
        ("conv2.weight", vec![64, 32, 4, 4]),
        ("bn2.weight", vec![64]),
        ("bn2.bias", vec![64]),
        ("conv3.weight", vec![128, 64, 4, 4]),
        ("bn3.weight", vec![128]),
        ("bn3.bias", vec![128]),
        ("conv4.weight", vec![1, 128, 4, 4]),
    ];
    assert_layer_list(&vs, &expected);
}

#[test]
fn discriminator__matches_pytorch_logits_on_fixed_weights() {
    let (vs, d) = discriminator(&DcganConfig::mnist32());
    fill_like_reference(&vs);
    let out = values(&d.forward_t(&reference_x(), true));
    // PyTorch logits (before the lesson's final sigmoid): D(x) = [0.4726, 0.4351, 0.4202, 0.5053].
    let expected = [-0.10970823, -0.26088116, -0.32194641, 0.02110861];
    for (i, (got, want)) in out.iter().zip(expected).enumerate() {
        assert!(
            (got - want).abs() < 1e-4,
            "logit {i}: expected {want:.6}, got {got:.6} (LeakyReLU slope 0.2? BatchNorm before the activation? no sigmoid?)"
        );
    }
}

// BEGIN HIDDEN TESTS
#[test]
fn discriminator__returns_logits_not_probabilities() {
    let (vs, d) = discriminator(&DcganConfig::mnist32());
    tch::no_grad(|| {
        let _ = vs.variables()["conv4.weight"].shallow_clone().g_mul_scalar_(100.0);
    });
    let out = d.forward_t(&reference_x(), true);
    let max = out.abs().max().double_value(&[]);
    assert!(
        max > 1.0,
        "D must return logits (the loss applies the sigmoid), got all |scores| ≤ 1: a sigmoid inside D?"
    );
}
// END HIDDEN TESTS

// ---- dcgan.discriminator_loss ----

#[test]
fn discriminator_loss__matches_pytorch() {
    let (r, f) = (real(), fake());
    let loss = losses::discriminator_loss(&r, &f);
    assert_eq!(loss.size(), Vec::<i64>::new(), "expected a scalar loss, got shape {:?}", loss.size());
    close("D loss", loss.double_value(&[]), 1.2200197, 1e-5);
    loss.backward();
    let (gr, gf) = (values(&r.grad()), values(&f.grad()));
    for (got, want) in gr.iter().zip([-0.02980074, -0.18276465, -0.09438516, -0.01185647]) {
        close("d loss / d real logit", *got, want, 1e-4);
    }
    for (got, want) in gf.iter().zip([0.01185647, 0.125, 0.20439364, 0.09438516]) {
        close("d loss / d fake logit", *got, want, 1e-4);
    }
}

#[test]
fn discriminator_loss__pushes_real_up_and_fake_down() {
    let (r, f) = (real(), fake());
    losses::discriminator_loss(&r, &f).backward();
    assert!(values(&r.grad()).iter().all(|g| *g < 0.0), "raising a real logit must lower D's loss (real = 1)");
    assert!(values(&f.grad()).iter().all(|g| *g > 0.0), "raising a fake logit must raise D's loss (fake = 0)");
}

// BEGIN HIDDEN TESTS
#[test]
fn discriminator_loss__averages_over_the_batch() {
    let once = losses::discriminator_loss(&real(), &fake()).double_value(&[]);
    let twice = losses::discriminator_loss(&Tensor::cat(&[real(), real()], 0), &Tensor::cat(&[fake(), fake()], 0))
        .double_value(&[]);
    close("loss of a batch repeated twice (a mean, not a sum)", twice, once, 1e-6);
}
// END HIDDEN TESTS

// ---- dcgan.generator_loss_non_saturating ----

#[test]
fn generator_loss_non_saturating__matches_pytorch() {
    let f = fake();
    let loss = losses::generator_loss_non_saturating(&f);
    assert_eq!(loss.size(), Vec::<i64>::new(), "expected a scalar loss, got shape {:?}", loss.size());
    close("non-saturating G loss", loss.double_value(&[]), 1.2293062, 1e-5);
    loss.backward();
    for (got, want) in values(&f.grad()).iter().zip([-0.23814353, -0.125, -0.04560639, -0.15561482]) {
        close("d loss / d fake logit", *got, want, 1e-4);
    }
}

#[test]
fn generator_loss_non_saturating__keeps_gradient_where_d_rejects_fakes() {
    let f = logits(&[-8.0]);
    losses::generator_loss_non_saturating(&f).backward();
    let g = f.grad().double_value(&[0]);
    assert!(g < -0.99, "at logit -8 the non-saturating loss has slope ≈ -1, got {g:.4}");
}

// ---- dcgan.generator_loss_saturating ----

#[test]
fn generator_loss_saturating__matches_pytorch() {
    let f = fake();
    let loss = losses::generator_loss_saturating(&f);
    assert_eq!(loss.size(), Vec::<i64>::new(), "expected a scalar loss, got shape {:?}", loss.size());
    close("saturating G loss", loss.double_value(&[]), -0.72930616, 1e-5);
    loss.backward();
    for (got, want) in values(&f.grad()).iter().zip([-0.01185647, -0.125, -0.20439361, -0.09438517]) {
        close("d loss / d fake logit", *got, want, 1e-4);
    }
}

#[test]
fn generator_loss_saturating__saturates_where_d_rejects_fakes() {
    let f = logits(&[-8.0]);
    losses::generator_loss_saturating(&f).backward();
    let g = f.grad().double_value(&[0]);
    assert!(g.abs() < 1e-3 && g < 0.0, "at logit -8 the saturating loss is nearly flat (slope ≈ -0.0003), got {g:.5}");
}

// ---- dcgan.interpolate ----

#[test]
fn interpolate__has_one_row_per_step() {
    let zs = interpolate(
        &Tensor::zeros([5], (Kind::Float, tch::Device::Cpu)),
        &Tensor::ones([5], (Kind::Float, tch::Device::Cpu)),
        7,
    );
    assert_eq!(zs.size(), [7, 5], "expected shape [7, 5], got {:?}", zs.size());
}

#[test]
fn interpolate__starts_at_z1_and_ends_at_z2() {
    let z1 = Tensor::from_slice(&[1.0f32, -2.0, 3.0]);
    let z2 = Tensor::from_slice(&[-1.0f32, 4.0, 0.5]);
    let zs = interpolate(&z1, &z2, 4);
    assert!(zs.get(0).allclose(&z1, 1e-6, 1e-6, false), "first row must be z1, got {:?}", values(&zs.get(0)));
    assert!(zs.get(3).allclose(&z2, 1e-6, 1e-6, false), "last row must be z2, got {:?}", values(&zs.get(3)));
}

#[test]
fn interpolate__is_linear_and_evenly_spaced() {
    let z1 = Tensor::from_slice(&[0.0f32, 10.0]);
    let z2 = Tensor::from_slice(&[4.0f32, 2.0]);
    let zs = values(&interpolate(&z1, &z2, 5));
    let expected = [0.0, 10.0, 1.0, 8.0, 2.0, 6.0, 3.0, 4.0, 4.0, 2.0];
    for (i, (got, want)) in zs.iter().zip(expected).enumerate() {
        assert!((got - want).abs() < 1e-5, "row {}, coordinate {}: expected {want}, got {got}", i / 2, i % 2);
    }
}

// ---- dcgan.train_step ----
// Tiny networks with fixed weights, two fixed batches and made-up losses (not the lesson's, so
// that a mistake in your losses costs those exercises only): tests/reference/train_step_reference.py
// runs the same two steps in PyTorch and printed the numbers below.

const F32: (Kind, tch::Device) = (Kind::Float, tch::Device::Cpu);

/// D: ((D(x) − 0.9)²) + ½ ((D(G(z)) + 0.3)²); G: ((D(G(z)) − 0.9)²), each averaged.
struct MadeUp;

impl Losses for MadeUp {
    fn discriminator(&self, on_real: &Tensor, on_fake: &Tensor) -> Tensor {
        (on_real - 0.9).square().mean(Kind::Float) + (on_fake + 0.3).square().mean(Kind::Float) * 0.5
    }

    fn generator(&self, on_fake: &Tensor) -> Tensor {
        (on_fake - 0.9).square().mean(Kind::Float)
    }
}

struct TinyGan {
    vs_g: nn::VarStore,
    vs_d: nn::VarStore,
    g: nn::SequentialT,
    d: nn::SequentialT,
    opt_g: Optimizer,
    opt_d: Optimizer,
}

fn pattern(n: i64, scale: f64, shift: f64) -> Tensor {
    Tensor::arange(n, F32) * scale + shift
}

fn set(vs: &nn::VarStore, name: &str, value: Tensor) {
    let mut t = vs.variables()[name].shallow_clone();
    tch::no_grad(|| t.copy_(&value.view(t.size().as_slice())));
}

/// G: Linear(3, 4) + tanh; D: Linear(4, 1); Adam with lr 0.05, β = (0.5, 0.999).
fn tiny_gan() -> TinyGan {
    let (vs_g, vs_d) = (nn::VarStore::new(tch::Device::Cpu), nn::VarStore::new(tch::Device::Cpu));
    // Drawn under the seed lock, then overwritten with the reference's weights.
    let (g, d) = with_seed(0, || {
        let g = nn::seq_t().add(nn::linear(vs_g.root() / "fc", 3, 4, Default::default())).add_fn(|x| x.tanh());
        (g, nn::seq_t().add(nn::linear(vs_d.root() / "fc", 4, 1, Default::default())))
    });
    set(&vs_g, "fc.weight", pattern(12, 0.7, 0.0).sin() * 0.5);
    set(&vs_g, "fc.bias", pattern(4, 0.9, 0.0).cos() * 0.1);
    set(&vs_d, "fc.weight", pattern(4, 1.3, 0.0).cos() * 0.6);
    set(&vs_d, "fc.bias", Tensor::from_slice(&[0.05f32]));
    let adam = AdamConfig { lr: 0.05, beta1: 0.5, beta2: 0.999, eps: 1e-8 };
    let (opt_g, opt_d) = (Optimizer::new(&vs_g, adam), Optimizer::new(&vs_d, adam));
    TinyGan { vs_g, vs_d, g, d, opt_g, opt_d }
}

/// Real batch `k` and latent batch `k` (a leaf that records its gradient).
fn batch(k: usize) -> (Tensor, Tensor) {
    let real = pattern(20, 0.37, k as f64).sin().view([5, 4]);
    let z = pattern(15, 0.51, k as f64).cos().view([5, 3]).set_requires_grad(true);
    (real, z)
}

impl TinyGan {
    /// Your step on batch `k`, and the latent batch it used.
    fn step(&mut self, k: usize, losses: &dyn Losses) -> (Step, Tensor) {
        let (real, z) = batch(k);
        let step = train_step(&self.g, &self.d, &mut self.opt_g, &mut self.opt_d, &real, &z, losses);
        (step, z)
    }
}

fn close_all(what: &str, got: &Tensor, expected: &[f64]) {
    let got = values(got);
    assert_eq!(got.len(), expected.len(), "{what}: expected {} values, got {}", expected.len(), got.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!((g - e).abs() <= 2e-5 * (1.0 + e.abs()), "{what}[{i}]: expected {e:.6}, got {g:.6}");
    }
}

fn param(vs: &nn::VarStore, name: &str) -> Tensor {
    vs.variables()[name].shallow_clone()
}

#[test]
fn train_step__updates_d_on_real_and_fake_batches() {
    let mut gan = tiny_gan();
    let (step, _) = gan.step(0, &MadeUp);
    close("D's loss (before its update)", step.d_loss.double_value(&[]), 1.4465084, 1e-5);
    close_all(
        "D's outputs on the real batch",
        &step.on_real,
        &[-0.6287648, 0.1640193, 0.7494416, 0.0628196, -0.6471167],
    );
    close_all("D's outputs on the fakes", &step.on_fake, &[0.6825847, -0.1471761, -0.4236357, 0.3885651, 0.6975234]);
    // One Adam update of D, and nothing else moves D: not G's update, not a second D update.
    close_all("D's weight after the step", &param(&gan.vs_d, "fc.weight"), &[0.55, 0.1104994, -0.4641333, -0.3855595]);
    close_all("D's bias after the step", &param(&gan.vs_d, "fc.bias"), &[0.1]);
}

#[test]
fn train_step__updates_g_through_the_updated_d() {
    let mut gan = tiny_gan();
    let (step, _) = gan.step(0, &MadeUp);
    close("G's loss, scored by D after D's update", step.g_loss.double_value(&[]), 0.5635126, 1e-5);
    let weight = [
        -0.05, 0.2721089, 0.4427249, 0.3816047, 0.1174941, -0.2253916, -0.3857878, -0.4412263, -0.2656334, 0.0584068,
        0.3784933, 0.5440841,
    ];
    close_all("G's weight after the step", &param(&gan.vs_g, "fc.weight"), &weight);
    close_all("G's bias after the step", &param(&gan.vs_g, "fc.bias"), &[0.15, 0.112161, -0.0727202, -0.1404072]);
}

#[test]
fn train_step__d_update_sends_nothing_back_into_g() {
    let mut gan = tiny_gan();
    let (_, z) = gan.step(0, &MadeUp);
    let grad = z.grad();
    assert!(grad.defined(), "z received no gradient: G's update must flow back through G(z)");
    // What reaches z is G's loss alone; D's loss adds to it when D's update is not cut off from G.
    let expected = [
        -0.0106199,
        -0.0114309,
        -0.0068657,
        -0.0838834,
        -0.1055178,
        -0.0775256,
        -0.057425800,
        -0.08063,
        -0.0659126,
        -0.0421732,
        -0.0448846,
        -0.0264861,
        -0.0093009,
        -0.0095827,
        -0.0053576,
    ];
    close_all("gradient reaching z (G's loss only)", &grad, &expected);
}

#[test]
fn train_step__each_update_starts_from_cleared_gradients() {
    let mut gan = tiny_gan();
    let _ = gan.step(0, &MadeUp);
    let (step, _) = gan.step(1, &MadeUp);
    close("D's loss at step 2", step.d_loss.double_value(&[]), 1.0991769, 1e-5);
    close("G's loss at step 2", step.g_loss.double_value(&[]), 0.4215508, 1e-5);
    close_all(
        "D's weight after step 2",
        &param(&gan.vs_d, "fc.weight"),
        &[0.5276626, 0.1541337, -0.4152596, -0.3344774],
    );
    close_all("D's bias after step 2", &param(&gan.vs_d, "fc.bias"), &[0.1481567]);
    let weight = [
        -0.0920103, 0.225386, 0.3934943, 0.3307239, 0.0659897, -0.2772816, -0.3439523, -0.395619, -0.2183223,
        0.0875795, 0.416661, 0.5880738,
    ];
    close_all("G's weight after step 2", &param(&gan.vs_g, "fc.weight"), &weight);
}

// BEGIN HIDDEN TESTS
/// The losses come from `losses`, not from the lesson's functions called directly.
#[test]
fn train_step__uses_the_losses_it_is_given() {
    let mut gan = tiny_gan();
    let (step, _) = gan.step(0, &MadeUp);
    let d_loss = MadeUp.discriminator(&step.on_real, &step.on_fake).double_value(&[]);
    close("D's loss is losses.discriminator(on_real, on_fake)", step.d_loss.double_value(&[]), d_loss, 1e-6);
}

/// A module that fails when called in inference mode.
#[derive(Debug)]
struct TrainingOnly(nn::SequentialT);

impl nn::ModuleT for TrainingOnly {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        assert!(train, "a network was run with train = false inside the training step");
        self.0.forward_t(x, train)
    }
}

#[test]
fn train_step__runs_both_networks_in_training_mode() {
    let TinyGan { g, d, mut opt_g, mut opt_d, .. } = tiny_gan();
    let (g, d) = (TrainingOnly(g), TrainingOnly(d));
    let (real, z) = batch(0);
    let step = train_step(&g, &d, &mut opt_g, &mut opt_d, &real, &z, &MadeUp);
    close("G's loss", step.g_loss.double_value(&[]), 0.5635126, 1e-5);
}
// END HIDDEN TESTS
