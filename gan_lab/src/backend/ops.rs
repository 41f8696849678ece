//! The Rust side of `csrc/ops.cpp` (compiled by the build script, the `fast-kernels` feature):
//! registering its kernels in libtorch's dispatcher, LeakyReLU with a slope (which tch does not
//! expose), the profiler, libtorch's thread pool. Each has a plain form for builds without the C++.

#[cfg(gan_lab_kernels)]
use anyhow::anyhow;
use anyhow::Result;
use std::ffi::CStr;
#[cfg(gan_lab_kernels)]
use std::ffi::{c_char, c_void};
use tch::Tensor;
#[cfg(gan_lab_kernels)]
use torch_sys::C_tensor;

#[cfg(gan_lab_kernels)]
extern "C" {
    fn gan_lab_register_kernels(products: bool);
    fn gan_lab_product_gflops(m: i64, k: i64, n: i64, dnnl: bool, reps: i32) -> f64;
    fn gan_lab_last_error() -> *const c_char;
    fn gan_lab_clear_error();
    fn gan_lab_leaky_relu(x: *const C_tensor, slope: f64) -> *mut C_tensor;
    #[cfg(test)]
    fn gan_lab_windows_k4s2(x: *const C_tensor) -> *mut C_tensor;
    #[cfg(test)]
    fn gan_lab_overlap_k4s2(rows: *const C_tensor, n: i64, h: i64, w: i64) -> *mut C_tensor;
    fn gan_lab_seeded(on: bool);
    fn gan_lab_profile_start();
    fn gan_lab_parallel_for(n: i64, grain: i64, f: extern "C" fn(*mut c_void, i64, i64), ctx: *mut c_void);
    fn gan_lab_range_start();
    fn gan_lab_range_end(name: *const c_char);
    fn gan_lab_profile_stop() -> *const c_char;
    fn gan_lab_unseeded_draws() -> i64;
}

/// Registers gan_lab's kernels in libtorch's dispatcher ([`super::set`] calls it once), oneDNN's
/// matrix products among them when `products`.
pub(super) fn register_kernels(products: bool) {
    #[cfg(gan_lab_kernels)]
    // SAFETY: registers C++ functions with libtorch once; takes a flag, returns nothing.
    unsafe {
        gan_lab_register_kernels(products)
    }
    #[cfg(not(gan_lab_kernels))]
    let _ = products;
}

/// GFLOP/s of float32 products `[m, k]·[k, n]`, best of `reps`: by oneDNN's matmul (`onednn`) or
/// by libtorch's own kernel; 0 where oneDNN refuses the product, or in a build without the kernels.
pub fn product_gflops(m: i64, k: i64, n: i64, onednn: bool, reps: i32) -> f64 {
    #[cfg(gan_lab_kernels)]
    // SAFETY: plain values in and out; the C++ side catches its own errors.
    unsafe {
        gan_lab_product_gflops(m, k, n, onednn, reps)
    }
    #[cfg(not(gan_lab_kernels))]
    {
        let _ = (m, k, n, onednn, reps);
        0.0
    }
}

/// Marks this thread as holding gan_lab's seed lock (`train::with_seed` calls it), or not.
pub(crate) fn set_seeded(on: bool) {
    #[cfg(gan_lab_kernels)]
    // SAFETY: sets a thread-local flag.
    unsafe {
        gan_lab_seeded(on)
    }
    #[cfg(not(gan_lab_kernels))]
    let _ = on;
}

/// Random draws from libtorch's global generator made, on any thread, outside
/// [`crate::rng::with_seed`] since the first call, which starts watching every op (each op then
/// pays a callback: for tests). Each such draw makes runs that share the process depend on timing.
/// `None` in a build without the C++ (which holds the watcher).
pub fn unseeded_draws() -> Option<i64> {
    #[cfg(gan_lab_kernels)]
    // SAFETY: reads (and on the first call installs) a counter in csrc/ops.cpp.
    return Some(unsafe { gan_lab_unseeded_draws() });
    #[cfg(not(gan_lab_kernels))]
    None
}

/// Runs `f(begin, end)` over `[0, n)` in chunks of at least `grain` on libtorch's thread pool:
/// the threads its kernels use, awake between them, rather than threads started for the purpose,
/// which would compete with them for the cores. `f` must not panic (a panic aborts the process).
/// Without the C++ it is one call, `f(0, n)`.
pub(crate) fn parallel_for(n: usize, grain: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    #[cfg(not(gan_lab_kernels))]
    {
        let _ = grain;
        f(0, n)
    }
    #[cfg(gan_lab_kernels)]
    parallel_for_in_pool(n, grain, f)
}

#[cfg(gan_lab_kernels)]
fn parallel_for_in_pool(n: usize, grain: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    extern "C" fn call(ctx: *mut c_void, begin: i64, end: i64) {
        // SAFETY: `ctx` is the `&dyn Fn` below, alive until `gan_lab_parallel_for` returns.
        let f = unsafe { &*(ctx as *const &(dyn Fn(usize, usize) + Sync)) };
        f(begin as usize, end as usize)
    }
    // SAFETY: the callback only reads `f` through `ctx`, which outlives the call; `f` is `Sync`,
    // as the pool's threads call it at once.
    unsafe { gan_lab_parallel_for(n as i64, grain.max(1) as i64, call, &f as *const _ as *mut c_void) }
}

/// One op's (or autograd node's) wall time while profiling: calls, time from start to end, and
/// self time (less the ops it ran inside).
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    pub name: String,
    pub calls: i64,
    pub total_ms: f64,
    pub self_ms: f64,
}

/// Whether this build can time ops ([`profile_start`]): the profiler is part of the C++.
pub const PROFILER_BUILT: bool = cfg!(gan_lab_kernels);

/// Starts timing every libtorch op and autograd node this thread runs, from zero (each op then
/// pays a callback: for `gan-lab bench --profile`). Ops on other threads are not timed. Does
/// nothing in a build without the C++ ([`PROFILER_BUILT`]).
pub fn profile_start() {
    #[cfg(gan_lab_kernels)]
    // SAFETY: installs (once) a callback in csrc/ops.cpp and clears its table.
    unsafe {
        gan_lab_profile_start()
    }
}

/// Runs `f`, timed as one op named `name` while profiling ([`profile_start`]): gan_lab's own
/// work outside libtorch's ops (the optimizers' updates, the batches).
pub fn profiled<T>(name: &'static CStr, f: impl FnOnce() -> T) -> T {
    #[cfg(not(gan_lab_kernels))]
    {
        let _ = name;
        f()
    }
    #[cfg(gan_lab_kernels)]
    {
        // SAFETY: pushes a start time on this thread's stack of ranges (only while profiling).
        unsafe { gan_lab_range_start() };
        let out = f();
        // SAFETY: `name` is a NUL-terminated string (copied into the profile); pops the range
        // pushed above.
        unsafe { gan_lab_range_end(name.as_ptr()) };
        out
    }
}

