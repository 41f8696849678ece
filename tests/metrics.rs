//! The metrics against independent references: closed forms, and numpy/scipy
//! (tests/reference/metrics_reference.py) on the same probabilities and features.

use gan_lab::data::{Dataset, Split};
use gan_lab::metrics::{self, Evaluator, RealReference};
use gan_lab::rng::with_seed;
use gan_lab::Dcgan;
use std::process::Command;
use tch::{Kind, Tensor};

fn f64s(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Double)
}

#[test]
fn fid_of_a_set_against_itself_is_zero() {
    let ev = Evaluator::shipped().unwrap();
    let features = ev.features(&Dataset::mnist(Split::Test).unwrap().images);
    let fid = metrics::frechet_distance_of(&features, &features);
    let scale = metrics::feature_statistics(&features).1.trace().double_value(&[]);
    assert!(fid.abs() < 1e-6 * scale, "FID(x, x) = {fid}, trace of the covariance {scale}");
}

#[test]
fn frechet_distance_matches_the_closed_form_for_gaussians() {
    // Diagonal covariances commute: FD = |Δμ|² + Σ (√a − √b)².
    let a = [1.0f64, 4.0, 0.25, 9.0];
    let b = [2.0f64, 1.0, 1.0, 4.0];
    let mu1 = Tensor::from_slice(&[0.0f64, 1.0, -1.0, 2.0]);
    let mu2 = Tensor::from_slice(&[1.0f64, 1.0, 0.5, 0.0]);
    let expected = 1.0 + 0.0 + 2.25 + 4.0 + a.iter().zip(b).map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2)).sum::<f64>();
    let (c1, c2) = (Tensor::from_slice(&a).diag(0), Tensor::from_slice(&b).diag(0));
    let fd = metrics::frechet_distance(&mu1, &c1, &mu2, &c2);
    assert!((fd - expected).abs() < 1e-9, "{fd} vs {expected}");
    // The same Gaussians in a rotated basis: the distance does not change.
    let (q, _) =
        Tensor::linalg_qr(&with_seed(11, || Tensor::randn([4, 4], (Kind::Double, tch::Device::Cpu))), "reduced");
    let rot = |c: &Tensor| q.matmul(c).matmul(&q.tr());
    let fd_rot = metrics::frechet_distance(&q.matmul(&mu1), &rot(&c1), &q.matmul(&mu2), &rot(&c2));
    assert!((fd_rot - expected).abs() < 1e-8, "rotated: {fd_rot} vs {expected}");
}

#[test]
fn inception_score_bounds() {
    // One-hot, evenly spread over 10 classes: IS = 10. Identical predictions: IS = 1.
    let eye = Tensor::eye(10, (Kind::Float, tch::Device::Cpu)).repeat([10, 1]);
    let is = metrics::inception_score(&eye, 1).mean;
    assert!((is - 10.0).abs() < 1e-4, "{is}");
    let same = Tensor::full([50, 10], 0.1, (Kind::Float, tch::Device::Cpu));
    assert!((metrics::inception_score(&same, 5).mean - 1.0).abs() < 1e-9);
    // Mode score punishes a marginal far from the real one: all samples of class 0.
    let one_class = Tensor::eye(10, (Kind::Float, tch::Device::Cpu)).get(0).unsqueeze(0).repeat([20, 1]);
    let uniform = Tensor::full([10], 0.1, (Kind::Double, tch::Device::Cpu));
    let ms = metrics::mode_score(&one_class, &uniform, 1).mean;
    assert!((ms - 0.1).abs() < 1e-6, "exp(0 - ln 10) = 0.1, got {ms}");
}

