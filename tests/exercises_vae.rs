//! Exercises of the VAE vs GAN lesson (DLCV HW4, problem 1; Kingma and Welling,
//! 2014): the reparameterisation, the KL term and the VAE's loss. Graded by `cargo test` and
//! `gan-lab grade`; tests are named `<exercise>__<check>`.
//!
//! Reference numbers come from PyTorch 2.13 (tests/reference/vae_reference.py): the closed-form
//! KL of torch.distributions, F.mse_loss and F.binary_cross_entropy on the same fixed inputs.

// `<exercise>__<check>` names map tests to exercises for `gan-lab grade`.
#![allow(non_snake_case)]

mod common;

use common::close;
use gan_lab::losses::{kl_divergence, reparameterize, vae_loss, Reconstruction};
use gan_lab::rng::with_seed;
use tch::{Device, Kind, Tensor};

const F32: (Kind, Device) = (Kind::Float, Device::Cpu);

/// μ, log σ², images and reconstructions of `tests/reference/vae_reference.py`.
fn reference() -> (Tensor, Tensor, Tensor, Tensor) {
    let mu = (Tensor::arange(24, F32) * 0.61).sin().view([4, 6]) * 1.5;
    let log_variance = (Tensor::arange(24, F32) * 0.37).cos().view([4, 6]) * 2.0 - 0.5;
    let images = (Tensor::arange(64, F32) * 0.29).sin().view([4, 1, 4, 4]);
    let decoded = (Tensor::arange(64, F32) * 0.23 + 0.4).cos().view([4, 1, 4, 4]) * 0.98;
    (mu, log_variance, images, decoded)
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

// ---- vae.reparameterize ----

#[test]
fn reparameterize__is_mu_plus_sigma_times_standard_normal_noise() {
    let (mu, log_variance, _, _) = reference();
    let z = with_seed(5, || reparameterize(&mu, &log_variance));
    let eps = with_seed(5, || mu.randn_like());
    let expected = &mu + (&log_variance * 0.5).exp() * eps;
    assert_eq!(z.size(), mu.size(), "z must have μ's shape");
    let worst = (&z - &expected).abs().max().double_value(&[]);
    assert!(
        worst < 1e-5,
        "z must be μ + exp(½ log σ²)·ε with ε = randn_like(μ) (σ is the square root of the variance); \
         worst difference {worst:.3e}"
    );
}

#[test]
fn reparameterize__draws_have_mean_mu_and_standard_deviation_sigma() {
    let mu = Tensor::from_slice(&[2.0f32, -1.0]).view([1, 2]).expand([50_000, 2], false);
    let log_variance = Tensor::from_slice(&[0.0f32, (0.25f32).ln()]).view([1, 2]).expand([50_000, 2], false);
    let z = with_seed(6, || reparameterize(&mu, &log_variance));
    let mean = common::values(&z.mean_dim(0, false, Kind::Double));
    let std = common::values(&z.std_dim(0, true, false));
    close("mean of the first dimension", mean[0], 2.0, 0.02);
    close("mean of the second dimension", mean[1], -1.0, 0.02);
    close("std with log σ² = 0", std[0], 1.0, 0.02);
    close("std with log σ² = ln 0.25 (σ = 0.5)", std[1], 0.5, 0.01);
}

#[test]
fn reparameterize__lets_gradients_reach_mu_and_log_variance() {
    let mu = Tensor::zeros([8, 3], F32).set_requires_grad(true);
    let log_variance = Tensor::zeros([8, 3], F32).set_requires_grad(true);
    let z = with_seed(7, || reparameterize(&mu, &log_variance));
    z.square().sum(Kind::Float).backward();
    assert!(mu.grad().defined() && scalar(&mu.grad().abs().sum(Kind::Float)) > 0.0, "no gradient reaches μ");
    assert!(
        log_variance.grad().defined() && scalar(&log_variance.grad().abs().sum(Kind::Float)) > 0.0,
        "no gradient reaches log σ²: the draw must be computed from it, not sampled apart"
    );
}

// ---- vae.kl_divergence ----

#[test]
fn kl_divergence__matches_the_closed_form_of_pytorch() {
    let (mu, log_variance, _, _) = reference();
    close("KL, averaged over dimensions and batch", scalar(&kl_divergence(&mu, &log_variance)), 0.9887375, 1e-5);
}

#[test]
fn kl_divergence__is_zero_only_at_the_prior() {
    let zeros = Tensor::zeros([3, 4], F32);
    close("KL(N(0, 1) ‖ N(0, 1))", scalar(&kl_divergence(&zeros, &zeros)), 0.0, 1e-7);
    // μ = −1, σ = 1: ½μ² = 0.5 per dimension. The text's formula (μ in place of μ²) gives −0.5.
    let minus_one = Tensor::full([3, 4], -1.0, F32);
    close("KL with μ = −1, σ = 1 (½ μ², not ½ μ)", scalar(&kl_divergence(&minus_one, &zeros)), 0.5, 1e-6);
}

// BEGIN HIDDEN TESTS
#[test]
fn kl_divergence__averages_rather_than_sums() {
    // One dimension with μ = 2 among 8, batch of 2: ½·4 / 8 = 0.25 averaged; a sum would give 4.
    let mu = Tensor::zeros([2, 8], F32);
    let _ = mu.select(1, 0).fill_(2.0);
    close("mean over 8 dimensions and 2 rows", scalar(&kl_divergence(&mu, &Tensor::zeros([2, 8], F32))), 0.25, 1e-6);
}

#[test]
fn kl_divergence__agrees_with_a_monte_carlo_estimate() {
    // E_q[log q(z) − log p(z)] from 200,000 draws of one Gaussian.
    let (m, lv) = (0.7f64, -0.8f64);
    let s = (0.5 * lv).exp();
    let z = with_seed(9, || Tensor::randn([200_000], (Kind::Double, Device::Cpu))) * s + m;
    let log_q = -((&z - m) / s).square() * 0.5 - s.ln();
    let log_p = -z.square() * 0.5;
    let estimate = scalar(&(log_q - log_p).mean(Kind::Double));
    let kl = scalar(&kl_divergence(
        &Tensor::from_slice(&[m as f32]).view([1, 1]),
        &Tensor::from_slice(&[lv as f32]).view([1, 1]),
    ));
    close("closed form against the sampled KL", kl, estimate, 0.01);
}
// END HIDDEN TESTS

// ---- vae.vae_loss ----

#[test]
fn vae_loss__mse_matches_pytorch() {
    let (mu, log_variance, images, decoded) = reference();
    let loss = vae_loss(&decoded, &images, &mu, &log_variance, 0.01, Reconstruction::Mse);
    // The KL term is your `kl_divergence`, graded on its own: here it is taken as it is, so that
    // one mistake costs one exercise.
    let kl = scalar(&kl_divergence(&mu, &log_variance));
    close("reconstruction (F.mse_loss)", scalar(&loss.reconstruction), 0.4415025, 1e-6);
    close("kl (your kl_divergence)", scalar(&loss.kl), kl, 1e-6);
    close("total = MSE + 0.01·KL", scalar(&loss.total), 0.4415025 + 0.01 * kl, 1e-5);
}

#[test]
fn vae_loss__bce_matches_pytorch_on_pixels_mapped_to_zero_one() {
    let (mu, log_variance, images, decoded) = reference();
    let loss = vae_loss(&decoded, &images, &mu, &log_variance, 0.5, Reconstruction::Bce);
    let kl = scalar(&kl_divergence(&mu, &log_variance));
    close("reconstruction (F.binary_cross_entropy on (x + 1)/2)", scalar(&loss.reconstruction), 0.7328843, 1e-5);
    close("total = BCE + 0.5·KL", scalar(&loss.total), 0.7328843 + 0.5 * kl, 1e-5);
}

// BEGIN HIDDEN TESTS
#[test]
fn vae_loss__weights_only_the_kl_term() {
    let (mu, log_variance, images, decoded) = reference();
    let a = vae_loss(&decoded, &images, &mu, &log_variance, 0.0, Reconstruction::Mse);
    let b = vae_loss(&decoded, &images, &mu, &log_variance, 2.0, Reconstruction::Mse);
    close("λ_KL = 0 leaves the reconstruction", scalar(&a.total), scalar(&a.reconstruction), 1e-7);
    close("λ_KL = 2 adds 2·KL", scalar(&b.total) - scalar(&a.total), 2.0 * scalar(&b.kl), 1e-5);
}
// END HIDDEN TESTS
