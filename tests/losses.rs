//! The loss-families lesson: the objectives the loop reads, the critic schedule, the gradient
//! penalty, weight clipping, spectral normalisation, self-attention, the upsampling options.

mod common;
use common::{all_weights, err_of};
use gan_lab::data::{Dataset, Split};
use gan_lab::losses::{self, CriticSchedule, Objective};
use gan_lab::models::layers::{power_iteration, Norm, SelfAttention, SnConv, Upsample};
use gan_lab::optim::{OptimizerConfig, RmsPropConfig};
use gan_lab::rng::with_seed;
use gan_lab::{Dcgan, Sagan};
use std::collections::BTreeMap;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

fn small_data() -> Dataset {
    Dataset::mnist(Split::Test).unwrap().take(256)
}

#[test]
fn the_wgan_schedule_is_the_seeds() {
    let s = CriticSchedule::Wgan;
    assert_eq!((0..50).map(|g| s.updates(g)).collect::<Vec<_>>(), vec![20; 50], "20 while G has fewer than 50 updates");
    assert_eq!(s.updates(50), 5);
    assert_eq!(s.updates(498), 5);
    assert_eq!(s.updates(499), 20, "G's 500th update is preceded by 20");
    assert_eq!(s.updates(500), 5);
    assert_eq!(s.updates(999), 20);
    assert_eq!(s.updates_before(50), 1000);
    assert_eq!(s.updates_before(52), 1010);
    assert_eq!(CriticSchedule::Fixed(5).updates_before(7), 35);
}

#[test]
fn each_objective_brings_its_optimizers_and_schedule() {
    let w = Dcgan::mnist32().objective(Objective::wgan());
    assert_eq!(w.train.optimizer_d, OptimizerConfig::RmsProp(RmsPropConfig { lr: 5e-5, alpha: 0.99, eps: 1e-8 }));
    assert_eq!(w.train.n_critic, CriticSchedule::Wgan);
    assert_eq!(w.train.objective, Objective::Wasserstein { clip: 0.01 });
    let gp = Dcgan::mnist32().objective(Objective::wgan_gp());
    let OptimizerConfig::Adam(adam) = gp.train.optimizer_d else { panic!("WGAN-GP uses Adam") };
    assert_eq!((adam.lr, adam.beta1, adam.beta2), (1e-4, 0.0, 0.9));
    assert_eq!(gp.train.n_critic, CriticSchedule::Fixed(5));
    assert_eq!(gp.model.norm, Norm::Layer, "the WGAN-GP critic drops BatchNorm");
    let critic: Vec<String> =
        gp.build().unwrap().vs_d.variables().into_keys().filter(|n| !n.starts_with("conv")).collect();
    assert!(
        critic.len() == 6 && critic.iter().all(|n| n.starts_with("ln")),
        "LayerNorm in BatchNorm's place: {critic:?}"
    );
    let ls = Dcgan::mnist32().objective(Objective::LeastSquares);
    assert_eq!(ls.train.optimizer_g, Dcgan::mnist32().train.optimizer_g, "LSGAN trains as the DCGAN");
    let sagan = Sagan::mnist32();
    assert_eq!(sagan.train.optimizer_g.lr(), 1e-4, "TTUR: G 1e-4");
    assert_eq!(sagan.train.optimizer_d.lr(), 4e-4, "TTUR: D 4e-4");
    assert_eq!(sagan.train.metrics_every, 500, "the IISc final project tracks FID every 500 iterations");
}

