//! Judging generated images with a frozen evaluator ([`crate::models::classifier`]).
//!
//! Evaluators ship in `datasets/evaluator/` as `<dataset>_lenet.safetensors`, with their SHA-256
//! and what they were trained on (`.json`): the MNIST digits' and Fashion-MNIST's.
//! `gan-lab evaluator train [--dataset D]` trains one for another labelled set.

use crate::data::{Batcher, Dataset, Split};
use crate::models::classifier::Classifier;
use crate::optim::{AdamConfig, Optimizer};
use crate::rng::{mix, with_seed};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// A frozen classifier and what it was trained on.
pub struct Evaluator {
    pub vs: VarStore,
    pub net: Classifier,
    pub info: EvaluatorInfo,
}

/// What an evaluator judges: stored beside its weights as `<weights>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorInfo {
    /// The dataset it was trained on (`mnist`, `fashion-mnist`, `cifar10`, a folder's name).
    pub dataset: String,
    pub channels: i64,
    /// Its class names, in label order.
    pub classes: Vec<String>,
}

impl EvaluatorInfo {
    /// The shipped digit evaluator's (whose weights came before the `.json` files).
    fn mnist() -> EvaluatorInfo {
        EvaluatorInfo { dataset: "mnist".into(), channels: 1, classes: (0..10).map(|d| d.to_string()).collect() }
    }
}

/// The shipped MNIST evaluator's weights.
pub fn evaluator_path() -> PathBuf {
    shipped_path("mnist")
}

/// Where the evaluator of `dataset` lives: `datasets/evaluator/<dataset>_lenet.safetensors`.
pub fn shipped_path(dataset: &str) -> PathBuf {
    crate::data::datasets_dir().join(format!("evaluator/{dataset}_lenet.safetensors"))
}