/// Stops timing ops; returns the wall milliseconds since [`profile_start`] and each op's times,
/// most self time first.
pub fn profile_stop() -> (f64, Vec<OpTime>) {
    #[cfg(not(gan_lab_kernels))]
    let text = String::new();
    #[cfg(gan_lab_kernels)]
    // SAFETY: a NUL-terminated report kept by csrc/ops.cpp until the next call, copied here.
    let text = unsafe { CStr::from_ptr(gan_lab_profile_stop()).to_string_lossy().into_owned() };
    let mut lines = text.lines();
    let wall = lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or(0.0);
    let ops = lines
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            Some(OpTime {
                calls: f.next()?.parse().ok()?,
                total_ms: f.next()?.parse().ok()?,
                self_ms: f.next()?.parse().ok()?,
                name: f.next()?.to_owned(),
            })
        })
        .collect();
    (wall, ops)
}

/// Takes ownership of a tensor returned by `csrc/ops.cpp`, or returns its error.
#[cfg(gan_lab_kernels)]
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
/// over the whole activation, which took twice as long (docs/performance.md).
/// Without the C++ it is `where(x > 0, x, slope·x)`: the same values and derivatives.
pub fn f_leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    #[cfg(gan_lab_kernels)]
    // SAFETY: `x` is a live tensor for the duration of the call.
    return wrap(unsafe { gan_lab_leaky_relu(x.as_ptr(), slope) }, "leaky_relu");
    #[cfg(not(gan_lab_kernels))]
    {
        anyhow::ensure!(x.is_floating_point(), "leaky_relu: expected a floating-point tensor, got {:?}", x.kind());
        Ok(x.f_where_self(&x.f_gt(0.0)?, &x.f_mul_scalar(slope)?)?)
    }
}

/// [`f_leaky_relu`] for floating-point tensors; panics otherwise, as tch's own ops do.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    f_leaky_relu(x, slope).unwrap_or_else(|e| panic!("{e}"))
}

/// The 4×4 windows a kernel-4, stride-2, padding-1 convolution reads from `x` `[N, C, H, W]` (H and W
/// even), as the rows of a `[N·(H/2)·(W/2), 16·C]` matrix: row (n, i, j), column (a, b, c) holds
/// x[n, c, 2i+a-1, 2j+b-1], 0 outside the map. The convolution is this matrix times its weights
/// viewed as `[out, 16·C]` (channels-last: (row, column, channel) order). Differentiable to any
/// order: its gradient is [`overlap_k4s2`], and that one's is this. The fast backend's
/// convolutions on small maps run on it (`csrc/ops.cpp`, the dense forms); here for its tests.
#[cfg(all(test, gan_lab_kernels))]
pub(crate) fn f_windows_k4s2(x: &Tensor) -> Result<Tensor> {
    // SAFETY: `x` is a live tensor for the duration of the call.
    wrap(unsafe { gan_lab_windows_k4s2(x.as_ptr()) }, "windows_k4s2")
}

/// The adjoint of [`f_windows_k4s2`]: rows `[n·h·w, 16·C]`, one per position (n, i, j) of an h×w
/// map, each summed onto the 4×4 window of a `[n, C, 2h, 2w]` map (channels-last) that position
/// covers in a kernel-4, stride-2, padding-1 transposed convolution.
#[cfg(all(test, gan_lab_kernels))]
pub(crate) fn f_overlap_k4s2(rows: &Tensor, n: i64, h: i64, w: i64) -> Result<Tensor> {
    // SAFETY: `rows` is a live tensor for the duration of the call.
    wrap(unsafe { gan_lab_overlap_k4s2(rows.as_ptr(), n, h, w) }, "overlap_k4s2")
}

/// [`f_windows_k4s2`]; panics on a tensor that is not an even-sided map, as tch's own ops do.
#[cfg(all(test, gan_lab_kernels))]
pub(crate) fn windows_k4s2(x: &Tensor) -> Tensor {
    f_windows_k4s2(x).unwrap_or_else(|e| panic!("{e}"))
}

/// [`f_overlap_k4s2`]; panics on rows of the wrong shape, as tch's own ops do.
#[cfg(all(test, gan_lab_kernels))]
pub(crate) fn overlap_k4s2(rows: &Tensor, n: i64, h: i64, w: i64) -> Tensor {
    f_overlap_k4s2(rows, n, h, w).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(all(test, gan_lab_kernels))]
/// The largest difference of `a` and `b` over `b`'s largest magnitude.
pub(crate) fn relative(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(1e-30)
}

/// The plain forms, in every build.
#[cfg(test)]
mod plain_tests {
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
}

#[cfg(all(test, gan_lab_kernels))]
pub(crate) mod tests {
    use super::*;
    use tch::nn::{self, Module, ModuleT};
    use tch::Kind;

    use crate::backend::tests::require_fast as fast_backend;

