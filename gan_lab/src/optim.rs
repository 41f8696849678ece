//! Adam and RMSProp with their state in plain tensors, so that checkpoints hold the optimizer
//! exactly and a resumed run continues bit for bit. The updates are PyTorch's `torch.optim.Adam`
//! (no weight decay, no amsgrad) and `torch.optim.RMSprop` (no momentum, not centred); the parity
//! test compares Adam's steps against PyTorch.

use crate::backend::ops::profiled;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{nn::VarStore, Tensor};

/// Adam's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment estimate (the lesson: 0.5).
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
}

impl AdamConfig {
    /// The DCGAN paper's Adam: lr 2e-4, β = (0.5, 0.999).
    pub fn dcgan() -> Self {
        AdamConfig { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8 }
    }
}

/// RMSProp's hyperparameters (WGAN's optimizer).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RmsPropConfig {
    pub lr: f64,
    /// Decay of the squared-gradient average (PyTorch's 0.99).
    pub alpha: f64,
    pub eps: f64,
}

impl RmsPropConfig {
    /// WGAN's (Arjovsky et al., 2017): lr 5e-5.
    pub fn wgan() -> Self {
        RmsPropConfig { lr: 5e-5, alpha: 0.99, eps: 1e-8 }
    }
}

/// Which optimizer a player uses, with its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerConfig {
    Adam(AdamConfig),
    RmsProp(RmsPropConfig),
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam(c) => c.lr,
            OptimizerConfig::RmsProp(c) => c.lr,
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        match self {
            OptimizerConfig::Adam(c) => c.lr = lr,
            OptimizerConfig::RmsProp(c) => c.lr = lr,
        }
    }
}

impl From<AdamConfig> for OptimizerConfig {
    fn from(c: AdamConfig) -> Self {
        OptimizerConfig::Adam(c)
    }
}

impl From<RmsPropConfig> for OptimizerConfig {
    fn from(c: RmsPropConfig) -> Self {
        OptimizerConfig::RmsProp(c)
    }
}

struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam or RMSProp over the trainable variables of one [`VarStore`].
pub struct Optimizer {
    pub config: OptimizerConfig,
    step: i64,
    slots: Vec<Slot>,
}

impl Optimizer {
    pub fn new(vs: &VarStore, config: impl Into<OptimizerConfig>) -> Optimizer {
        let config = config.into();
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, param)| Slot { exp_avg: param.zeros_like(), exp_avg_sq: param.zeros_like(), name, param })
            .collect();
        Optimizer { config, step: 0, slots }
    }

    /// Updates done so far.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// One update that lowers `loss`: its gradients with respect to this optimizer's parameters,
    /// then Adam's or RMSProp's step. The gradients come from autograd's `grad` (as
    /// `torch.autograd.grad`): computed for these parameters only (another network's weight
    /// gradients on the way are skipped, not computed and thrown away) and handed over, nothing
    /// accumulated in `.grad`, so there is nothing to zero before the next update.
    pub fn minimize(&mut self, loss: &Tensor) {
        let slots: Vec<&mut Slot> = self.slots.iter_mut().filter(|s| s.param.requires_grad()).collect();
        let params: Vec<&Tensor> = slots.iter().map(|s| &s.param).collect();
        let grads = profiled(c"gan_lab::backward", || Tensor::run_backward(&[loss], &params, false, false));
        update(&mut self.step, self.config, slots, grads);
    }

    /// Sets the `.grad` of this optimizer's parameters to zero: `backward()` adds into it, so
    /// each update starts by clearing what the last one left (PyTorch's `optimizer.zero_grad()`).
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// One update from the gradients that `backward()` left in the parameters' `.grad`
    /// (PyTorch's `optimizer.step()`). A parameter without a gradient is left as it is.
    pub fn step(&mut self) {
        let slots: Vec<&mut Slot> = self.slots.iter_mut().collect();
        let grads = slots.iter().map(|s| s.param.grad()).collect();
        update(&mut self.step, self.config, slots, grads);
    }

    /// The state as named tensors (`<prefix>exp_avg.<var>`, ..., `<prefix>step`).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}step"), Tensor::from(self.step))];
        for s in &self.slots {
            out.push((format!("{prefix}exp_avg.{}", s.name), s.exp_avg.shallow_clone()));
            out.push((format!("{prefix}exp_avg_sq.{}", s.name), s.exp_avg_sq.shallow_clone()));
        }
        out
    }

    /// Restores the state written by [`Optimizer::state`].
    pub fn load_state(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let what = "optimizer state";
        self.step = saved(tensors, &format!("{prefix}step"), what)?.int64_value(&[]);
        for s in &mut self.slots {
            for (kind, dst) in [("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)] {
                restore(tensors, &format!("{prefix}{kind}.{}", s.name), what, dst)?;
            }
        }
        Ok(())
    }
}

