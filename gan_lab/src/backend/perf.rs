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
//! - **bfloat16, optional.** On CPUs with `avx512_bf16`, [`with_bf16`] runs the forward passes
//!   under libtorch's CPU autocast, PyTorch's `torch.autocast("cpu", dtype=torch.bfloat16)`:
//!   convolutions, transposed convolutions and linear layers compute in bfloat16 (8 bits of
//!   mantissa instead of 23), losses in float32, and the weights, their gradients and the
//!   optimizers stay float32. Off by default (`TrainConfig::bf16`).

use anyhow::{ensure, Result};
use tch::{nn::VarStore, Tensor};

/// A training batch in the layout the backend computes in: channels-last on the fast backend
/// when `on` (the training setting), as it is otherwise.
pub fn batch_layout(x: Tensor, on: bool) -> Tensor {
    if on && super::fast() {
        channels_last(&x)
    } else {
        x
    }
}

/// `x` `[N, C, H, W]` with channels-last strides (other shapes are returned as they are).
pub fn channels_last(x: &Tensor) -> Tensor {
    if x.dim() == 4 {
        let y = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        let s = y.size();
        if s[1] == 1 {
            // One channel: the same memory either way, and libtorch keeps the strides it has,
            // which convolutions read as [N, C, H, W] (and answer in that layout).
            return y.as_strided(s.as_slice(), [s[2] * s[3], 1, s[3], 1], None);
        }
        y
    } else {
        x.shallow_clone()
    }
}

/// Stores every 4-D variable of `vs` (the convolution weights) channels-last, in place: layers
/// and optimizers built on them keep working with the same tensors.
/// Nothing with stock libtorch ([`super::Backend::Libtorch`]).
pub fn use_channels_last(vs: &VarStore) {
    if !super::fast() {
        return;
    }
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                var.set_data(&channels_last(&var));
            }
        }
    });
}

/// Keeps freed memory in the process instead of returning it to the kernel after every step
/// (glibc on Linux; elsewhere nothing to do). Called once by the training loops; nothing with
/// stock libtorch.
pub fn tune_allocator() {
    if !super::fast() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_MAX: i32 = -4;
            if std::env::var("GAN_LAB_MALLOC").as_deref() != Ok("default") {
                // SAFETY: mallopt only changes glibc's limits; both values are in range. No block
                // is mapped on its own (glibc's threshold for that tops out at 32 MiB, below
                // InfoGAN's 8192 × 1024 weights and their gradients), and the heap is not trimmed.
                // Threads other than the main one still map blocks bigger than their arenas.
                unsafe {
                    mallopt(M_MMAP_MAX, 0);
                    mallopt(M_TRIM_THRESHOLD, i32::MAX);
                }
            }
        });
    }
}

/// Whether this CPU computes bfloat16 dot products natively (`avx512_bf16`); without them
/// libtorch emulates bfloat16 arithmetic.
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A clear error when bfloat16 training is asked for on a CPU without `avx512_bf16`.
pub fn check_bf16() -> Result<()> {
    ensure!(
        bf16_supported(),
        "bf16: this CPU has no avx512_bf16 instructions, so bfloat16 would only be emulated; \
         train without bf16"
    );
    Ok(())
}

/// libtorch's CPU autocast (ATen's `at::autocast`, the functions behind PyTorch's
/// `torch.autocast("cpu")`; the tch API reaches only the CUDA one). libtorch is pinned to one
/// version by torch-sys, and these functions take and return plain integers and booleans.
mod autocast {
    /// c10::DeviceType::CPU.
    pub const CPU: i8 = 0;
    /// c10::ScalarType::BFloat16.
    pub const BFLOAT16: i8 = 15;
    extern "C" {
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device: i8) -> bool;
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device: i8) -> i8;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> i32;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> i32;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

/// Whether the CPU's autocast is on in this thread (inside [`with_bf16`]).
pub fn autocast_active() -> bool {
    // SAFETY: a plain-value read of libtorch's thread-local autocast state.
    unsafe { autocast::is_autocast_enabled(autocast::CPU) }
}

