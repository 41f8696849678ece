//! Exercises of the metrics lesson (IFT6135 assignment 4 section 4, the IISc final project
//! FID), graded by `cargo test` and `gan-lab grade`. Tests are named `<exercise>__<check>`.
//!
//! Reference numbers from numpy/scipy, on `p = softmax(logits)` with the logits below:
//! `np.exp((p * (np.log(p) - np.log(p.mean(0)))).sum(1).mean())` = 1.6121801075434066, and
//! pytorch-fid's formula with `scipy.linalg.sqrtm(A @ B)` = 2.37085746365309.

// `<exercise>__<check>` names map tests to exercises for `gan-lab grade`.
#![allow(non_snake_case)]

use gan_lab::metrics::{frechet_distance, inception_score_of, mode_score_of};
use tch::{Kind, Tensor};

fn probs() -> Tensor {
    let logits = [
        [2.0, 0.5, -1.0, 0.0],
        [0.1, 3.0, 0.2, -0.5],
        [-1.0, 0.0, 2.5, 1.0],
        [0.3, 0.3, 0.3, 2.0],
        [1.5, -0.5, 0.5, 0.0],
        [0.0, 2.0, 0.0, 1.0],
    ];
    let flat: Vec<f64> = logits.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([6, 4]).softmax(1, Kind::Double)
}

fn matrix(rows: [[f64; 3]; 3]) -> Tensor {
    Tensor::from_slice(&rows.iter().flatten().copied().collect::<Vec<f64>>()).view([3, 3])
}

fn close(what: &str, got: f64, expected: f64, tol: f64) {
    assert!((got - expected).abs() <= tol * expected.abs().max(1.0), "{what}: expected {expected:.9}, got {got:.9}");
}

#[test]
fn inception_score__matches_numpy() {
    close("Inception score", inception_score_of(&probs()), 1.6121801075434066, 1e-9);
}

#[test]
fn inception_score__is_the_number_of_classes_for_sharp_even_predictions() {
    let eye = Tensor::eye(4, (Kind::Double, tch::Device::Cpu)).clamp_min(1e-12);
    close("IS of 4 sharp, evenly spread predictions", inception_score_of(&eye), 4.0, 1e-6);
    let flat = Tensor::full([5, 4], 0.25, (Kind::Double, tch::Device::Cpu));
    close("IS of identical predictions", inception_score_of(&flat), 1.0, 1e-9);
}

#[test]
fn mode_score__matches_numpy() {
    let real = Tensor::from_slice(&[0.1f64, 0.2, 0.3, 0.4]);
    close("Mode score", mode_score_of(&probs(), &real), 1.3404860883015695, 1e-9);
}

#[test]
fn mode_score__punishes_a_marginal_far_from_the_real_one() {
    let eye = Tensor::eye(4, (Kind::Double, tch::Device::Cpu)).clamp_min(1e-12);
    let even = Tensor::full([4], 0.25, (Kind::Double, tch::Device::Cpu));
    close("Mode score when the marginals agree (= IS)", mode_score_of(&eye, &even), 4.0, 1e-6);
    let skewed = Tensor::from_slice(&[0.97f64, 0.01, 0.01, 0.01]);
    let ms = mode_score_of(&eye, &skewed);
    assert!(ms < 1.0, "a real marginal far from the samples' must lower the Mode score, got {ms:.4}");
}

#[test]
fn frechet_distance__matches_scipy() {
    let (mu1, mu2) = (Tensor::from_slice(&[0.5f64, -1.0, 2.0]), Tensor::from_slice(&[1.0f64, 0.0, 1.5]));
    let a = matrix([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]]);
    let b = matrix([[1.0, -0.2, 0.1], [-0.2, 2.0, 0.6], [0.1, 0.6, 1.5]]);
    close("Fréchet distance", frechet_distance(&mu1, &a, &mu2, &b), 2.37085746365309, 1e-7);
}

#[test]
fn frechet_distance__is_zero_for_identical_gaussians_and_counts_the_means() {
    let a = matrix([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.5]]);
    let mu = Tensor::from_slice(&[0.5f64, -1.0, 2.0]);
    close("FD of a Gaussian with itself", frechet_distance(&mu, &a, &mu, &a), 0.0, 1e-7);
    let shifted = &mu + Tensor::from_slice(&[3.0f64, 0.0, 4.0]);
    close("FD of a shifted copy = |shift|²", frechet_distance(&mu, &a, &shifted, &a), 25.0, 1e-7);
}
