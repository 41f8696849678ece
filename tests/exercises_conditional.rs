//! Exercises of the conditional-generation lesson: the cDCGAN of the DCGAN lesson's bonus section
//! (RDFIA practical 3-d, section 2.2) and ACGAN's class loss (DLCV HW4,
//! problem 3). Graded by `cargo test` and `gan-lab grade`; tests are named `<exercise>__<check>`.
//!
//! Reference numbers come from PyTorch 2.13 (tests/reference/conditional_reference.py): the
//! lesson's layers with every parameter set to the same fixed pattern as here.

// `<exercise>__<check>` names map tests to exercises for `gan-lab grade`.
#![allow(non_snake_case)]

mod common;

use common::{assert_gradients_reach_every_layer, close, fill_like_reference, values};
use gan_lab::losses::class_loss;
use gan_lab::models::cdcgan::{label_map, CdcganConfig, Discriminator, Generator};
use gan_lab::rng::with_seed;
use tch::{nn, Kind, Tensor};

fn reference_z() -> Tensor {
    (Tensor::arange(400, (Kind::Float, tch::Device::Cpu)) * 0.11).cos().view([4, 100])
}

fn reference_x() -> Tensor {
    (Tensor::arange(4096, (Kind::Float, tch::Device::Cpu)) * 0.07).sin().view([4, 1, 32, 32])
}

fn reference_labels() -> Tensor {
    Tensor::from_slice(&[3i64, 0, 7, 9])
}

fn networks() -> (nn::VarStore, Generator, nn::VarStore, Discriminator) {
    let c = CdcganConfig::mnist32();
    let (vs_g, vs_d) = (nn::VarStore::new(tch::Device::Cpu), nn::VarStore::new(tch::Device::Cpu));
    let g = with_seed(0, || Generator::new(&vs_g.root(), &c));
    let d = with_seed(1, || Discriminator::new(&vs_d.root(), &c));
    (vs_g, g, vs_d, d)
}

/// D's logits with the label planes built here rather than by `label_map`, so that the fusion
/// checks grade the fusion alone.
fn d_logits(d: &Discriminator, x: &Tensor, labels: &Tensor, train: bool) -> Tensor {
    let b = labels.size()[0];
    let planes = Tensor::zeros([b, 10, 32, 32], (Kind::Float, tch::Device::Cpu));
    for (row, y) in Vec::<i64>::try_from(labels).unwrap().into_iter().enumerate() {
        let _ = planes.get(row as i64).get(y).fill_(1.0);
    }
    d.score(&d.fuse(x, &planes), train)
}

// ---- conditional.label_map ----

#[test]
fn label_map__has_one_plane_per_class() {
    let m = label_map(&reference_labels(), 10, 32);
    assert_eq!(m.size(), [4, 10, 32, 32], "expected [batch, classes, size, size], got {:?}", m.size());
}

#[test]
fn label_map__plane_y_is_ones_and_the_others_zeros() {
    let labels = reference_labels();
    let m = label_map(&labels, 10, 8).to_kind(Kind::Float);
    for (row, &y) in [3i64, 0, 7, 9].iter().enumerate() {
        for plane in 0..10 {
            let p = m.get(row as i64).get(plane);
            let want = if plane == y { 1.0 } else { 0.0 };
            let (lo, hi) = (p.min().double_value(&[]), p.max().double_value(&[]));
            assert!(
                lo == want && hi == want,
                "image {row} (label {y}), plane {plane}: expected all {want}, got values in [{lo}, {hi}]"
            );
        }
    }
}

// BEGIN HIDDEN TESTS
#[test]
fn label_map__follows_the_size_argument() {
    let m = label_map(&Tensor::from_slice(&[1i64, 2]), 10, 5);
    assert_eq!(m.size(), [2, 10, 5, 5], "size 5: expected [2, 10, 5, 5], got {:?}", m.size());
    close("sum of the map", m.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]), 50.0, 0.0);
}
// END HIDDEN TESTS

// ---- conditional.fusion ----

