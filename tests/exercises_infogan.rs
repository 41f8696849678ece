//! Exercises of the InfoGAN lesson (DLCV HW4, bonus; Chen et al., 2016): drawing
//! the latent codes and Q's information loss. Graded by `cargo test` and `gan-lab grade`; tests are
//! named `<exercise>__<check>`.
//!
//! Reference numbers come from PyTorch 2.13 (tests/reference/infogan_reference.py): its
//! cross-entropy and Gaussian negative log-likelihood on the same fixed inputs.

// `<exercise>__<check>` names map tests to exercises for `gan-lab grade`.
#![allow(non_snake_case)]

mod common;

use common::close;
use gan_lab::losses::information_loss;
use gan_lab::models::infogan::{sample_codes, Codes};
use gan_lab::rng::with_seed;
use tch::{Device, Kind, Tensor};

/// Q's outputs and the codes of `tests/reference/infogan_reference.py`.
fn reference(learn_std: bool) -> (Tensor, Tensor, Codes) {
    let codes = Codes { categorical: vec![10], continuous: 2, learn_std };
    let width = codes.q_width();
    let q = (Tensor::arange(4 * width, (Kind::Float, Device::Cpu)) * 0.37).sin().view([4, width]) * 3.0;
    let values = Tensor::from_slice(&[3i64, 0, 7, 9]).one_hot(10).to_kind(Kind::Float);
    let continuous = Tensor::from_slice(&[0.5f32, -0.25, -0.9, 0.1, 0.0, 0.75, 0.3, -0.6]).view([4, 2]);
    (q, Tensor::cat(&[values, continuous], 1), codes)
}

fn both(q: &Tensor, c: &Tensor, codes: &Codes) -> (f64, f64) {
    let (cat, cont) = information_loss(q, c, codes);
    (cat.double_value(&[]), cont.double_value(&[]))
}

// ---- infogan.sample_codes ----

#[test]
fn sample_codes__has_a_one_hot_block_per_categorical_code_then_the_continuous_codes() {
    let codes = Codes { categorical: vec![10, 3], continuous: 2, learn_std: false };
    let c = with_seed(0, || sample_codes(500, &codes));
    assert_eq!(c.size(), [500, 15], "expected [n, 10 + 3 + 2], got {:?}", c.size());
    for (at, k) in [(0, 10), (10, 3)] {
        let block = c.narrow(1, at, k);
        let ones = block.eq(1.0).to_kind(Kind::Int64).sum_dim_intlist(1, false, Kind::Int64);
        let zeros = block.eq(0.0).to_kind(Kind::Int64).sum_dim_intlist(1, false, Kind::Int64);
        assert!(
            ones.eq(1).all().int64_value(&[]) == 1 && zeros.eq(k - 1).all().int64_value(&[]) == 1,
            "the {k}-way block at column {at}: expected one 1 and {} zeros per row",
            k - 1
        );
    }
}

#[test]
fn sample_codes__continuous_codes_are_uniform_on_minus_one_to_one() {
    let codes = Codes { categorical: vec![10], continuous: 2, learn_std: false };
    let c = with_seed(1, || sample_codes(20_000, &codes)).narrow(1, 10, 2);
    let (lo, hi) = (c.min().double_value(&[]), c.max().double_value(&[]));
    assert!(lo >= -1.0 && hi <= 1.0, "continuous codes: expected values in [-1, 1], got [{lo:.3}, {hi:.3}]");
    close("mean of the continuous codes", c.mean(Kind::Double).double_value(&[]), 0.0, 0.02);
    // U(-1, 1) has variance 1/3; N(0, 1) would have 1, U(0, 1) 1/12.
    close("variance of the continuous codes", c.var(true).double_value(&[]), 1.0 / 3.0, 0.02);
}

#[test]
fn sample_codes__every_categorical_value_is_equally_likely() {
    let codes = Codes { categorical: vec![10], continuous: 0, learn_std: false };
    let counts = with_seed(2, || sample_codes(20_000, &codes)).sum_dim_intlist(0, false, Kind::Double);
    for (value, n) in common::values(&counts).into_iter().enumerate() {
        assert!((n - 2000.0).abs() < 200.0, "value {value} drawn {n} times in 20,000 (expected about 2,000)");
    }
}

