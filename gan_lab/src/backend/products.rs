//! Float32 matrix products, chosen per CPU: the fast backend replaces libtorch's `mm` and `addmm`
//! (MKL's sgemm in this libtorch) with oneDNN's matmul only where oneDNN measured faster on the
//! CPU at hand. oneDNN was more than twice as fast on the AMD EPYC CPUs measured; on an Intel Xeon
//! with AVX-512, MKL was the faster one.
//!
//! The choice is measured once per CPU (when the first model is built: twelve products each way) and
//! kept in `$GAN_LAB_HOME` (else `~/.cache/gan_lab`), so that every later run on the machine
//! computes its products the same way, bit for bit. `GAN_LAB_PRODUCTS=onednn|libtorch` overrides it.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Who computes float32 matrix products under the fast backend, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Products {
    /// Whether oneDNN's matmul replaces libtorch's `mm` and `addmm`.
    pub onednn: bool,
    /// The measured rates (GFLOP/s, the shapes below together), when measured.
    pub onednn_gflops: Option<f64>,
    pub libtorch_gflops: Option<f64>,
    /// How the choice was made: measured now, read from the file that keeps it, or overridden.
    #[serde(skip)]
    pub source: String,
}

impl std::fmt::Display for Products {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = if self.onednn { "oneDNN's matmul (replacing mm, addmm)" } else { "libtorch's own (not replaced)" };
        write!(f, "float32 matrix products: {who}")?;
        match (self.onednn_gflops, self.libtorch_gflops) {
            (Some(ours), Some(theirs)) if ours > 0.0 => {
                write!(f, "; oneDNN {ours:.0} against libtorch {theirs:.0} GFLOP/s on this CPU")?
            }
            (Some(_), Some(theirs)) => {
                write!(f, "; this CPU's oneDNN refuses float32 products; libtorch {theirs:.0} GFLOP/s")?
            }
            _ => {}
        }
        write!(f, " ({})", self.source)
    }
}

/// Products of the kinds training computes: a convolution as one product (cDCGAN's 4096×2048×256),
/// a square one, and a small dense layer's.
const SHAPES: [(i64, i64, i64); 3] = [(4096, 2048, 256), (1024, 1024, 1024), (512, 256, 512)];

/// oneDNN must be at least this much faster to replace libtorch's kernel.
const MARGIN: f64 = 1.05;

/// The fast backend's choice on this CPU ([`choose`] with the environment, the file that keeps
/// choices and the measurement of this build's kernels).
pub(super) fn for_this_cpu() -> Result<Products> {
    let wanted = std::env::var("GAN_LAB_PRODUCTS").ok();
    let file = cache_dir().map(|d| d.join(format!("products-{:016x}.json", fingerprint())));
    choose(wanted.as_deref(), file.as_deref(), &measure)
}

/// The choice: `wanted` (`GAN_LAB_PRODUCTS`) if given; else the one kept in `file`; else measured
/// by `measure` (oneDNN's and libtorch's GFLOP/s) and kept in `file`.
pub fn choose(wanted: Option<&str>, file: Option<&Path>, measure: &dyn Fn() -> (f64, f64)) -> Result<Products> {
    let forced = |onednn: bool, name: &str| Products {
        onednn,
        onednn_gflops: None,
        libtorch_gflops: None,
        source: format!("GAN_LAB_PRODUCTS={name}"),
    };
    match wanted.map(str::trim) {
        None | Some("") => {}
        Some("onednn") => return Ok(forced(true, "onednn")),
        Some("libtorch") => return Ok(forced(false, "libtorch")),
        Some(other) => bail!("GAN_LAB_PRODUCTS: expected `onednn` or `libtorch`, got `{other}`"),
    }
    if let Some(kept) =
        file.and_then(|f| std::fs::read(f).ok()).and_then(|b| serde_json::from_slice::<Products>(&b).ok())
    {
        let source = format!("measured earlier, kept in {}", file.map_or(String::new(), |f| f.display().to_string()));
        return Ok(Products { source, ..kept });
    }
    let (onednn_gflops, libtorch_gflops) = measure();
    let mut products = Products {
        onednn: onednn_gflops > MARGIN * libtorch_gflops,
        onednn_gflops: Some(onednn_gflops),
        libtorch_gflops: Some(libtorch_gflops),
        source: "measured now".into(),
    };
    if let Some(file) = file {
        // A choice that cannot be kept is still made; the next run measures again.
        let kept = file
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .ok()
            .and_then(|_| crate::files::write_atomic(file, &serde_json::to_vec_pretty(&products).ok()?).ok());
        if kept.is_some() {
            products.source = format!("measured now, kept in {}", file.display());
        }
    }
    Ok(products)
}

/// (oneDNN's, libtorch's) rate over [`SHAPES`], in GFLOP/s: the shapes' total work over their
/// total best times.
fn measure() -> (f64, f64) {
    let rate = |onednn: bool| {
        let (mut flops, mut seconds) = (0.0, 0.0);
        for (m, k, n) in SHAPES {
            let gflops = super::ops::product_gflops(m, k, n, onednn, 3);
            if gflops <= 0.0 {
                return 0.0;
            }
            let work = 2.0 * (m * k * n) as f64 / 1e9;
            flops += work;
            seconds += work / gflops;
        }
        flops / seconds
    };
    (rate(true), rate(false))
}

/// Where per-machine choices are kept: `$GAN_LAB_HOME`, else `~/.cache/gan_lab`.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("GAN_LAB_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/gan_lab")),
    }
}

/// What the choice depends on: the CPU (its model and flags), libtorch's thread count and
/// version, hashed (FNV-1a).
fn fingerprint() -> u64 {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map_or("", |(_, v)| v.trim())
    };
    let key =
        format!("{}|{}|{}|{}", field("model name"), field("flags"), tch::get_num_threads(), env!("CARGO_PKG_VERSION"));
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_choice_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("choices/products.json");
        let first = choose(None, Some(&file), &|| (450.0, 200.0)).unwrap();
        assert!(first.onednn && first.source.starts_with("measured now, kept in"), "{first:?}");
        let again = choose(None, Some(&file), &|| panic!("a kept choice is not measured again")).unwrap();
        assert_eq!((again.onednn, again.onednn_gflops), (true, Some(450.0)));
        assert!(again.source.starts_with("measured earlier"), "{again:?}");
    }

    #[test]
    fn onednn_replaces_libtorch_only_where_it_measured_faster() {
        let slower = choose(None, None, &|| (190.0, 250.0)).unwrap();
        assert!(!slower.onednn, "MKL faster: libtorch's products stay");
        let tied = choose(None, None, &|| (251.0, 250.0)).unwrap();
        assert!(!tied.onednn, "inside the margin: libtorch's products stay");
        let refused = choose(None, None, &|| (0.0, 250.0)).unwrap();
        assert!(!refused.onednn, "oneDNN refusing the product: libtorch's products stay");
    }

    #[test]
    fn gan_lab_products_overrides_the_measurement() {
        let never = &|| panic!("an override is not measured");
        assert!(choose(Some("onednn"), None, never).unwrap().onednn);
        assert!(!choose(Some("libtorch"), None, never).unwrap().onednn);
        let e = choose(Some("mkl"), None, never).unwrap_err().to_string();
        assert_eq!(e, "GAN_LAB_PRODUCTS: expected `onednn` or `libtorch`, got `mkl`");
    }
}
