//! The InfoGAN lesson: the networks and their codes, the information term in both players'
//! updates, code grids and sweeps, the Hungarian assignment and the code accuracy, bad settings.

mod common;
use common::{all_weights, assert_gradients_reach_every_layer, err_of, shapes};
use gan_lab::data::{Dataset, Split};
use gan_lab::metrics::{assignment, CodeAccuracy, Evaluator};
use gan_lab::models::infogan::Networks;
use gan_lab::rng::with_seed;
use gan_lab::{checkpoint, explore, Dcgan, Infogan};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

fn small_data() -> Dataset {
    Dataset::mnist(Split::Test).unwrap().take(256)
}

#[test]
fn the_generator_takes_noise_and_codes_and_q_shares_the_discriminator_body() {
    let gan = Infogan::mnist32().build().unwrap();
    assert_eq!((gan.latent_dim, gan.noise_dim(), gan.codes.width()), (74, 62, 12), "62 noise + 10 + 2 codes");
    // The paper's MNIST networks at 32×32 (its 7×7 stage becomes 8×8).
    let (g, d) = (shapes(&gan.vs_g), shapes(&gan.vs_d));
    let want_g: BTreeMap<String, Vec<i64>> = [
        ("fc1.weight", vec![1024, 74]),
        ("bn1.weight", vec![1024]),
        ("bn1.bias", vec![1024]),
        ("fc2.weight", vec![8192, 1024]),
        ("bn2.weight", vec![8192]),
        ("bn2.bias", vec![8192]),
        ("convt1.weight", vec![128, 64, 4, 4]),
        ("bn3.weight", vec![64]),
        ("bn3.bias", vec![64]),
        ("convt2.weight", vec![64, 1, 4, 4]),
        ("convt2.bias", vec![1]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(g, want_g, "G: dense 1024, dense 128·8·8, convT 64, convT 1 (the noise and the codes in)");
    for (name, shape) in [
        ("conv1.weight", vec![64, 1, 4, 4]),
        ("conv2.weight", vec![128, 64, 4, 4]),
        ("fc.weight", vec![1024, 8192]),
        ("score.weight", vec![1, 1024]),
        // Q: dense(1024 → 128), BatchNorm, LeakyReLU, dense(128 → 10 logits + 2 means), on D's body.
        ("q.hidden.weight", vec![128, 1024]),
        ("q.bn.weight", vec![128]),
        ("q.out.weight", vec![12, 128]),
    ] {
        assert_eq!(d[name], shape, "D: {name}");
    }
    let learned = Infogan::mnist32().learn_std(true).build().unwrap();
    assert_eq!(shapes(&learned.vs_d)["q.out.weight"], [14, 128], "learn_std adds a log-std per continuous code");
    let celeb = Infogan::mnist32().categorical(&[10; 5]).continuous(0).build().unwrap();
    assert_eq!(celeb.latent_dim, 112, "the text's variant: five 10-way codes after the noise");

    // The text's ACGAN-like variant: lesson 1's DCGAN networks, Q on D's last feature maps.
    let dc = Infogan::mnist32().networks(Networks::Dcgan).build().unwrap();
    let (g, d) = (shapes(&dc.vs_g), shapes(&dc.vs_d));
    assert_eq!(g["convt1.weight"], [74, 128, 4, 4], "G's first layer reads the noise and the codes");
    assert_eq!(d["q.hidden.weight"], [128, 2048]);
    assert_eq!(d["q.out.weight"], [12, 128]);
    for (name, shape) in &shapes(&Dcgan::mnist32().build().unwrap().vs_d) {
        assert_eq!(&d[name], shape, "D's body and head are the DCGAN's: {name}");
    }
}

#[test]
fn the_training_loop_draws_codes_from_their_own_distributions() {
    let gan = Infogan::mnist32().batch_size(2000).build().unwrap();
    let z = gan.latent_for_step(0);
    let (noise, cat, cont) = (z.narrow(1, 0, 62), z.narrow(1, 62, 10), z.narrow(1, 72, 2));
    let ones = cat.sum_dim_intlist(1, false, Kind::Float);
    assert!(
        ones.eq(1.0).all().int64_value(&[]) == 1 && cat.eq(0.0).logical_or(&cat.eq(1.0)).all().int64_value(&[]) == 1,
        "the categorical code is one-hot in every row"
    );
    let (lo, hi) = (cont.min().double_value(&[]), cont.max().double_value(&[]));
    assert!(lo >= -1.0 && hi <= 1.0, "continuous codes from U(-1, 1): got [{lo:.3}, {hi:.3}]");
    let var = noise.var(true).double_value(&[]);
    assert!((var - 1.0).abs() < 0.05, "the noise is N(0, I): variance {var:.3}");
    assert!(z.equal(&gan.latent_for_step(0)) && !z.equal(&gan.latent_for_step(1)), "drawn per update, by seed");
}

#[test]
fn the_information_term_reaches_every_generator_layer() {
    let mut gan = Infogan::mnist32().batch_size(8).seed(1).build().unwrap();
    let z = gan.latent_for_step(0);
    let fake = gan.generator.generate(&z, None, true);
    let (on, info) = gan.g_loss(&fake, None, &z);
    gan.config.auxiliary = gan_lab::losses::Auxiliary::None;
    let (off, _) = gan.g_loss(&fake, None, &z);
    let info = info.expect("an InfoGAN's generator loss has an information term");
    let added = (&on - &off).double_value(&[]);
    assert!(
        (added - info.weighted.double_value(&[])).abs() < 1e-4,
        "G's loss adds the weighted information term: added {added}, term {}",
        info.weighted.double_value(&[])
    );
    (on - off).backward();
    assert_gradients_reach_every_layer(&gan.vs_g);
}

#[test]
fn q_learns_only_when_the_information_term_is_weighted() {
    let data = small_data();
    let real = data.images.narrow(0, 0, 16);
    let step = |cat: f64, cont: f64| {
        let mut gan = Infogan::mnist32().information_weights(cat, cont).batch_size(16).seed(3).build().unwrap();
        let z = gan.latent_for_step(0);
        let before = all_weights(&gan);
        let record = gan.train_step(&real, None, &z);
        (before, all_weights(&gan), record)
    };
    let moved = |before: &BTreeMap<String, Tensor>, after: &BTreeMap<String, Tensor>, name: &str| {
        (&after[name] - &before[name]).abs().max().double_value(&[]) > 0.0
    };
    let (before, after, off) = step(0.0, 0.0);
    assert!(!moved(&before, &after, "d.q.out.weight"), "weights 0: Q must not learn");
    let (before, after, on) = step(1.0, 0.1);
    assert!(moved(&before, &after, "d.q.out.weight"), "weights 1, 0.1: Q learns from the information term");
    let mi = on.mutual_information.unwrap();
    assert!(mi <= 10f64.ln() + 1e-9, "the MI lower bound is at most H(c) = ln 10: {mi}");
    assert!(on.information.unwrap() > 1.0, "an untrained Q's cross-entropy is about ln 10: {:?}", on.information);
    assert!(on.g_loss > off.g_loss, "G's loss adds the information term: {} vs {}", on.g_loss, off.g_loss);
}

#[test]
fn code_grids_and_sweeps_change_one_code_at_a_time() {
    let gan = Infogan::mnist32().networks(Networks::Dcgan).ngf(8).ndf(8).build().unwrap();
    let z = explore::with_continuous(&gan, &gan.draw_latent(3, 4), 0.0).unwrap();
    assert_eq!(z.narrow(1, 72, 2).abs().max().double_value(&[]), 0.0);
    let grid = explore::code_grid(&gan, &z, 0).unwrap();
    assert_eq!(grid.size(), [30, 1, 32, 32], "3 rows × 10 values");
    let one = gan.generate(&explore::with_code(&gan, &z.narrow(0, 2, 1), 0, 7).unwrap());
    let diff = (grid.get(2 * 10 + 7) - one.get(0)).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "row 2, column 7 is z[2] with value 7: off by {diff:e}");
    let rows = explore::sweep_rows(&gan, &z.narrow(0, 0, 1)).unwrap();
    assert_eq!(rows.size(), [10, 74], "a sweep row per categorical value");
    let sweep = explore::code_sweep(&gan, &rows, 1, -2.0, 2.0, 5).unwrap();
    assert_eq!(sweep.size(), [50, 1, 32, 32]);
    let mut end = rows.narrow(0, 3, 1).copy();
    let _ = end.narrow(1, 73, 1).fill_(2.0);
    let diff = (sweep.get(3 * 5 + 4) - gan.generate(&end).get(0)).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "row 3's last column has continuous code 1 at 2.0: off by {diff:e}");
    end = explore::with_continuous(&gan, &end, 0.5).unwrap();
    assert_eq!(end.narrow(1, 72, 2).min().double_value(&[]), 0.5);
}

