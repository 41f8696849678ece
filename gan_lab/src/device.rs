//! Where a run computes: the CPU (the default, where the fast backend's kernels run) or a CUDA
//! GPU through libtorch, for the student who outgrows the laptop. Weights are initialised and
//! noise is drawn on the CPU, so one seed gives one starting point on every device; then the
//! models, the batches and the evaluator move to the chosen device.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// Reads `cpu`, `cuda` (the first GPU) or `cuda:N`.
pub fn parse(name: &str) -> Result<Device> {
    match name.trim() {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => bail!("device {name:?}: expected cpu, cuda or cuda:N (N the GPU's index, from 0)"),
        },
    }
}

/// The name [`parse`] reads back: `cpu`, `cuda:0`, ….
pub fn name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}

/// Checks that libtorch can place a tensor on `device`. The error is one line: the device, how
/// many CUDA GPUs libtorch sees, and the first sentence of what libtorch reported.
pub fn check(device: Device) -> Result<()> {
    if device == Device::Cpu {
        return Ok(());
    }
    let gpus = cuda_devices();
    let Err(error) = Tensor::f_zeros([1], (Kind::Float, device)) else {
        return Ok(());
    };
    let text = error.to_string();
    let line = text
        .lines()
        .map(|line| line.trim().trim_start_matches("Internal torch error:").trim())
        .find(|line| !line.is_empty())
        .unwrap_or("no reason given");
    // libtorch's first sentence says what went wrong; the rest lists backends or internals.
    let reason = match line.find(". ") {
        Some(end) => &line[..end],
        None => line.trim_end_matches('.'),
    };
    bail!(
        "device {}: libtorch cannot compute there ({gpus} CUDA GPU(s) visible): {reason}; the CPU (device cpu) always works",
        name(device)
    )
}

/// How many CUDA GPUs libtorch can use, after loading its CUDA backend.
pub fn cuda_devices() -> i64 {
    load_cuda_backend();
    tch::Cuda::device_count()
}

/// Loads libtorch's CUDA backend, which registers itself with the dispatcher as it loads. A
/// binary links `libtorch_cuda` only when it calls into it, which gan_lab never does, so the
/// linker may have left it out; without it libtorch knows no CUDA device at all. Where the
/// library is missing or cannot load, libtorch's own error says so next.
fn load_cuda_backend() {
    #[cfg(target_os = "linux")]
    {
        use std::os::raw::{c_char, c_int, c_void};
        extern "C" {
            fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
        }
        const RTLD_NOW: c_int = 2;
        const RTLD_GLOBAL: c_int = 0x100;
        // SAFETY: a NUL-terminated name; the handle is kept open for the life of the process.
        unsafe {
            dlopen(c"libtorch_cuda.so".as_ptr(), RTLD_NOW | RTLD_GLOBAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(3)] {
            assert_eq!(parse(&name(d)).unwrap(), d);
        }
        assert_eq!(parse("cuda").unwrap(), Device::Cuda(0));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU0"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected cpu, cuda or cuda:N"), "{bad}: {e}");
        }
        assert!(check(Device::Cpu).is_ok());
    }

    /// Without a GPU, CUDA is refused in one line that says what libtorch reported.
    #[test]
    fn cuda_without_a_gpu_is_one_line() {
        if cuda_devices() > 0 {
            return; // a machine with a GPU: nothing to refuse
        }
        let e = check(Device::Cuda(0)).unwrap_err().to_string();
        assert!(e.starts_with("device cuda:0: libtorch cannot compute there (0 CUDA GPU(s) visible): "), "{e}");
        assert!(!e.contains('\n') && !e.contains("frame #"), "{e}");
        let reason = e.split("visible): ").nth(1).unwrap();
        assert!(reason.len() > 20, "libtorch's reason is kept: {e}");
    }
}
