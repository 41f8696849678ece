//! Helpers shared by the test files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use tch::{nn, Kind, Tensor};

/// The full message of an error the call must return.
pub fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

pub fn close(what: &str, got: f64, expected: f64, tol: f64) {
    assert!((got - expected).abs() <= tol * (1.0 + expected.abs()), "{what}: expected {expected:.6}, got {got:.6}");
}

pub fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).expect("a float tensor")
}

pub fn logits(v: &[f32]) -> Tensor {
    Tensor::from_slice(v).set_requires_grad(true)
}

pub fn real() -> Tensor {
    logits(&[2.0, -1.0, 0.5, 3.0])
}

pub fn fake() -> Tensor {
    logits(&[-3.0, 0.0, 1.5, -0.5])
}

pub fn shapes(vs: &nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(k, v)| (k, v.size())).collect()
}

/// Panics with what differs between a network's parameters and the lesson's layer list: the
/// missing ones (a BatchNorm left out shows as its missing `bn*.weight`), the unexpected ones (a
/// convolution's `bias`: the lesson's convolutions have none), and wrong shapes.
pub fn assert_layer_list(vs: &nn::VarStore, expected: &[(&str, Vec<i64>)]) {
    let got = shapes(vs);
    let mut problems = Vec::new();
    for (name, shape) in expected {
        match got.get(*name) {
            None => problems.push(format!("missing {name} {shape:?}")),
            Some(s) if s != shape => problems.push(format!("{name}: expected shape {shape:?}, got {s:?}")),
            Some(_) => {}
        }
    }
    for name in got.keys().filter(|n| !expected.iter().any(|(e, _)| e == n)) {
        let why = if name.ends_with(".bias") && name.starts_with("conv") {
            " (the lesson's convolutions take no bias)"
        } else {
            ""
        };
        problems.push(format!("unexpected {name}{why}"));
    }
    assert!(problems.is_empty(), "the layers differ from the lesson's list: {}", problems.join("; "));
}

/// Sets every parameter (sorted by name, k-th) to 0.05·sin(0.37·i + 1.3·k), BatchNorm weights
/// plus 1: the same values the PyTorch reference loads.
pub fn fill_like_reference(vs: &nn::VarStore) {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (k, (name, mut t)) in vars.into_iter().enumerate() {
            let i = Tensor::arange(t.numel() as i64, (Kind::Double, tch::Device::Cpu));
            let mut v = (i * 0.37 + k as f64 * 1.3).sin() * 0.05;
            if name.contains("bn") && name.ends_with("weight") {
                v += 1.0;
            }
            t.copy_(&v.to_kind(Kind::Float).view(t.size().as_slice()));
        }
    });
}

/// Asserts every trainable variable of `vs` holds a non-zero gradient.
pub fn assert_gradients_reach_every_layer(vs: &nn::VarStore) {
    for (name, t) in vs.variables() {
        if t.requires_grad() {
            let grad = t.grad();
            assert!(
                grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "no gradient reaches {name}"
            );
        }
    }
}

/// Copies of every variable of both players, named `g.<var>` and `d.<var>`.
pub fn all_weights(gan: &gan_lab::Gan) -> BTreeMap<String, Tensor> {
    let mut out = BTreeMap::new();
    for (prefix, vs) in [("g.", &gan.vs_g), ("d.", &gan.vs_d)] {
        for (k, v) in vs.variables() {
            out.insert(format!("{prefix}{k}"), v.copy());
        }
    }
    out
}