// BEGIN HIDDEN TESTS
#[test]
fn sample_codes__follows_the_seed() {
    let codes = Codes::mnist();
    let (a, b) = (with_seed(7, || sample_codes(8, &codes)), with_seed(7, || sample_codes(8, &codes)));
    assert!(a.equal(&b), "the same seed must give the same codes: draw with libtorch's generator");
    assert!(!a.equal(&with_seed(8, || sample_codes(8, &codes))), "another seed must give other codes");
}

#[test]
fn sample_codes__works_with_several_codes_of_each_kind_or_none_of_one() {
    let five = Codes { categorical: vec![10; 5], continuous: 0, learn_std: false };
    let c = with_seed(3, || sample_codes(4, &five));
    assert_eq!(c.size(), [4, 50]);
    close("ones per row (five codes)", c.sum(Kind::Double).double_value(&[]) / 4.0, 5.0, 0.0);
    let only = Codes { categorical: vec![], continuous: 3, learn_std: false };
    assert_eq!(with_seed(3, || sample_codes(4, &only)).size(), [4, 3]);
}
// END HIDDEN TESTS

// ---- infogan.information_loss ----

#[test]
fn information_loss__matches_pytorch_with_unit_variance() {
    let (q, c, codes) = reference(false);
    let (cat, cont) = both(&q, &c, &codes);
    close("categorical part (cross-entropy)", cat, 4.995864, 1e-5);
    close("continuous part (Gaussian NLL, σ = 1)", cont, 7.401655, 1e-5);
}

#[test]
fn information_loss__matches_pytorch_with_learned_std() {
    let (q, c, codes) = reference(true);
    let (cat, cont) = both(&q, &c, &codes);
    close("categorical part (cross-entropy)", cat, 3.073762, 1e-5);
    close("continuous part (Gaussian NLL, σ = exp(log-std))", cont, 408.670837, 1e-4);
}

#[test]
fn information_loss__takes_logits_without_a_softmax_first() {
    // Q sure of the right values: the cross-entropy on logits is about 0. A softmax before it
    // would squash the logits into [0, 1] and leave about ln 10 − 1 ≈ 1.46.
    let codes = Codes { categorical: vec![10], continuous: 0, learn_std: false };
    let c = Tensor::from_slice(&[3i64, 0, 7, 9]).one_hot(10).to_kind(Kind::Float);
    let (cat, _) = both(&(&c * 30.0), &c, &codes);
    assert!(cat < 1e-6, "confident, right logits: expected a cross-entropy of about 0, got {cat:.4}");
}

// BEGIN HIDDEN TESTS
#[test]
fn information_loss__sums_over_codes_and_reaches_q() {
    let codes = Codes { categorical: vec![10, 10], continuous: 1, learn_std: false };
    let c = Tensor::cat(
        &[
            Tensor::from_slice(&[1i64, 2]).one_hot(10).to_kind(Kind::Float),
            Tensor::from_slice(&[5i64, 6]).one_hot(10).to_kind(Kind::Float),
            Tensor::from_slice(&[0.5f32, -0.5]).view([2, 1]),
        ],
        1,
    );
    let q = Tensor::zeros([2, 21], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let (cat, cont) = information_loss(&q, &c, &codes);
    close("two uniform 10-way codes", cat.double_value(&[]), 2.0 * 10f64.ln(), 1e-6);
    close("one code 0.5 from its mean", cont.double_value(&[]), 0.125 + 0.5 * (2.0 * std::f64::consts::PI).ln(), 1e-6);
    (cat + cont).backward();
    let g = q.grad();
    assert!(g.abs().narrow(1, 0, 20).sum(Kind::Float).double_value(&[]) > 0.0, "no gradient reaches the logits");
    assert!(g.abs().narrow(1, 20, 1).sum(Kind::Float).double_value(&[]) > 0.0, "no gradient reaches the means");
}
// END HIDDEN TESTS