/// An exponential moving average of a network's variables (weights and BatchNorm statistics),
/// for sampling from an averaged generator: the average of the last ~1/(1 − β) updates is
/// steadier than the live weights, which a GAN keeps pushing back and forth. It starts from zero
/// and is bias-corrected like Adam's moments, so the random initial weights do not weigh on a
/// short run: after t updates it is Σᵢ (1 − β) β^(t−i) θᵢ / (1 − β^t).
pub struct Average {
    pub decay: f64,
    updates: i64,
    slots: Vec<(String, Tensor, Tensor)>,
}

impl Average {
    /// An empty average of `vs`'s variables with decay `decay` (β).
    pub fn new(vs: &VarStore, decay: f64) -> Average {
        let mut vars = vs.variables().into_iter().collect::<Vec<_>>();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars.into_iter().map(|(name, live)| (name, live.zeros_like(), live)).collect();
        Average { decay, updates: 0, slots }
    }

    /// Updates folded in so far.
    pub fn updates(&self) -> i64 {
        self.updates
    }

    /// Folds in the variables' current values: s ← β s + (1 − β) θ.
    pub fn update(&mut self) {
        self.updates += 1;
        tch::no_grad(|| {
            for (_, sum, live) in &mut self.slots {
                let _ = sum.lerp_(live, 1.0 - self.decay);
            }
        });
    }

    /// The averaged values, bias-corrected, by variable name.
    pub fn values(&self) -> Vec<(String, Tensor)> {
        let correction = 1.0 - self.decay.powi(self.updates as i32);
        tch::no_grad(|| self.slots.iter().map(|(name, sum, _)| (name.clone(), sum / correction)).collect())
    }

    /// Runs `f` with the averaged values in the variables, then puts the live values back
    /// exactly as they were. With no update yet, `f` sees the live values.
    pub fn apply<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.updates == 0 {
            return f();
        }
        let set = |values: &[Tensor]| {
            tch::no_grad(|| {
                for ((_, _, live), value) in self.slots.iter().zip(values) {
                    live.shallow_clone().copy_(value);
                }
            })
        };
        let live: Vec<Tensor> = self.slots.iter().map(|(_, _, live)| live.copy()).collect();
        set(&self.values().into_iter().map(|(_, v)| v).collect::<Vec<_>>());
        let out = f();
        set(&live);
        out
    }

    /// The state as named tensors (`<prefix><var>` sums and `<prefix>updates`).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}updates"), Tensor::from(self.updates))];
        out.extend(self.slots.iter().map(|(name, sum, _)| (format!("{prefix}{name}"), sum.shallow_clone())));
        out
    }

    /// Restores the state written by [`Average::state`].
    pub fn load_state(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let what = "averaged generator";
        self.updates = saved(tensors, &format!("{prefix}updates"), what)?.int64_value(&[]);
        for (name, sum, _) in &mut self.slots {
            restore(tensors, &format!("{prefix}{name}"), what, sum)?;
        }
        Ok(())
    }
}

/// Update number `step + 1` of `slots` with their gradients `grads`. A parameter the loss does not
/// reach has no gradient and no update.
fn update(step: &mut i64, config: OptimizerConfig, slots: Vec<&mut Slot>, grads: Vec<Tensor>) {
    *step += 1;
    let step = *step as i32;
    let updates = slots.into_iter().zip(grads).filter(|(_, grad)| grad.defined());
    profiled(c"gan_lab::optimizer_update", || {
        tch::no_grad(|| match config {
            OptimizerConfig::Adam(c) => adam_update(updates.collect(), c, step),
            OptimizerConfig::RmsProp(c) => updates.for_each(|(s, grad)| rmsprop_update(s, &grad, c)),
        })
    });
}

