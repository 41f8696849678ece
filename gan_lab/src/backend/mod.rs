//! Speed, out of sight: everything gan_lab does to train faster than stock libtorch, behind one
//! switch.
//!
//! - **`Backend::Fast`** (the default where it was built): gan_lab's C++ kernels (`csrc/ops.cpp`:
//!   convolutions of one-channel images, layers that are one matrix product at their shape, the
//!   weight-gradient form of a convolution's second derivative) take over libtorch's
//!   `convolution`, `convolution_backward` and `_convolution_double_backward` in its dispatcher,
//!   so the models' plain `nn::conv2d` and `nn::conv_transpose2d` reach them by shape; oneDNN's
//!   matrix products take over `mm` and `addmm` where they measured faster on the CPU at hand
//!   ([`products`]); BatchNorm and LayerNorm run fused with their activation ([`ops`]); weights
//!   and batches are channels-last and freed memory stays in the process ([`perf`]).
//! - **`Backend::Libtorch`**: stock libtorch. Nothing of gan_lab's is registered in the
//!   dispatcher, the allocator keeps its settings, tensors keep their layout, every layer runs the
//!   op its model names. The same models, the same numbers up to float rounding.
//!
//! Choose with `GAN_LAB_BACKEND=fast|libtorch`, or [`set`] before the first model is built. The
//! choice holds for the process: the kernels cannot be taken back out of libtorch's dispatcher.
//! The C++ kernels are compiled with the `fast-kernels` cargo feature (on by default) where the
//! compiler can build them (GCC or clang with OpenMP on x86-64 Linux); elsewhere, or with
//! `--no-default-features`, only `Backend::Libtorch` exists.

pub mod ops;
pub mod perf;
pub mod products;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// How gan_lab computes: its own kernels and layouts, or stock libtorch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// gan_lab's kernels, fused layers, channels-last layout and allocator settings.
    Fast,
    /// libtorch as it ships.
    Libtorch,
}

impl Backend {
    /// The name `GAN_LAB_BACKEND` takes: `fast` or `libtorch`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Fast => "fast",
            Backend::Libtorch => "libtorch",
        }
    }

    /// One line for run logs: the name and what it means.
    pub fn describe(self) -> String {
        match self {
            Backend::Fast => "the fast backend (gan_lab's kernels, fused layers, channels-last)".to_owned(),
            Backend::Libtorch => "stock libtorch (GAN_LAB_BACKEND=libtorch)".to_owned(),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this build holds gan_lab's C++ kernels (the `fast-kernels` feature, on a compiler
/// that builds them).
pub const KERNELS_BUILT: bool = cfg!(gan_lab_kernels);

static CHOSEN: OnceLock<Backend> = OnceLock::new();
static PRODUCTS: OnceLock<products::Products> = OnceLock::new();

/// The backend `GAN_LAB_BACKEND` asks for, or the default: fast where the kernels were built.
fn from_env() -> Result<Backend> {
    match std::env::var("GAN_LAB_BACKEND") {
        Err(_) => Ok(if KERNELS_BUILT { Backend::Fast } else { Backend::Libtorch }),
        Ok(v) => match v.trim() {
            "" => Ok(if KERNELS_BUILT { Backend::Fast } else { Backend::Libtorch }),
            "libtorch" => Ok(Backend::Libtorch),
            "fast" => Ok(Backend::Fast),
            other => bail!("GAN_LAB_BACKEND: expected `fast` or `libtorch`, got `{other}`"),
        },
    }
}

/// Makes `backend` the process's backend; call it before the first model is built. Fails when
/// another one is already in use, or for `Backend::Fast` on a build without the kernels.
pub fn set(backend: Backend) -> Result<()> {
    if backend == Backend::Fast && !KERNELS_BUILT {
        bail!(
            "backend `fast`: this build of gan_lab has no C++ kernels (built with \
             --no-default-features, or on a compiler or CPU they do not support); use `libtorch`"
        );
    }
    // Chosen before the backend is put in place, so that a bad GAN_LAB_PRODUCTS is an error.
    let products = match (backend, CHOSEN.get()) {
        (Backend::Fast, None) => Some(products::for_this_cpu()?),
        _ => None,
    };
    let chosen = *CHOSEN.get_or_init(|| {
        install(backend, products);
        backend
    });
    if chosen != backend {
        bail!("backend `{backend}`: this process already runs `{chosen}`, which cannot change once a model is built");
    }
    Ok(())
}

/// The process's backend, chosen on the first call ([`set`], else `GAN_LAB_BACKEND`, else fast
/// where built). Fails on a `GAN_LAB_BACKEND` it cannot honour.
pub fn init() -> Result<Backend> {
    if let Some(&b) = CHOSEN.get() {
        return Ok(b);
    }
    let wanted = from_env()?;
    set(wanted)?;
    Ok(wanted)
}

/// The process's backend ([`init`]); panics with `init`'s message on a bad `GAN_LAB_BACKEND`
/// (the builders and the CLI call `init` first, so users meet the error, not the panic).
pub fn current() -> Backend {
    init().unwrap_or_else(|e| panic!("{e:#}"))
}

/// Whether gan_lab's own kernels and layouts are in use.
pub fn fast() -> bool {
    current() == Backend::Fast
}

/// Puts `backend` in place: registers the kernels in libtorch's dispatcher for `Fast`, the
/// matrix products among them as `products` says.
fn install(backend: Backend, products: Option<products::Products>) {
    if let (Backend::Fast, Some(products)) = (backend, products) {
        ops::register_kernels(products.onednn);
        let _ = PRODUCTS.set(products);
    }
}

/// Who computes float32 matrix products, and why: the fast backend's choice for this CPU
/// (`None` on stock libtorch, or before the first model is built).
pub fn products() -> Option<&'static products::Products> {
    PRODUCTS.get()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// For tests of the fast backend's kernels and rewrites, which would compare stock libtorch
    /// with itself on the other backend.
    #[cfg(gan_lab_kernels)]
    pub(crate) fn require_fast() {
        assert!(fast(), "this test checks the fast backend: run it without GAN_LAB_BACKEND=libtorch");
    }

    #[test]
    fn the_process_keeps_the_backend_it_started_with() {
        let b = init().expect("the test environment names a backend gan_lab has");
        assert_eq!(current(), b);
        let other = if b == Backend::Fast { Backend::Libtorch } else { Backend::Fast };
        let e = set(other).unwrap_err().to_string();
        assert!(e.contains(other.name()), "{e}");
        assert!(set(b).is_ok(), "choosing the same backend again is fine");
    }
}
