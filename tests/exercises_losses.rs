//! Exercises of the loss-families lesson (IFT6135 assignment 4, the UPenn GAN report, the IISc final project): the Wasserstein losses, weight
//! clipping, the gradient penalty, one power-iteration step of spectral normalisation, the
//! self-attention weights and the SAGAN networks. Graded by `cargo test` and `gan-lab grade`; tests are named
//! `<exercise>__<check>`.

// `<exercise>__<check>` names map tests to exercises for `gan-lab grade`.
#![allow(non_snake_case)]

mod common;

use common::{assert_layer_list, close, fake, real, values};
use gan_lab::losses::{clip_weights, gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss};
use gan_lab::models::layers::{attention_weights, power_iteration};
use gan_lab::models::sagan::{self, SaganConfig};
use gan_lab::models::{DiscriminatorNet, GeneratorNet};
use gan_lab::rng::with_seed;
use tch::{nn, Device, Kind, Tensor};

// ---- losses.wasserstein_critic ----

#[test]
fn wasserstein_critic__is_mean_fake_minus_mean_real() {
    let (r, f) = (real(), fake());
    let loss = wasserstein_critic_loss(&r, &f);
    assert_eq!(loss.size(), Vec::<i64>::new(), "expected a scalar loss, got shape {:?}", loss.size());
    // mean(fake) − mean(real) = −0.5 − 1.125.
    close("critic loss", loss.double_value(&[]), -1.625, 1e-6);
    loss.backward();
    for g in values(&r.grad()) {
        close("d loss / d f(x)", g, -0.25, 1e-6);
    }
    for g in values(&f.grad()) {
        close("d loss / d f(G(z))", g, 0.25, 1e-6);
    }
}

// BEGIN HIDDEN TESTS
#[test]
fn wasserstein_critic__uses_raw_scores_without_saturating() {
    let loss = wasserstein_critic_loss(&Tensor::from_slice(&[100.0f32]), &Tensor::from_slice(&[-100.0f32]));
    close("critic loss on scores ±100 (no sigmoid, no log)", loss.double_value(&[]), -200.0, 1e-6);
}
// END HIDDEN TESTS

// ---- losses.wasserstein_generator ----

#[test]
fn wasserstein_generator__is_minus_mean_fake() {
    let f = fake();
    let loss = wasserstein_generator_loss(&f);
    close("generator loss", loss.double_value(&[]), 0.5, 1e-6);
    loss.backward();
    for g in values(&f.grad()) {
        close("d loss / d f(G(z))", g, -0.25, 1e-6);
    }
}

// ---- losses.clip_weights ----

fn store() -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[4], nn::Init::Const(0.0));
    tch::no_grad(|| w.shallow_clone().copy_(&Tensor::from_slice(&[-0.5f32, -0.005, 0.003, 0.2])));
    let _ = vs.root().var("b", &[2], nn::Init::Const(0.3));
    vs
}

#[test]
fn clip_weights__bounds_every_weight() {
    let vs = store();
    clip_weights(&vs, 0.01);
    let vars = vs.variables();
    close("w[0] (was -0.5)", vars["w"].double_value(&[0]), -0.01, 1e-6);
    close("w[3] (was 0.2)", vars["w"].double_value(&[3]), 0.01, 1e-6);
    for v in values(&vars["b"]) {
        close("b (was 0.3)", v, 0.01, 1e-6);
    }
}

// BEGIN HIDDEN TESTS
#[test]
fn clip_weights__keeps_weights_inside_the_box() {
    let vs = store();
    clip_weights(&vs, 0.01);
    let w = vs.variables()["w"].shallow_clone();
    close("w[1] (inside)", w.double_value(&[1]), -0.005, 1e-6);
    close("w[2] (inside)", w.double_value(&[2]), 0.003, 1e-6);
}
// END HIDDEN TESTS

// ---- losses.gradient_penalty ----

fn batch(seed: i64) -> (Tensor, Tensor, Tensor) {
    tch::manual_seed(seed);
    let r = with_seed(11, || Tensor::randn([6, 1, 3, 3], (Kind::Float, Device::Cpu)));
    let f = with_seed(12, || Tensor::randn([6, 1, 3, 3], (Kind::Float, Device::Cpu)));
    let a = with_seed(13, || Tensor::rand([6, 1, 1, 1], (Kind::Float, Device::Cpu)));
    (r, f, a)
}

