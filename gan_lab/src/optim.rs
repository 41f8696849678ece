//! Adam and RMSProp with their state in plain tensors, so that checkpoints hold the optimizer
//! exactly and a resumed run continues bit for bit. The updates are PyTorch's `torch.optim.Adam`
//! (no weight decay, no amsgrad) and `torch.optim.RMSprop` (no momentum, not centred); the parity
//! test compares Adam's steps against PyTorch.

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

    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// One update from the gradients currently held by the parameters.
    pub fn step(&mut self) {
        self.step += 1;
        match self.config {
            OptimizerConfig::Adam(c) => self.adam_step(c),
            OptimizerConfig::RmsProp(c) => self.rmsprop_step(c),
        }
    }

    /// v ← α v + (1 − α) g², θ ← θ − lr · g / (√v + ε). The average lives in `exp_avg_sq`.
    fn rmsprop_step(&mut self, RmsPropConfig { lr, alpha, eps }: RmsPropConfig) {
        tch::no_grad(|| {
            for s in &mut self.slots {
                let grad = s.param.grad();
                if !grad.defined() {
                    continue;
                }
                s.exp_avg_sq *= alpha;
                let _ = s.exp_avg_sq.addcmul_(&grad, &(&grad * (1.0 - alpha)));
                let _ = s.param.addcdiv_(&(&grad * -lr), &(s.exp_avg_sq.sqrt() + eps));
            }
        });
    }

    fn adam_step(&mut self, AdamConfig { lr, beta1, beta2, eps }: AdamConfig) {
        let bias1 = 1.0 - beta1.powi(self.step as i32);
        let bias2_sqrt = (1.0 - beta2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| {
            for s in &mut self.slots {
                let grad = s.param.grad();
                if !grad.defined() {
                    continue;
                }
                let _ = s.exp_avg.lerp_(&grad, 1.0 - beta1);
                s.exp_avg_sq *= beta2;
                let _ = s.exp_avg_sq.addcmul_(&grad, &(&grad * (1.0 - beta2)));
                let denom = (s.exp_avg_sq.sqrt() / bias2_sqrt) + eps;
                let _ = s.param.addcdiv_(&(&s.exp_avg * (-lr / bias1)), &denom);
            }
        });
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