    /// The profile counts each op this thread runs once per call, nests gan_lab's own ranges
    /// around libtorch's ops (self time excludes them), leaves other threads' ops out, and parallel
    /// loops cover their range once.
    #[test]
    fn the_profile_times_this_threads_ops_once_each_and_nests_them() {
        fast_backend();
        let opts = (tch::Kind::Float, tch::Device::Cpu);
        let (a, b) = crate::rng::with_seed(3, || (Tensor::randn([64, 64], opts), Tensor::randn([64, 64], opts)));
        profile_start();
        for _ in 0..3 {
            let _ = profiled(c"test::range", || {
                std::thread::sleep(std::time::Duration::from_millis(2));
                a.relu().neg()
            });
        }
        let b = b.shallow_clone();
        let _ = std::thread::spawn(move || b.tanh()).join().expect("the other thread ran");
        let (wall_ms, ops) = profile_stop();
        let find = |name: &str| ops.iter().find(|o| o.name == name);
        let range = find("test::range").expect("the range is in the profile");
        let relu = find("aten::relu").expect("relu is in the profile");
        assert_eq!((range.calls, relu.calls, find("aten::neg").map(|o| o.calls)), (3, 3, Some(3)));
        assert!(find("aten::tanh").is_none(), "another thread's op was timed");
        assert!(range.self_ms >= 6.0 && range.total_ms < wall_ms, "range {range:?}, wall {wall_ms}");
        let inside = relu.total_ms + find("aten::neg").unwrap().total_ms;
        assert!((range.total_ms - range.self_ms - inside).abs() < 1e-3, "self time still holds its ops: {range:?}");
        // After the stop nothing is counted.
        let _ = a.relu();
        profile_start();
        assert!(profile_stop().1.is_empty(), "ops counted before the start");

        let hits: Vec<std::sync::atomic::AtomicU8> = (0..100_000).map(|_| 0.into()).collect();
        parallel_for(hits.len(), 1000, &|from, to| {
            hits[from..to].iter().for_each(|h| {
                h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        });
        assert!(
            hits.iter().all(|h| h.load(std::sync::atomic::Ordering::Relaxed) == 1),
            "an element missed or run twice"
        );
    }

    #[test]
    fn libtorch_errors_come_back_as_errors() {
        fast_backend();
        let e = f_leaky_relu(&Tensor::from_slice(&[1i64, -2]), 0.2).unwrap_err().to_string();
        assert!(e.starts_with("leaky_relu: ") && e.contains("Long"), "{e}");
        let e = f_windows_k4s2(&Tensor::zeros([1, 2, 5, 4], (Kind::Float, tch::Device::Cpu))).unwrap_err().to_string();
        assert!(e.starts_with("windows_k4s2: ") && e.contains("even"), "{e}");
        assert!(!e.contains("frame #"), "the message without libtorch's C++ stack: {e}");
        let e = f_windows_k4s2(&Tensor::zeros([8], (Kind::Float, tch::Device::Cpu))).unwrap_err().to_string();
        assert!(e.contains("expected a [N, C, H, W] map") && e.contains("[8]"), "{e}");
        let e =
            f_overlap_k4s2(&Tensor::zeros([6, 32], (Kind::Float, tch::Device::Cpu)), 1, 2, 2).unwrap_err().to_string();
        assert!(e.starts_with("overlap_k4s2: ") && e.contains("[4, 16"), "{e}");
    }

    #[test]
    fn windows_hold_the_padded_four_by_four_patches() {
        fast_backend();
        // x[0, c, r, k] = 100c + 10r + k on a 2-channel 4×4 map: window (i, j), column (a, b, c)
        // is x[c, 2i+a-1, 2j+b-1], or 0 outside the map.
        let x = Tensor::arange(4, (Kind::Float, tch::Device::Cpu));
        let x = (x.view([1, 1, 4, 1]) * 10
            + x.view([1, 1, 1, 4])
            + Tensor::from_slice(&[0.0f32, 100.0]).view([1, 2, 1, 1]))
        .contiguous();
        let rows = windows_k4s2(&x);
        assert_eq!(rows.size(), [4, 32]);
        for (i, j, a, b, c) in [(0, 0, 0, 0, 0), (0, 0, 1, 1, 1), (1, 0, 2, 3, 0), (1, 1, 3, 3, 1), (0, 1, 1, 2, 1)] {
            let (r, k) = (2 * i + a - 1, 2 * j + b - 1);
            let expected = if (0..4).contains(&r) && (0..4).contains(&k) { (100 * c + 10 * r + k) as f64 } else { 0.0 };
            assert_eq!(
                rows.double_value(&[i * 2 + j, (a * 4 + b) * 2 + c]),
                expected,
                "window ({i}, {j}) at ({a}, {b}, {c})"
            );
        }
    }

    /// Each row of the windows holds its 4×4 window's pixels, channels fastest, zeros where the
    /// window reaches into the padding: the padded map read through strides, for plain and
    /// channels-last maps, float32 and float64, one channel or several.
    #[test]
    fn windows_are_the_padded_maps_4x4_windows_row_by_row() {
        fast_backend();
        for (n, c, h, w) in [(3, 1, 4, 5), (2, 7, 2, 2), (1, 32, 3, 1), (2, 3, 1, 1)] {
            for kind in [Kind::Float, Kind::Double] {
                let x = crate::rng::with_seed(4, || Tensor::randn([n, c, 2 * h, 2 * w], (kind, tch::Device::Cpu)));
                let padded = Tensor::zeros([n, 2 * h + 2, 2 * w + 2, c], (kind, tch::Device::Cpu));
                padded.narrow(1, 1, 2 * h).narrow(2, 1, 2 * w).copy_(&x.permute([0, 2, 3, 1]));
                let st = padded.stride();
                let want = padded
                    .as_strided([n, h, w, 4, 4, c], [st[0], 2 * st[1], 2 * st[2], st[1], st[2], st[3]], None)
                    .reshape([n * h * w, 16 * c]);
                for x in [x.shallow_clone(), crate::backend::perf::channels_last(&x)] {
                    let got = windows_k4s2(&x);
                    assert!(got.equal(&want), "[{n}, {c}, {}, {}] {kind:?}: other values", 2 * h, 2 * w);
                }
            }
        }
    }

    #[test]
    fn overlap_sums_each_pixels_windows_in_the_order_of_their_offsets() {
        fast_backend();
        // The float32 loop gathers each pixel's values; adding each window offset's values onto a
        // zero map in turn, (a, b) = (0, 0), (0, 1), ..., gives the same sums in the same order.
        for (n, c, h, w) in [(3, 1, 4, 5), (2, 7, 2, 2), (1, 32, 3, 1)] {
            let rows = crate::rng::with_seed(9, || Tensor::randn([n * h * w, 16 * c], (Kind::Float, tch::Device::Cpu)));
            let got = overlap_k4s2(&rows, n, h, w);
            assert_eq!(got.size(), [n, c, 2 * h, 2 * w]);
            let v = rows.view([n, h, w, 4, 4, c]);
            let padded = Tensor::zeros([n, 2 * h + 2, 2 * w + 2, c], (Kind::Float, tch::Device::Cpu));
            for a in 0..4 {
                for b in 0..4 {
                    let mut target = padded.slice(1, a, a + 2 * h, 2).slice(2, b, b + 2 * w, 2);
                    let _ = target.g_add_(&v.select(4, b).select(3, a));
                }
            }
            let want = padded.narrow(1, 1, 2 * h).narrow(2, 1, 2 * w).permute([0, 3, 1, 2]);
            assert!(got.equal(&want), "[{n}, {c}, {}, {}]: not the same bits", 2 * h, 2 * w);
        }
    }

    /// One BatchNorm + activation block as the models write it (`bn.forward_t`, then ReLU or
    /// LeakyReLU) in `x`'s precision: the output, the gradients of x, the BatchNorm weight and bias,
    /// the running statistics after it, and how many times the fast backend's BatchNorm ran.
    fn block(x: &Tensor, slope: f64) -> (Vec<Tensor>, i64) {
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        let config = nn::BatchNormConfig {
            ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.3 },
            bs_init: nn::Init::Randn { mean: 0.0, stdev: 0.3 },
            ..Default::default()
        };
        let bn = crate::rng::with_seed(3, || {
            if x.dim() == 2 {
                nn::batch_norm1d(vs.root(), x.size()[1], config)
            } else {
                nn::batch_norm2d(vs.root(), x.size()[1], config)
            }
        });
        if x.kind() == Kind::Double {
            vs.double();
        }
        let x = x.detach().set_requires_grad(true);
        // SAFETY: reads a thread-local counter.
        let before = unsafe { gan_lab_batch_norm_calls() };
        let y = bn.forward_t(&x, true);
        let y = if slope == 0.0 { y.relu() } else { leaky_relu(&y, slope) };
        // A gradient that is not the same for every element, so each term of the backward counts.
        let probe = Tensor::linspace(-1.0, 2.0, y.numel() as i64, (x.kind(), tch::Device::Cpu)).view_as(&y).cos();
        let (w, b) = (bn.ws.as_ref().unwrap(), bn.bs.as_ref().unwrap());
        let grads = Tensor::run_backward(&[(&y * probe).sum(x.kind())], &[&x, w, b], false, false);
        // SAFETY: reads a thread-local counter.
        let ours = unsafe { gan_lab_batch_norm_calls() } - before;
        let mut out = vec![y.detach()];
        out.extend(grads);
        out.extend([bn.running_mean.copy(), bn.running_var.copy()]);
        (out, ours)
    }

    #[test]
    fn batch_norm_on_the_fast_backend_has_libtorchs_values_and_derivatives() {
        fast_backend();
        let maps = crate::rng::with_seed(1, || Tensor::randn([6, 5, 4, 3], (Kind::Float, tch::Device::Cpu)) * 2 + 0.5);
        let names = ["output", "x gradient", "weight gradient", "bias gradient", "running mean", "running var"];
        for (what, x) in [
            ("channels-last map", crate::backend::perf::channels_last(&maps)),
            ("[N, C] matrix", maps.reshape([18, 20])),
            ("contiguous map (copied channels-last)", maps.shallow_clone()),
        ] {
            for slope in [0.0, 0.2] {
                // float32 takes the fast backend's BatchNorm; float64 is libtorch's own, the reference.
                let ((fast, ours), (reference, theirs)) = (block(&x, slope), block(&x.to_kind(Kind::Double), slope));
                assert_eq!((ours, theirs), (1, 0), "{what}: the fast BatchNorm runs on float32 only");
                for ((a, b), name) in fast.iter().zip(&reference).zip(names) {
                    let diff = (a.to_kind(Kind::Double) - b).abs().max().double_value(&[]);
                    assert!(diff < 1e-5, "{what}, slope {slope}: {name} off by {diff:e}");
                }
            }
        }
    }

    /// libtorch's InstanceNorm (SAGAN's critic) calls `batch_norm` without running statistics:
    /// that call keeps libtorch's BatchNorm, and works.
    #[test]
    fn instance_norm_still_runs_on_the_fast_backend() {
        fast_backend();
        let x = crate::rng::with_seed(1, || Tensor::randn([4, 3, 4, 4], (Kind::Float, tch::Device::Cpu)));
        let norm = |x: &Tensor| {
            let w = Tensor::linspace(0.5, 1.5, 3, (x.kind(), tch::Device::Cpu));
            x.instance_norm::<&Tensor>(Some(&w), Some(&(&w - 1.0)), None, None, true, 0.1, 1e-5, false)
        };
        let diff = (norm(&x).to_kind(Kind::Double) - norm(&x.to_kind(Kind::Double))).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "instance norm off by {diff:e}");
    }

