//! Downloading the official MNIST files, with a progress bar, checksums and atomic writes.

use crate::files;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

/// One file of the official MNIST distribution and its SHA-256.
pub struct RemoteFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// The official MNIST files and their checksums.
pub const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
];

/// A mirror of the official MNIST files.
pub const MNIST_MIRROR: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";

/// Downloads `files` from `base_url` into `dir`, checking each SHA-256; files already present
/// with the right checksum are kept. Each file is written atomically: a download that fails,
/// is cut short or has the wrong checksum leaves nothing behind.
pub fn fetch(base_url: &str, files: &[RemoteFile], dir: &Path, show_progress: bool) -> Result<()> {
    use sha2::{Digest, Sha256};
    files::ensure_writable_dir(dir)?;
    for file in files {
        let dest = dir.join(file.name);
        if dest.is_file() && sha256_file(&dest)? == file.sha256 {
            eprintln!("{}: present, checksum verified", dest.display());
            continue;
        }
        let url = format!("{}/{}", base_url.trim_end_matches('/'), file.name);
        let response = ureq::get(&url).call().with_context(|| format!("download {url} failed"))?;
        let total: Option<u64> = response.header("Content-Length").and_then(|v| v.parse().ok());
        let bar = if show_progress {
            indicatif::ProgressBar::new(total.unwrap_or(0))
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(file.name);
        let mut reader = response.into_reader();
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        files::write_atomic_with(&dest, |tmp| {
            use std::io::Write;
            let mut out = std::fs::File::create(tmp)?;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                received += n as u64;
                bar.set_position(received);
            }
            if let Some(total) = total {
                if received != total {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("download cut short: {received} of {total} bytes"),
                    ));
                }
            }
            let got = format!("{:x}", hasher.clone().finalize());
            if got != file.sha256 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("SHA-256 {got} does not match the expected {}", file.sha256),
                ));
            }
            out.sync_all()
        })
        .with_context(|| url.clone())?;
        bar.finish();
        eprintln!("{}: downloaded, checksum verified", dest.display());
    }
    Ok(())
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}
