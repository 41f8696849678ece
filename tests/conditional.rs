//! The conditional-generation lesson: the cDCGAN's layer list (RDFIA practical 3-d, section 2.2), ACGAN's class
//! head and class loss, conditional sampling and its errors, class accuracy.

mod common;
use common::{all_weights, err_of, shapes};
use gan_lab::data::{Dataset, Split};
use gan_lab::metrics::{ClassAccuracy, Evaluator};
use gan_lab::models::infogan::Networks;
use gan_lab::rng::with_seed;
use gan_lab::{checkpoint, explore, Acgan, Cdcgan, Dcgan, Infogan, Sagan, Vae};
use std::collections::BTreeMap;
use tch::{nn, Kind, Tensor};

fn small_data() -> Dataset {
    Dataset::mnist(Split::Test).unwrap().take(256)
}

#[test]
fn cdcgan_parameters_match_the_lesson_layer_list() {
    // Per layer, from the lesson's list: e.g. D's label branch conv(10 → 64, k4) with bias
    // = 10·64·16 + 64 = 10,304; G's concatenated 512 channels into convT(256, k4) = 512·256·16.
    let gan = Cdcgan::mnist32().build().unwrap();
    let (vs_g, vs_d) = (&gan.vs_g, &gan.vs_d);
    let count = |vs: &nn::VarStore| -> BTreeMap<String, i64> {
        shapes(vs).into_iter().map(|(k, s)| (k, s.iter().product())).collect()
    };
    let expected_g: BTreeMap<String, i64> = [
        ("z_convt.weight", 100 * 256 * 16),
        ("z_bn.weight", 256),
        ("z_bn.bias", 256),
        ("y_convt.weight", 10 * 256 * 16),
        ("y_bn.weight", 256),
        ("y_bn.bias", 256),
        ("convt1.weight", 512 * 256 * 16),
        ("bn1.weight", 256),
        ("bn1.bias", 256),
        ("convt2.weight", 256 * 128 * 16),
        ("bn2.weight", 128),
        ("bn2.bias", 128),
        ("convt3.weight", 128 * 16),
        ("convt3.bias", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let expected_d: BTreeMap<String, i64> = [
        ("x_conv.weight", 64 * 16),
        ("x_conv.bias", 64),
        ("y_conv.weight", 10 * 64 * 16),
        ("y_conv.bias", 64),
        ("conv1.weight", 128 * 256 * 16),
        ("bn1.weight", 256),
        ("bn1.bias", 256),
        ("conv2.weight", 256 * 512 * 16),
        ("bn2.weight", 512),
        ("bn2.bias", 512),
        ("conv3.weight", 512 * 16),
        ("conv3.bias", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(count(vs_g), expected_g, "generator parameters per layer differ from the lesson's list");
    assert_eq!(count(vs_d), expected_d, "discriminator parameters per layer differ from the lesson's list");
    assert_eq!(count(vs_g).values().sum::<i64>(), 3_075_841, "generator total");
    assert_eq!(count(vs_d).values().sum::<i64>(), 2_642_561, "discriminator total");
}

#[test]
fn acgan_appends_the_class_to_z_and_adds_a_dense_class_head() {
    let gan = Acgan::mnist32().build().unwrap();
    let g = shapes(&gan.vs_g);
    assert_eq!(g["convt1.weight"], [110, 128, 4, 4], "G's input is z (100) plus the one-hot class (10)");
    let d = shapes(&gan.vs_d);
    assert_eq!(d["conv4.weight"], [1, 128, 4, 4], "the DCGAN's real/fake head stays");
    assert_eq!(d["classify.weight"], [10, 128 * 4 * 4], "one dense layer from D's last maps to 10 class logits");
    assert_eq!(d["classify.bias"], [10]);
    let x =
        explore::class_grid(&gan, &with_seed(11, || Tensor::randn([3, 100], (Kind::Float, tch::Device::Cpu)))).unwrap();
    let judged = gan.discriminator.judge(&x, None, false);
    assert_eq!(judged.score.size(), [30]);
    assert_eq!(judged.classes.expect("class logits").size(), [30, 10]);
}

#[test]
fn the_class_loss_reaches_both_players_only_when_weighted() {
    let data = small_data();
    let (real, labels) = (data.images.narrow(0, 0, 16), data.labels.as_ref().unwrap().narrow(0, 0, 16));
    let z = with_seed(12, || Tensor::randn([16, 100], (Kind::Float, tch::Device::Cpu)));
    let step = |weight: f64| {
        let mut gan = Acgan::mnist32().class_weight(weight).seed(3).build().unwrap();
        let before = all_weights(&gan);
        let record = gan.train_step(&real, Some(&labels), &z);
        (before, all_weights(&gan), record)
    };
    let (before, off, r0) = step(0.0);
    let (_, on, r1) = step(1.0);
    let moved = |after: &BTreeMap<String, Tensor>, name: &str| {
        (&after[name] - &before[name]).abs().max().double_value(&[]) > 0.0
    };
    assert!(!moved(&off, "d.classify.weight"), "weight 0: the class head must not learn");
    assert!(moved(&on, "d.classify.weight"), "weight 1: the class loss must update D's class head");
    let g_diff = (&on["g.convt1.weight"] - &off["g.convt1.weight"]).abs().max().double_value(&[]);
    assert!(g_diff > 0.0, "the class loss must reach the generator's update");
    assert!(r1.class_loss.unwrap() > 1.0, "an untrained head's class loss is about ln 10: {:?}", r1.class_loss);
    assert!(r1.g_loss > r0.g_loss, "G's loss adds the class term: {} vs {}", r1.g_loss, r0.g_loss);
}

#[test]
fn class_grid_puts_a_class_in_each_row_and_a_noise_vector_in_each_column() {
    let gan = Cdcgan::mnist32().ngf(8).ndf(8).build().unwrap();
    let z = with_seed(13, || Tensor::randn([4, 100], (Kind::Float, tch::Device::Cpu)));
    let grid = explore::class_grid(&gan, &z).unwrap();
    assert_eq!(grid.size(), [40, 1, 32, 32]);
    let one = gan.generate_labeled(&z.get(2).unsqueeze(0), &Tensor::from_slice(&[7i64])).unwrap();
    let diff = (grid.get(7 * 4 + 2) - one.get(0)).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "row 7, column 2 is class 7 with z[2]: off by {diff:e}");
    let line = explore::class_interpolation(&gan, &z.get(0), &z.get(1), 5).unwrap();
    assert_eq!(line.size(), [50, 1, 32, 32]);
}

#[test]
fn bad_labels_and_unlabelled_data_are_named_in_the_error() {
    let gan = Cdcgan::mnist32().ngf(8).ndf(8).build().unwrap();
    let z = with_seed(14, || Tensor::randn([3, 100], (Kind::Float, tch::Device::Cpu)));
    let e = err_of(gan.generate_labeled(&z, &Tensor::from_slice(&[1i64, 10, 2])));
    assert!(e.contains("labels") && e.contains("0..=9") && e.contains("10"), "{e}");
    let e = err_of(gan.generate_labeled(&z, &Tensor::from_slice(&[-1i64, 0, 2])));
    assert!(e.contains("-1"), "{e}");
    let e = err_of(gan.generate_labeled(&z, &Tensor::from_slice(&[1i64, 2])));
    assert!(e.contains("expected 3 labels"), "{e}");
    let e = err_of(gan.generate_labeled(&z, &Tensor::from_slice(&[1.0f32, 2.0, 3.0])));
    assert!(e.contains("integer"), "{e}");
    let e = err_of(Dcgan::mnist32().build().unwrap().generate_labeled(&z, &Tensor::from_slice(&[1i64, 2, 3])));
    assert!(e.contains("not conditional"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    for i in 0..4u8 {
        image::GrayImage::from_pixel(32, 32, image::Luma([i * 60])).save(dir.path().join(format!("{i}.png"))).unwrap();
    }
    let unlabelled = Dataset::from_folder(dir.path(), 32, 1).unwrap();
    let e = err_of(Cdcgan::mnist32().ngf(8).ndf(8).batch_size(2).steps(1).train(&unlabelled));
    assert!(e.contains("no labels") && e.contains("cdcgan"), "{e}");
    let mut eleven = small_data();
    eleven.labels = Some(eleven.labels.unwrap() + 2);
    let e = err_of(Acgan::mnist32().steps(1).train(&eleven));
    assert!(e.contains("labels up to 11"), "{e}");
}

#[test]
fn conditional_training_is_deterministic_and_checkpoints_keep_the_family() {
    let data = small_data();
    let run = || Cdcgan::mnist32().ngf(8).ndf(8).steps(3).batch_size(16).seed(5).train(&data).unwrap();
    let (a, b) = (run(), run());
    for (k, v) in all_weights(&a) {
        assert!(v.equal(&all_weights(&b)[&k]), "{k} differs between two runs with one seed");
    }
    let dir = tempfile::tempdir().unwrap();
    checkpoint::save(&a, &dir.path().join("ck")).unwrap();
    let e = err_of(Dcgan::from_checkpoint(dir.path().join("ck")));
    assert!(e.contains("cdcgan") && e.contains("not a dcgan"), "{e}");
    let back = Cdcgan::from_checkpoint(dir.path().join("ck")).unwrap().build().unwrap();
    let z = with_seed(15, || Tensor::randn([2, 100], (Kind::Float, tch::Device::Cpu)));
    assert!(explore::class_grid(&back, &z).unwrap().equal(&explore::class_grid(&a, &z).unwrap()));
}

#[test]
fn class_accuracy_counts_per_requested_class() {
    let ev = Evaluator::shipped().unwrap();
    let data = Dataset::mnist(Split::Test).unwrap().take(500);
    let labels = data.labels.as_ref().unwrap();
    let right = ClassAccuracy::measure(&ev, &data.images, labels, 10);
    assert!(right.overall > 0.95, "real digits with their labels: {}", right.overall);
    let wrong = ClassAccuracy::measure(&ev, &data.images, &((labels + 1).remainder(10)), 10);
    assert!(wrong.overall < 0.05, "real digits with shifted labels: {}", wrong.overall);
    assert_eq!(wrong.per_class.len(), 10);
    let ones = labels.eq(1).to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
    let ones_right = ev.probabilities(&data.images).argmax(-1, false).eq_tensor(labels).logical_and(&labels.eq(1));
    let want = ones_right.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]) / ones;
    assert!((right.per_class[1] - want).abs() < 1e-12, "class 1: {} vs {want}", right.per_class[1]);
}

#[test]
fn the_averaged_generator_measures_its_own_batch_norm_statistics() {
    // Running statistics that belong to no weights, as the average of a run's do.
    let mut gan = Cdcgan::mnist32().ngf(8).ndf(8).seed(5).steps(0).average_generator(0.5).build().unwrap();
    let stats = |g: &gan_lab::Gan| -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = g.vs_g.variables().into_iter().filter(|(k, _)| k.contains("running_")).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let spoil = |g: &gan_lab::Gan| {
        tch::no_grad(|| {
            for (name, t) in stats(g) {
                let _ = t.shallow_clone().fill_(if name.ends_with("mean") { 3.0 } else { 50.0 });
            }
        })
    };
    let (z, labels) = (gan.draw_latent(1024, 9), gan.cycled_labels(1024));
    // How far images with the running statistics are from images with the batch's own.
    let gap = |g: &gan_lab::Gan| {
        let with_running = g.generate_labeled(&z, &labels).unwrap();
        let with_batch = tch::no_grad(|| g.generator.generate(&z, Some(&labels), true));
        (with_running - with_batch).abs().mean(Kind::Float).double_value(&[])
    };
    spoil(&gan);
    let live_gap = gap(&gan);
    assert!(live_gap > 0.02, "spoilt statistics should show in the live generator's images: {live_gap}");
    spoil(&gan);
    let spoilt = stats(&gan).into_iter().map(|(_, t)| t.copy()).collect::<Vec<_>>();
    gan.average.as_mut().unwrap().update();
    let averaged_gap = gan.with_average(|g| gap(g)).unwrap();
    assert!(averaged_gap < 0.005, "the averaged generator samples with statistics of other weights: {averaged_gap}");
    for ((name, t), before) in stats(&gan).iter().zip(&spoilt) {
        assert!(t.equal(before), "{name}: the live statistics were not put back");
    }
}

#[test]
fn the_averaged_generator_is_the_bias_corrected_moving_average_and_survives_resume() {
    let data = small_data();
    let builder = Cdcgan::mnist32().ngf(8).ndf(8).batch_size(16).seed(4).snapshot_every(0).checkpoint_every(0);
    let decay = 0.5;
    // G's weights after each of three steps, step by step, to average by hand.
    let mut gan = builder.clone().steps(0).average_generator(decay).build().unwrap();
    let name = "g.convt1.weight";
    let mut seen = Vec::new();
    for step in 1..=3 {
        gan.config.steps = step;
        gan.train(&data, |_| Ok(())).unwrap();
        seen.push(all_weights(&gan)[name].copy());
    }
    let live = all_weights(&gan)[name].copy();
    // (1 − β)(θ3 + β θ2 + β² θ1) / (1 − β³)
    let want = (&seen[2] + &seen[1] * decay + &seen[0] * (decay * decay)) * ((1.0 - decay) / (1.0 - decay.powi(3)));
    let averaged = gan.with_average(|g| all_weights(g)[name].copy()).unwrap();
    assert!(averaged.allclose(&want, 1e-6, 1e-7, false), "the average is not Σ(1 − β)β^(t−i)θi / (1 − β^t)");
    assert!(!averaged.equal(&live), "the averaged weights are the live ones");
    assert!(all_weights(&gan)[name].equal(&live), "the live weights were not put back exactly");
    // Sampling from the average differs from sampling from the live weights.
    let z = with_seed(16, || Tensor::randn([2, 100], (Kind::Float, tch::Device::Cpu)));
    let from_average = gan.with_average(|g| explore::class_grid(g, &z).unwrap()).unwrap();
    assert!(!from_average.equal(&explore::class_grid(&gan, &z).unwrap()));

    // A checkpoint holds the average: resuming in two parts gives the same average as one run.
    let dir = tempfile::tempdir().unwrap();
    let b = builder.average_generator(0.9);
    let whole = b.clone().steps(5).train(&data).unwrap();
    let part = b.clone().steps(2).out_dir(dir.path()).train(&data).unwrap();
    // The run's pictures come from the averaged generator, not the live one.
    let z = part.fixed_noise.narrow(0, 0, 8);
    let png = |images: &Tensor, name: &str| {
        let path = dir.path().join(name);
        gan_lab::viz::save_grid(images, 8, &path).unwrap();
        std::fs::read(path).unwrap()
    };
    let written = std::fs::read(dir.path().join("class_grid.png")).unwrap();
    assert_eq!(written, png(&part.with_average(|g| explore::class_grid(g, &z).unwrap()).unwrap(), "averaged.png"));
    assert_ne!(written, png(&explore::class_grid(&part, &z).unwrap(), "live.png"));
    let resumed = b.clone().steps(5).resume(dir.path().join("checkpoint")).train(&data).unwrap();
    let avg = |g: &gan_lab::Gan| g.with_average(|g| all_weights(g)[name].copy()).unwrap();
    assert!(avg(&whole).equal(&avg(&resumed)), "the average after resume differs from one run's");
    assert_eq!(resumed.average.as_ref().unwrap().updates(), 5);

    let e = err_of(Cdcgan::mnist32().average_generator(1.0).build());
    assert!(e.contains("average_generator") && e.contains("[0, 1)"), "{e}");
    // The lesson's cDCGAN keeps one by default; turned off, asking for it is a clear error.
    let default = Cdcgan::mnist32().ngf(8).ndf(8).steps(0).build().unwrap();
    assert_eq!(default.average.as_ref().map(|a| a.decay), Some(gan_lab::builders::CDCGAN_AVERAGE));
    let e =
        err_of(Cdcgan::mnist32().ngf(8).ndf(8).steps(0).average_generator(0.0).build().unwrap().with_average(|_| ()));
    assert!(e.contains("no averaged generator"), "{e}");
}

/// At 64×64 in colour (the course texts' face sets), the cDCGAN gains one block per network
/// and the label takes as many classes as the data has.
#[test]
fn cdcgan_at_64_by_64_rgb_adds_a_block_to_each_network() {
    let gan = Cdcgan::mnist32().image_size(64).channels(3).classes(2).build().unwrap();
    let g = shapes(&gan.vs_g);
    assert_eq!(g["y_convt.weight"], [2, 256, 4, 4]);
    assert_eq!(g["convt3.weight"], [128, 64, 4, 4], "the extra block, 2ngf → ngf");
    assert_eq!(g["convt4.weight"], [64, 3, 4, 4], "the image layer");
    let d = shapes(&gan.vs_d);
    assert_eq!(d["x_conv.weight"], [64, 3, 4, 4]);
    assert_eq!(d["y_conv.weight"], [64, 2, 4, 4]);
    assert_eq!(d["conv3.weight"], [512, 512, 4, 4], "the extra block, 8ndf → 8ndf");
    assert_eq!(d["conv4.weight"], [1, 512, 4, 4], "the score");
    assert_eq!(gan.sample(4, 0).size(), [4, 3, 64, 64]);
    let labels = Tensor::from_slice(&[0i64, 1, 1, 0]);
    let judged = gan.discriminator.judge(&gan.sample(4, 0), Some(&labels), false);
    assert_eq!(judged.score.size(), [4]);
    let e = err_of(Cdcgan::mnist32().image_size(48).build());
    assert!(e.contains("image_size = 48: expected 32 or 64"), "{e}");
}

/// Every family takes 64×64 colour images (the course texts' face sets): each trains a step on a
/// labelled folder of RGB pictures loaded at 64×64 and samples 64×64 RGB images.
#[test]
fn every_family_trains_at_64_by_64_rgb_on_a_labelled_folder() {
    let dir = tempfile::tempdir().unwrap();
    for (c, class) in ["frown", "smile"].iter().enumerate() {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..8u32 {
            let picture = image::RgbImage::from_fn(48, 40, |x, y| {
                image::Rgb([(x * 5) as u8, (y * 6) as u8, (i * 30 + c as u32 * 9) as u8])
            });
            picture.save(dir.path().join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let data = Dataset::from_folder(dir.path(), 64, 3).unwrap();
    assert_eq!((data.images.size(), data.classes.len()), (vec![16, 3, 64, 64], 2));
    let rgb64 = |gan: gan_lab::Gan| assert_eq!(gan.sample(2, 0).size(), [2, 3, 64, 64], "{}", gan.family);
    rgb64(Cdcgan::mnist32().image_size(64).channels(3).classes(2).steps(1).batch_size(8).train(&data).unwrap());
    rgb64(Acgan::mnist32().image_size(64).channels(3).classes(2).steps(1).batch_size(8).train(&data).unwrap());
    rgb64(
        Sagan::mnist32()
            .image_size(64)
            .channels(3)
            .classes(2)
            .steps(1)
            .batch_size(8)
            .metrics_every(0)
            .train(&data)
            .unwrap(),
    );
    rgb64(Dcgan::mnist32().image_size(64).channels(3).steps(1).batch_size(8).train(&data).unwrap());
    let infogan = Infogan::mnist32().networks(Networks::Dcgan).image_size(64).channels(3);
    rgb64(infogan.steps(1).batch_size(8).train(&data).unwrap());
    let vae = Vae::mnist32().image_size(64).channels(3).steps(1).batch_size(8).train(&data).unwrap();
    assert_eq!(vae.sample(2, 0).size(), [2, 3, 64, 64], "vae");
}
