//! Parity with PyTorch: the same weights and inputs through the lesson's DCGAN written in Python
//! torch (tests/reference/dcgan_reference.py: Sigmoid + nn.BCELoss + torch.optim.Adam) give the
//! same G and D outputs, weights after one training step and losses over three steps, within 1e-5;
//! and in bfloat16, gan_lab's `bf16` training steps are PyTorch's under `torch.autocast("cpu")`.

use gan_lab::backend::perf::{batch_layout, with_bf16};
use gan_lab::checkpoint::{variables, write_tensors};
use gan_lab::data::{Dataset, Split};
use gan_lab::rng::with_seed;
use gan_lab::Dcgan;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use tch::{Kind, Tensor};

fn python() -> String {
    std::env::var("GAN_LAB_PYTHON").expect("GAN_LAB_PYTHON (set by .cargo/config.toml or scripts/setup.sh)")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// |gan_lab − PyTorch| per compared quantity: the first forward passes, the losses of three
/// training steps, and every weight and statistic after the first; `bf16` runs both sides'
/// forward passes in bfloat16. Also returns how far the first step moved G's first weight and
/// the share of weight elements that differ by more than 1e-5 after it.
fn differences(bf16: bool, precision: &str) -> (Vec<(String, f64)>, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut gan = Dcgan::mnist32().seed(11).bf16(bf16).build().unwrap();
    // Trained as gan_lab trains: channels-last weights and batch (the default).
    assert!(gan.config.channels_last);
    write_tensors(&variables(&gan.vs_g), &dir.path().join("generator.safetensors")).unwrap();
    write_tensors(&variables(&gan.vs_d), &dir.path().join("discriminator.safetensors")).unwrap();
    let x = Dataset::mnist(Split::Test).unwrap().take(32).images;
    let z = with_seed(4, || Tensor::randn([32, 100], (Kind::Float, tch::Device::Cpu)));
    Tensor::write_safetensors(&[("x", &x), ("z", &z)], dir.path().join("inputs.safetensors")).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/dcgan_reference.py");
    let out =
        Command::new(python()).arg(&script).arg(dir.path()).arg(precision).output().expect("run the PyTorch reference");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("reference.safetensors")).unwrap().into_iter().collect();

    // gan_lab's side takes the batch in its training layout (channels-last on the fast backend).
    let x = batch_layout(x, gan.config.channels_last);
    // Forward passes in training mode (batch statistics), before any update.
    let (fake, d_real, d_fake) = with_bf16(bf16, || {
        let fake = gan.generator.generate(&z, None, true).detach();
        let d_real = gan.discriminator.score(&x, None, true).sigmoid().detach();
        let d_fake = gan.discriminator.score(&fake, None, true).sigmoid().detach();
        (fake, d_real, d_fake)
    });
    let (fake, d_real, d_fake) = (fake.to_kind(Kind::Float), d_real.to_kind(Kind::Float), d_fake.to_kind(Kind::Float));
    // Those D passes moved BatchNorm's running statistics: start the step from the saved state.
    gan.vs_d.load(dir.path().join("discriminator.safetensors")).unwrap();
    gan.vs_g.load(dir.path().join("generator.safetensors")).unwrap();
    let mut report: Vec<(String, f64)> = vec![
        ("fake".into(), max_abs_diff(&fake, &reference["fake"])),
        ("d_real".into(), max_abs_diff(&d_real, &reference["d_real"])),
        ("d_fake".into(), max_abs_diff(&d_fake, &reference["d_fake"])),
    ];
    let record = gan.train_step(&x, None, &z);
    report.push(("d_loss.0".into(), (record.d_loss - reference["d_loss.0"].double_value(&[0])).abs()));
    report.push(("g_loss.0".into(), (record.g_loss - reference["g_loss.0"].double_value(&[0])).abs()));
    let (mut compared, mut elements, mut off) = (0, 0, 0);
    for (prefix, vs) in [("generator.", &gan.vs_g), ("discriminator.", &gan.vs_d)] {
        for (name, value) in vs.variables() {
            let key = format!("{prefix}{name}");
            let expected = reference.get(&key).unwrap_or_else(|| panic!("reference lacks {key}"));
            report.push((key.clone(), max_abs_diff(&value, expected)));
            compared += 1;
            elements += value.numel();
            off += (&value - expected).abs().gt(1e-5).sum(Kind::Int64).int64_value(&[]) as usize;
        }
    }
    assert_eq!(compared, 16 + 16, "weights, BN affine and running statistics of both networks");
    let before: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("generator.safetensors")).unwrap().into_iter().collect();
    let moved = max_abs_diff(&before["convt1.weight"], &gan.vs_g.variables()["convt1.weight"]);
    // Two more steps: Adam's first update is lr·sign(grad) whatever its betas; the losses of the
    // later steps check the moment estimates.
    for step in 1..3 {
        let record = gan.train_step(&x, None, &z);
        for (name, value) in [("d_loss", record.d_loss), ("g_loss", record.g_loss)] {
            let key = format!("{name}.{step}");
            report.push((key.clone(), (value - reference[&key].double_value(&[0])).abs()));
        }
    }
    (report, moved, off as f64 / elements as f64)
}