#[test]
fn scores_agree_with_numpy_and_scipy() {
    let ev = Evaluator::shipped().unwrap();
    let real = Dataset::mnist(Split::Test).unwrap().images;
    // Half real digits, half from a briefly trained DCGAN: spread over classes, but not real.
    let gan = Dcgan::mnist32().steps(30).batch_size(32).seed(1).train(&Dataset::mnist(Split::Test).unwrap()).unwrap();
    let fake = Tensor::cat(&[real.narrow(0, 0, 500), gan.sample(500, 2)], 0);
    let probs = ev.probabilities(&fake);
    let real_marginal = f64s(&ev.probabilities(&real).mean_dim(0, false, Kind::Float));
    let (f1, f2) = (ev.features(&fake), ev.features(&real));
    let dir = tempfile::tempdir().unwrap();
    let inputs = [("probs", &probs), ("real_marginal", &real_marginal), ("features1", &f1), ("features2", &f2)];
    Tensor::write_safetensors(&inputs, dir.path().join("inputs.safetensors")).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/reference/metrics_reference.py");
    let out = Command::new(std::env::var("GAN_LAB_PYTHON").unwrap()).arg(script).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reference.json")).unwrap()).unwrap();
    let rel = |ours: f64, theirs: &serde_json::Value, what: &str| {
        let theirs = theirs.as_f64().unwrap();
        assert!((ours - theirs).abs() <= 1e-3 * theirs.abs().max(1e-9), "{what}: gan_lab {ours}, numpy/scipy {theirs}");
    };
    let is = metrics::inception_score(&probs, 10);
    rel(is.mean, &reference["inception"][0], "IS mean");
    rel(is.std, &reference["inception"][1], "IS std");
    let ms = metrics::mode_score(&probs, &real_marginal, 10);
    rel(ms.mean, &reference["mode"][0], "Mode score mean");
    rel(ms.std, &reference["mode"][1], "Mode score std");
    let fid = metrics::frechet_distance_of(&f1, &f2);
    rel(fid, &reference["fid"], "FID");
    eprintln!("IS {is:?}, Mode score {ms:?}, FID {fid:.4} (numpy/scipy: {reference})");
}

#[test]
fn real_digits_set_the_ceilings() {
    let ev = Evaluator::shipped().unwrap();
    let train = Dataset::mnist(Split::Train).unwrap();
    let reference = RealReference::new(&ev, &train.images);
    let noise = with_seed(12, || Tensor::rand([2000, 1, 32, 32], (Kind::Float, tch::Device::Cpu))) * 2.0 - 1.0;
    let scores = reference.score(&ev, &noise);
    eprintln!("real ceiling: {}\nnoise:        {scores}", reference.ceiling);
    assert!(reference.ceiling.inception.mean > 8.0, "{}", reference.ceiling);
    assert!(reference.ceiling.fid < scores.fid / 10.0, "real halves {} vs noise {}", reference.ceiling.fid, scores.fid);
    assert!(scores.inception.mean < reference.ceiling.inception.mean);
}

#[test]
fn collapse_signals_tell_a_collapsed_set_from_real_digits() {
    let ev = Evaluator::shipped().unwrap();
    let real = Dataset::mnist(Split::Test).unwrap().images.narrow(0, 0, 500);
    let healthy = metrics::collapse_signals(&ev, &real);
    assert!(healthy.entropy > 2.2 && healthy.near_duplicate_rate < 0.02, "{healthy}");
    // A collapsed generator: one digit, repeated with a little noise.
    let one = real.get(0).unsqueeze(0).repeat([200, 1, 1, 1]);
    let collapsed = (&one + with_seed(13, || Tensor::randn_like(&one)) * 0.02).clamp(-1.0, 1.0);
    let signals = metrics::collapse_signals(&ev, &collapsed);
    assert!(signals.entropy < 0.1 && signals.top_over_representation > 9.9, "{signals}");
    assert!(signals.near_duplicate_rate > 0.99, "{signals}");
}