#[test]
fn bad_codes_are_named_in_the_error() {
    let e = err_of(Infogan::mnist32().categorical(&[10, 1]).build());
    assert!(e.contains("categorical code 1 has 1 values"), "{e}");
    let e = err_of(Infogan::mnist32().continuous(-1).build());
    assert!(e.contains("continuous = -1"), "{e}");
    let e = err_of(Infogan::mnist32().categorical(&[]).continuous(0).build());
    assert!(e.contains("at least one"), "{e}");
    let mut big = Infogan::mnist32();
    big.model.dcgan.image_size = 64;
    let e = err_of(big.build());
    assert!(e.contains("image_size = 64") && e.contains("32×32"), "{e}");
    let gan = Infogan::mnist32().networks(Networks::Dcgan).ngf(8).ndf(8).build().unwrap();
    let z = gan.draw_latent(2, 0);
    let e = err_of(explore::with_code(&gan, &z, 0, 10));
    assert!(e.contains("value = 10") && e.contains("0..=9"), "{e}");
    let e = err_of(explore::code_grid(&gan, &z, 1));
    assert!(e.contains("categorical code 1") && e.contains("1 categorical codes"), "{e}");
    let e = err_of(explore::code_sweep(&gan, &z, 2, -2.0, 2.0, 5));
    assert!(e.contains("continuous code 2") && e.contains("2 continuous codes"), "{e}");
    let e = err_of(explore::with_continuous(&gan, &Tensor::zeros([2, 70], (Kind::Float, tch::Device::Cpu)), 0.0));
    assert!(e.contains("[rows, 74]"), "{e}");
    let e = err_of(explore::code_grid(&gan, &Tensor::zeros([2, 70], (Kind::Float, tch::Device::Cpu)), 0));
    assert!(e.contains("[rows, 74]") && e.contains("[2, 70]"), "{e}");
    let e = err_of(explore::code_sweep(&gan, &Tensor::zeros([62], (Kind::Float, tch::Device::Cpu)), 0, -2.0, 2.0, 5));
    assert!(e.contains("[rows, 74]"), "{e}");
    let dcgan = Dcgan::mnist32().build().unwrap();
    let e = err_of(explore::code_grid(&dcgan, &dcgan.draw_latent(1, 0), 0));
    assert!(e.contains("0 categorical codes"), "{e}");
}

