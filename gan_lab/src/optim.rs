//! Adam with its state in plain tensors, so that checkpoints hold the optimizer exactly and a
//! resumed run continues bit for bit. The update is PyTorch's `torch.optim.Adam` (no weight decay,
//! no amsgrad); the parity test compares one step against it.

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

struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam over the trainable variables of one [`VarStore`].
pub struct Adam {
    pub config: AdamConfig,
    step: i64,
    slots: Vec<Slot>,
}

impl Adam {
    pub fn new(vs: &VarStore, config: AdamConfig) -> Adam {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, param)| Slot { exp_avg: param.zeros_like(), exp_avg_sq: param.zeros_like(), name, param })
            .collect();
        Adam { config, step: 0, slots }
    }

    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// One update from the gradients currently held by the parameters.
    pub fn step(&mut self) {
        let AdamConfig { lr, beta1, beta2, eps } = self.config;
        self.step += 1;
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

    /// Restores the state written by [`Adam::state`].
    pub fn load_state(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let get = |key: String| tensors.get(&key).with_context(|| format!("optimizer state: missing {key}"));
        self.step = get(format!("{prefix}step"))?.int64_value(&[]);
        for s in &mut self.slots {
            for (kind, dst) in [("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)] {
                let src = get(format!("{prefix}{kind}.{}", s.name))?;
                ensure!(
                    src.size() == dst.size(),
                    "optimizer state {prefix}{kind}.{}: shape {:?}, expected {:?}",
                    s.name,
                    src.size(),
                    dst.size()
                );
                tch::no_grad(|| dst.copy_(src));
            }
        }
        Ok(())
    }
}
