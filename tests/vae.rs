//! The VAE vs GAN lesson (DLCV HW4, problems 1 and 5): the VAE's layers, parity
//! with PyTorch, its training loop and history, saving, bad input, t-SNE, the sharpness measure
//! and the comparison table.

mod common;

use common::{close, err_of};
use gan_lab::data::{Dataset, Split};
use gan_lab::losses::{kl_divergence, vae_loss, Reconstruction};
use gan_lab::metrics::sharpness;
use gan_lab::rng::with_seed;
use gan_lab::tsne::Tsne;
use gan_lab::vae::{Comparison, VaeModel};
use gan_lab::Vae;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn small_data() -> (Dataset, Dataset) {
    (Dataset::mnist(Split::Train).unwrap().take(512), Dataset::mnist(Split::Test).unwrap().take(200))
}

#[test]
fn the_vae_has_the_texts_layers_at_32_by_32() {
    let vae = Vae::mnist32().build().unwrap();
    let shapes = common::shapes(&vae.vs);
    let expect = |name: &str, shape: &[i64]| {
        assert_eq!(shapes.get(name).map(|s| s.as_slice()), Some(shape), "{name}: expected shape {shape:?}");
    };
    // Encoder: four convolutions halving 32 → 2, then the two dense heads.
    expect("conv1.weight", &[32, 1, 4, 4]);
    expect("conv2.weight", &[64, 32, 4, 4]);
    expect("conv3.weight", &[128, 64, 4, 4]);
    expect("conv4.weight", &[256, 128, 4, 4]);
    expect("mean.weight", &[32, 1024]);
    expect("log_variance.weight", &[32, 1024]);
    // Decoder: one dense layer, then four transposed convolutions doubling 2 → 32.
    expect("dense.weight", &[1024, 32]);
    expect("convt1.weight", &[256, 128, 4, 4]);
    expect("convt2.weight", &[128, 64, 4, 4]);
    expect("convt3.weight", &[64, 32, 4, 4]);
    expect("convt4.weight", &[32, 1, 4, 4]);
    let convs = shapes.keys().filter(|k| k.starts_with("conv") && k.ends_with("weight")).count();
    assert_eq!(convs, 8, "expected 4 convolutions and 4 transposed convolutions: {shapes:?}");
    let norms = shapes.keys().filter(|k| k.starts_with("bn") && k.ends_with("weight")).count();
    assert_eq!(norms, 8, "expected BatchNorm after every hidden layer (4 encoder, 4 decoder): {shapes:?}");

    let x = Dataset::mnist(Split::Test).unwrap().take(4).images;
    let (mu, log_variance) = vae.encode(&x).unwrap();
    assert_eq!((mu.size(), log_variance.size()), (vec![4, 32], vec![4, 32]));
    let decoded = vae.decode(&mu).unwrap();
    assert_eq!(decoded.size(), [4, 1, 32, 32]);
    assert!(decoded.abs().max().double_value(&[]) <= 1.0, "the decoder ends with tanh");
}