/// v ← α v + (1 − α) g², θ ← θ − lr · g / (√v + ε): PyTorch's RMSProp (no momentum, not
/// centred). The average lives in `exp_avg_sq`.
fn rmsprop_update(s: &mut Slot, grad: &Tensor, RmsPropConfig { lr, alpha, eps }: RmsPropConfig) {
    s.exp_avg_sq *= alpha;
    let _ = s.exp_avg_sq.addcmul_(grad, &(grad * (1.0 - alpha)));
    let _ = s.param.addcdiv_(&(grad * -lr), &(s.exp_avg_sq.sqrt() + eps));
}

/// Adam's update number `step` of every parameter with a gradient: PyTorch's `torch.optim.Adam`
/// (single-tensor, no weight decay, no amsgrad) in one pass over the memory of each parameter, its
/// gradient and the two moments, all parameters' elements split evenly across libtorch's thread
/// pool (one parallel loop per update, not one per parameter). The chain of tensor ops PyTorch
/// runs reads and writes each of them several times and allocates three temporaries: for the
/// large dense layers (InfoGAN's 8192 × 1024) that is most of a step's optimizer time.
fn adam_update(updates: Vec<(&mut Slot, Tensor)>, AdamConfig { lr, beta1, beta2, eps }: AdamConfig, step: i32) {
    let bias1 = 1.0 - beta1.powi(step);
    let bias2_sqrt = (1.0 - beta2.powi(step)).sqrt();
    let k = AdamScalars {
        weight1: (1.0 - beta1) as f32,
        beta2: beta2 as f32,
        weight2: (1.0 - beta2) as f32,
        bias2_sqrt: bias2_sqrt as f32,
        eps: eps as f32,
        neg_step: (-lr / bias1) as f32,
    };
    // Each parameter's four blocks of memory: (parameter, gradient, m, v) addresses and length.
    let mut blocks = Vec::with_capacity(updates.len());
    let mut grads = Vec::with_capacity(updates.len()); // alive until the pass is done
    for (s, grad) in updates {
        let tensors = [&s.param, &s.exp_avg, &s.exp_avg_sq];
        assert!(
            tensors.iter().all(|t| dense_f32(t) && t.stride() == s.param.stride()),
            "Adam {}: the parameter and its moments must be dense f32 tensors of one layout",
            s.name
        );
        // The gradient in the parameter's layout (autograd may return another one, e.g. NCHW
        // for a channels-last weight).
        let grad = if dense_f32(&grad) && grad.stride() == s.param.stride() {
            grad
        } else {
            let mut copy = s.param.empty_like();
            copy.copy_(&grad);
            copy
        };
        let address = |t: &Tensor| t.data_ptr() as usize;
        let n = s.param.numel();
        blocks.push([address(&s.param), address(&grad), address(&s.exp_avg), address(&s.exp_avg_sq), n]);
        grads.push(grad);
    }
    let total: usize = blocks.iter().map(|b| b[4]).sum();
    if total == 0 {
        return;
    }
    // Elements [from, to) of all the blocks laid end to end.
    let update = |from: usize, to: usize| {
        let mut start = 0;
        for &[p, g, m, v, n] in &blocks {
            let (a, b) = (from.max(start), to.min(start + n));
            if a < b {
                let (offset, len) = (a - start, b - a);
                // SAFETY: the four blocks are dense f32 memory of `n` elements (checked above),
                // in separate storages (a parameter, a fresh gradient and the two moments
                // allocated for the parameter); concurrent calls take disjoint ranges; nothing
                // else reads or writes these tensors during the update.
                unsafe {
                    let at = |address: usize| (address as *mut f32).add(offset);
                    adam_elements(
                        std::slice::from_raw_parts_mut(at(p), len),
                        std::slice::from_raw_parts(at(g), len),
                        std::slice::from_raw_parts_mut(at(m), len),
                        std::slice::from_raw_parts_mut(at(v), len),
                        &k,
                    )
                }
            }
            start += n;
        }
    };
    crate::backend::ops::parallel_for(total, 1 << 15, &update);
}

