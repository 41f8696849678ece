//! CelebA's aligned-and-cropped faces (178×218 JPEGs), read from the official
//! `img_align_celeba.zip` or its extracted folder, split by `list_eval_partition.txt`
//! (0 training, 1 validation, 2 test) and labelled, when asked, by one of the 40 attributes of
//! `list_attr_celeba.txt` (1 has it, -1 has not).

use super::{check_channels, check_image_size, decode_images, Dataset, Split};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::Tensor;

/// Faces loaded when no limit is given: 50,000 64×64 RGB images take 2.5 GB as float tensors
/// (all 162,770 training faces would take 8 GB).
pub const CELEBA_DEFAULT_LIMIT: usize = 50_000;

const ZIP: &str = "img_align_celeba.zip";
const FOLDER: &str = "img_align_celeba";
const ATTRIBUTES: &str = "list_attr_celeba.txt";
const PARTITION: &str = "list_eval_partition.txt";

/// How much of CelebA to load and how to label it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CelebaOptions {
    /// Label each face by this attribute (e.g. `Smiling`): 1 with it, 0 without.
    pub attribute: Option<String>,
    /// At most this many faces of the split, in the official order (default: 50,000).
    pub limit: Option<usize>,
}

impl Dataset {
    /// CelebA from `dir` (holding `img_align_celeba.zip` or its folder, and the partition and
    /// attribute lists): centre crop to 178×178, resize to `image_size`, RGB or grey.
    pub fn celeba(
        dir: &Path,
        split: Split,
        image_size: i64,
        channels: i64,
        options: &CelebaOptions,
    ) -> Result<Dataset> {
        check_image_size(image_size)?;
        check_channels(channels)?;
        let missing =
            |what: &str| format!("CelebA's {what} is not in {}: run `gan-lab data fetch celeba` first", dir.display());
        let partition_path = dir.join(PARTITION);
        ensure!(partition_path.is_file(), missing(PARTITION));
        let (wanted, split_name) = match split {
            Split::Train => ("0", "train"),
            Split::Test => ("2", "test"),
        };
        let partition = read_text(&partition_path)?;
        let mut names = Vec::new();
        for (i, line) in partition.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            ensure!(
                fields.len() == 2 && ["0", "1", "2"].contains(&fields[1]),
                "{} line {}: expected `<image>.jpg <0, 1 or 2>`, found `{line}`",
                partition_path.display(),
                i + 1
            );
            if fields[1] == wanted {
                names.push(fields[0].to_string());
            }
        }
        let total = names.len();
        let limit = options.limit.unwrap_or(CELEBA_DEFAULT_LIMIT);
        names.truncate(limit);
        if names.len() < total {
            eprintln!("CelebA {split_name}: the first {} of {total} faces (--limit to change)", names.len());
        }
        ensure!(!names.is_empty(), "{}: no image of the {split_name} split", partition_path.display());

        let (labels, classes) = match &options.attribute {
            Some(attribute) => {
                let path = dir.join(ATTRIBUTES);
                ensure!(path.is_file(), missing(ATTRIBUTES));
                let values = read_attribute(&path, attribute)?;
                let labels = names
                    .iter()
                    .map(|n| values.get(n).copied().with_context(|| format!("{}: no line for {n}", path.display())))
                    .collect::<Result<Vec<i64>>>()?;
                (Some(Tensor::from_slice(&labels)), vec![format!("not {attribute}"), attribute.clone()])
            }
            None => (None, Vec::new()),
        };

        let folder = dir.join(FOLDER);
        let zip_path = dir.join(ZIP);
        let images = if folder.is_dir() {
            decode_images(names.len(), image_size, channels, "CelebA", |i| {
                let path = folder.join(&names[i]);
                let bytes =
                    std::fs::read(&path).with_context(|| format!("image {}: cannot read it", path.display()))?;
                Ok((bytes, path.display().to_string()))
            })?
        } else if zip_path.is_file() {
            let context = || format!("CelebA archive {}: cannot read it as a zip", zip_path.display());
            let file = std::fs::File::open(&zip_path).with_context(context)?;
            let archive =
                std::sync::Mutex::new(zip::ZipArchive::new(std::io::BufReader::new(file)).with_context(context)?);
            decode_images(names.len(), image_size, channels, "CelebA", |i| {
                let member = format!("{FOLDER}/{}", names[i]);
                let where_ = format!("{}:{member}", zip_path.display());
                let mut archive = archive.lock().expect("no panic while reading");
                let mut entry =
                    archive.by_name(&member).with_context(|| format!("image {where_}: not in the archive"))?;
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes).with_context(|| format!("image {where_}: cannot read it"))?;
                Ok((bytes, where_))
            })?
        } else {
            bail!(missing(&format!("{ZIP} (or its folder {FOLDER}/)")));
        };
        let name = match &options.attribute {
            Some(a) => format!("celeba {split_name}, labelled by {a}"),
            None => format!("celeba {split_name}"),
        };
        Ok(Dataset { name, images, labels, classes })
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read it as text", path.display()))
}

/// Image name → 1 if it has `attribute`, 0 if not, from `list_attr_celeba.txt` (a count, the
/// 40 attribute names, then one line of 40 values, 1 or -1, per image).
fn read_attribute(path: &Path, attribute: &str) -> Result<HashMap<String, i64>> {
    let text = read_text(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.nth(1).unwrap_or_default().split_whitespace().collect();
    let column = header.iter().position(|a| *a == attribute).with_context(|| {
        format!(
            "attribute `{attribute}`: {} names {}",
            path.display(),
            if header.is_empty() { "none".into() } else { header.join(", ") }
        )
    })?;
    let mut values = HashMap::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let value = match fields.get(column + 1) {
            Some(&"1") => 1,
            Some(&"-1") => 0,
            _ => bail!(
                "{} line {}: expected an image name and {} values of 1 or -1, found `{line}`",
                path.display(),
                i + 3,
                header.len()
            ),
        };
        values.insert(fields[0].to_string(), value);
    }
    Ok(values)
}