#[test]
fn infogan_training_is_deterministic_records_the_information_and_keeps_its_codes() {
    let data = small_data();
    let run = || {
        Infogan::mnist32().networks(Networks::Dcgan).ngf(8).ndf(8).steps(3).batch_size(16).seed(5).train(&data).unwrap()
    };
    let (a, b) = (run(), run());
    for (k, v) in all_weights(&a) {
        assert!(v.equal(&all_weights(&b)[&k]), "{k} differs between two runs with one seed");
    }
    assert!(a.history.steps.iter().all(|r| r.information.is_some() && r.mutual_information.is_some()));
    let dir = tempfile::tempdir().unwrap();
    gan_lab::builders::save_run(&a, dir.path()).unwrap();
    for f in ["code_grid.png", "continuous_0.png", "continuous_1.png"] {
        assert!(dir.path().join(f).is_file(), "{f} is written beside the samples");
    }
    let e = err_of(Dcgan::from_checkpoint(dir.path().join("checkpoint")));
    assert!(e.contains("infogan") && e.contains("not a dcgan"), "{e}");
    let back = Infogan::from_checkpoint(dir.path().join("checkpoint")).unwrap().build().unwrap();
    assert_eq!(back.codes, a.codes);
    let z = a.draw_latent(2, 9);
    assert!(explore::code_grid(&back, &z, 0).unwrap().equal(&explore::code_grid(&a, &z, 0).unwrap()));
    checkpoint::save(&a, &dir.path().join("again")).unwrap();
}

#[test]
fn the_assignment_is_the_best_of_all_permutations() {
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }
    for trial in 0..20u64 {
        let n = 2 + (trial % 6) as usize;
        let m = with_seed(100 + trial, || tch::Tensor::rand([n as i64, n as i64], (Kind::Double, tch::Device::Cpu)));
        let score: Vec<Vec<f64>> = (0..n).map(|i| common::values(&m.get(i as i64))).collect();
        let total = |cols: &[usize]| cols.iter().enumerate().map(|(i, &j)| score[i][j]).sum::<f64>();
        let best = permutations(n).iter().map(|p| total(p)).fold(f64::NEG_INFINITY, f64::max);
        let got = assignment(&score);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "one column per row");
        assert!((total(&got) - best).abs() < 1e-12, "{n}×{n}: assignment scores {} of the best {best}", total(&got));
    }
    let rect = assignment(&[vec![0.0, 5.0, 1.0, 0.0], vec![4.0, 5.0, 0.0, 0.0]]);
    assert_eq!(rect, [1, 0], "2 rows, 4 columns");
}

#[test]
fn code_accuracy_maps_values_to_digits_one_to_one() {
    let ev = Evaluator::shipped().unwrap();
    let data = Dataset::mnist(Split::Test).unwrap().take(500);
    let labels = data.labels.as_ref().unwrap();
    // Code value v stands for digit (v + 3) mod 10: the assignment must undo the shift.
    let values = (labels + 7).remainder(10);
    let acc = CodeAccuracy::measure(&ev, &data.images, &values, 10).unwrap();
    assert_eq!(acc.mapping, (0..10).map(|v| (v + 3) % 10).collect::<Vec<i64>>());
    assert!(acc.overall > 0.95, "real digits under a relabelling: {}", acc.overall);
    let random = with_seed(12, || tch::Tensor::randint(10, [500], (Kind::Int64, tch::Device::Cpu)));
    let chance = CodeAccuracy::measure(&ev, &data.images, &random, 10).unwrap();
    assert!(chance.overall < 0.25, "values unrelated to the digit: {}", chance.overall);
    let e = err_of(CodeAccuracy::measure(&ev, &data.images, &values, 12));
    assert!(e.contains("12 values"), "{e}");
}
