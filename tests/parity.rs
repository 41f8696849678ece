//! Parity with PyTorch: the same weights and inputs through the lesson's DCGAN written in Python
//! torch (tests/reference/dcgan_reference.py: Sigmoid + nn.BCELoss + torch.optim.Adam) give the
//! same G and D outputs, weights after one training step and losses over three steps, within 1e-5.

use gan_lab::data::{Dataset, Split};
use gan_lab::perf::{channels_last, variables, write_tensors};
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

#[test]
fn training_steps_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let mut gan = Dcgan::mnist32().seed(11).build().unwrap();
    // Trained as gan_lab trains: channels-last weights and batch (the default).
    assert!(gan.config.channels_last);
    write_tensors(&variables(&gan.vs_g), &dir.path().join("generator.safetensors")).unwrap();
    write_tensors(&variables(&gan.vs_d), &dir.path().join("discriminator.safetensors")).unwrap();
    let x = Dataset::mnist(Split::Test).unwrap().take(32).images;
    tch::manual_seed(4);
    let z = Tensor::randn([32, 100], (Kind::Float, tch::Device::Cpu));
    Tensor::write_safetensors(&[("x", &x), ("z", &z)], dir.path().join("inputs.safetensors")).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/dcgan_reference.py");
    let out = Command::new(python()).arg(&script).arg(dir.path()).output().expect("run the PyTorch reference");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let reference: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("reference.safetensors")).unwrap().into_iter().collect();

    // gan_lab's side takes the batch in its training layout.
    let x = channels_last(&x);
    // Forward passes in training mode (batch statistics), before any update.
    let fake = gan.generator.generate(&z, None, true).detach();
    let d_real = gan.discriminator.score(&x, None, true).sigmoid().detach();
    let d_fake = gan.discriminator.score(&fake, None, true).sigmoid().detach();
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
    let mut compared = 0;
    for (prefix, vs) in [("generator.", &gan.vs_g), ("discriminator.", &gan.vs_d)] {
        for (name, value) in vs.variables() {
            let key = format!("{prefix}{name}");
            let expected = reference.get(&key).unwrap_or_else(|| panic!("reference lacks {key}"));
            report.push((key.clone(), max_abs_diff(&value, expected)));
            compared += 1;
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
    let worst = report.iter().cloned().fold((String::new(), 0.0), |a, b| if b.1 > a.1 { b } else { a });
    eprintln!("parity with PyTorch: worst |difference| {:.2e} ({})", worst.1, worst.0);
    for (name, diff) in &report {
        assert!(*diff < 1e-5, "{name}: |gan_lab - PyTorch| = {diff:e}");
    }
    // The step really moved the weights, so matching after it means something.
    assert!(moved > 1e-5, "one step moved convt1 by {moved}");
}