#[test]
fn fusion__generator_matches_pytorch_on_fixed_weights() {
    let (vs_g, g, _, _) = networks();
    fill_like_reference(&vs_g);
    let x = g.forward_t(&reference_z(), &reference_labels(), true);
    assert_eq!(x.size(), [4, 1, 32, 32], "expected [4, 1, 32, 32] images, got {:?}", x.size());
    close("sum of G(z, y)", x.sum(Kind::Double).double_value(&[]), 83.505521, 1e-3);
    close("sum of |G(z, y)|", x.abs().sum(Kind::Double).double_value(&[]), 3162.1553, 1e-4);
    close("G(z, y)[0,0,5,7]", x.double_value(&[0, 0, 5, 7]), -0.48537233, 1e-4);
    close("G(z, y)[3,0,20,11]", x.double_value(&[3, 0, 20, 11]), 0.64684159, 1e-4);
}

#[test]
fn fusion__discriminator_matches_pytorch_on_fixed_weights() {
    let (_, _, vs_d, d) = networks();
    fill_like_reference(&vs_d);
    let out = values(&d_logits(&d, &reference_x(), &reference_labels(), true));
    for (i, (got, want)) in out.iter().zip([0.64531219, 0.91030842, 0.74224132, 0.85173804]).enumerate() {
        close(&format!("logit {i} (LeakyReLU 0.2 on both branches? image branch first?)"), *got, want, 1e-4);
    }
}

// BEGIN HIDDEN TESTS
#[test]
fn fusion__the_label_changes_both_networks() {
    let (vs_g, g, vs_d, d) = networks();
    fill_like_reference(&vs_g);
    fill_like_reference(&vs_d);
    let rolled = reference_labels().roll([1], [0]);
    let (x1, x2) =
        (g.forward_t(&reference_z(), &reference_labels(), false), g.forward_t(&reference_z(), &rolled, false));
    let dx = (x1 - x2).abs().max().double_value(&[]);
    assert!(dx > 1e-3, "G ignores the label: changing it moves the images by {dx:e}");
    let out = values(&d_logits(&d, &reference_x(), &rolled, true));
    for (i, (got, want)) in out.iter().zip([0.64378417, 0.9117344, 0.74310583, 0.8517797]).enumerate() {
        close(&format!("logit {i} with other labels"), *got, want, 1e-4);
    }
}

#[test]
fn fusion__gradients_reach_both_branches() {
    let (vs_g, g, vs_d, d) = networks();
    let fake = g.forward_t(&reference_z(), &reference_labels(), true);
    d_logits(&d, &fake, &reference_labels(), true).mean(Kind::Float).backward();
    assert_gradients_reach_every_layer(&vs_g);
    assert_gradients_reach_every_layer(&vs_d);
}
// END HIDDEN TESTS

// ---- conditional.class_loss ----

fn class_logits() -> Tensor {
    Tensor::from_slice(&[2.0f32, -1.0, 0.5, 0.0, 3.0, -2.0, 1.0, 1.0, 1.0, -0.5, 0.2, 4.0])
        .view([4, 3])
        .set_requires_grad(true)
}

#[test]
fn class_loss__matches_pytorch_cross_entropy() {
    let loss = class_loss(&class_logits(), &Tensor::from_slice(&[0i64, 1, 2, 0]));
    assert_eq!(loss.size(), Vec::<i64>::new(), "expected a scalar loss, got shape {:?}", loss.size());
    // F.cross_entropy(logits, labels) in PyTorch.
    close("class loss", loss.double_value(&[]), 1.4819601, 1e-5);
}

#[test]
fn class_loss__is_zero_for_confident_right_answers() {
    let logits = Tensor::from_slice(&[30.0f32, 0.0, 0.0, 0.0, 30.0, 0.0]).view([2, 3]);
    let loss = class_loss(&logits, &Tensor::from_slice(&[0i64, 1])).double_value(&[]);
    assert!(
        loss < 1e-6,
        "logits 30 on the right class should cost ~0, got {loss:.4} (a softmax before the cross-entropy?)"
    );
}

// BEGIN HIDDEN TESTS
#[test]
fn class_loss__gradient_is_softmax_minus_one_hot() {
    let logits = class_logits();
    class_loss(&logits, &Tensor::from_slice(&[0i64, 1, 2, 0])).backward();
    let expected =
        (logits.softmax(-1, Kind::Float) - Tensor::from_slice(&[0i64, 1, 2, 0]).one_hot(3).to_kind(Kind::Float)) / 4.0;
    let diff = (logits.grad() - expected).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "d loss / d logits should be (softmax − one_hot) / batch; off by {diff:e}");
}
// END HIDDEN TESTS