#[test]
fn channels_last_puts_both_networks_in_that_layout_and_a_layernorm_critic_trains_as_in_nchw() {
    // A 4-D weight is channels-last when its input channels are the innermost dimension (one
    // input channel too: then libtorch's convolution answers channels-last as well).
    let channels_last = |vs: &nn::VarStore, name: &str| vs.variables()[name].stride()[1] == 1;
    let gp = || Dcgan::mnist32().ngf(8).ndf(16).objective(Objective::wgan_gp()).batch_size(16).seed(2).steps(3);
    let built = gp().build().unwrap();
    // The fast backend's layout; stock libtorch (GAN_LAB_BACKEND=libtorch) keeps libtorch's.
    let fast = gan_lab::backend::fast();
    for name in ["conv1.weight", "conv2.weight"] {
        assert_eq!(
            channels_last(&built.vs_d, name),
            fast,
            "LayerNorm critic: {name} channels-last on the fast backend"
        );
    }
    assert_eq!(channels_last(&built.vs_g, "convt2.weight"), fast, "its generator too");
    let off = Dcgan::mnist32().channels_last(false).build().unwrap();
    assert!(!channels_last(&off.vs_d, "conv2.weight") && !channels_last(&off.vs_g, "convt2.weight"));

    // Same run in both layouts: the same losses up to float rounding.
    let data = small_data();
    let (cl, nchw) = (gp().train(&data).unwrap(), gp().channels_last(false).train(&data).unwrap());
    for (a, b) in cl.history.steps.iter().zip(&nchw.history.steps) {
        for (what, x, y) in [("D loss", a.d_loss, b.d_loss), ("penalty", a.penalty.unwrap(), b.penalty.unwrap())] {
            let diff = (x - y).abs() / y.abs().max(1.0);
            assert!(diff < 1e-4, "step {}: {what} {x} channels-last, {y} NCHW", a.step);
        }
    }
    // Adam moves each weight by about its learning rate (1e-4) a step whatever the gradient's size,
    // so rounding can flip a few updates where the gradient is near 0, but not many.
    let (w_cl, w_nchw) = (all_weights(&cl), all_weights(&nchw));
    for (name, w) in &w_cl {
        let far = (w - &w_nchw[name]).abs().gt(2e-5).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!(far < 0.01, "{name}: {:.1}% of its values differ by more than 2e-5 between the layouts", 100.0 * far);
    }
}

#[test]
fn the_loop_does_n_critic_updates_per_generator_update_and_clips() {
    let data = small_data();
    let gan = Dcgan::mnist32()
        .ngf(8)
        .ndf(8)
        .objective(Objective::wgan())
        .n_critic(CriticSchedule::Fixed(3))
        .batch_size(16)
        .steps(4)
        .train(&data)
        .unwrap();
    assert_eq!((gan.opt_d.steps(), gan.opt_g.steps()), (12, 4), "3 critic updates per generator update");
    for (name, w) in gan.vs_d.variables() {
        let m = w.abs().max().double_value(&[]);
        if !name.contains("running") {
            assert!(m <= 0.01 + 1e-7, "{name}: |w| up to {m}, beyond the clip 0.01");
        }
    }
    assert!(gan.history.steps.iter().all(|r| r.wasserstein.is_some()), "the W estimate is recorded");
}

#[test]
fn resume_with_several_critic_updates_matches_one_run() {
    let data = small_data();
    let dir = tempfile::tempdir().unwrap();
    let b = || Dcgan::mnist32().ngf(8).ndf(8).objective(Objective::wgan_gp()).batch_size(16).seed(4);
    let whole = b().steps(4).train(&data).unwrap();
    b().steps(2).out_dir(dir.path()).train(&data).unwrap();
    let resumed = b().steps(4).resume(dir.path().join("checkpoint")).train(&data).unwrap();
    let (w1, w2) = (all_weights(&whole), all_weights(&resumed));
    for (k, v) in &w1 {
        assert!(v.equal(&w2[k]), "{k} differs after resuming a WGAN-GP run");
    }
    assert_eq!(whole.history, resumed.history);
    assert!(whole.history.steps.iter().all(|r| r.penalty.is_some()));
}

#[test]
fn every_objective_trains_a_few_steps_to_finite_losses() {
    let data = small_data();
    for objective in
        [Objective::LeastSquares, Objective::wgan(), Objective::wgan_gp(), Objective::Hinge, Objective::Saturating]
    {
        let gan = Dcgan::mnist32()
            .ngf(8)
            .ndf(8)
            .objective(objective)
            .n_critic(CriticSchedule::Fixed(2))
            .batch_size(16)
            .steps(3);
        let gan = gan.train(&data).unwrap();
        let r = gan.history.last().unwrap();
        assert!(r.d_loss.is_finite() && r.g_loss.is_finite(), "{objective:?}: {r:?}");
    }
    let sagan = Sagan::mnist32().batch_size(16).steps(2).train(&data).unwrap();
    assert!(sagan.history.last().unwrap().penalty.is_some());
    // A channels-last LayerNorm discriminator: the fused LayerNorm on channels-last maps, under a penalty.
    let mut layer_norm = Sagan::mnist32().batch_size(16).steps(2);
    layer_norm.model.d_norm = Norm::Layer;
    let layer_norm = layer_norm.train(&data).unwrap();
    assert!(layer_norm.config.channels_last, "SAGAN's discriminator runs channels-last");
    let r = layer_norm.history.last().unwrap();
    assert!(r.d_loss.is_finite() && r.g_loss.is_finite() && r.penalty.is_some_and(f64::is_finite), "{r:?}");
}