/// The evaluator a dataset's name asks for: the set's own (the full MNIST files use the digits').
pub fn evaluator_name(data: &Dataset) -> String {
    let first = data.name.split_whitespace().next().unwrap_or_default();
    match first {
        "mnist" | "mnist-full" => "mnist".into(),
        "fashion-mnist" | "cifar10" | "celeba" => first.into(),
        _ => Path::new(&data.name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

impl Evaluator {
    fn untrained(info: EvaluatorInfo) -> Evaluator {
        let vs = VarStore::new(Device::Cpu);
        let net = Classifier::new(&vs.root(), info.channels, info.classes.len() as i64);
        Evaluator { vs, net, info }
    }

    /// The shipped MNIST evaluator, after checking its weights against their recorded SHA-256.
    pub fn shipped() -> Result<Evaluator> {
        Evaluator::load(&evaluator_path())
    }

    /// The evaluator for `data` (see [`evaluator_name`]), from `datasets/evaluator/`.
    pub fn for_data(data: &Dataset) -> Result<Evaluator> {
        let name = evaluator_name(data);
        let path = shipped_path(&name);
        ensure!(
            path.is_file(),
            "no evaluator for {}: train one with `gan-lab evaluator train --dataset <the same set>` (it would be {})",
            data.name,
            path.display()
        );
        Evaluator::load(&path)
    }

    /// Loads evaluator weights from `path`, checking them against `<path>.sha256` when present;
    /// what they judge comes from `<path>.json` (the MNIST digits' when absent).
    pub fn load(path: &Path) -> Result<Evaluator> {
        let sum_path = PathBuf::from(format!("{}.sha256", path.display()));
        if let Ok(expected) = std::fs::read_to_string(&sum_path) {
            let expected = expected.split_whitespace().next().unwrap_or_default().to_string();
            let actual = crate::data::sha256_file(path)?;
            ensure!(
                actual == expected,
                "evaluator weights {}: SHA-256 {actual} does not match {} ({expected}); \
                 regenerate them with `gan-lab evaluator train`",
                path.display(),
                sum_path.display()
            );
        }
        let info_path = PathBuf::from(format!("{}.json", path.display()));
        let info = match std::fs::read_to_string(&info_path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: expected dataset, channels and classes", info_path.display()))?,
            Err(_) => EvaluatorInfo::mnist(),
        };
        // The file replaces the initial weights, but drawing them still moves libtorch's global
        // generator: under the seed lock, so that runs in other threads keep to their seeds.
        let mut ev = with_seed(0, || Evaluator::untrained(info));
        ev.vs.load(path).with_context(|| format!("evaluator weights {}: cannot load them", path.display()))?;
        ev.vs.freeze();
        Ok(ev)
    }

    /// Trains a fresh evaluator on `train`'s 32×32 images (Adam 1e-3, batch 128 or the whole set, random shifts
    /// of up to 2 pixels), seeded.
    pub fn train(train: &Dataset, epochs: i64, seed: u64) -> Result<Evaluator> {
        let labels =
            train.labels.as_ref().with_context(|| format!("dataset {}: the evaluator needs labels", train.name))?;
        ensure!(train.image_size() == 32, "dataset {}: the evaluator reads 32×32 images", train.name);
        let classes = match train.classes.is_empty() {
            true => (0..=labels.max().int64_value(&[])).map(|c| c.to_string()).collect(),
            false => train.classes.clone(),
        };
        let info = EvaluatorInfo { dataset: evaluator_name(train), channels: train.channels(), classes };
        let ev = with_seed(mix(seed, 3), || Evaluator::untrained(info));
        let mut opt = Optimizer::new(&ev.vs, AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
        let batch = 128.min(train.len());
        let mut batcher = Batcher::new(train, batch, seed)?;
        let steps = epochs * batcher.batches_per_epoch(train);
        let mut progress = crate::progress::Progress::new(steps, 0);
        for step in 0..steps {
            let (x, y) = batcher.batch(train, step);
            // Shifts and dropout draw random numbers: seeded per step.
            let loss = with_seed(mix(seed, 4 + step as u64), || {
                ev.net.logits(&random_shift(&x, 2), true).cross_entropy_for_logits(&y.expect("labels"))
            });
            opt.minimize(&loss);
            progress.update(step + 1, steps, || format!("cross-entropy {:.4}", loss.double_value(&[])));
        }
        progress.finish();
        Ok(ev)
    }

    /// Moves the evaluator's network to `device` ([`crate::device`]). It takes images from any
    /// device and answers on the CPU, where the scores are computed.
    pub fn set_device(&mut self, device: Device) {
        self.vs.set_device(device);
    }

    /// Class probabilities `[N, K]` of images `[N, C, S, S]`, in batches (64×64 images are
    /// averaged down to the evaluator's 32×32).
    pub fn probabilities(&self, images: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let chunks: Vec<Tensor> = to_32(images)
                .split(500, 0)
                .iter()
                .map(|x| self.net.logits(&x.to_device(self.vs.device()), false).softmax(-1, Kind::Float))
                .collect();
            Tensor::cat(&chunks, 0).to_device(Device::Cpu)
        })
    }

    /// Penultimate features `[N, 128]` of images `[N, C, S, S]`, in batches: what the Fréchet
    /// distance compares.
    pub fn features(&self, images: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let chunks: Vec<Tensor> = to_32(images)
                .split(500, 0)
                .iter()
                .map(|x| self.net.features(&x.to_device(self.vs.device()), false))
                .collect();
            Tensor::cat(&chunks, 0).to_device(Device::Cpu)
        })
    }

    /// Checks that this evaluator reads `data`'s images (channels, and sides of 32 or 64).
    pub fn check_reads(&self, what: &str, images: &Tensor) -> Result<()> {
        let size = images.size();
        ensure!(
            size.len() == 4 && size[1] == self.info.channels && size[2] == size[3] && [32, 64].contains(&size[2]),
            "{what}: the {} evaluator reads {}-channel 32×32 (or 64×64) images, got {size:?}",
            self.info.dataset,
            self.info.channels
        );
        Ok(())
    }

    /// Share of `data` classified correctly.
    pub fn accuracy(&self, data: &Dataset) -> Result<f64> {
        let labels = data.labels.as_ref().with_context(|| format!("dataset {}: no labels", data.name))?;
        let predicted = self.probabilities(&data.images).argmax(-1, false);
        Ok(predicted.eq_tensor(labels).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]))
    }

    /// Share of images whose most likely class has probability above `threshold`: how many
    /// samples the evaluator reads as a clear digit.
    pub fn confident_share(&self, images: &Tensor, threshold: f64) -> f64 {
        let (top, _) = self.probabilities(images).max_dim(-1, false);
        top.gt(threshold).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
    }

    /// Writes the weights to `path` and their SHA-256 beside them, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::files::ensure_writable_dir(parent)?;
        }
        crate::files::write_atomic_with(path, |tmp| {
            // VarStore::save picks the format from the extension: keep `.safetensors` last.
            let tmp_st = tmp.with_extension("tmp.safetensors");
            self.vs.save(&tmp_st).map_err(std::io::Error::other)?;
            std::fs::rename(tmp_st, tmp)
        })?;
        crate::files::write_atomic(
            &PathBuf::from(format!("{}.json", path.display())),
            (serde_json::to_string_pretty(&self.info)? + "\n").as_bytes(),
        )?;
        let sum = crate::data::sha256_file(path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        crate::files::write_atomic(
            &PathBuf::from(format!("{}.sha256", path.display())),
            format!("{sum}  {name}\n").as_bytes(),
        )
    }
}

