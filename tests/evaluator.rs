//! The frozen evaluators (the digits', Fashion-MNIST's, one trained for any labelled set), and
//! the lesson's claim that the DCGAN learns digits in 1500 steps.

use gan_lab::data::{Dataset, Source, Split};
use gan_lab::metrics::{evaluator_path, ConfidenceReport, Evaluator, RealReference};
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

#[test]
fn shipped_fashion_mnist_evaluator_is_verified_accurate_and_used_for_its_set() {
    let test = Dataset::load(&Source::FashionMnist, Split::Test, 32, 1).unwrap();
    let ev = Evaluator::for_data(&test).unwrap();
    assert_eq!(ev.info.dataset, "fashion-mnist");
    assert_eq!(ev.info.classes[9], "Ankle boot");
    let accuracy = ev.accuracy(&test).unwrap();
    eprintln!("Fashion-MNIST evaluator accuracy on the 10,000 test images: {:.2}%", 100.0 * accuracy);
    assert!(accuracy >= 0.88, "accuracy {accuracy}");
    // Scores taken during training on Fashion-MNIST come from its evaluator, and say so.
    let gan = Dcgan::mnist32().steps(4).batch_size(16).metrics_every(2).seed(0).train(&test.take(256)).unwrap();
    assert_eq!(gan.history.evaluator.as_deref(), Some("fashion-mnist"));
    assert_eq!(gan.history.metrics.len(), 2);
    let digits = Dcgan::mnist32().steps(2).batch_size(16).metrics_every(2).seed(0);
    let gan = digits.train(&Dataset::mnist(Split::Test).unwrap().take(256)).unwrap();
    assert_eq!(gan.history.evaluator.as_deref(), Some("mnist"));
}

/// An evaluator for a labelled folder of colour images: its classes and channels travel with its
/// weights, it scores 64×64 images, and it refuses images it cannot read.
#[test]
fn an_evaluator_trains_on_a_labelled_colour_folder() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("shapes");
    for (class, colour) in [("blue", [0u8, 0, 255]), ("red", [255, 0, 0])] {
        std::fs::create_dir_all(set.join(class)).unwrap();
        for i in 0..64u8 {
            let picture = image::RgbImage::from_fn(32, 32, |x, y| {
                let on = (x as u8).wrapping_mul(i) % 7 < 4 || y as u8 % 5 == i % 5;
                if on {
                    image::Rgb(colour)
                } else {
                    image::Rgb([40, 40, 40])
                }
            });
            picture.save(set.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let data = Dataset::from_folder(&set, 32, 3).unwrap();
    let ev = Evaluator::train(&data, 3, 0).unwrap();
    assert_eq!((ev.info.dataset.as_str(), ev.info.channels), ("shapes", 3));
    assert_eq!(ev.info.classes, vec!["blue", "red"]);
    assert!(ev.accuracy(&data).unwrap() > 0.95);
    let path = dir.path().join("ev/shapes.safetensors");
    ev.save(&path).unwrap();
    let reloaded = Evaluator::load(&path).unwrap();
    assert_eq!(reloaded.info, ev.info);
    assert!(reloaded.probabilities(&data.images).equal(&ev.probabilities(&data.images)));
    // 64×64 images are averaged down to the evaluator's 32×32.
    let big = Dataset::from_folder(&set, 64, 3).unwrap();
    assert_eq!(reloaded.probabilities(&big.images).size(), [128, 2]);
    let reference = RealReference::new(&reloaded, &big.images);
    assert!(reference.ceiling.inception.mean > 1.5, "two balanced, confidently read classes");
    let grey = Dataset::from_folder(&set, 32, 1).unwrap();
    let msg = format!("{:#}", reloaded.check_reads("grey shapes", &grey.images).unwrap_err());
    assert!(msg.contains("the shapes evaluator reads 3-channel 32×32"), "{msg}");
    let unlabelled = Dataset { labels: None, classes: Vec::new(), ..data.shallow_clone() };
    assert!(format!("{:#}", Evaluator::train(&unlabelled, 1, 0).err().unwrap()).contains("needs labels"));
}