/// The conditional SAGAN (IISc final project): G's label embedding and D's projection are the
/// only parameters beyond the unconditional networks (G's first layer wider by the embedding);
/// the label changes both G's image and D's score; it trains under the penalty with labels.
#[test]
fn the_conditional_sagan_embeds_the_label_in_g_and_projects_it_in_d() {
    let plain = Sagan::mnist32().build().unwrap();
    let gan = Sagan::mnist32().classes(10).build().unwrap();
    let (g, d) = (common::shapes(&gan.vs_g), common::shapes(&gan.vs_d));
    assert_eq!(g["embed.weight"], [10, gan_lab::models::sagan::LABEL_EMBEDDING]);
    assert_eq!(g["convt1.weight"], [100 + gan_lab::models::sagan::LABEL_EMBEDDING, 128, 4, 4]);
    assert_eq!(d["embed.weight"], [10, 128]);
    let (mut g_plain, mut d_plain) = (common::shapes(&plain.vs_g), common::shapes(&plain.vs_d));
    g_plain.insert("embed.weight".into(), g["embed.weight"].clone());
    g_plain.insert("convt1.weight".into(), g["convt1.weight"].clone());
    d_plain.insert("embed.weight".into(), d["embed.weight"].clone());
    assert_eq!((g, d), (g_plain, d_plain), "nothing else differs from the unconditional SAGAN");
    let z = gan.draw_latent(4, 1);
    let (three, seven) = (Tensor::from_slice(&[3i64; 4]), Tensor::from_slice(&[7i64; 4]));
    let (x3, x7) = (gan.generate_labeled(&z, &three).unwrap(), gan.generate_labeled(&z, &seven).unwrap());
    assert!((&x3 - &x7).abs().max().double_value(&[]) > 1e-4, "the label reaches G's image");
    let judge = |labels: &Tensor| tch::no_grad(|| gan.discriminator.judge(&x3, Some(labels), false).score);
    let gap = (judge(&three) - judge(&seven)).abs().max().double_value(&[]);
    assert!(gap > 1e-4, "the label reaches D's score: {gap}");
    let trained = Sagan::mnist32().classes(10).batch_size(16).steps(2).train(&small_data()).unwrap();
    let r = trained.history.last().unwrap();
    assert!(r.d_loss.is_finite() && r.g_loss.is_finite() && r.penalty.is_some_and(f64::is_finite), "{r:?}");
    assert!(err_of(Sagan::mnist32().classes(1).build()).contains("classes = 1: expected 2 or more"));
}

/// The lesson's look at SAGAN's attention: the map of the call just made (one row of weights per
/// position, each summing to 1), the γ the blocks hold, the conditional networks' blocks reached
/// through their wrappers, and a clear error for a family without attention.
#[test]
fn the_sagan_attention_map_and_gammas_are_the_ones_the_networks_use() {
    let gan = Sagan::mnist32().build().unwrap();
    let (images, beta) = gan_lab::explore::attention(&gan, &gan.draw_latent(4, 1)).unwrap();
    assert_eq!((images.size(), beta.size()), (vec![4, 1, 32, 32], vec![4, 256, 256]), "G attends at 16×16");
    let sums = beta.sum_dim_intlist(2, false, Kind::Float);
    assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5, "each position's weights sum to 1");
    let (_, beta2) = gan_lab::explore::attention(&gan, &gan.draw_latent(2, 9)).unwrap();
    assert_eq!(beta2.size()[0], 2, "the map of this call, not a stale one");
    tch::no_grad(|| {
        let _ = gan.vs_g.variables()["attention.gamma"].shallow_clone().fill_(0.25);
        let _ = gan.vs_d.variables()["attention.gamma"].shallow_clone().fill_(-0.5);
    });
    assert_eq!(gan_lab::explore::attention_gammas(&gan), Some((0.25, -0.5)));
    let conditional = Sagan::mnist32().classes(10).build().unwrap();
    assert_eq!(gan_lab::explore::attention_gammas(&conditional), Some((0.0, 0.0)), "both start at 0");
    assert_eq!(gan_lab::explore::attention(&conditional, &conditional.draw_latent(3, 1)).unwrap().1.size()[0], 3);
    let dcgan = Dcgan::mnist32().build().unwrap();
    let e = gan_lab::explore::attention(&dcgan, &dcgan.draw_latent(2, 1)).unwrap_err().to_string();
    assert!(e.contains("this dcgan has no self-attention block"), "{e}");
    assert!(gan_lab::notebook::attention(&dcgan, 1).is_err() && gan_lab::explore::attention_gammas(&dcgan).is_none());
    assert!(gan_lab::notebook::attention(&gan, 1).unwrap().html().contains("G: +0.2500"));
}