/// 64×64 images averaged down to 32×32, the evaluator's input; 32×32 ones as they are.
fn to_32(images: &Tensor) -> Tensor {
    match images.size()[2] {
        64 => images.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>),
        _ => images.shallow_clone(),
    }
}

/// Shifts a batch of images by up to `max` pixels in x and y, filling with the background (-1).
fn random_shift(x: &Tensor, max: i64) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let padded = (x + 1.0).constant_pad_nd([max, max, max, max]) - 1.0;
    let offset = Tensor::randint(2 * max + 1, [2], (Kind::Int64, Device::Cpu));
    padded.narrow(2, offset.int64_value(&[0]), h).narrow(3, offset.int64_value(&[1]), w)
}

/// The report printed after the DCGAN lesson: how many of 1,000 images the evaluator reads as
/// a clear digit (confidence > 0.9), for the trained generator, an untrained one and real
/// held-out digits.
pub struct ConfidenceReport {
    pub trained: f64,
    pub untrained: f64,
    pub real: f64,
}

impl ConfidenceReport {
    pub fn measure(ev: &Evaluator, trained: &Tensor, untrained: &Tensor) -> Result<ConfidenceReport> {
        let real = Dataset::mnist(Split::Test)?;
        Ok(ConfidenceReport {
            trained: ev.confident_share(trained, 0.9),
            untrained: ev.confident_share(untrained, 0.9),
            real: ev.confident_share(&real.take(1000).images, 0.9),
        })
    }
}

impl std::fmt::Display for ConfidenceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "share of 1,000 images the evaluator labels with confidence > 0.9:")?;
        writeln!(f, "  trained generator   {:5.1}%", 100.0 * self.trained)?;
        writeln!(f, "  untrained generator {:5.1}%", 100.0 * self.untrained)?;
        write!(f, "  real held-out digits{:5.1}%  (999 available)", 100.0 * self.real)
    }
}

/// How often the evaluator reads the class a conditional generator was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAccuracy {
    /// Images judged.
    pub n: i64,
    /// Share whose predicted class is the requested one.
    pub overall: f64,
    /// The same share per requested class.
    pub per_class: Vec<f64>,
}