/// f(x) = Σ w·x per image: its gradient is w everywhere.
fn linear(w: &Tensor) -> impl Fn(&Tensor) -> Tensor + '_ {
    move |x: &Tensor| (x * w).flatten(1, -1).sum_dim_intlist(1, false, Kind::Float)
}

#[test]
fn gradient_penalty__is_lambda_times_squared_norm_gap() {
    let (r, f, a) = batch(1);
    let w = Tensor::full([1, 1, 3, 3], 1.0 / 3.0, (Kind::Float, Device::Cpu)); // ‖w‖ = 1
    close(
        "penalty of a 1-Lipschitz linear critic",
        gradient_penalty(&linear(&w), &r, &f, &a, 10.0).double_value(&[]),
        0.0,
        1e-6,
    );
    let w3 = &w * 3.0; // ‖w‖ = 3: λ (3 − 1)² = 40
    close("penalty with ‖∇f‖ = 3", gradient_penalty(&linear(&w3), &r, &f, &a, 10.0).double_value(&[]), 40.0, 1e-4);
}

#[test]
fn gradient_penalty__is_taken_between_real_and_fake() {
    // f(x) = ½‖x‖²: ∇f(x̂) = x̂. With α = 1, x̂ is the real image; with α = 0 the fake.
    let (r, f, _) = batch(2);
    let half_square = |x: &Tensor| x.square().flatten(1, -1).sum_dim_intlist(1, false, Kind::Float) * 0.5;
    let expected = |x: &Tensor| {
        let n = x.square().flatten(1, -1).sum_dim_intlist(1, false, Kind::Float).sqrt();
        (n - 1.0).square().mean(Kind::Float).double_value(&[])
    };
    let ones = Tensor::ones([6, 1, 1, 1], (Kind::Float, Device::Cpu));
    close("α = 1", gradient_penalty(&half_square, &r, &f, &ones, 1.0).double_value(&[]), expected(&r), 1e-4);
    close(
        "α = 0",
        gradient_penalty(&half_square, &r, &f, &ones.zeros_like(), 1.0).double_value(&[]),
        expected(&f),
        1e-4,
    );
}

// BEGIN HIDDEN TESTS
#[test]
fn gradient_penalty__reaches_the_critic_weights() {
    let (r, f, a) = batch(3);
    let w = (Tensor::full([1, 1, 3, 3], 2.0 / 3.0, (Kind::Float, Device::Cpu))).set_requires_grad(true); // ‖w‖ = 2
    let penalty = gradient_penalty(&linear(&w), &r, &f, &a, 10.0);
    assert!(
        penalty.f_backward().is_ok(),
        "the penalty does not differentiate back to the critic: take ∇f with create_graph = true"
    );
    let grad = w.grad();
    assert!(grad.defined(), "no gradient reached the critic's weights: take ∇f with create_graph");
    // d/dw λ(‖w‖ − 1)² = 2λ(‖w‖ − 1) w/‖w‖ = 10 w.
    let diff = (grad - &w * 10.0).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "d penalty / d w off by {diff:e}");
}
// END HIDDEN TESTS

// ---- losses.power_iteration ----

#[test]
fn power_iteration__one_step_follows_the_formulas() {
    let w = Tensor::from_slice(&[2.0f32, 0.0, 1.0, 1.0, 3.0, 0.0]).view([2, 3]);
    let u = Tensor::from_slice(&[0.6f32, 0.8]);
    let (u2, v, sigma) = power_iteration(&w, &u);
    // Wᵀu = (2.0, 2.4, 0.6) → v = that / 3.181195; Wv → u' = Wv / 3.233349 (numpy).
    let v_want = [2.0 / 3.181195, 2.4 / 3.181195, 0.6 / 3.181195];
    for (got, want) in values(&v).iter().zip(v_want) {
        close("v", *got, want, 1e-4);
    }
    for (got, want) in values(&u2).iter().zip([0.4472136, 0.89442719]) {
        close("u'", *got, want, 1e-4);
    }
    close("σ = u'ᵀ W v", sigma.double_value(&[]), 3.233349, 1e-4);
}

#[test]
fn power_iteration__converges_to_the_largest_singular_value() {
    let w = Tensor::from_slice(&[3.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5]).view([3, 3]);
    let mut u = Tensor::from_slice(&[0.3f32, 0.9, 0.3]);
    let mut sigma = Tensor::from(0.0f32);
    for _ in 0..30 {
        let (next, _, s) = power_iteration(&w, &u);
        u = next;
        sigma = s;
    }
    close("σ after 30 steps", sigma.double_value(&[]), 3.0, 1e-4);
}