fn worst(report: &[(String, f64)]) -> (String, f64) {
    report.iter().cloned().fold((String::new(), 0.0), |a, b| if b.1 > a.1 { b } else { a })
}

#[test]
fn training_steps_match_pytorch() {
    let (report, moved, _) = differences(false, "fp32");
    let (name, diff) = worst(&report);
    eprintln!("parity with PyTorch: worst |difference| {diff:.2e} ({name})");
    for (name, diff) in &report {
        assert!(*diff < 1e-5, "{name}: |gan_lab - PyTorch| = {diff:e}");
    }
    // The step really moved the weights, so matching after it means something.
    assert!(moved > 1e-5, "one step moved convt1 by {moved}");
}

#[test]
fn bf16_training_steps_match_pytorch_autocast() {
    if !gan_lab::backend::perf::bf16_supported() {
        eprintln!("skipped: this CPU has no avx512_bf16");
        return;
    }
    // The same operations in the same precision: G's forward pass and D's on the fakes are bit for
    // bit PyTorch's (with `prelu` for LeakyReLU, whose slope autocast rounds to 0.2002, D's were
    // not). D's probability on the real batch may differ by a bfloat16 step (2⁻⁸ in [0.5, 1)),
    // which its BatchNorm statistics show too; the losses by a few 1e-3.
    let (report, _, off) = differences(true, "bf16");
    let (name, diff) = worst(&report);
    eprintln!("bf16 parity with PyTorch autocast: worst |difference| {diff:.2e} ({name}); {:.3}% of weights differ after one step", 100.0 * off);
    let value = |key: &str| report.iter().find(|(k, _)| k == key).unwrap().1;
    assert!(value("fake") < 1e-6, "fake: |gan_lab - PyTorch| = {:e}", value("fake"));
    assert!(value("d_fake") < 1e-6, "d_fake: |gan_lab - PyTorch| = {:e}", value("d_fake"));
    assert!(value("d_real") < 8e-3, "d_real: |gan_lab - PyTorch| = {:e}", value("d_real"));
    for step in 0..3 {
        for key in [format!("d_loss.{step}"), format!("g_loss.{step}")] {
            assert!(value(&key) < 5e-3, "{key}: |gan_lab - PyTorch| = {:e}", value(&key));
        }
    }
    // Adam's first step is ±lr per weight: a weight differs only where a gradient near zero took
    // the other sign (about 1.5% of them here; 3% against float32).
    assert!(off < 0.05, "{:.2}% of the weights differ from PyTorch's after one step", 100.0 * off);

    // Against the float32 reference the same run is far off: bfloat16 really is on.
    let (against_fp32, _, off32) = differences(true, "fp32");
    let fake32 = against_fp32.iter().find(|(k, _)| k == "fake").unwrap().1;
    eprintln!("bf16 gan_lab vs float32 PyTorch: fake off by {fake32:.2e}; {:.3}% of weights differ", 100.0 * off32);
    assert!(fake32 > 1e-3, "bf16 gan_lab's fakes are float32 PyTorch's ({fake32:e}): is bf16 on?");
}
