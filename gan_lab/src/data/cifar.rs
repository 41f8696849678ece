//! CIFAR-10's binary version: records of one label byte and 3,072 pixel bytes (32×32, the red,
//! green and blue planes in turn), 10,000 per batch file; five training batches and one test
//! batch, read from the official tarball or from its extracted folder.

use super::{check_channels, check_image_size, resize, to_grey, to_unit_range, Dataset, Split};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::Tensor;

/// The ten classes, in label order (`batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

const RECORD: usize = 1 + 3 * 32 * 32;
const TARBALL: &str = "cifar-10-binary.tar.gz";
const FOLDER: &str = "cifar-10-batches-bin";

fn batch_names(split: Split) -> Vec<String> {
    match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    }
}

impl Dataset {
    /// CIFAR-10 from `dir` (holding `cifar-10-binary.tar.gz` or its `cifar-10-batches-bin/`),
    /// at `image_size`, RGB or grey.
    pub fn cifar10(dir: &Path, split: Split, image_size: i64, channels: i64) -> Result<Dataset> {
        check_image_size(image_size)?;
        check_channels(channels)?;
        let names = batch_names(split);
        let (folder, tarball) = (dir.join(FOLDER), dir.join(TARBALL));
        let batches: Vec<(String, Vec<u8>)> = if folder.is_dir() {
            names
                .iter()
                .map(|n| {
                    let path = folder.join(n);
                    let bytes = std::fs::read(&path)
                        .with_context(|| format!("CIFAR-10 batch {}: cannot read it", path.display()))?;
                    Ok((path.display().to_string(), bytes))
                })
                .collect::<Result<_>>()?
        } else if tarball.is_file() {
            read_from_tarball(&tarball, &names)?
        } else {
            bail!(
                "CIFAR-10 is not in {}: run `gan-lab data fetch cifar10` first (or put {TARBALL} there)",
                dir.display()
            );
        };
        let mut labels = Vec::new();
        let mut pixels = Vec::new();
        for (name, bytes) in &batches {
            ensure!(
                !bytes.is_empty() && bytes.len() % RECORD == 0,
                "CIFAR-10 batch {name}: {} bytes, expected a whole number of {RECORD}-byte records",
                bytes.len()
            );
            for (i, record) in bytes.chunks(RECORD).enumerate() {
                ensure!(record[0] < 10, "CIFAR-10 batch {name}: record {i} has label {}, expected 0 to 9", record[0]);
                labels.push(record[0] as i64);
                pixels.extend_from_slice(&record[1..]);
            }
        }
        let n = labels.len() as i64;
        let mut images = to_unit_range(&Tensor::from_slice(&pixels).view([n, 3, 32, 32]));
        if channels == 1 {
            images = to_grey(&images);
        }
        let split_name = match split {
            Split::Train => "train",
            Split::Test => "test",
        };
        Ok(Dataset {
            name: format!("cifar10 {split_name}"),
            images: resize(&images, image_size),
            labels: Some(Tensor::from_slice(&labels)),
            classes: CIFAR10_CLASSES.map(String::from).to_vec(),
        })
    }
}

/// The batch files `names` from the official tarball, in that order.
fn read_from_tarball(tarball: &Path, names: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    let context = || format!("CIFAR-10 archive {}: cannot read it as a .tar.gz", tarball.display());
    let file = std::fs::File::open(tarball).with_context(context)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries().with_context(context)? {
        let mut entry = entry.with_context(context)?;
        let path = entry.path().with_context(context)?.into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if names.contains(&name) && path.parent().is_some_and(|p| p.ends_with(FOLDER)) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).with_context(context)?;
            found.insert(name, bytes);
        }
    }
    names
        .iter()
        .map(|n| match found.remove(n) {
            Some(bytes) => Ok((format!("{}:{FOLDER}/{n}", tarball.display()), bytes)),
            None => bail!("CIFAR-10 archive {}: {FOLDER}/{n} is missing", tarball.display()),
        })
        .collect()
}
