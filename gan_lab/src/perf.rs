//! Speed on a laptop CPU: the tensor layout and the allocator settings the training loops use.
//!
//! - **Channels-last.** oneDNN's convolutions run fastest on NHWC data. Convolution weights are
//!   stored channels-last once, when a model is built, and each batch is laid out the same way;
//!   every later activation follows. Shapes stay `[N, C, H, W]`: only the strides change, so no
//!   code that reads tensors needs to know.
//! - **The allocator.** A training step frees and reallocates the same large activations every
//!   time; glibc hands big blocks back to the kernel and maps them again, and the page faults of
//!   fresh pages cost as much system time as the arithmetic. Training keeps freed memory in the
//!   process instead (peak memory is unchanged: it is the same blocks).

use anyhow::{Context, Result};
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// `x` `[N, C, H, W]` with channels-last strides (other shapes are returned as they are).
pub fn channels_last(x: &Tensor) -> Tensor {
    if x.dim() == 4 {
        x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        x.shallow_clone()
    }
}

/// Stores every 4-D variable of `vs` (the convolution weights) channels-last, in place: layers
/// and optimizers built on them keep working with the same tensors.
pub fn use_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                var.set_data(&channels_last(&var));
            }
        }
    });
}

/// Writes named tensors as safetensors at `path` (contiguous copies: the file format has no strides).
pub fn write_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let contiguous: Vec<(&str, Tensor)> = tensors.iter().map(|(name, t)| (name.as_str(), t.contiguous())).collect();
    Tensor::write_safetensors(&contiguous, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The variables of `vs` by name, sorted.
pub fn variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Keeps freed memory in the process instead of returning it to the kernel after every step
/// (glibc on Linux; elsewhere nothing to do). Called once by the training loops.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            if std::env::var("GAN_LAB_MALLOC").as_deref() != Ok("default") {
                // SAFETY: mallopt only changes glibc's thresholds; both values are in range
                // (the mmap threshold's maximum on 64-bit is 32 MiB).
                unsafe {
                    mallopt(M_MMAP_THRESHOLD, 32 << 20);
                    mallopt(M_TRIM_THRESHOLD, i32::MAX);
                }
            }
        });
    }
}