#[test]
fn a_training_step_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let mut vae = Vae::mnist32().seed(3).build().unwrap();
    gan_lab::checkpoint::write_tensors(&gan_lab::checkpoint::variables(&vae.vs), &dir.path().join("vae.safetensors"))
        .unwrap();
    let x = gan_lab::backend::perf::batch_layout(Dataset::mnist(Split::Test).unwrap().take(16).images, true);
    let eps = with_seed(4, || Tensor::randn([16, 32], (Kind::Float, Device::Cpu)));
    Tensor::write_safetensors(&[("x", &x), ("eps", &eps)], dir.path().join("inputs.safetensors")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/vae_reference.py");
    let python = std::env::var("GAN_LAB_PYTHON").expect("GAN_LAB_PYTHON (set by .cargo/config.toml)");
    let out = std::process::Command::new(python).arg(&script).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("reference.safetensors")).unwrap().into_iter().collect();
    let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);

    let (mu, log_variance) = vae.net.encode(&x, true);
    let decoded = vae.net.decode(&(&mu + (&log_variance * 0.5).exp() * &eps), true);
    let loss = vae_loss(&decoded, &x, &mu, &log_variance, 1e-2, Reconstruction::Mse);
    for (name, ours) in [("mu", &mu), ("log_variance", &log_variance), ("decoded", &decoded)] {
        let d = diff(&ours.detach(), &reference[name]);
        assert!(d < 1e-5, "{name}: differs from PyTorch by {d:.2e}");
    }
    close("loss", loss.total.double_value(&[]), reference["loss"].double_value(&[0]), 1e-5);
    // The gradients, to float rounding (sums in another order) of each tensor's largest.
    let params: Vec<(String, Tensor)> = vae.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    let grads = Tensor::run_backward(&[&loss.total], &params.iter().map(|(_, t)| t).collect::<Vec<_>>(), true, false);
    let mut gradient_scale = HashMap::new();
    for ((name, _), ours) in params.iter().zip(&grads) {
        let theirs = &reference[&format!("grad.{name}")];
        let scale = theirs.abs().max().double_value(&[]);
        let d = diff(ours, theirs);
        assert!(d <= 1e-4 * scale, "{name}: gradient differs from PyTorch's by {d:.2e} (largest {scale:.2e})");
        gradient_scale.insert(name.clone(), (theirs.abs(), scale));
    }
    assert!(params.len() >= 20, "expected every weight's gradient compared, got {}", params.len());
    vae.opt.minimize(&loss.total);
    // Adam's first update is lr·g/(|g| + ε) per weight: ±lr = 2e-4 wherever the gradient is clear
    // of 0, which must match to float rounding; where a gradient is within rounding of 0 its
    // sign, and so the step, may differ, but never by more than the two steps 2·lr.
    let mut compared = 0;
    for (name, t) in vae.vs.variables() {
        let theirs = &reference[&format!("after.{name}")];
        let off = (t.detach() - theirs).abs();
        match gradient_scale.get(&name) {
            Some((g, scale)) => {
                let clear = g.ge(1e-4 * scale);
                let d = off.masked_select(&clear).max().double_value(&[]);
                assert!(
                    d < 1e-6,
                    "{name} after one Adam step: differs from PyTorch by {d:.2e} where |grad| is clear of 0"
                );
                let d = off.max().double_value(&[]);
                assert!(d <= 4e-4 + 1e-6, "{name} after one Adam step: differs from PyTorch by {d:.2e} (> 2·lr)");
            }
            None => {
                let d = off.max().double_value(&[]);
                assert!(d < 1e-5, "{name} (BatchNorm statistic) after one step: differs from PyTorch by {d:.2e}");
            }
        }
        compared += 1;
    }
    assert!(compared >= 30, "expected every weight and BatchNorm statistic compared, got {compared}");
}

#[test]
fn training_lowers_the_loss_records_each_epoch_and_is_deterministic() {
    let (train, test) = small_data();
    // 512 digits in batches of 64: 8 steps per epoch, so 20 steps end two epochs and a half.
    let builder = Vae::mnist32().steps(20).seed(1).held_out(&test);
    let (a, b) = (builder.train(&train).unwrap(), builder.train(&train).unwrap());
    assert_eq!(a.history, b.history, "the same seed must give the same run");
    let steps = &a.history.steps;
    assert_eq!(steps.len(), 20);
    let first: f64 = steps[..4].iter().map(|r| r.reconstruction).sum::<f64>() / 4.0;
    let last: f64 = steps[16..].iter().map(|r| r.reconstruction).sum::<f64>() / 4.0;
    assert!(last < 0.8 * first, "reconstruction should fall in 20 steps: {first:.4} → {last:.4}");
    let epochs: Vec<(f64, i64)> = a.history.epochs.iter().map(|e| (e.epoch, e.step)).collect();
    assert_eq!(epochs, [(1.0, 8), (2.0, 16), (2.5, 20)], "held-out MSE after each epoch and at the end");
    close("last held-out MSE = test_mse of the model", a.history.epochs[2].test_mse, a.test_mse(&test).unwrap(), 1e-9);
    for r in steps {
        let kl = r.kl;
        close("loss = reconstruction + 0.01 KL", r.loss, r.reconstruction + 0.01 * kl, 1e-5);
    }
    let other = Vae::mnist32().steps(20).seed(2).held_out(&test).train(&train).unwrap();
    assert_ne!(a.history, other.history, "another seed must give another run");
}