/// SAGAN at 64×64 in colour (the IISc final project's conditional SAGAN is 64×64): one more block
/// in each network, as the DCGAN's, the attention where the maps are 16×16, the projection as wide
/// as D's last block; it trains, conditional, on colour images.
#[test]
fn sagan_at_64_by_64_rgb_adds_a_block_to_each_network() {
    let gan = Sagan::mnist32().image_size(64).channels(3).classes(2).build().unwrap();
    let (g, d) = (common::shapes(&gan.vs_g), common::shapes(&gan.vs_d));
    assert_eq!(g["convt1.weight"], [100 + gan_lab::models::sagan::LABEL_EMBEDDING, 256, 4, 4], "8ngf at 4×4");
    assert_eq!(g["convt4.weight"], [64, 32, 4, 4], "the extra block, 2ngf → ngf");
    assert_eq!(g["convt5.weight"], [32, 3, 4, 4], "the image layer");
    assert_eq!(g["attention.v.weight"], [64, 8, 1, 1], "G's attention follows the 16×16 block (2ngf)");
    assert_eq!(d["conv4.weight"], [256, 128, 4, 4], "the extra block, 4ndf → 8ndf");
    assert_eq!(d["conv5.weight"], [1, 256, 4, 4], "the score");
    assert_eq!(d["attention.v.weight"], [64, 8, 1, 1], "D's attention follows its 16×16 block (2ndf)");
    assert_eq!(d["embed.weight"], [2, 256], "the projection is as wide as D's last block");
    assert_eq!(gan.sample(4, 0).size(), [4, 3, 64, 64]);
    let (_, beta) = gan_lab::explore::attention(&gan, &gan.draw_latent(2, 1)).unwrap();
    assert_eq!(beta.size(), [2, 256, 256]);
    let faces = Dataset {
        name: "faces".into(),
        images: gan_lab::rng::with_seed(5, || Tensor::rand([32, 3, 64, 64], (Kind::Float, tch::Device::Cpu))) * 2.0
            - 1.0,
        labels: Some(Tensor::arange(32, (Kind::Int64, tch::Device::Cpu)).remainder(2)),
        classes: vec!["no".into(), "yes".into()],
    };
    let trained = Sagan::mnist32()
        .image_size(64)
        .channels(3)
        .classes(2)
        .batch_size(8)
        .steps(2)
        .metrics_every(0)
        .train(&faces)
        .unwrap();
    let r = trained.history.last().unwrap();
    assert!(r.d_loss.is_finite() && r.g_loss.is_finite() && r.penalty.is_some_and(f64::is_finite), "{r:?}");
    let e = err_of(Sagan::mnist32().image_size(48).build());
    assert!(e.contains("image_size = 48: expected 32 or 64"), "{e}");
}

/// A linear critic f(x) = Σ w·x, as a closure over its weight.
fn linear_critic(w: &Tensor) -> impl Fn(&Tensor) -> Tensor + '_ {
    move |x: &Tensor| (x * w).flatten(1, -1).sum_dim_intlist(1, false, Kind::Float)
}