/// The latent scan: a generator whose first layer reads only dimensions 5 and 9 of z shows an
/// effect there and none elsewhere, and the ranking names those two first.
#[test]
fn the_latent_scan_finds_the_dimensions_the_generator_reads() {
    let gan = Dcgan::mnist32().seed(3).build().unwrap();
    tch::no_grad(|| {
        let w = gan.vs_g.variables()["convt1.weight"].shallow_clone(); // [latent_dim, 128, 4, 4]
        let keep = Tensor::zeros([100, 1, 1, 1], (Kind::Float, tch::Device::Cpu));
        let _ = keep.get(5).fill_(1.0);
        let _ = keep.get(9).fill_(1.0);
        w.shallow_clone().copy_(&(&w * 3.0 * &keep));
    });
    let z = gan.draw_latent(8, 1);
    let effects =
        Vec::<f64>::try_from(gan_lab::explore::dimension_effects(&gan, &z, 3.0).unwrap().to_kind(Kind::Double))
            .unwrap();
    assert_eq!(effects.len(), 100);
    for (d, e) in effects.iter().enumerate() {
        match d {
            5 | 9 => assert!(*e > 1e-3, "dimension {d}: {e}"),
            _ => assert!(*e < 1e-6, "dimension {d} is not read, yet changes the images by {e}"),
        }
    }
    let top = gan_lab::explore::strongest_dimensions(&gan, &z, 3.0, 3).unwrap();
    let mut first_two = vec![top[0].0, top[1].0];
    first_two.sort();
    assert_eq!((first_two, top.len()), (vec![5, 9], 3));
    assert!(top[0].1 >= top[1].1 && top[1].1 >= top[2].1, "{top:?}");
    // The notebook's scan: the strongest rows first, the weakest (an unread dimension) last.
    let scan = gan_lab::notebook::LatentScan::new(&gan, 3, 1).unwrap();
    let mut scan_first_two = vec![scan.strongest[0].0, scan.strongest[1].0];
    scan_first_two.sort();
    assert_eq!((scan_first_two, scan.strongest.len()), (vec![5, 9], 3));
    assert!(![5, 9].contains(&scan.weakest.0) && scan.weakest.1 < 1e-6, "{scan}");
    assert_eq!(scan.picture.image.dimensions(), (11 * 34 + 2, 4 * 34 + 2), "11 steps, 3 strongest + the weakest");
    assert!(scan.to_string().contains(&format!("then the weakest z{}", scan.weakest.0)), "{scan}");
    // z of the wrong width is an error, not a libtorch panic.
    let e = gan_lab::explore::dimension_effects(&gan, &gan.draw_latent(2, 1).narrow(1, 0, 50), 3.0).unwrap_err();
    assert!(e.to_string().contains("z: expected shape [rows, 100], got [2, 50]"), "{e}");
    // A dimension the model does not have is an error, in the library and in a notebook.
    let e = gan_lab::explore::sweep(&gan, &z, 100, -3.0, 3.0, 11).unwrap_err().to_string();
    assert!(e.contains("dimension 100: expected a latent dimension between 0 and 99"), "{e}");
    assert!(gan_lab::notebook::sweep(&gan, -1, 0).is_err());
}

/// The latent vs screen-space GIF: at α = 0 both halves of a frame show G(z1); halfway they differ
/// (a pixel blend is not the image of the blended z).
#[test]
fn latent_and_screen_space_walks_start_together_and_part_halfway() {
    let gan = Dcgan::mnist32().seed(3).build().unwrap();
    let z = gan.draw_latent(4, 2);
    let frames = gan_lab::explore::latent_vs_screen_frames(&gan, &z.narrow(0, 0, 2), &z.narrow(0, 2, 2), 8);
    assert_eq!(frames.len(), 8);
    let (w, h) = frames[0].dimensions();
    assert_eq!((w, h), (2 * 34 + 2, 2 * 34 + 2), "two pairs, latent left and screen right");
    let halves_differ = |f: &image::RgbImage| {
        (2..34u32)
            .flat_map(|y| (2..34u32).map(move |x| (x, y)))
            .any(|(x, y)| f.get_pixel(x, y) != f.get_pixel(x + 34, y))
    };
    assert!(!halves_differ(&frames[0]), "α = 0: both are G(z1)");
    assert!(halves_differ(&frames[2]), "α = ½: G(½z1 + ½z2) against ½G(z1) + ½G(z2)");
    assert!(!halves_differ(&frames[4]), "α = 1: both are G(z2)");
}