#[test]
fn the_kl_weight_trades_reconstruction_for_a_posterior_near_the_prior() {
    let (train, test) = small_data();
    let run = |lambda: f64| Vae::mnist32().steps(40).seed(0).lambda_kl(lambda).train(&train).unwrap();
    let (weak, strong) = (run(1e-3), run(10.0));
    let kl_of = |vae: &VaeModel| {
        let (mu, lv) = vae.encode(&test.images).unwrap();
        kl_divergence(&mu, &lv).double_value(&[])
    };
    let (kl_weak, kl_strong) = (kl_of(&weak), kl_of(&strong));
    let (mse_weak, mse_strong) = (weak.test_mse(&test).unwrap(), strong.test_mse(&test).unwrap());
    assert!(kl_strong < 0.5 * kl_weak, "λ_KL 10 should pull q(z|x) to the prior: KL {kl_strong:.3} vs {kl_weak:.3}");
    assert!(mse_strong > mse_weak, "λ_KL 10 should reconstruct worse: MSE {mse_strong:.4} vs {mse_weak:.4}");
}

#[test]
fn a_saved_vae_loads_with_the_same_weights_and_history() {
    let (train, test) = small_data();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let vae = Vae::mnist32().steps(10).held_out(&test).out_dir(&out).train(&train).unwrap();
    for name in [
        "vae.safetensors",
        "vae.json",
        "learning_curves.png",
        "reconstructions.png",
        "samples.png",
        "interpolation.png",
    ] {
        assert!(out.join(name).is_file(), "{name} missing from the run folder");
    }
    let loaded = VaeModel::load(&out).unwrap();
    assert_eq!(loaded.history, vae.history);
    assert!(loaded.reconstruct(&test.images).unwrap().equal(&vae.reconstruct(&test.images).unwrap()));
    assert!(loaded.sample(4, 9).equal(&vae.sample(4, 9)));
    std::fs::write(out.join("vae.json"), "{ not json").unwrap();
    let e = err_of(VaeModel::load(&out));
    assert!(e.contains("vae.json") && e.contains("not a VAE"), "{e}");
}

#[test]
fn a_one_image_held_out_set_still_saves_its_run() {
    let (train, test) = small_data();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    Vae::mnist32().steps(2).held_out(&test.take(1)).out_dir(&out).train(&train).unwrap();
    assert!(out.join("reconstructions.png").is_file() && out.join("samples.png").is_file());
    assert!(!out.join("interpolation.png").exists(), "an interpolation needs two images");
}

#[test]
fn bad_input_is_named_in_the_error() {
    let (train, _) = small_data();
    let e = err_of(Vae::mnist32().lambda_kl(-1.0).train(&train));
    assert!(e.contains("lambda_kl = -1"), "{e}");
    let e = err_of(Vae::mnist32().latent_dim(0).train(&train));
    assert!(e.contains("latent_dim = 0"), "{e}");
    let e = err_of(Vae::mnist32().batch_size(1).train(&train));
    assert!(e.contains("batch_size = 1"), "{e}");
    let e = err_of(Vae::mnist32().batch_size(1000).train(&train));
    assert!(e.contains("batch size 1000"), "{e}");
    let colour = Dataset {
        name: "colour".into(),
        images: Tensor::zeros([64, 3, 32, 32], (Kind::Float, Device::Cpu)),
        labels: None,
        classes: Vec::new(),
    };
    let e = err_of(Vae::mnist32().train(&colour));
    assert!(e.contains("3-channel") && e.contains("1-channel"), "{e}");
    let e = err_of(Vae::mnist32().held_out(&colour).train(&train));
    assert!(e.contains("dataset colour"), "{e}");
    let vae = Vae::mnist32().build().unwrap();
    let e = err_of(vae.decode(&Tensor::zeros([2, 7], (Kind::Float, Device::Cpu))));
    assert!(e.contains("[N, 32]") && e.contains("[2, 7]"), "{e}");
    let e = err_of(vae.encode(&Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu))));
    assert!(e.contains("[N, 1, 32, 32]"), "{e}");
    let e = err_of(VaeModel::load(Path::new("/nonexistent/run")));
    assert!(e.contains("/nonexistent/run/vae.json"), "{e}");
}

/// `k` Gaussian clusters of `per` points in `d` dimensions, far apart, and their labels.
fn clusters(k: i64, per: i64, d: i64) -> (Tensor, Tensor) {
    with_seed(3, || {
        let centres = Tensor::randn([k, d], F64) * 10.0;
        let labels = Tensor::arange(k, (Kind::Int64, Device::Cpu)).repeat_interleave_self_int(per, 0, None);
        (centres.index_select(0, &labels) + Tensor::randn([k * per, d], F64), labels)
    })
}