impl ClassAccuracy {
    /// Compares the evaluator's predictions on `images` `[N, 1, 32, 32]` with `requested` `[N]`.
    pub fn measure(ev: &Evaluator, images: &Tensor, requested: &Tensor, classes: i64) -> ClassAccuracy {
        let predicted = ev.probabilities(images).argmax(-1, false);
        let hit = predicted.eq_tensor(requested).to_kind(Kind::Double);
        let per_class = (0..classes)
            .map(|c| {
                let mask = requested.eq(c).to_kind(Kind::Double);
                let count = mask.sum(Kind::Double).double_value(&[]);
                if count == 0.0 {
                    f64::NAN
                } else {
                    (&hit * mask).sum(Kind::Double).double_value(&[]) / count
                }
            })
            .collect();
        ClassAccuracy { n: requested.size()[0], overall: hit.mean(Kind::Double).double_value(&[]), per_class }
    }
}

impl std::fmt::Display for ClassAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "class accuracy on {} samples (evaluator's class = requested class): {:.2}%",
            self.n,
            100.0 * self.overall
        )?;
        let cells: Vec<String> =
            self.per_class.iter().enumerate().map(|(c, a)| format!("{c}: {:.1}%", 100.0 * a)).collect();
        write!(f, "  per class  {}", cells.join("  "))
    }
}

/// How well a categorical latent code captures the digit (InfoGAN): the code's values are mapped
/// one-to-one to digits by the Hungarian assignment that maximises agreement with the evaluator,
/// then scored like class accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeAccuracy {
    /// Images judged.
    pub n: i64,
    /// Share read as the digit their code value is mapped to.
    pub overall: f64,
    /// The digit each value is mapped to.
    pub mapping: Vec<i64>,
    /// The same share per value.
    pub per_value: Vec<f64>,
    /// Images of each value (rows) read as each digit (columns).
    pub confusion: Vec<Vec<i64>>,
}

impl CodeAccuracy {
    /// Judges `images` `[N, 1, 32, 32]` generated with code values `values` `[N]` in `0..k`.
    pub fn measure(ev: &Evaluator, images: &Tensor, values: &Tensor, k: i64) -> Result<CodeAccuracy> {
        crate::models::check_labels(values, images.size()[0], k)?;
        let probabilities = ev.probabilities(images);
        let digits = probabilities.size()[1];
        ensure!(k <= digits, "a code of {k} values cannot map one-to-one onto the evaluator's {digits} digits");
        let predicted = Vec::<i64>::try_from(probabilities.argmax(-1, false))?;
        let values = Vec::<i64>::try_from(values.to_kind(Kind::Int64))?;
        let mut confusion = vec![vec![0i64; digits as usize]; k as usize];
        for (&v, &d) in values.iter().zip(&predicted) {
            confusion[v as usize][d as usize] += 1;
        }
        let agreement: Vec<Vec<f64>> = confusion.iter().map(|row| row.iter().map(|&c| c as f64).collect()).collect();
        let mapping: Vec<i64> = crate::metrics::assignment(&agreement).into_iter().map(|d| d as i64).collect();
        let hits: i64 = mapping.iter().enumerate().map(|(v, &d)| confusion[v][d as usize]).sum();
        let per_value = mapping
            .iter()
            .enumerate()
            .map(|(v, &d)| {
                let total: i64 = confusion[v].iter().sum();
                if total == 0 {
                    f64::NAN
                } else {
                    confusion[v][d as usize] as f64 / total as f64
                }
            })
            .collect();
        let n = values.len() as i64;
        Ok(CodeAccuracy { n, overall: hits as f64 / n.max(1) as f64, mapping, per_value, confusion })
    }
}

impl std::fmt::Display for CodeAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "code accuracy on {} samples (each value mapped to a digit by the Hungarian assignment): {:.2}%",
            self.n,
            100.0 * self.overall
        )?;
        let cells: Vec<String> = self
            .mapping
            .iter()
            .zip(&self.per_value)
            .enumerate()
            .map(|(v, (d, a))| format!("{v}→{d}: {:.1}%", 100.0 * a))
            .collect();
        write!(f, "  value→digit  {}", cells.join("  "))
    }
}
