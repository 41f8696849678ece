//! Datasets for the lessons: MNIST and Fashion-MNIST in the IDX format, CIFAR-10, CelebA with
//! its attributes, folders of images (one sub-folder per class, or none), seeded mini-batches,
//! and the download of the official files (`gan-lab data fetch`).
//!
//! Every dataset becomes image tensors `[N, C, S, S]` scaled to [-1, 1] (the range of the
//! generator's tanh) at S = 32 or 64, with labels `[N]` (i64) and their class names when the
//! source has them.

mod celeba;
mod cifar;
mod download;
mod idx;

pub use celeba::{CelebaOptions, CELEBA_DEFAULT_LIMIT};
pub use cifar::CIFAR10_CLASSES;
pub use download::{fetch, sha256_file, Checksum, RemoteFile, RemoteSet, FETCHABLE};
pub use idx::{read_idx, Idx};

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tch::{Kind, Tensor};

/// Image sizes the models are built for.
pub const IMAGE_SIZES: [i64; 2] = [32, 64];

/// Fashion-MNIST's ten classes, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Where a dataset comes from; one argument selects it (`--dataset`, notebooks).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The real MNIST digits shipped in `datasets/mnist` (9,001 training, 999 held out).
    Mnist,
    /// The official 60k/10k MNIST files, after `gan-lab data fetch mnist`.
    MnistFull,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist` package.
    FashionMnist,
    /// CIFAR-10's 50k/10k colour images in 10 classes, after `gan-lab data fetch cifar10`.
    Cifar10,
    /// CelebA's aligned faces, optionally labelled by one attribute, after `gan-lab data fetch celeba`.
    Celeba(CelebaOptions),
    /// A folder of PNG/JPEG images (faces, sketches...): unlabelled, or labelled by sub-folder
    /// (one per class, the ImageFolder layout).
    Folder(PathBuf),
}

impl FromStr for Source {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "mnist" => Source::Mnist,
            "mnist-full" => Source::MnistFull,
            "fashion-mnist" => Source::FashionMnist,
            "cifar10" => Source::Cifar10,
            "celeba" => Source::Celeba(CelebaOptions::default()),
            path if Path::new(path).is_dir() => Source::Folder(PathBuf::from(path)),
            other => bail!(
                "dataset `{other}`: expected mnist, mnist-full, fashion-mnist, cifar10, celeba or a folder of images"
            ),
        })
    }
}

/// Training part or held-out part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The repository's `datasets/` folder, or `$GAN_LAB_DATA` when set.
pub fn datasets_dir() -> PathBuf {
    match std::env::var_os("GAN_LAB_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets");
            dir.canonicalize().unwrap_or(dir)
        }
    }
}

/// Where Debian's `dataset-fashion-mnist` package puts the official files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Images `[N, C, S, S]` in [-1, 1] and optional labels `[N]`.
#[derive(Debug)]
pub struct Dataset {
    pub name: String,
    pub images: Tensor,
    pub labels: Option<Tensor>,
    /// The name of each label, in label order (empty when unlabelled).
    pub classes: Vec<String>,
}

impl Dataset {
    /// Loads `source` at `image_size` (32 or 64); `channels` (1 or 3) matters for folders only.
    pub fn load(source: &Source, split: Split, image_size: i64, channels: i64) -> Result<Dataset> {
        check_image_size(image_size)?;
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let idx_dir = match source {
            Source::Mnist => datasets_dir().join("mnist"),
            Source::MnistFull => datasets_dir().join("mnist-full"),
            Source::FashionMnist => PathBuf::from(FASHION_MNIST_DIR),
            Source::Cifar10 => return Dataset::cifar10(&datasets_dir().join("cifar10"), split, image_size, channels),
            Source::Celeba(options) => {
                return Dataset::celeba(&datasets_dir().join("celeba"), split, image_size, channels, options)
            }
            Source::Folder(dir) => return Dataset::from_folder(dir, image_size, channels),
        };
        if !idx_dir.is_dir() {
            let hint = match source {
                Source::MnistFull => "run `gan-lab data fetch mnist` first",
                Source::FashionMnist => "install Debian's dataset-fashion-mnist package",
                _ => "the repository's datasets/ folder is incomplete",
            };
            bail!("dataset folder {} does not exist: {hint}", idx_dir.display());
        }
        let mut ds = Dataset::from_idx(
            &find_idx(&idx_dir, &format!("{prefix}-images-idx3-ubyte"))?,
            &find_idx(&idx_dir, &format!("{prefix}-labels-idx1-ubyte"))?,
            image_size,
        )?;
        let set = match source {
            Source::MnistFull => "mnist-full",
            Source::FashionMnist => "fashion-mnist",
            _ => "mnist",
        };
        ds.name = format!("{set} {}", prefix.replace("t10k", "test"));
        if *source == Source::FashionMnist {
            ds.classes = FASHION_MNIST_CLASSES.map(String::from).to_vec();
        }
        Ok(ds)
    }

    /// The shipped MNIST digits at 32×32, the lessons' default.
    pub fn mnist(split: Split) -> Result<Dataset> {
        Dataset::load(&Source::Mnist, split, 32, 1)
    }

    /// Reads an IDX image file and its IDX label file (gzip or raw) and resizes to `image_size`.
    pub fn from_idx(images_path: &Path, labels_path: &Path, image_size: i64) -> Result<Dataset> {
        check_image_size(image_size)?;
        let images = read_idx(images_path, 3)?;
        let labels = read_idx(labels_path, 1)?;
        ensure!(
            images.dims[0] == labels.dims[0],
            "{} holds {} images but {} holds {} labels: expected the same count",
            images_path.display(),
            images.dims[0],
            labels_path.display(),
            labels.dims[0]
        );
        let (n, h, w) = (images.dims[0] as i64, images.dims[1] as i64, images.dims[2] as i64);
        let pixels = Tensor::from_slice(&images.data).view([n, 1, h, w]);
        Ok(Dataset {
            name: images_path.display().to_string(),
            images: resize(&to_unit_range(&pixels), image_size),
            labels: Some(Tensor::from_slice(&labels.data).to_kind(Kind::Int64)),
            classes: (0..10).map(|d| d.to_string()).collect(),
        })
    }

    /// Loads every PNG/JPEG in `dir`: centre crop to a square, resize to `image_size`, grey
    /// (`channels` = 1) or RGB (3). Images directly in `dir` are one unlabelled set; sub-folders
    /// of images are classes (the ImageFolder layout: labels in the sorted order of their names).
    pub fn from_folder(dir: &Path, image_size: i64, channels: i64) -> Result<Dataset> {
        Dataset::from_folder_at_most(dir, image_size, channels, None)
    }

    /// [`Dataset::from_folder`] keeping at most `limit` images, spread evenly over the sorted
    /// files so that each class keeps its share; only those are read and decoded.
    pub fn from_folder_at_most(dir: &Path, image_size: i64, channels: i64, limit: Option<usize>) -> Result<Dataset> {
        check_image_size(image_size)?;
        check_channels(channels)?;
        let (top, subdirs) = list_folder(dir)?;
        let mut classes = Vec::new();
        let mut paths = Vec::new();
        let mut labels = Vec::new();
        for sub in &subdirs {
            let (images, _) = list_folder(sub)?;
            if !images.is_empty() {
                labels.extend(std::iter::repeat_n(classes.len() as i64, images.len()));
                classes.push(sub.file_name().unwrap_or_default().to_string_lossy().into_owned());
                paths.extend(images);
            }
        }
        ensure!(
            top.is_empty() || classes.is_empty(),
            "image folder {}: holds both images and sub-folders of images: expected either the images of one \
             set, or one sub-folder of images per class",
            dir.display()
        );
        let labelled = !classes.is_empty();
        if !labelled {
            paths = top;
        }
        ensure!(!paths.is_empty(), "image folder {}: no PNG or JPEG images found", dir.display());
        if let Some(n) = limit.filter(|&n| n < paths.len()) {
            let total = paths.len();
            let keep: Vec<usize> = (0..n).map(|i| i * total / n).collect();
            paths = keep.iter().map(|&i| paths[i].clone()).collect();
            if labelled {
                labels = keep.iter().map(|&i| labels[i]).collect();
            }
        }
        let images = decode_images(paths.len(), image_size, channels, &dir.display().to_string(), |i| {
            let bytes =
                std::fs::read(&paths[i]).with_context(|| format!("image {}: cannot read it", paths[i].display()))?;
            Ok((bytes, paths[i].display().to_string()))
        })?;
        Ok(Dataset {
            name: dir.display().to_string(),
            images,
            labels: labelled.then(|| Tensor::from_slice(&labels)),
            classes,
        })
    }

    /// The number of images of each class, in label order (empty when unlabelled).
    pub fn class_counts(&self) -> Vec<(String, i64)> {
        let Some(labels) = &self.labels else { return Vec::new() };
        let n = self.classes.len().max(1 + labels.max().int64_value(&[]).max(0) as usize);
        let counts = Vec::<i64>::try_from(labels.bincount(None::<Tensor>, n as i64)).unwrap_or_default();
        (0..n).map(|c| (self.classes.get(c).cloned().unwrap_or_else(|| c.to_string()), counts[c])).collect()
    }

    /// One line for the user: name, count, size, colour and images per class.
    pub fn describe(&self) -> String {
        let colour = if self.channels() == 3 { "RGB" } else { "grey" };
        let mut line = format!("{}: {} images, {s}×{s} {colour}", self.name, self.len(), s = self.image_size());
        let counts = self.class_counts();
        if !counts.is_empty() {
            let per: Vec<String> = counts.iter().map(|(name, n)| format!("{name} {n}")).collect();
            line += &format!("; per class: {}", per.join(", "));
        }
        line
    }

    pub fn len(&self) -> i64 {
        self.images.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn channels(&self) -> i64 {
        self.images.size()[1]
    }

    pub fn image_size(&self) -> i64 {
        self.images.size()[2]
    }

    /// The same dataset sharing its tensors (no copy).
    pub fn shallow_clone(&self) -> Dataset {
        Dataset {
            name: self.name.clone(),
            images: self.images.shallow_clone(),
            labels: self.labels.as_ref().map(|l| l.shallow_clone()),
            classes: self.classes.clone(),
        }
    }

    /// The first `n` images and labels (`n` is capped at the dataset's size).
    pub fn take(&self, n: i64) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            name: self.name.clone(),
            images: self.images.narrow(0, 0, n),
            labels: self.labels.as_ref().map(|l| l.narrow(0, 0, n)),
            classes: self.classes.clone(),
        }
    }

    /// Checks that mini-batches of `batch_size` can be drawn.
    pub fn check_batch_size(&self, batch_size: i64) -> Result<()> {
        ensure!(
            batch_size >= 1 && batch_size <= self.len(),
            "batch size {batch_size}: expected between 1 and the dataset's {} images ({})",
            self.len(),
            self.name
        );
        Ok(())
    }
}

/// Seeded, shuffled mini-batches, addressed by training step so that a resumed run draws
/// exactly the batches an uninterrupted one would. Each epoch is a fresh permutation; the last
/// incomplete batch of an epoch is dropped.
pub struct Batcher {
    seed: u64,
    batch_size: i64,
    epoch: Option<i64>,
    order: Tensor,
}

impl Batcher {
    pub fn new(data: &Dataset, batch_size: i64, seed: u64) -> Result<Batcher> {
        data.check_batch_size(batch_size)?;
        Ok(Batcher { seed, batch_size, epoch: None, order: Tensor::new() })
    }

    pub fn batches_per_epoch(&self, data: &Dataset) -> i64 {
        data.len() / self.batch_size
    }

    /// The images (and labels) of training step `step`.
    pub fn batch(&mut self, data: &Dataset, step: i64) -> (Tensor, Option<Tensor>) {
        let per_epoch = self.batches_per_epoch(data);
        let (epoch, index) = (step / per_epoch, step % per_epoch);
        if self.epoch != Some(epoch) {
            let perm = permutation(data.len() as usize, self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            self.order = Tensor::from_slice(&perm);
            self.epoch = Some(epoch);
        }
        let idx = self.order.narrow(0, index * self.batch_size, self.batch_size);
        let images = data.images.index_select(0, &idx);
        let labels = data.labels.as_ref().map(|l| l.index_select(0, &idx));
        (images, labels)
    }
}

/// A Fisher–Yates permutation of 0..n from a SplitMix64 stream: the same on every platform.
pub fn permutation(n: usize, seed: u64) -> Vec<i64> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut perm: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    perm
}

fn check_image_size(image_size: i64) -> Result<()> {
    ensure!(IMAGE_SIZES.contains(&image_size), "image size {image_size}: expected 32 or 64");
    Ok(())
}

fn check_channels(channels: i64) -> Result<()> {
    ensure!(channels == 1 || channels == 3, "channels = {channels}: expected 1 (grey) or 3 (RGB)");
    Ok(())
}

/// The PNG/JPEG files of `dir` and its visible sub-folders, each sorted by name.
fn list_folder(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut images = Vec::new();
    let mut subdirs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("image folder {}: cannot read it", dir.display()))? {
        let path = entry.with_context(|| format!("image folder {}: cannot read it", dir.display()))?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        if hidden {
            continue;
        } else if path.is_dir() {
            subdirs.push(path);
        } else if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            images.push(path);
        }
    }
    images.sort();
    subdirs.sort();
    Ok((images, subdirs))
}

/// Decodes `n` encoded images (`read(i)` gives the bytes of image i and the name errors use),
/// centre-crops each to a square and resizes it to `image_size`, grey or RGB, on all threads,
/// with a progress bar for large sets. Returns `[n, channels, S, S]` in [-1, 1].
fn decode_images(
    n: usize,
    image_size: i64,
    channels: i64,
    what: &str,
    read: impl Fn(usize) -> Result<(Vec<u8>, String)> + Sync,
) -> Result<Tensor> {
    let size = image_size as u32;
    let per_image = (size * size) as usize * channels as usize;
    let mut bytes = vec![0u8; n * per_image];
    let bar = if n >= 2000 { indicatif::ProgressBar::new(n as u64) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("loading {msg} [{bar:30}] {pos}/{len} images {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    let workers = (tch::get_num_threads().max(1) as usize).min(n.max(1));
    let chunk = n.div_ceil(workers).max(1);
    std::thread::scope(|scope| -> Result<()> {
        let jobs: Vec<_> = bytes
            .chunks_mut(chunk * per_image)
            .enumerate()
            .map(|(w, out)| {
                let (read, bar) = (&read, &bar);
                scope.spawn(move || -> Result<()> {
                    for (k, pixels) in out.chunks_mut(per_image).enumerate() {
                        let (encoded, name) = read(w * chunk + k)?;
                        let img = image::load_from_memory(&encoded)
                            .with_context(|| format!("image {name}: cannot decode it as PNG or JPEG"))?;
                        square_pixels(&img, size, channels, pixels);
                        bar.inc(1);
                    }
                    Ok(())
                })
            })
            .collect();
        for job in jobs {
            job.join().expect("image decoding does not panic")?;
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let pixels = Tensor::from_slice(&bytes).view([n as i64, channels, image_size, image_size]);
    Ok(to_unit_range(&pixels))
}

/// Centre crop to a square, resize to `size`, and write planar `[C, H, W]` pixels to `out`.
fn square_pixels(img: &image::DynamicImage, size: u32, channels: i64, out: &mut [u8]) {
    let side = img.width().min(img.height());
    let square = img.crop_imm((img.width() - side) / 2, (img.height() - side) / 2, side, side);
    let resized = square.resize_exact(size, size, image::imageops::FilterType::Triangle);
    if channels == 1 {
        out.copy_from_slice(resized.to_luma8().as_raw());
    } else {
        let rgb = resized.to_rgb8();
        let plane = (size * size) as usize;
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = p.0[c];
            }
        }
    }
}

/// RGB to grey with the ITU-R 601 luma weights (what `image` and PIL use).
fn to_grey(images: &Tensor) -> Tensor {
    let w = Tensor::from_slice(&[0.299f32, 0.587, 0.114]).view([1, 3, 1, 1]);
    (images * w).sum_dim_intlist(1, true, Kind::Float)
}

/// uint8 pixels to float in [-1, 1].
fn to_unit_range(pixels: &Tensor) -> Tensor {
    pixels.to_kind(Kind::Float) / 127.5 - 1.0
}

/// Bilinear resize of `[N, C, H, W]` to `size`×`size` (MNIST's 28×28 to 32×32 or 64×64).
fn resize(images: &Tensor, size: i64) -> Tensor {
    if images.size()[2] == size && images.size()[3] == size {
        return images.shallow_clone();
    }
    images.upsample_bilinear2d([size, size], false, None, None).clamp(-1.0, 1.0)
}

/// The path of `stem` in `dir`, gzipped (`.gz`) or raw.
fn find_idx(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!("{}: missing {stem}.gz (or {stem})", dir.display())
}
