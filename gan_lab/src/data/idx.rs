//! The IDX format of MNIST and Fashion-MNIST: a magic number (0x08 = unsigned bytes, then the
//! number of dimensions), the dimensions as big-endian u32, then the bytes.

use anyhow::{ensure, Context, Result};
use std::io::Read;
use std::path::Path;

/// An IDX file's dimensions and unsigned-byte payload.
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes with `expected_dims` dimensions, gzipped or raw, and
/// checks its magic number and that the payload matches the header's counts.
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<Idx> {
    let raw = std::fs::read(path).with_context(|| format!("dataset file {}: cannot read it", path.display()))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("dataset file {}: corrupt or truncated gzip data", path.display()))?;
        out
    } else {
        raw
    };
    let what = |msg: String| format!("dataset file {}: {msg}", path.display());
    ensure!(bytes.len() >= 4, what(format!("{} bytes is too short for an IDX header", bytes.len())));
    let expected_magic = 0x0800 | expected_dims as u32;
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    ensure!(
        magic == expected_magic,
        what(format!(
            "wrong magic number 0x{magic:08x}: expected 0x{expected_magic:08x} (IDX, unsigned bytes, {expected_dims} dimension{})",
            if expected_dims == 1 { "" } else { "s" }
        ))
    );
    let header = 4 + 4 * expected_dims;
    ensure!(bytes.len() >= header, what(format!("header cut short at {} bytes", bytes.len())));
    let dims: Vec<usize> = (0..expected_dims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    if expected_dims == 3 {
        ensure!(
            dims[1] > 0 && dims[2] > 0 && dims[1] <= 1024 && dims[2] <= 1024,
            what(format!("image size {}×{}: expected between 1 and 1024 pixels a side", dims[1], dims[2]))
        );
    }
    let expected_len: usize = dims.iter().product();
    let found = bytes.len() - header;
    ensure!(
        found == expected_len,
        what(format!(
            "header announces {} ({expected_len} bytes) but the file holds {found} bytes{}",
            dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×"),
            if found < expected_len { " (truncated?)" } else { "" }
        ))
    );
    ensure!(dims[0] > 0, what("holds no items".into()));
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}