/// One Adam update's constants, as PyTorch's kernels use them (f32).
struct AdamScalars {
    /// 1 − β1, the weight of `lerp_`.
    weight1: f32,
    beta2: f32,
    /// 1 − β2.
    weight2: f32,
    /// √(1 − β2^t).
    bias2_sqrt: f32,
    eps: f32,
    /// −lr / (1 − β1^t).
    neg_step: f32,
}

/// Adam element by element, in the order of f32 operations of PyTorch's chain of kernels:
/// m ← lerp(m, g, 1 − β1); v ← β2 v + ((1 − β2) g) g; θ ← θ − step · m / (√v / √(1 − β2^t) + ε).
/// Compiled for AVX-512 and AVX2 as well, picked at run time: the same operations (no fused
/// multiply-adds), so the same bits, 16 or 8 lanes at a time instead of SSE's 4.
fn adam_elements(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamScalars) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamScalars) {
            adam_loop(p, g, m, v, k)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamScalars) {
            adam_loop(p, g, m, v, k)
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { avx512(p, g, m, v, k) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(p, g, m, v, k) };
        }
    }
    adam_loop(p, g, m, v, k)
}

#[inline(always)]
fn adam_loop(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamScalars) {
    let (w1, rest1) = (k.weight1, 1.0 - k.weight1);
    let step = |p: &mut f32, m: &mut f32, v: &mut f32, g: f32, m_new: f32| {
        *m = m_new;
        *v = *v * k.beta2 + k.weight2 * g * g;
        *p += k.neg_step * (*m / (v.sqrt() / k.bias2_sqrt + k.eps));
    };
    let elements = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
    // ATen's lerp: from the start for small weights, from the end otherwise (one loop each, so
    // that neither carries the branch).
    if w1 < 0.5 {
        elements.for_each(|(((p, &g), m), v)| step(p, m, v, g, *m + w1 * (g - *m)));
    } else {
        elements.for_each(|(((p, &g), m), v)| step(p, m, v, g, g - (g - *m) * rest1));
    }
}

/// Whether `t` is a CPU float tensor whose elements fill its memory without gaps or overlap
/// (contiguous in some order of its dimensions, as channels-last weights are).
fn dense_f32(t: &Tensor) -> bool {
    if t.kind() != tch::Kind::Float || t.device() != tch::Device::Cpu {
        return false;
    }
    let mut dims: Vec<(i64, i64)> = t.stride().into_iter().zip(t.size()).filter(|&(_, n)| n != 1).collect();
    dims.sort();
    let mut expected = 1;
    for (stride, n) in dims {
        if stride != expected {
            return false;
        }
        expected *= n;
    }
    true
}

/// The tensor saved under `key`; `what` names the state in the error when it is missing.
fn saved<'a>(tensors: &'a HashMap<String, Tensor>, key: &str, what: &str) -> Result<&'a Tensor> {
    tensors.get(key).with_context(|| format!("{what}: missing {key}"))
}