#[test]
fn gradient_penalty_is_zero_for_a_1_lipschitz_linear_critic_and_reaches_the_weights() {
    let real = with_seed(11, || Tensor::randn([8, 1, 4, 4], (Kind::Float, Device::Cpu)));
    let fake = with_seed(12, || Tensor::randn([8, 1, 4, 4], (Kind::Float, Device::Cpu)));
    let alpha = with_seed(13, || Tensor::rand([8, 1, 1, 1], (Kind::Float, Device::Cpu)));
    let dir = with_seed(14, || Tensor::randn([1, 1, 4, 4], (Kind::Float, Device::Cpu)));
    let unit = (&dir / dir.norm()).set_requires_grad(true);
    let gp = losses::gradient_penalty(&linear_critic(&unit), &real, &fake, &alpha, 10.0).double_value(&[]);
    assert!(gp.abs() < 1e-8, "‖∇f‖ = 1 everywhere: penalty {gp:e}");
    // ‖w‖ = 2: penalty λ(2 − 1)² = 10, and d/dw = 2λ(‖w‖ − 1) w/‖w‖ = 10·w.
    let w = (&dir / dir.norm() * 2.0).set_requires_grad(true);
    let gp = losses::gradient_penalty(&linear_critic(&w), &real, &fake, &alpha, 10.0);
    assert!((gp.double_value(&[]) - 10.0).abs() < 1e-4, "penalty {}", gp.double_value(&[]));
    gp.backward();
    let diff = (w.grad() - &w * 10.0).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "the penalty's gradient must reach the critic's weights (create_graph); off by {diff:e}");
}

#[test]
fn spectral_norm_matches_the_largest_singular_value() {
    // Seeded: with unseeded weights the gap between the two largest singular values varied from
    // run to run, and so did how far 50 iterations got.
    let vs = nn::VarStore::new(Device::Cpu);
    let conv = with_seed(16, || SnConv::new(&(vs.root() / "c"), 6, 10, 3, 1, 1, false, true));
    let sn = conv.spectral_norm();
    let w = sn.matrix().detach();
    let singular = w.svd(true, true).1;
    let svd = singular.double_value(&[0]);
    let gap = singular.double_value(&[1]) / svd;
    let mut u = sn.u.copy();
    let mut sigma = 0.0;
    // The error shrinks like gap^(2k); enough iterations to reach 1e-6 at this gap.
    let iterations = (6.0 * std::f64::consts::LN_10 / (-2.0 * gap.ln())).ceil() as usize + 10;
    for _ in 0..iterations {
        let (next, _, s) = power_iteration(&w, &u);
        u = next;
        sigma = s.double_value(&[]);
    }
    assert!(
        (sigma - svd).abs() < 1e-4 * svd,
        "power iteration σ {sigma} vs SVD {svd} ({iterations} iterations, σ₂/σ₁ {gap:.3})"
    );
    // The persistent vector converges over training forward passes; the normalised weight then
    // has spectral norm 1.
    let x = with_seed(15, || Tensor::randn([2, 6, 5, 5], (Kind::Float, Device::Cpu)));
    for _ in 0..iterations {
        let _ = conv.forward_t(&x, true);
    }
    let normalised = sn.normalized(false).detach().flatten(1, -1);
    let top = normalised.svd(true, true).1.double_value(&[0]);
    assert!((top - 1.0).abs() < 1e-3, "σ(W / σ) = {top}");
    assert!(vs.variables().contains_key("c.sn_u") && vs.trainable_variables().len() == 2, "u is kept, not trained");
}

#[test]
fn self_attention_starts_as_the_identity_and_attends_over_positions() {
    let vs = nn::VarStore::new(Device::Cpu);
    let a = with_seed(15, || SelfAttention::new(&vs.root(), 16));
    let x = with_seed(16, || Tensor::randn([2, 16, 4, 4], (Kind::Float, Device::Cpu)));
    assert!(a.forward(&x).equal(&x), "γ starts at 0: the block is the identity");
    let beta = a.attention_map(&x);
    assert_eq!(beta.size(), [2, 16, 16]);
    let rows = beta.sum_dim_intlist(-1, false, Kind::Float);
    assert!((rows - 1.0).abs().max().double_value(&[]) < 1e-5, "each output position's weights sum to 1");
    let _ = tch::no_grad(|| a.gamma.shallow_clone().fill_(0.5));
    let y = a.forward(&x);
    assert!((y - &x).abs().max().double_value(&[]) > 0.0, "γ ≠ 0 adds the attended features");
    let shapes: BTreeMap<_, _> = vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect();
    assert_eq!(shapes["f.weight"], [2, 16, 1, 1], "f projects to C/8");
    assert_eq!(shapes["v.weight"], [16, 2, 1, 1], "v projects back to C");
}