#[test]
fn tsne_calibrates_each_point_to_the_perplexity() {
    let (x, _) = clusters(3, 60, 5);
    let tsne = Tsne { perplexity: 12.0, ..Default::default() };
    let p = tsne.conditional_probabilities(&x);
    let rows = common::values(&p.sum_dim_intlist(1, false, Kind::Double));
    assert!(rows.iter().all(|s| (s - 1.0).abs() < 1e-9), "each row of p(j|i) must sum to 1");
    assert_eq!(p.diagonal(0, 0, 1).abs().max().double_value(&[]), 0.0, "p(i|i) must be 0");
    let entropy = -(&p * p.clamp_min(1e-300).log()).sum_dim_intlist(1, false, Kind::Double);
    for (i, h) in common::values(&entropy).into_iter().enumerate() {
        close(&format!("perplexity of point {i}"), h.exp(), 12.0, 1e-3);
    }
}

#[test]
fn tsne_keeps_clusters_apart_and_follows_its_seed() {
    let (x, labels) = clusters(5, 80, 10);
    let tsne = Tsne { iterations: 500, ..Default::default() };
    let y = tsne.fit(&x).unwrap();
    assert_eq!(y.size(), [400, 2]);
    // Each point's nearest map neighbour must come from its own cluster.
    let yd = y.to_kind(Kind::Double);
    let d = Tensor::cdist(&yd, &yd, 2.0, None::<i64>) + Tensor::eye(400, F64) * 1e9;
    let nearest = labels.index_select(0, &d.argmin(1, false));
    let agree = nearest.eq_tensor(&labels).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
    assert!(agree > 0.98, "nearest neighbours in the map from the same cluster: {:.1}%", 100.0 * agree);
    assert!(y.equal(&tsne.fit(&x).unwrap()), "the same seed must give the same map");
    assert!(!y.equal(&Tsne { seed: 1, ..tsne }.fit(&x).unwrap()), "another seed must give another map");
    let e = err_of(Tsne::default().fit(&x.narrow(0, 0, 60)));
    assert!(e.contains("perplexity = 30") && e.contains("60 points"), "{e}");
    let e = err_of(tsne.fit(&Tensor::zeros([10], F64)));
    assert!(e.contains("[N, D]"), "{e}");
}

#[test]
fn sharpness_falls_with_blur_and_is_zero_on_flat_images() {
    let digits = Dataset::mnist(Split::Test).unwrap().take(100).images;
    let blurred = digits.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>);
    let (sharp, blurry) = (sharpness(&digits), sharpness(&blurred));
    assert!(blurry < 0.5 * sharp, "a 3×3 box blur should at least halve it: {sharp:.4} → {blurry:.4}");
    close("flat images", sharpness(&Tensor::full([4, 1, 32, 32], 0.3, (Kind::Float, Device::Cpu))), 0.0, 1e-12);
    // One white pixel on black ([-1, 1] pixels → [0, 1]): responses −4 once and 1 four times over
    // 30×30 valid pixels; variance (16 + 4)/900 − (0/900)² = 0.02222.
    let dot = Tensor::full([1, 1, 32, 32], -1.0, (Kind::Float, Device::Cpu));
    let _ = dot.get(0).get(0).get(10).get(10).fill_(1.0);
    close("one white pixel", sharpness(&dot), 20.0 / 900.0, 1e-5);
}

#[test]
fn the_comparison_table_has_the_ceiling_first_and_every_score() {
    let ev = gan_lab::metrics::Evaluator::shipped().unwrap();
    let (train, test) = small_data();
    let reference = gan_lab::metrics::RealReference::new(&ev, &train.images);
    let mut table = Comparison::new(&reference);
    table.push(
        "blurred digits",
        None,
        None,
        Some(0.5),
        reference.score(&ev, &test.images.avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>)),
    );
    let text = table.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("FID") && lines[0].contains("sharpness") && lines[0].contains("Mode score"), "{text}");
    assert!(lines[2].starts_with("| real digits (ceiling)"), "{text}");
    assert!(lines[3].contains("0.50000"), "{text}");
    assert!(
        table.rows[1].scores.sharpness < table.rows[0].scores.sharpness,
        "blur must score less sharp than real digits"
    );
}
