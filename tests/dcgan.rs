//! The DCGAN lesson: the exact layer lists, initialisation, losses, determinism, checkpoints
//! and resume, and the errors for bad settings.

mod common;
use common::{all_weights, err_of};
use gan_lab::data::{Dataset, Split};
use gan_lab::losses::{self, Objective};
use gan_lab::models::dcgan::Init;
use gan_lab::rng::with_seed;
use gan_lab::{checkpoint, Dcgan};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

fn small_data() -> Dataset {
    Dataset::mnist(Split::Test).unwrap().take(256)
}

fn shapes(vs: &tch::nn::VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect()
}

#[test]
fn layer_lists_match_the_lesson() {
    let gan = Dcgan::mnist32().build().unwrap();
    let g = shapes(&gan.vs_g);
    // convT(100→128, k4 s1 p0) → convT(64) → convT(32) → convT(1), no biases; BN after the first three.
    assert_eq!(g["convt1.weight"], [100, 128, 4, 4]);
    assert_eq!(g["convt2.weight"], [128, 64, 4, 4]);
    assert_eq!(g["convt3.weight"], [64, 32, 4, 4]);
    assert_eq!(g["convt4.weight"], [32, 1, 4, 4]);
    for bn in ["bn1", "bn2", "bn3"] {
        assert!(g.contains_key(&format!("{bn}.running_mean")));
    }
    assert!(!g.keys().any(|k| k.starts_with("conv") && k.ends_with("bias")), "no conv biases: {g:?}");
    assert!(!g.contains_key("bn4.weight"));
    let d = shapes(&gan.vs_d);
    assert_eq!(d["conv1.weight"], [32, 1, 4, 4]);
    assert_eq!(d["conv2.weight"], [64, 32, 4, 4]);
    assert_eq!(d["conv3.weight"], [128, 64, 4, 4]);
    assert_eq!(d["conv4.weight"], [1, 128, 4, 4]);
    assert!(!d.keys().any(|k| k.starts_with("conv") && k.ends_with("bias")), "no conv biases: {d:?}");

    let z = with_seed(11, || Tensor::randn([5, 100], (Kind::Float, tch::Device::Cpu)));
    let x = gan.generate(&z);
    assert_eq!(x.size(), [5, 1, 32, 32]);
    assert!(x.abs().max().double_value(&[]) <= 1.0, "tanh output");
    assert_eq!(gan.discriminator.score(&x, None, false).size(), [5]);
}

#[test]
fn image_size_64_adds_a_block() {
    let gan = Dcgan::mnist32().image_size(64).channels(3).ngf(8).ndf(8).build().unwrap();
    let g = shapes(&gan.vs_g);
    assert_eq!(g["convt1.weight"], [100, 64, 4, 4]);
    assert_eq!(g["convt5.weight"], [8, 3, 4, 4]);
    let d = shapes(&gan.vs_d);
    assert_eq!(d["conv4.weight"], [64, 32, 4, 4]);
    assert_eq!(d["conv5.weight"], [1, 64, 4, 4]);
    let x = gan.generate(&with_seed(12, || Tensor::randn([2, 100], (Kind::Float, tch::Device::Cpu))));
    assert_eq!(x.size(), [2, 3, 64, 64]);
    assert_eq!(gan.discriminator.score(&x, None, false).size(), [2]);
}

