//! libtorch ops that tch does not expose, compiled from `csrc/ops.cpp` by the build script.

use anyhow::{anyhow, Result};
use std::ffi::{c_char, CStr};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn gan_lab_last_error() -> *const c_char;
    fn gan_lab_clear_error();
    fn gan_lab_leaky_relu(x: *const C_tensor, slope: f64) -> *mut C_tensor;
}

/// Takes ownership of a tensor returned by `csrc/ops.cpp`, or returns its error.
fn wrap(t: *mut C_tensor, op: &str) -> Result<Tensor> {
    if t.is_null() {
        // SAFETY: a null result comes with the message kept by the same thread's failed call.
        let message = unsafe {
            let m = gan_lab_last_error();
            let text =
                if m.is_null() { "unknown error".to_owned() } else { CStr::from_ptr(m).to_string_lossy().into_owned() };
            gan_lab_clear_error();
            text
        };
        return Err(anyhow!("{op}: {message}"));
    }
    // SAFETY: a non-null result is a fresh `at::Tensor*` that nothing else owns.
    Ok(unsafe { Tensor::from_ptr(t) })
}

/// LeakyReLU with negative slope `slope`, libtorch's own op with its own backward (PyTorch's
/// `F.leaky_relu(x, slope)`; tch's `leaky_relu` has the slope fixed at 0.01). `prelu` with a
/// constant weight gives the same values, but its backward also computes the weight's gradient
/// over the whole activation: on DCGAN's [64, 32, 16, 16] maps BatchNorm + `prelu` forward and
/// backward took 3.6 ms, BatchNorm + this 1.6 ms.
pub fn f_leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    // SAFETY: `x` is a live tensor for the duration of the call.
    wrap(unsafe { gan_lab_leaky_relu(x.as_ptr(), slope) }, "leaky_relu")
}

/// [`f_leaky_relu`] for floating-point tensors; panics otherwise, as tch's own ops do.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    f_leaky_relu(x, slope).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn leaky_relu_scales_negatives_and_their_gradient_by_the_slope() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 0.5, 3.0]).set_requires_grad(true);
        let y = leaky_relu(&x, 0.2);
        assert_eq!(Vec::<f32>::try_from(&y).unwrap(), [-0.4, -0.1, 0.0, 0.5, 3.0]);
        let weights = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0]);
        let g = &Tensor::run_backward(&[(&y * &weights).sum(Kind::Float)], &[&x], false, false)[0];
        assert_eq!(Vec::<f32>::try_from(g).unwrap(), [0.2, 0.4, 3.0 * 0.2f32, 4.0, 5.0]);
    }

    #[test]
    fn leaky_relu_has_a_gradient_of_its_gradient() {
        // WGAN-GP's penalty differentiates D's input gradient again.
        let x = Tensor::from_slice(&[-1.0f32, 2.0]).set_requires_grad(true);
        let y = leaky_relu(&(&x * &x), 0.2); // x² ≥ 0: the gradient is 2x, its derivative 2
        let g = &Tensor::run_backward(&[y.sum(Kind::Float)], &[&x], true, true)[0];
        let gg = &Tensor::run_backward(&[g.sum(Kind::Float)], &[&x], false, false)[0];
        assert_eq!(Vec::<f32>::try_from(gg).unwrap(), [2.0, 2.0]);
    }

    #[test]
    fn libtorch_errors_come_back_as_errors() {
        let e = f_leaky_relu(&Tensor::from_slice(&[1i64, -2]), 0.2).unwrap_err().to_string();
        assert!(e.starts_with("leaky_relu: ") && e.contains("Long"), "{e}");
    }
}
