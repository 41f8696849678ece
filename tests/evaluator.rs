//! The frozen evaluator, and the lesson's claim that the DCGAN learns digits in 1500 steps.

use gan_lab::data::{Dataset, Split};
use gan_lab::metrics::{evaluator_path, ConfidenceReport, Evaluator};
use gan_lab::Dcgan;

#[test]
fn shipped_evaluator_is_verified_and_accurate() {
    let ev = Evaluator::shipped().unwrap();
    let accuracy = ev.accuracy(&Dataset::mnist(Split::Test).unwrap()).unwrap();
    eprintln!("evaluator accuracy on the held-out digits: {:.2}%", 100.0 * accuracy);
    assert!(accuracy >= 0.98, "accuracy {accuracy}");
}

#[test]
fn tampered_evaluator_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ev.safetensors");
    std::fs::copy(evaluator_path(), &path).unwrap();
    std::fs::copy(format!("{}.sha256", evaluator_path().display()), format!("{}.sha256", path.display())).unwrap();
    Evaluator::load(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let msg = format!("{:#}", Evaluator::load(&path).err().expect("tampered weights refused"));
    assert!(msg.contains("SHA-256") && msg.contains("ev.safetensors"), "{msg}");
}

#[test]
fn evaluator_regenerates_from_the_shipped_digits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/ev.safetensors");
    let ev = Evaluator::train(&Dataset::mnist(Split::Train).unwrap(), 2, 0).unwrap();
    ev.save(&path).unwrap();
    let reloaded = Evaluator::load(&path).unwrap();
    let accuracy = reloaded.accuracy(&Dataset::mnist(Split::Test).unwrap()).unwrap();
    assert!(accuracy > 0.95, "2 epochs: accuracy {accuracy}");
}

/// Slow (about 2 minutes): the lesson's full budget, 1500 steps at batch 64.
#[test]
fn dcgan_learns_digits_in_the_lesson_budget() {
    if gan_lab::train::quick_mode() {
        panic!("this test measures the full lesson budget: unset GAN_LAB_QUICK");
    }
    let data = Dataset::mnist(Split::Train).unwrap();
    let untrained = Dcgan::mnist32().seed(0).build().unwrap();
    let gan = Dcgan::mnist32().steps(1500).seed(0).train(&data).unwrap();
    let ev = Evaluator::shipped().unwrap();
    let report = ConfidenceReport::measure(&ev, &gan.sample(1000, 1), &untrained.sample(1000, 1)).unwrap();
    eprintln!("{report}");
    assert!(report.untrained < 0.05, "{report}");
    assert!(report.trained > 0.3, "{report}");
    assert!(report.real > 0.9, "{report}");
}