#[test]
fn dcgan_init_is_normal_002_and_default_init_differs() {
    let gan = Dcgan::mnist32().seed(3).build().unwrap();
    let vars = gan.vs_g.variables();
    let w = &vars["convt2.weight"];
    let std = w.std(true).double_value(&[]);
    assert!((std - 0.02).abs() < 0.001, "conv weight std {std}");
    assert!(w.mean(Kind::Float).double_value(&[]).abs() < 0.001);
    let bn = &vars["bn2.weight"];
    assert!((bn.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 0.01);
    assert!((bn.std(true).double_value(&[]) - 0.02).abs() < 0.01);
    assert_eq!(vars["bn2.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);

    let default = Dcgan::mnist32().seed(3).init(Init::Default).build().unwrap();
    let dvars = default.vs_g.variables();
    // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 64·4·4 for convt2.
    let max = dvars["convt2.weight"].abs().max().double_value(&[]);
    assert!(max <= 1.0 / 32.0 + 1e-6 && max > 0.03, "PyTorch-default conv weights: max |w| {max}");
    assert_eq!(dvars["bn2.weight"].min().double_value(&[]), 1.0);
}

#[test]
fn losses_match_their_formulas() {
    let real = Tensor::from_slice(&[2.0f32, -1.0, 0.5]);
    let fake = Tensor::from_slice(&[-3.0f32, 0.0, 1.5]);
    let s = |v: f64| 1.0 / (1.0 + (-v).exp());
    let mean = |f: &dyn Fn(f64) -> f64, xs: [f64; 3]| xs.iter().map(|&x| f(x)).sum::<f64>() / 3.0;
    let (r, f) = ([2.0, -1.0, 0.5], [-3.0, 0.0, 1.5]);
    let d = -mean(&|x| s(x).ln(), r) - mean(&|x| (1.0 - s(x)).ln(), f);
    let g_ns = -mean(&|x| s(x).ln(), f);
    let g_sat = mean(&|x| (1.0 - s(x)).ln(), f);
    let close = |t: Tensor, v: f64| assert!((t.double_value(&[]) - v).abs() < 1e-6, "{} vs {v}", t.double_value(&[]));
    close(losses::discriminator_loss(&real, &fake), d);
    close(losses::generator_loss_non_saturating(&fake), g_ns);
    close(losses::generator_loss_saturating(&fake), g_sat);
    close(Objective::Saturating.generator_loss(&fake), g_sat);
    close(Objective::NonSaturating.generator_loss(&fake), g_ns);
}

#[test]
fn saturating_loss_vanishes_where_the_non_saturating_one_does_not() {
    // D confidently rejects the fake (logit -8): the "true" loss gives G almost no gradient.
    let grad_of = |objective: Objective| {
        let l = Tensor::from_slice(&[-8.0f32]).set_requires_grad(true);
        objective.generator_loss(&l).backward();
        l.grad().abs().double_value(&[0])
    };
    let (sat, ns) = (grad_of(Objective::Saturating), grad_of(Objective::NonSaturating));
    assert!(sat < 1e-3 && ns > 0.99, "saturating {sat}, non-saturating {ns}");
}

fn assert_same_weights(a: &gan_lab::Gan, b: &gan_lab::Gan) {
    let (wa, wb) = (all_weights(a), all_weights(b));
    assert_eq!(wa.keys().collect::<Vec<_>>(), wb.keys().collect::<Vec<_>>());
    for (k, v) in &wa {
        assert!(v.equal(&wb[k]), "{k} differs");
    }
}

#[test]
fn training_is_deterministic_by_seed_and_changes_both_players() {
    let data = small_data();
    let run = |seed| Dcgan::mnist32().steps(4).batch_size(16).seed(seed).train(&data).unwrap();
    let (a, b, c) = (run(5), run(5), run(6));
    assert_same_weights(&a, &b);
    assert_eq!(a.history, b.history);
    assert!(!all_weights(&a)["g.convt1.weight"].equal(&all_weights(&c)["g.convt1.weight"]));
    let untrained = Dcgan::mnist32().seed(5).build().unwrap();
    for name in ["g.convt1.weight", "g.convt4.weight", "d.conv1.weight", "d.conv4.weight"] {
        assert!(!all_weights(&a)[name].equal(&all_weights(&untrained)[name]), "{name} did not move");
    }
    assert_eq!(a.history.len(), 4);
    assert!(a.history.steps.iter().all(|r| r.d_real > 0.0 && r.d_real < 1.0 && r.d_loss.is_finite()));
}

/// "Train D once and G twice" (the UPenn report, DLCV HW4): with `g_steps(2)` D's first update
/// is the same as with one G update, G moves further, and the history counts the G updates.
#[test]
fn g_steps_updates_the_generator_that_many_times_per_step() {
    let data = small_data();
    let run =
        |g_steps, steps| Dcgan::mnist32().steps(steps).batch_size(16).seed(3).g_steps(g_steps).train(&data).unwrap();
    let (once, twice) = (run(1, 1), run(2, 1));
    let (w1, w2) = (all_weights(&once), all_weights(&twice));
    // D's weights (its BatchNorm statistics also see the fakes of each G update).
    for (k, v) in w1.iter().filter(|(k, _)| k.starts_with("d.") && !k.contains("running") && !k.contains("num_batches"))
    {
        assert!(v.equal(&w2[k]), "{k}: D's first update comes before G's, whatever their number");
    }
    assert!(!w1["g.convt1.weight"].equal(&w2["g.convt1.weight"]), "a second G update moves G further");
    assert_eq!(once.history.steps[0].g_updates, 1);
    assert_eq!(twice.history.steps[0].g_updates, 2);
    // The second update is G's own step on the same noise: doing it by hand gives the same G.
    let mut by_hand = run(1, 1);
    let z = by_hand.latent_for_step(0);
    let fake = by_hand.generator.generate(&z, None, true);
    let critique = gan_lab::train::Critique {
        d_loss: 0.0,
        d_real: 0.0,
        d_fake: 0.0,
        class_loss: None,
        wasserstein: None,
        penalty: None,
    };
    by_hand.g_step(&fake, None, &z, critique);
    let w3 = all_weights(&by_hand);
    for (k, v) in w2.iter() {
        assert!(v.equal(&w3[k]), "{k}: not the step's second G update on its own noise");
    }
    let three = run(2, 3);
    assert!(three.history.steps.iter().all(|r| r.g_updates == 2 && r.g_loss.is_finite()));
    let msg = err_of(Dcgan::mnist32().g_steps(0).steps(1).train(&data));
    assert!(msg.contains("g_steps = 0: expected 1 or more generator updates per step"), "{msg}");
}

#[test]
fn resume_in_two_parts_equals_one_uninterrupted_run() {
    let data = small_data();
    let dir = tempfile::tempdir().unwrap();
    let (whole_dir, part_dir) = (dir.path().join("whole"), dir.path().join("parts"));
    let builder = Dcgan::mnist32().batch_size(16).seed(9).snapshot_every(0).checkpoint_every(0);
    let whole = builder.clone().steps(7).out_dir(&whole_dir).train(&data).unwrap();
    builder.clone().steps(3).out_dir(&part_dir).train(&data).unwrap();
    assert_eq!(checkpoint::step_of(&part_dir.join("checkpoint")).unwrap(), 3);
    let resumed = builder.clone().steps(7).out_dir(&part_dir).resume(part_dir.join("checkpoint")).train(&data).unwrap();
    assert_eq!(resumed.step, 7);
    assert_same_weights(&whole, &resumed);
    assert_eq!(whole.history, resumed.history);
    // And the checkpoint on disk round-trips the final state.
    let reloaded = builder.clone().steps(7).resume(whole_dir.join("checkpoint")).build().unwrap();
    assert_same_weights(&whole, &reloaded);
    for f in [
        "samples.png",
        "losses.svg",
        "losses.png",
        "history.json",
        "interpolation.png",
        "checkpoint/state.json",
        "checkpoint/generator.safetensors",
    ] {
        assert!(whole_dir.join(f).is_file(), "{f} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&whole_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn bad_settings_are_named_in_the_error() {
    let data = small_data();
    let cases: Vec<(Dcgan, &str)> = vec![
        (Dcgan::mnist32().latent_dim(0), "latent_dim = 0: expected 1 or more"),
        (Dcgan::mnist32().batch_size(0), "batch_size = 0: expected 1 or more"),
        (Dcgan::mnist32().batch_size(257), "batch size 257: expected between 1 and the dataset's 256 images"),
        (Dcgan::mnist32().image_size(48), "expected 32 or 64"),
        (Dcgan::mnist32().lr(0.0), "lr_g = 0: expected a positive learning rate"),
        (Dcgan::mnist32().ngf(0), "ngf = 0"),
    ];
    for (builder, expected) in cases {
        let msg = err_of(builder.steps(1).train(&data));
        assert!(msg.contains(expected), "expected `{expected}` in `{msg}`");
    }
    let msg = err_of(Dcgan::mnist32().image_size(64).steps(1).train(&data));
    assert!(msg.contains("1-channel 32×32 images, but the model is set for 1-channel 64×64"), "{msg}");
}

#[test]
fn unwritable_output_directory_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let msg = err_of(Dcgan::mnist32().steps(1).batch_size(8).out_dir(file.join("run")).train(&small_data()));
    assert!(msg.contains("output directory") && msg.contains("a-file/run"), "{msg}");
}

#[test]
fn checkpoint_from_another_architecture_is_refused() {
    let data = small_data();
    let dir = tempfile::tempdir().unwrap();
    Dcgan::mnist32().latent_dim(10).steps(1).batch_size(8).out_dir(dir.path()).train(&data).unwrap();
    let msg = err_of(Dcgan::mnist32().resume(dir.path().join("checkpoint")).build());
    assert!(msg.contains("\"latent_dim\":10") && msg.contains("\"latent_dim\":100"), "{msg}");
    let msg = err_of(Dcgan::mnist32().resume(dir.path().join("nowhere")).build());
    assert!(msg.contains("nowhere") && msg.contains("state.json"), "{msg}");
    std::fs::write(dir.path().join("checkpoint/state.json"), "{ not json").unwrap();
    let msg = err_of(Dcgan::mnist32().latent_dim(10).resume(dir.path().join("checkpoint")).build());
    assert!(msg.contains("not a gan_lab checkpoint"), "{msg}");
}

#[test]
fn a_run_with_scores_and_files_draws_random_numbers_only_under_the_seed_lock() {
    // Tests train in parallel threads of one process, as notebooks may: a draw from libtorch's
    // generator outside `with_seed` (the evaluator's throwaway initial weights once were one) moves
    // the generator under another run's feet, and that run no longer follows its seed.
    // The watcher is part of the C++ kernels' library: a build without them cannot check this.
    let Some(before) = gan_lab::backend::ops::unseeded_draws() else {
        eprintln!("this build has no C++ kernels, which hold the watcher of random draws: not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut builder = Dcgan::mnist32().steps(2).batch_size(16).seed(4).out_dir(dir.path());
    builder.train.metrics_every = 2;
    builder.train.metrics_samples = 50;
    let gan = builder.train(&small_data()).unwrap();
    assert_eq!(gan.history.metrics.len(), 1);
    let _ = gan.sample(4, 1);
    assert_eq!(gan_lab::backend::ops::unseeded_draws().unwrap() - before, 0, "random draws outside with_seed");
}

#[test]
fn scores_are_tracked_during_training_when_asked() {
    let data = Dataset::mnist(Split::Test).unwrap();
    let mut builder = Dcgan::mnist32().steps(4).batch_size(16).seed(2);
    builder.train.metrics_every = 2;
    builder.train.metrics_samples = 100;
    let gan = builder.train(&data).unwrap();
    let steps: Vec<i64> = gan.history.metrics.iter().map(|m| m.step).collect();
    assert_eq!(steps, vec![2, 4]);
    assert!(gan.history.metrics.iter().all(|m| m.scores.fid > 0.0 && m.scores.n == 100 && m.seconds > 0.0));
    let svg = gan_lab::viz::loss_curves_svg(&gan.history).unwrap();
    assert!(svg.contains("FID") && svg.contains("Scores on the MNIST evaluator"));
    // 64×64 digits are scored too, averaged down to the evaluator's 32×32.
    let big = Dataset::load(&gan_lab::Source::Mnist, Split::Test, 64, 1).unwrap().take(64);
    let gan = Dcgan::mnist32().image_size(64).metrics_every(2).steps(2).batch_size(8).train(&big).unwrap();
    assert_eq!((gan.history.metrics.len(), gan.history.evaluator.as_deref()), (1, Some("mnist")));
    // Images the set's evaluator cannot read are refused before training.
    let colour = Dataset { images: Tensor::zeros([16, 3, 32, 32], (Kind::Float, Device::Cpu)), ..big.take(16) };
    let msg = err_of(Dcgan::mnist32().channels(3).metrics_every(2).steps(2).batch_size(8).train(&colour));
    assert!(msg.contains("metrics_every") && msg.contains("reads 1-channel 32×32"), "{msg}");
}

/// The device setting (`.device(..)`, `--device`): an explicit `Device::Cpu` runs the whole
/// path through it (labels, the gradient penalty, scoring during training, the VAE) and gives
/// the run the default gives; a device libtorch cannot reach is refused in one line at build.
#[test]
fn an_explicit_cpu_device_runs_the_whole_path() {
    let data = small_data();
    let run = |device: Option<Device>| {
        let mut b = gan_lab::Cdcgan::mnist32()
            .objective(Objective::WassersteinGp { lambda: 10.0 })
            .steps(3)
            .batch_size(16)
            .seed(4)
            .metrics_every(3);
        b.train.metrics_samples = 100;
        match device {
            Some(d) => b.device(d).train(&data).unwrap(),
            None => b.train(&data).unwrap(),
        }
    };
    let (explicit, default) = (run(Some(Device::Cpu)), run(None));
    assert_eq!(explicit.device(), Device::Cpu);
    assert_eq!(explicit.history.steps, default.history.steps);
    assert!(explicit.history.steps.iter().all(|r| r.penalty.is_some()), "the gradient penalty ran");
    let scores = |g: &gan_lab::Gan| g.history.metrics.iter().map(|m| m.scores.fid).collect::<Vec<_>>();
    assert_eq!((scores(&explicit).len(), scores(&explicit)), (1, scores(&default)));
    assert_same_weights(&explicit, &default);
    let vae = gan_lab::Vae::mnist32().steps(2).batch_size(16).device(Device::Cpu).train(&data).unwrap();
    assert_eq!((vae.vs.device(), vae.step), (Device::Cpu, 2));
    if gan_lab::device::cuda_devices() == 0 {
        let msg = err_of(Dcgan::mnist32().device(Device::Cuda(0)).build());
        assert!(msg.starts_with("device cuda:0: libtorch cannot compute there (0 CUDA GPU(s) visible): "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let msg = err_of(gan_lab::Vae::mnist32().device(Device::Cuda(1)).build());
        assert!(msg.starts_with("device cuda:1: libtorch cannot compute there"), "{msg}");
    }
}