// BEGIN HIDDEN TESTS
#[test]
fn power_iteration__sigma_differentiates_as_u_v_transposed() {
    let w = Tensor::from_slice(&[2.0f32, 0.0, 1.0, 1.0, 3.0, 0.0]).view([2, 3]).set_requires_grad(true);
    let (u, v, sigma) = power_iteration(&w, &Tensor::from_slice(&[0.6f32, 0.8]));
    assert!(!u.requires_grad() && !v.requires_grad(), "u and v are constants: no gradient through them");
    sigma.backward();
    let diff = (w.grad() - u.unsqueeze(1).matmul(&v.unsqueeze(0))).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "dσ/dW should be u vᵀ; off by {diff:e}");
}
// END HIDDEN TESTS

// ---- losses.attention ----

fn projections() -> (Tensor, Tensor) {
    let f = (Tensor::arange(24, (Kind::Float, Device::Cpu)) * 0.3).sin().view([2, 3, 4]);
    let g = (Tensor::arange(24, (Kind::Float, Device::Cpu)) * 0.7).cos().view([2, 3, 4]);
    (f, g)
}

#[test]
fn attention__rows_are_distributions_over_positions() {
    let (f, g) = projections();
    let beta = attention_weights(&f, &g);
    assert_eq!(beta.size(), [2, 4, 4], "expected [B, N, N], got {:?}", beta.size());
    let sums = beta.sum_dim_intlist(-1, false, Kind::Float);
    assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5, "each row β[b, j, ·] must sum to 1");
    assert!(beta.min().double_value(&[]) > 0.0, "softmax weights are positive");
}

#[test]
fn attention__matches_the_formula() {
    let (f, g) = projections();
    let beta = attention_weights(&f, &g);
    // β[0, j=1, i=2] = exp(s_21) / Σ_i exp(s_i1), s_ij = f(x_i) · g(x_j).
    let s = |i: i64, j: i64| (f.get(0).select(1, i) * g.get(0).select(1, j)).sum(Kind::Double).double_value(&[]);
    let denom: f64 = (0..4).map(|i| s(i, 1).exp()).sum();
    close("β[0, 1, 2]", beta.double_value(&[0, 1, 2]), s(2, 1).exp() / denom, 1e-5);
}

// BEGIN HIDDEN TESTS
#[test]
fn attention__normalises_over_the_attended_positions() {
    let (f, g) = projections();
    let beta = attention_weights(&f, &g);
    let s = |i: i64, j: i64| (f.get(1).select(1, i) * g.get(1).select(1, j)).sum(Kind::Double).double_value(&[]);
    for j in 0..4 {
        let denom: f64 = (0..4).map(|i| s(i, j).exp()).sum();
        for i in 0..4 {
            close(&format!("β[1, {j}, {i}]"), beta.double_value(&[1, j, i]), s(i, j).exp() / denom, 1e-5);
        }
    }
}
// END HIDDEN TESTS

// ---- losses.sagan ----
// The layer lists of the IISc final project's SAGAN at 32×32 (ngf = ndf = 32, n_z = 100). The
// forward checks run without spectral norm and attention, which are your other exercises of this
// lesson: a mistake there costs those only.

fn sagan_networks(c: &SaganConfig) -> (nn::VarStore, sagan::Generator, nn::VarStore, sagan::Discriminator) {
    let (vs_g, vs_d) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
    let (g, d) = with_seed(0, || (sagan::Generator::new(&vs_g.root(), c), sagan::Discriminator::new(&vs_d.root(), c)));
    (vs_g, g, vs_d, d)
}

/// The attention block's parameters for `channels` maps.
fn attention_layers(channels: i64) -> Vec<(&'static str, Vec<i64>)> {
    let inner = channels / 8;
    vec![
        ("attention.f.weight", vec![inner, channels, 1, 1]),
        ("attention.f.bias", vec![inner]),
        ("attention.g.weight", vec![inner, channels, 1, 1]),
        ("attention.g.bias", vec![inner]),
        ("attention.h.weight", vec![inner, channels, 1, 1]),
        ("attention.h.bias", vec![inner]),
        ("attention.v.weight", vec![channels, inner, 1, 1]),
        ("attention.v.bias", vec![channels]),
        ("attention.gamma", vec![1]),
    ]
}