#[test]
fn upsampling_options_build_32x32_generators() {
    let names = |vs: &nn::VarStore| vs.variables().into_keys().collect::<std::collections::BTreeSet<_>>();
    let lesson = names(&Dcgan::mnist32().build().unwrap().vs_g);
    assert!(lesson.contains("bn1.running_mean") && lesson.contains("convt4.weight"), "{lesson:?}");
    for up in [Upsample::TransposedConv, Upsample::NearestConv, Upsample::BilinearConv] {
        let gan = Dcgan::mnist32().upsample(up).build().unwrap();
        // Built from the lesson's generator, with the same names, and nothing left over.
        assert_eq!(names(&gan.vs_g), lesson, "{up:?}");
        let x = gan.generate(&with_seed(17, || Tensor::randn([3, 100], (Kind::Float, Device::Cpu))));
        assert_eq!(x.size(), [3, 1, 32, 32], "{up:?}");
        let w = gan.vs_g.variables()["convt2.weight"].size();
        let expected = if up == Upsample::TransposedConv { vec![128, 64, 4, 4] } else { vec![64, 128, 3, 3] };
        assert_eq!(
            w, expected,
            "{up:?}: convt2 doubles the side with a k4 transposed conv or a k3 conv after a resize"
        );
    }
}

#[test]
fn bad_loss_settings_are_named() {
    let data = small_data();
    let e = err_of(Dcgan::mnist32().objective(Objective::Wasserstein { clip: 0.0 }).steps(1).train(&data));
    assert!(e.contains("clip = 0"), "{e}");
    let e = err_of(Dcgan::mnist32().n_critic(CriticSchedule::Fixed(0)).steps(1).train(&data));
    assert!(e.contains("n_critic = 0"), "{e}");
    let e = err_of(Sagan::mnist32().attention_at(32).build());
    assert!(e.contains("attention_at = 32: expected one of [4, 8, 16]"), "{e}");
    let e = err_of(Sagan::mnist32().image_size(64).attention_at(64).build());
    assert!(e.contains("attention_at = 64: expected one of [4, 8, 16, 32]"), "{e}");
    assert!(Sagan::mnist32().image_size(64).attention_at(32).build().is_ok(), "at 64×64, G has 32×32 maps");
}

#[test]
fn the_toy_example_shows_the_checkerboard_of_transposed_convolution() {
    use gan_lab::models::layers::toy_upsampling;
    let (ct, y) = toy_upsampling(Upsample::TransposedConv);
    assert_eq!(ct.size(), [10, 5]);
    // Stride 2: outputs alternate between one and two kernel taps, so a smooth ramp comes out
    // jagged: y = (0.3, 0.533, 0.233, 0.4, 0.167, 0.267, 0.1, 0.133, 0.033, 0.033).
    let want = [0.9, 1.6, 0.7, 1.2, 0.5, 0.8, 0.3, 0.4, 0.1, 0.1].map(|v| v / 3.0);
    let got = Vec::<f64>::try_from(&y).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "transposed conv: {got:?}");
    }
    let taps: Vec<f64> = Vec::<f64>::try_from(ct.sum_dim_intlist(1, false, Kind::Double)).unwrap();
    assert!(taps.windows(2).any(|p| (p[0] - p[1]).abs() > 0.3), "rows of Cᵀ differ in weight: {taps:?}");
    for kind in [Upsample::NearestConv, Upsample::BilinearConv] {
        let (ct, y) = toy_upsampling(kind);
        let taps: Vec<f64> = Vec::<f64>::try_from(ct.sum_dim_intlist(1, false, Kind::Double)).unwrap();
        // Every inner row of Cᵀ sums to 1: no checkerboard, only the borders lose weight to the padding.
        for t in &taps[1..9] {
            assert!((t - 1.0).abs() < 1e-12, "{kind:?}: inner rows of Cᵀ sum to 1: {taps:?}");
        }
        let y = Vec::<f64>::try_from(&y).unwrap();
        assert!(y[1..9].windows(2).all(|p| p[1] <= p[0] + 1e-12), "{kind:?}: the ramp stays monotone inside: {y:?}");
    }
}