/// Runs `f` with the CPU's bfloat16 autocast on when `enabled` (else just runs it), exactly as
/// PyTorch's `with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):` does: the
/// previous state comes back afterwards, even if `f` panics, and the bfloat16 copies of the
/// weights made inside are dropped when the outermost region ends (the optimizer changes the
/// weights next). Run the backward pass outside.
pub fn with_bf16<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    if !enabled {
        return f();
    }
    struct Restore {
        enabled: bool,
        dtype: i8,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain-value calls into libtorch's thread-local autocast state.
            unsafe {
                autocast::set_autocast_enabled(autocast::CPU, self.enabled);
                autocast::set_autocast_dtype(autocast::CPU, self.dtype);
                if autocast::decrement_nesting() == 0 {
                    autocast::clear_cache();
                }
            }
        }
    }
    // SAFETY: as above.
    let _restore = unsafe {
        let restore = Restore {
            enabled: autocast::is_autocast_enabled(autocast::CPU),
            dtype: autocast::get_autocast_dtype(autocast::CPU),
        };
        autocast::set_autocast_enabled(autocast::CPU, true);
        autocast::set_autocast_dtype(autocast::CPU, autocast::BFLOAT16);
        autocast::increment_nesting();
        restore
    };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::with_seed;
    use tch::{Device, Kind};

    fn conv(x: &Tensor, w: &Tensor) -> Tensor {
        x.conv2d::<&Tensor>(w, None, [1, 1], [0, 0], [1, 1], 1)
    }

    #[test]
    fn one_channel_maps_and_weights_go_channels_last_and_so_does_their_convolution() {
        let (x, w) = with_seed(1, || {
            (
                Tensor::randn([2, 1, 8, 8], (Kind::Float, Device::Cpu)),
                Tensor::randn([4, 1, 4, 4], (Kind::Float, Device::Cpu)),
            )
        });
        let (xc, wc) = (channels_last(&x), channels_last(&w));
        assert_eq!((xc.stride(), wc.stride()), (vec![64, 1, 8, 1], vec![16, 1, 4, 1]));
        let s2 = |x: &Tensor, w: &Tensor| x.conv2d::<&Tensor>(w, None, [2, 2], [1, 1], [1, 1], 1);
        let (y, plain) = (s2(&xc, &wc), s2(&x, &w));
        assert_eq!(y.stride()[1], 1, "the convolution answers channels-last: strides {:?}", y.stride());
        assert!(y.allclose(&plain, 1e-5, 1e-6, false), "same values as in NCHW");
    }

    #[test]
    fn bf16_regions_compute_convolutions_in_bfloat16_and_restore_float32_after() {
        let vs = VarStore::new(Device::Cpu);
        let (w, x) = with_seed(2, || {
            (vs.root().randn_standard("w", &[4, 3, 3, 3]), Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu)))
        });
        assert_eq!(with_bf16(false, || conv(&x, &w)).kind(), Kind::Float);
        let inside = with_bf16(true, || {
            // Nested regions, as PyTorch allows; the inner one must not switch the outer one off.
            let inner = with_bf16(true, || conv(&x, &w));
            (inner.kind(), conv(&x, &w).kind(), conv(&x, &w).sum(Kind::Float).kind())
        });
        assert_eq!(inside, (Kind::BFloat16, Kind::BFloat16, Kind::Float));
        assert_eq!(conv(&x, &w).kind(), Kind::Float, "autocast is off again after the region");
        let caught = std::panic::catch_unwind(|| with_bf16(true, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(conv(&x, &w).kind(), Kind::Float, "autocast is off again after a panic");

        // The weight gradient comes back in float32, for the float32 optimizer.
        let loss = with_bf16(true, || conv(&x, &w).square().mean(Kind::Float));
        let grads = Tensor::run_backward(&[loss], &[&w], false, false);
        assert_eq!(grads[0].kind(), Kind::Float);
    }

    #[test]
    fn each_bf16_region_sees_the_weights_as_they_are_now() {
        // Autocast caches its bfloat16 copies of the weights; an update between two regions
        // must reach the second one.
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1, 1, 1, 1]);
        let x = Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu));
        let before = with_bf16(true, || conv(&x, &w).double_value(&[0, 0, 0, 0]));
        let _ = tch::no_grad(|| w.shallow_clone().fill_(3.0));
        let after = with_bf16(true, || conv(&x, &w).double_value(&[0, 0, 0, 0]));
        assert_eq!((before, after), (1.0, 3.0));
    }
}