fn sagan_generator_layers(attention_channels: i64) -> Vec<(&'static str, Vec<i64>)> {
    let mut layers = vec![
        ("convt1.weight", vec![100, 128, 4, 4]),
        ("convt1.bias", vec![128]),
        ("bn1.weight", vec![128]),
        ("bn1.bias", vec![128]),
        ("convt2.weight", vec![128, 64, 4, 4]),
        ("convt2.bias", vec![64]),
        ("bn2.weight", vec![64]),
        ("bn2.bias", vec![64]),
        ("convt3.weight", vec![64, 32, 4, 4]),
        ("convt3.bias", vec![32]),
        ("bn3.weight", vec![32]),
        ("bn3.bias", vec![32]),
        ("convt4.weight", vec![32, 1, 4, 4]),
        ("convt4.bias", vec![1]),
    ];
    layers.extend(attention_layers(attention_channels));
    layers
}

fn sagan_discriminator_layers(attention_channels: i64) -> Vec<(&'static str, Vec<i64>)> {
    let mut layers = vec![
        ("conv1.weight", vec![32, 1, 4, 4]),
        ("conv1.bias", vec![32]),
        ("conv2.weight", vec![64, 32, 4, 4]),
        ("conv2.bias", vec![64]),
        ("in2.weight", vec![64]),
        ("in2.bias", vec![64]),
        ("conv3.weight", vec![128, 64, 4, 4]),
        ("conv3.bias", vec![128]),
        ("in3.weight", vec![128]),
        ("in3.bias", vec![128]),
        ("conv4.weight", vec![1, 128, 4, 4]),
        ("conv4.bias", vec![1]),
    ];
    layers.extend(attention_layers(attention_channels));
    layers
}

#[test]
fn sagan__generator_has_the_projects_layers() {
    let (vs_g, ..) = sagan_networks(&SaganConfig::mnist32());
    assert_layer_list(&vs_g, &sagan_generator_layers(32));
}

#[test]
fn sagan__discriminator_has_the_projects_layers() {
    let (_, _, vs_d, _) = sagan_networks(&SaganConfig::mnist32());
    assert_layer_list(&vs_d, &sagan_discriminator_layers(32));
}

#[test]
fn sagan__maps_z_to_images_and_images_to_scores() {
    let c = SaganConfig { spectral_norm: false, attention_at: 0, ..SaganConfig::mnist32() };
    let (_vs_g, g, _vs_d, d) = sagan_networks(&c);
    let z = with_seed(1, || Tensor::randn([6, 100], (Kind::Float, Device::Cpu)));
    let x = g.generate(&z, None, true);
    assert_eq!(x.size(), [6, 1, 32, 32], "G: expected images [6, 1, 32, 32], got {:?}", x.size());
    let max = x.abs().max().double_value(&[]);
    assert!(max <= 1.0 && max > 0.0, "G's images must be in [-1, 1] (tanh), got max |x| = {max}");
    let score = d.score(&x, None, true);
    assert_eq!(score.size(), [6], "D: expected one score per image [6], got {:?}", score.size());
}

// BEGIN HIDDEN TESTS
#[test]
fn sagan__attention_follows_the_block_of_the_chosen_side() {
    for (side, g_channels, d_channels) in [(4, 128, 128), (8, 64, 64)] {
        let c = SaganConfig { attention_at: side, ..SaganConfig::mnist32() };
        let (vs_g, _, vs_d, _) = sagan_networks(&c);
        assert_layer_list(&vs_g, &sagan_generator_layers(g_channels));
        assert_layer_list(&vs_d, &sagan_discriminator_layers(d_channels));
    }
}

#[test]
fn sagan__gradients_reach_every_layer() {
    let c = SaganConfig { spectral_norm: false, attention_at: 0, ..SaganConfig::mnist32() };
    let (vs_g, g, vs_d, d) = sagan_networks(&c);
    let z = with_seed(2, || Tensor::randn([4, 100], (Kind::Float, Device::Cpu)));
    d.score(&g.generate(&z, None, true), None, true).sum(Kind::Float).backward();
    common::assert_gradients_reach_every_layer(&vs_g);
    common::assert_gradients_reach_every_layer(&vs_d);
}
// END HIDDEN TESTS