/// Copies the tensor saved under `key` into `dst`, refusing a missing key or another shape.
fn restore(tensors: &HashMap<String, Tensor>, key: &str, what: &str, dst: &mut Tensor) -> Result<()> {
    let src = saved(tensors, key, what)?;
    ensure!(src.size() == dst.size(), "{what} {key}: shape {:?}, expected {:?}", src.size(), dst.size());
    tch::no_grad(|| dst.copy_(src));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn slot(values: &Tensor) -> Slot {
        let param = crate::backend::perf::channels_last(values);
        Slot { name: "w".into(), exp_avg: param.zeros_like(), exp_avg_sq: param.zeros_like(), param }
    }

    /// Three Adam steps in one pass match PyTorch's chain of tensor ops, with the gradient in the
    /// parameter's (channels-last) layout or in another one (NCHW).
    #[test]
    fn one_pass_adam_matches_the_chain_of_tensor_ops_in_any_gradient_layout() {
        let opts = (Kind::Float, Device::Cpu);
        let (w, grads) = crate::rng::with_seed(7, || {
            let grads: Vec<Tensor> = (0..3).map(|_| Tensor::randn([64, 32, 4, 4], opts)).collect();
            (Tensor::randn([64, 32, 4, 4], opts), grads)
        });
        let c = AdamConfig { lr: 1e-3, beta1: 0.5, beta2: 0.999, eps: 1e-8 };
        let (mut nhwc, mut nchw) = (slot(&w), slot(&w));
        let (mut p, mut m, mut v) = (w.copy(), w.zeros_like(), w.zeros_like());
        for (t, g) in grads.iter().enumerate() {
            let step = t as i32 + 1;
            adam_update(vec![(&mut nhwc, crate::backend::perf::channels_last(g))], c, step);
            adam_update(vec![(&mut nchw, g.shallow_clone())], c, step);
            // torch.optim.Adam's single-tensor update.
            let _ = m.lerp_(g, 1.0 - c.beta1);
            v = &v * c.beta2 + g * g * (1.0 - c.beta2);
            let denom = v.sqrt() / (1.0 - c.beta2.powi(step)).sqrt() + c.eps;
            p = &p - &m / denom * (c.lr / (1.0 - c.beta1.powi(step)));
        }
        let diff = |a: &Tensor| (a - &p).abs().max().double_value(&[]);
        assert!(diff(&nhwc.param) < 1e-6 && diff(&nchw.param) < 1e-6, "{} {}", diff(&nhwc.param), diff(&nchw.param));
        assert!(diff(&w) > 1e-3, "the steps moved the weights");
        assert_eq!(nhwc.param.stride(), crate::backend::perf::channels_last(&w).stride(), "the layout is kept");
        // The moments, which later steps build on (and a checkpoint keeps).
        let off = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
        for (s, layout) in [(&nhwc, "channels-last"), (&nchw, "NCHW")] {
            let (dm, dv) = (off(&s.exp_avg, &m), off(&s.exp_avg_sq, &v));
            assert!(dm < 1e-6 && dv < 1e-6, "{layout} gradient: first moment off by {dm:e}, second by {dv:e}");
        }
    }

    /// Several parameters in one pass, split across threads inside and between them, get the
    /// same bits as each updated alone; the vector-width clones give the plain loop's bits.
    #[test]
    fn one_pass_over_several_parameters_updates_each_as_if_alone() {
        let opts = (Kind::Float, Device::Cpu);
        let shapes: [&[i64]; 4] = [&[70_001], &[3, 5], &[64, 33, 4, 4], &[1]];
        let (values, grads) = crate::rng::with_seed(11, || {
            let values: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, opts)).collect();
            let grads: Vec<Tensor> = shapes.iter().map(|s| Tensor::randn(*s, opts)).collect();
            (values, grads)
        });
        for beta1 in [0.5, 0.9] {
            let c = AdamConfig { lr: 1e-3, beta1, beta2: 0.999, eps: 1e-8 };
            let mut together: Vec<Slot> = values.iter().map(|v| slot(&v.copy())).collect();
            let mut alone: Vec<Slot> = values.iter().map(|v| slot(&v.copy())).collect();
            for step in 1..=2 {
                adam_update(together.iter_mut().zip(&grads).map(|(s, g)| (s, g.shallow_clone())).collect(), c, step);
                for (s, g) in alone.iter_mut().zip(&grads) {
                    adam_update(vec![(s, g.shallow_clone())], c, step);
                }
            }
            for (a, b) in together.iter().zip(&alone) {
                assert!(a.param.equal(&b.param) && a.exp_avg_sq.equal(&b.exp_avg_sq), "{:?}", a.param.size());
            }
        }
        let (g, mut p, mut m, mut v) =
            (vec![0.3f32, -1.5, 2.0, 1e-3], vec![1.0f32; 4], vec![0.1f32; 4], vec![0.2f32; 4]);
        let (mut p2, mut m2, mut v2) = (p.clone(), m.clone(), v.clone());
        let k = AdamScalars { weight1: 0.5, beta2: 0.999, weight2: 1e-3, bias2_sqrt: 0.03, eps: 1e-8, neg_step: -2e-4 };
        let g: Vec<f32> = g.iter().cycle().take(37).copied().collect();
        for x in [&mut p, &mut m, &mut v, &mut p2, &mut m2, &mut v2] {
            x.resize(37, x[0]);
        }
        adam_elements(&mut p, &g, &mut m, &mut v, &k);
        adam_loop(&mut p2, &g, &mut m2, &mut v2, &k);
        assert_eq!((p, m, v), (p2, m2, v2), "the CPU's vector clone gives the plain loop's bits");
    }
}