    #[test]
    fn batch_norm_on_the_fast_backend_has_a_gradient_of_its_gradient() {
        fast_backend();
        let x = crate::rng::with_seed(2, || Tensor::randn([8, 3, 2, 2], (Kind::Float, tch::Device::Cpu)));
        let x = crate::backend::perf::channels_last(&x);
        let second = |kind: Kind| {
            let mut vs = nn::VarStore::new(tch::Device::Cpu);
            let bn = crate::rng::with_seed(5, || nn::batch_norm2d(vs.root(), 3, Default::default()));
            if kind == Kind::Double {
                vs.double();
            }
            let x = x.to_kind(kind).detach().set_requires_grad(true);
            let y = leaky_relu(&bn.forward_t(&x, true), 0.2);
            let g = &Tensor::run_backward(&[(&y * &y).sum(kind)], &[&x], true, true)[0];
            Tensor::run_backward(&[g.square().sum(kind)], &[&x], false, false).remove(0).to_kind(Kind::Double)
        };
        let diff = (second(Kind::Float) - second(Kind::Double)).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "second derivative off by {diff:e}");
    }

    /// A LayerNorm over each sample of `x` with weights away from 1 and 0, as the critic's, in
    /// `x`'s precision.
    fn layer_norm_of(vs: &mut nn::VarStore, x: &Tensor) -> nn::LayerNorm {
        let config = nn::LayerNormConfig {
            ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.3 },
            bs_init: nn::Init::Randn { mean: 0.0, stdev: 0.3 },
            ..Default::default()
        };
        let ln = crate::rng::with_seed(4, || nn::layer_norm(vs.root(), x.size()[1..].to_vec(), config));
        if x.kind() == Kind::Double {
            vs.double();
        }
        ln
    }

    /// LayerNorm then the activation, as the critic writes it.
    fn layer_norm_block(ln: &nn::LayerNorm, x: &Tensor, slope: f64) -> Tensor {
        if slope == 0.0 {
            ln.forward(x).relu()
        } else {
            leaky_relu(&ln.forward(x), slope)
        }
    }

    /// How many times the fast backend's LayerNorm ran on this thread while `f` ran.
    fn layer_norms_in<T>(f: impl FnOnce() -> T) -> (T, i64) {
        // SAFETY: reads a thread-local counter.
        let before = unsafe { gan_lab_layer_norm_calls() };
        let out = f();
        (out, unsafe { gan_lab_layer_norm_calls() } - before)
    }

    #[test]
    fn layer_norm_on_the_fast_backend_has_libtorchs_values_and_derivatives() {
        fast_backend();
        // 80 values per sample, and 2048 (several flushes into double); 60, not a whole number of
        // lanes, goes to libtorch's ops.
        let maps = |shape: [i64; 4], seed| {
            crate::rng::with_seed(seed, || Tensor::randn(shape, (Kind::Float, tch::Device::Cpu)) * 2 + 0.5)
        };
        let cl = crate::backend::perf::channels_last(&maps([4, 32, 8, 8], 3));
        for x in [maps([6, 5, 4, 4], 1), maps([4, 32, 8, 8], 2), cl, maps([6, 5, 4, 3], 1)] {
            let fusable = (x.numel() as i64 / x.size()[0]) % 16 == 0;
            for slope in [0.0, 0.2] {
                // float32 takes the fast backend's LayerNorm; float64 is libtorch's own, the reference.
                let [(fast, ours), (reference, theirs)] = [Kind::Float, Kind::Double].map(|kind| {
                    let mut vs = nn::VarStore::new(tch::Device::Cpu);
                    let x = x.to_kind(kind);
                    let ln = layer_norm_of(&mut vs, &x);
                    let (w, b) = (ln.ws.as_ref().unwrap(), ln.bs.as_ref().unwrap());
                    let x = x.detach().set_requires_grad(true);
                    layer_norms_in(|| {
                        let y = layer_norm_block(&ln, &x, slope);
                        let probe =
                            Tensor::linspace(-1.0, 2.0, y.numel() as i64, (kind, tch::Device::Cpu)).view_as(&y).cos();
                        let mut out = vec![y.detach()];
                        out.extend(Tensor::run_backward(&[(&y * probe).sum(kind)], &[&x, w, b], false, false));
                        out
                    })
                });
                assert_eq!((ours, theirs), (fusable as i64, 0), "{:?}: where the fast LayerNorm runs", x.size());
                for ((a, b), name) in
                    fast.iter().zip(&reference).zip(["output", "x gradient", "weight gradient", "bias gradient"])
                {
                    let diff = (a.to_kind(Kind::Double) - b).abs().max().double_value(&[]);
                    assert!(diff < 1e-5, "{:?}, slope {slope}: {name} off by {diff:e}", x.size());
                }
            }
        }
    }

    /// A gradient penalty through one LayerNorm + LeakyReLU block scored by the weights `q`, in
    /// `x`'s precision: its gradients with respect to the block's input, the LayerNorm's weight
    /// and bias, and `q`.
    fn penalty_gradients(x: &Tensor, through_weight: bool) -> Vec<Tensor> {
        let kind = x.kind();
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        let ln = layer_norm_of(&mut vs, x);
        let q = crate::rng::with_seed(6, || {
            Tensor::randn(x.size(), (Kind::Float, tch::Device::Cpu)).to_kind(kind).set_requires_grad(true)
        });
        let x = x.detach().set_requires_grad(true);
        let (w, b) = (ln.ws.as_ref().unwrap(), ln.bs.as_ref().unwrap());
        let score = (layer_norm_block(&ln, &x, 0.2) * &q).sum(kind);
        let loss = if through_weight {
            // A derivative through the weight's gradient too (no lesson takes one).
            let g = Tensor::run_backward(&[score], &[&x, w], true, true);
            g[0].square().sum(kind) + g[1].square().sum(kind)
        } else {
            let g = &Tensor::run_backward(&[score], &[&x], true, true)[0];
            let norm = (g.flatten(1, -1).square().sum_dim_intlist(1, false, kind) + 1e-12).sqrt();
            (norm - 1.0).square().mean(kind) * 10.0
        };
        Tensor::run_backward(&[loss], &[&x, w, b, &q], false, false)
    }

    #[test]
    fn layer_norm_on_the_fast_backend_has_the_gradient_penaltys_second_derivatives() {
        fast_backend();
        let x = crate::rng::with_seed(3, || Tensor::randn([5, 16, 4, 4], (Kind::Float, tch::Device::Cpu)) * 1.5 + 0.3);
        for (x, through_weight) in [(x.shallow_clone(), false), (x.shallow_clone(), true)]
            .into_iter()
            .chain([false, true].map(|t| (crate::backend::perf::channels_last(&x), t)))
        {
            let (fast, ours) = layer_norms_in(|| penalty_gradients(&x, through_weight));
            let (reference, theirs) = layer_norms_in(|| penalty_gradients(&x.to_kind(Kind::Double), through_weight));
            assert!(ours >= 1 && theirs == 0, "the fast LayerNorm ran {ours} times in float32, {theirs} in float64");
            for ((a, b), name) in fast.iter().zip(&reference).zip(["x", "weight", "bias", "q"]) {
                if !b.defined() {
                    assert!(!a.defined() || a.abs().max().double_value(&[]) == 0.0, "{name}: libtorch's is 0");
                    continue;
                }
                let diff = relative(&a.to_kind(Kind::Double), b);
                assert!(
                    diff < 1e-4,
                    "second derivative with respect to {name} (through the weight's gradient: {through_weight}; \
                     strides {:?}) off by {diff:e} of its largest",
                    x.stride()
                );
            }
        }
    }

    extern "C" {
        fn gan_lab_batch_norm_calls() -> i64;
        fn gan_lab_layer_norm_calls() -> i64;
        fn gan_lab_dense_conv_calls() -> i64;
        fn gan_lab_conv_double_backward_calls() -> i64;
        fn gan_lab_dnnl_matmul_calls() -> i64;
        fn gan_lab_dnnl_matmul_usable() -> bool;
        fn gan_lab_products_replaced() -> bool;
        fn gan_lab_image_conv_backward_calls() -> i64;
        fn gan_lab_image_conv_forward_calls() -> i64;
    }

    /// How many of `wanted` products oneDNN should take: all, or none where the fast backend kept
    /// libtorch's products on this CPU or this CPU's oneDNN refuses float32 products (then
    /// libtorch's own kernel computes them; checked all the same).
    fn dnnl_share(wanted: i64) -> i64 {
        if unsafe { gan_lab_dnnl_matmul_usable() && gan_lab_products_replaced() } {
            wanted
        } else {
            0
        }
    }

    /// `f`'s result and how many matrix products oneDNN computed during it.
    fn counting_dnnl<T>(f: impl FnOnce() -> T) -> (T, i64) {
        let before = unsafe { gan_lab_dnnl_matmul_calls() };
        let out = f();
        (out, unsafe { gan_lab_dnnl_matmul_calls() } - before)
    }

    /// A k4 s2 p1 convolution of the image `x` (`transposed`: the transposed one of the maps `x`
    /// onto an image) with weight `w` and bias `b`, and the gradients of x, w and b through it,
    /// tanh and the factors `q`, in float32 (twice: the same bits) and float64: the float32 output
    /// and gradients must be within 1e-6 of the float64 ones' largest values. Returns the output.
    fn check_image_layer(what: &str, [x, w, b, q]: [&Tensor; 4], transposed: bool, channels_last: bool) -> Tensor {
        let run = |kind: Kind| {
            let layout = |t: Tensor| if channels_last { crate::backend::perf::channels_last(&t) } else { t };
            let x = layout(x.to_kind(kind)).set_requires_grad(true);
            let w = layout(w.to_kind(kind)).set_requires_grad(true);
            let b = b.to_kind(kind).set_requires_grad(true);
            let y = if transposed {
                x.conv_transpose2d(&w, Some(&b), [2, 2], [1, 1], [0, 0], 1, [1, 1])
            } else {
                x.conv2d(&w, Some(&b), [2, 2], [1, 1], [1, 1], 1)
            };
            let score = (y.tanh() * q.to_kind(kind)).sum(kind);
            let grads = Tensor::run_backward(&[score], &[&x, &w, &b], false, false);
            (y.detach(), grads)
        };
        let (y, fast) = run(Kind::Float);
        let (y2, again) = run(Kind::Float);
        assert!(y.equal(&y2), "{what}: the same output bits twice");
        assert!(fast.iter().zip(&again).all(|(a, b)| a.equal(b)), "{what}: the same gradient bits twice");
        let (want, exact) = run(Kind::Double);
        let diff = relative(&y.to_kind(Kind::Double), &want);
        assert!(diff < 1e-6, "{what}, output (channels-last {channels_last}): off by {diff:e}");
        for ((a, b), name) in fast.iter().zip(&exact).zip(["input", "weight", "bias"]) {
            let diff = relative(&a.to_kind(Kind::Double), b);
            assert!(diff < 1e-6, "{what}, {name} gradient (channels-last {channels_last}): off by {diff:e}");
        }
        y
    }

    /// (times the image kernels' forward forms ran, times their backward ran) on this thread.
    fn image_calls() -> (i64, i64) {
        unsafe { (gan_lab_image_conv_forward_calls(), gan_lab_image_conv_backward_calls()) }
    }

    #[test]
    fn a_one_channel_images_convolution_and_its_gradients_match_float64() {
        fast_backend();
        let cpu = (Kind::Float, tch::Device::Cpu);
        // 7 output channels: the image's gradient is gan_lab's, the rest libtorch's; 16: all gan_lab's.
        for out in [7, 16] {
            let [x, w, b, q] = crate::rng::with_seed(12, || {
                [vec![5, 1, 12, 10], vec![out, 1, 4, 4], vec![out], vec![5, out, 6, 5]]
                    .map(|shape| Tensor::randn(shape, cpu))
            });
            for channels_last in [false, true] {
                let before = image_calls();
                let y = check_image_layer(&format!("{out} channels"), [&x, &w, &b, &q], false, channels_last);
                // Two float32 runs: each a forward (gan_lab's at 16 channels) and a backward.
                let own_forward = 2 * i64::from(out == 16);
                assert_eq!(image_calls(), (before.0 + own_forward, before.1 + 2), "{out} channels: the image forms");
                assert_eq!(
                    y.is_contiguous(),
                    !channels_last,
                    "{out} channels: the output is channels-last when the image and weight are"
                );
            }
        }
        // Two channels, or an odd side: libtorch's own.
        let before = image_calls();
        for (x, w) in crate::rng::with_seed(13, || {
            [([2, 2, 8, 8], [16, 2, 4, 4]), ([2, 1, 9, 8], [16, 1, 4, 4])]
                .map(|(x, w)| (Tensor::randn(x, cpu).set_requires_grad(true), Tensor::randn(w, cpu)))
        }) {
            let y = x.conv2d(&w, None::<Tensor>, [2, 2], [1, 1], [1, 1], 1);
            let _ = Tensor::run_backward(&[y.sum(Kind::Float)], &[&x], false, false);
        }
        assert_eq!(image_calls(), before, "other shapes stay with libtorch");
    }

    #[test]
    fn a_malformed_weight_or_bias_gets_libtorchs_own_error_not_the_image_kernels() {
        fast_backend();
        let cpu = (Kind::Float, tch::Device::Cpu);
        let image = Tensor::zeros([2, 1, 8, 8], cpu);
        for weight in [Tensor::from(1.0f32), Tensor::zeros([16], cpu)] {
            let e = image.f_conv2d(&weight, None::<Tensor>, [2, 2], [1, 1], [1, 1], 1).unwrap_err().to_string();
            assert!(e.contains("weight"), "{:?}: {e}", weight.size());
        }
        // A bias of the wrong length, or of another type, for the image convolution and its transpose.
        let (weight, maps) = (Tensor::zeros([16, 1, 4, 4], cpu), Tensor::zeros([2, 16, 4, 4], cpu));
        for bias in [Tensor::zeros([5], cpu), Tensor::zeros([16], (Kind::Double, tch::Device::Cpu))] {
            let e = image.f_conv2d(&weight, Some(&bias), [2, 2], [1, 1], [1, 1], 1).unwrap_err().to_string();
            assert!(e.contains("bias") || e.contains("type"), "{:?}: {e}", bias.size());
        }
        for bias in [Tensor::zeros([3], cpu), Tensor::zeros([1], (Kind::Double, tch::Device::Cpu))] {
            let y = maps.f_conv_transpose2d(&weight, Some(&bias), [2, 2], [1, 1], [0, 0], 1, [1, 1]);
            assert!(y.is_err(), "transposed, bias {:?} {:?}: {y:?}", bias.size(), bias.kind());
        }
    }

    #[test]
    fn the_transposed_convolution_onto_an_image_and_its_gradients_match_float64() {
        fast_backend();
        let cpu = (Kind::Float, tch::Device::Cpu);
        // 16 channels onto the image: gan_lab's forms; 7: libtorch's own.
        for from in [16, 7] {
            let [x, w, b, q] = crate::rng::with_seed(14, || {
                [vec![5, from, 6, 5], vec![from, 1, 4, 4], vec![1], vec![5, 1, 12, 10]]
                    .map(|shape| Tensor::randn(shape, cpu))
            });
            // Positive factors q: the bias's one gradient is then a sum of 600 positive terms, not
            // a difference of near-equal sums that float32 rounding of the output would dominate.
            let q = q.abs();
            for channels_last in [false, true] {
                let before = image_calls();
                let y = check_image_layer(&format!("{from} channels"), [&x, &w, &b, &q], true, channels_last);
                let own = 2 * i64::from(from == 16);
                assert_eq!(image_calls(), (before.0 + own, before.1 + own), "{from} channels: the image forms");
                assert_eq!(y.size(), [5, 1, 12, 10]);
            }
        }
    }

    #[test]
    fn matrix_products_go_to_onednn_with_libtorchs_values() {
        fast_backend();
        let cpu = (Kind::Float, tch::Device::Cpu);
        let (a, b, at, bt, bias, full) = crate::rng::with_seed(5, || {
            (
                Tensor::randn([96, 200], cpu),
                Tensor::randn([200, 72], cpu),
                Tensor::randn([200, 96], cpu),
                Tensor::randn([72, 200], cpu),
                Tensor::randn([72], cpu),
                Tensor::randn([96, 72], cpu),
            )
        });
        let exact = |t: &Tensor| t.to_kind(Kind::Double);
        // (what, the float32 product, its float64 value)
        type Case<'a> = (&'a str, Box<dyn Fn() -> Tensor + 'a>, Tensor);
        let cases: Vec<Case> = vec![
            ("mm", Box::new(|| a.mm(&b)), exact(&a).mm(&exact(&b))),
            ("mm of transposed operands", Box::new(|| at.tr().mm(&bt.tr())), exact(&at).tr().mm(&exact(&bt).tr())),
            ("mm of a strided slice", Box::new(|| a.slice(1, 0, 200, 2).mm(&b.slice(0, 0, 200, 2))), {
                exact(&a).slice(1, 0, 200, 2).mm(&exact(&b).slice(0, 0, 200, 2))
            }),
            ("addmm with a bias row", Box::new(|| bias.addmm(&a, &b)), exact(&bias).addmm(&exact(&a), &exact(&b))),
            ("addmm onto a full matrix", Box::new(|| full.addmm(&a, &b)), exact(&full).addmm(&exact(&a), &exact(&b))),
            ("linear", Box::new(|| a.linear(&bt, Some(&bias))), exact(&a).linear(&exact(&bt), Some(&exact(&bias)))),
        ];
        for (name, f, want) in &cases {
            let full_before = full.copy();
            let (got, calls) = counting_dnnl(f);
            assert_eq!(calls, dnnl_share(1), "{name}: oneDNN computes it where it takes float32 products");
            let diff = relative(&got.to_kind(Kind::Double), want);
            assert!(diff < 1e-6, "{name}: off by {diff:e} of the largest value");
            assert!(got.equal(&f()), "{name}: the same bits twice");
            assert!(full.equal(&full_before), "{name}: addmm's input left as it was");
        }
        // Too small to gain anything: libtorch's own kernel.
        let (small, calls) = counting_dnnl(|| a.slice(0, 0, 4, 1).slice(1, 0, 8, 1).mm(&b.slice(0, 0, 8, 1)));
        assert_eq!(calls, 0, "a 4×8×72 product stays with libtorch");
        let want = exact(&a).slice(0, 0, 4, 1).slice(1, 0, 8, 1).mm(&exact(&b).slice(0, 0, 8, 1));
        assert!(relative(&small.to_kind(Kind::Double), &want) < 1e-6, "libtorch's own small product");
        // float64 stays with libtorch.
        let (_, calls) = counting_dnnl(|| exact(&a).mm(&exact(&b)));
        assert_eq!(calls, 0, "float64 stays with libtorch");
    }

    #[test]
    fn gradients_through_onednn_products_match_float64() {
        fast_backend();
        // A dense layer's backward and a penalty's second derivative run products too.
        let cpu = (Kind::Float, tch::Device::Cpu);
        let (x, w, q) = crate::rng::with_seed(6, || {
            (Tensor::randn([64, 300], cpu), Tensor::randn([128, 300], cpu) * 0.1, Tensor::randn([64, 128], cpu))
        });
        let grads = |kind: Kind| {
            let x = x.to_kind(kind).set_requires_grad(true);
            let w = w.to_kind(kind).set_requires_grad(true);
            let score = (x.linear::<Tensor>(&w, None).tanh() * q.to_kind(kind)).sum(kind);
            let g = &Tensor::run_backward(&[score], &[&x], true, true)[0];
            let penalty = (g.square().sum(kind) - 1.0).square();
            Tensor::run_backward(&[penalty], &[&w], false, false)[0].to_kind(Kind::Double)
        };
        let (fast, calls) = counting_dnnl(|| grads(Kind::Float));
        assert!(calls >= dnnl_share(4), "forward, backward and the second backward's products in oneDNN: {calls}");
        let diff = relative(&fast, &grads(Kind::Double));
        assert!(diff < 1e-4, "the penalty's weight gradient off by {diff:e} of its largest");
    }

    /// Gradients of a gradient penalty through two convolutions (k4 s2 p1 without bias, then k3
    /// s1 p0 with one) and tanh, with respect to the two weights and the bias, in `kind`: from
    /// three channels to 8, or from an image's one to 16 (a critic's first layer).
    fn conv_penalty_gradients(kind: Kind, channels_last: bool, image: bool) -> Vec<Tensor> {
        let cpu = tch::Device::Cpu;
        let layout = |t: Tensor| if channels_last { crate::backend::perf::channels_last(&t) } else { t };
        let (x, w1, w2, b2, q) = crate::rng::with_seed(8, || {
            (
                Tensor::randn([4, if image { 1 } else { 3 }, 16, 16], (Kind::Float, cpu)),
                Tensor::randn(if image { [16, 1, 4, 4] } else { [8, 3, 4, 4] }, (Kind::Float, cpu)) * 0.3,
                Tensor::randn([6, if image { 16 } else { 8 }, 3, 3], (Kind::Float, cpu)) * 0.2,
                Tensor::randn([6], (Kind::Float, cpu)) * 0.1,
                Tensor::randn([6, 6, 6], (Kind::Float, cpu)),
            )
        });
        let x = layout(x.to_kind(kind)).set_requires_grad(true);
        let [w1, w2, b2] = [w1, w2, b2].map(|t| layout(t.to_kind(kind)).set_requires_grad(true));
        let q = q.to_kind(kind);
        let h = x.conv2d(&w1, None::<Tensor>, [2, 2], [1, 1], [1, 1], 1).tanh();
        let score = (h.conv2d(&w2, Some(&b2), [1, 1], [0, 0], [1, 1], 1) * &q).sum(kind);
        let g = &Tensor::run_backward(&[score], &[&x], true, true)[0];
        let penalty = (g.flatten(1, -1).square().sum_dim_intlist(1, false, kind).sqrt() - 1.0).square().mean(kind);
        Tensor::run_backward(&[penalty], &[&w1, &w2, &b2], false, false)
    }

    #[test]
    fn a_penalty_through_convolutions_has_libtorchs_second_derivatives() {
        fast_backend();
        // float32 takes the weight-gradient form of the second derivative, float64 libtorch's own.
        for (channels_last, image) in [(false, false), (true, false), (false, true), (true, true)] {
            let before = unsafe { gan_lab_conv_double_backward_calls() };
            let fast = conv_penalty_gradients(Kind::Float, channels_last, image);
            let after = unsafe { gan_lab_conv_double_backward_calls() };
            let exact = conv_penalty_gradients(Kind::Double, channels_last, image);
            assert_eq!(after - before, 2, "float32: each convolution's second derivative in the weight-gradient form");
            assert_eq!(unsafe { gan_lab_conv_double_backward_calls() }, after, "float64: libtorch's own form");
            // The input's gradient does not depend on the bias: no gradient on either side.
            assert!(!fast[2].defined() && !exact[2].defined(), "conv2 bias");
            for ((a, b), name) in fast.iter().zip(&exact).zip(["conv1 weight", "conv2 weight"]) {
                let diff = relative(a, &b.to_kind(Kind::Float));
                assert!(
                    diff < 1e-4,
                    "{name} (channels-last {channels_last}, image {image}): off by {diff:e} of its largest"
                );
            }
        }
    }

    /// A convolution with bias through the dispatcher in `kind` (k4 s1 p0 of `input`, or transposed
    /// with `transposed`), scored through tanh: the output, the gradients of input, weight and
    /// bias, and the weight's and bias's gradients of a penalty on the input's gradient (WGAN-GP's
    /// second derivative).
    fn dense_layer_derivatives(
        kind: Kind,
        (transposed, k4s2p1): (bool, bool),
        input: [i64; 4],
        weight: [i64; 4],
        cl: bool,
    ) -> Vec<Tensor> {
        let (s, p) = if k4s2p1 { (2, 1) } else { (1, 0) };
        let cpu = tch::Device::Cpu;
        let layout = |t: Tensor| if cl { crate::backend::perf::channels_last(&t) } else { t };
        let out = if transposed { weight[1] } else { weight[0] };
        let (x, w, b) = crate::rng::with_seed(5, || {
            (
                Tensor::randn(input, (Kind::Float, cpu)),
                Tensor::randn(weight, (Kind::Float, cpu)) * 0.2,
                Tensor::randn([out], (Kind::Float, cpu)),
            )
        });
        let x = layout(x.to_kind(kind)).set_requires_grad(true);
        let w = layout(w.to_kind(kind)).set_requires_grad(true);
        let b = b.to_kind(kind).set_requires_grad(true);
        let y = if transposed {
            x.conv_transpose2d(&w, Some(&b), [s, s], [p, p], [0, 0], 1, [1, 1])
        } else {
            x.conv2d(&w, Some(&b), [s, s], [p, p], [1, 1], 1)
        };
        let q = crate::rng::with_seed(6, || Tensor::randn(y.size(), (Kind::Float, cpu))).to_kind(kind);
        let g = Tensor::run_backward(&[(y.tanh() * q).sum(kind)], &[&x, &w, &b], true, true);
        let penalty = (g[0].square().sum(kind) - 1.0).square();
        let gg = Tensor::run_backward(&[penalty], &[&w, &b], false, false);
        let mut all = vec![y.detach()];
        all.extend(g.iter().map(Tensor::detach));
        all.extend(gg);
        all
    }

    /// D's last layer (a kernel as large as its 4×4 input), G's first (a transposed kernel on
    /// one pixel), and the k4 s2 p1 layers on small maps with many channels (down to 4×4, up
    /// from 4×4) take the dense forms in float32, with the values and derivatives libtorch's own
    /// kernels give in float64; other shapes keep libtorch's.
    #[test]
    fn dense_convolutions_have_libtorchs_values_and_derivatives() {
        fast_backend();
        let names =
            ["output", "input gradient", "weight gradient", "bias gradient", "penalty: weight", "penalty: bias"];
        let forms = [
            ((false, false), [5, 12, 4, 4], [3, 12, 4, 4]),
            ((true, false), [7, 10, 1, 1], [10, 6, 4, 4]),
            ((false, true), [3, 16, 8, 8], [20, 16, 4, 4]),
            ((false, true), [2, 24, 4, 6], [16, 24, 4, 4]),
            ((true, true), [3, 20, 4, 4], [20, 16, 4, 4]),
            ((true, true), [2, 16, 2, 3], [16, 24, 4, 4]),
        ];
        for (form, input, weight) in forms {
            for cl in [false, true] {
                let before = unsafe { gan_lab_dense_conv_calls() };
                let fast = dense_layer_derivatives(Kind::Float, form, input, weight, cl);
                let calls = unsafe { gan_lab_dense_conv_calls() } - before;
                assert!(
                    calls >= 3,
                    "{form:?} {input:?}: forward, backward and the penalty's in the dense form: {calls} calls"
                );
                let exact = dense_layer_derivatives(Kind::Double, form, input, weight, cl);
                for ((a, b), name) in fast.iter().zip(&exact).zip(names) {
                    assert_eq!(a.size(), b.size(), "{name}");
                    let diff = relative(a, &b.to_kind(Kind::Float));
                    assert!(diff < 1e-5, "{name} ({form:?} {input:?}, channels-last {cl}): off by {diff:e}");
                }
            }
        }
        let before = unsafe { gan_lab_dense_conv_calls() };
        let _ = dense_layer_derivatives(Kind::Float, (false, false), [2, 12, 6, 6], [3, 12, 4, 4], false);
        let _ = dense_layer_derivatives(Kind::Float, (true, false), [2, 10, 2, 2], [10, 6, 4, 4], false);
        // Larger maps, fewer channels, odd sides.
        let _ = dense_layer_derivatives(Kind::Float, (false, true), [2, 16, 16, 16], [16, 16, 4, 4], false);
        let _ = dense_layer_derivatives(Kind::Float, (true, true), [2, 16, 8, 8], [16, 16, 4, 4], false);
        let _ = dense_layer_derivatives(Kind::Float, (false, true), [2, 8, 8, 8], [16, 8, 4, 4], false);
        let _ = dense_layer_derivatives(Kind::Float, (true, true), [2, 16, 4, 4], [16, 8, 4, 4], false);
        let _ = dense_layer_derivatives(Kind::Float, (false, true), [2, 16, 5, 5], [16, 16, 4, 4], false);
        assert_eq!(unsafe { gan_lab_dense_conv_calls() }, before, "these shapes run libtorch's convolution");
    }
}
