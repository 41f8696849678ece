//! What a run records step by step: the data the pictures ([`crate::viz`]) and the notebooks draw.

use serde::{Deserialize, Serialize};

/// What one GAN training step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: i64,
    pub d_loss: f64,
    /// G's loss at its last update of the step.
    pub g_loss: f64,
    /// G's updates in the step (the D:G update ratio's G side; 1 unless the run set `g_steps`).
    #[serde(default = "one")]
    pub g_updates: i64,
    /// Mean D(x) on the real batch.
    pub d_real: f64,
    /// Mean D(G(z)) on the fake batch, before D's update.
    pub d_fake: f64,
    /// D's auxiliary class loss on the real batch (ACGAN, weighted), before its update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_loss: Option<f64>,
    /// The critic's estimate of the Wasserstein distance, E[f(x)] − E[f(G(z))], at its last
    /// update (Wasserstein objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<f64>,
    /// The gradient penalty (weighted) at the critic's last update (WGAN-GP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty: Option<f64>,
    /// G's weighted information loss on its fakes (InfoGAN), after D and Q's update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub information: Option<f64>,
    /// The lower bound on the mutual information between the categorical codes and the image
    /// (InfoGAN), H(c) − cross-entropy in nats, on the same fakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_information: Option<f64>,
}

fn one() -> i64 {
    1
}

/// Per-step records of a run; what training returns for notebooks and the CLI to show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The backend the run computed on (`gan_lab::backend`).
    #[serde(default)]
    pub backend: Option<crate::backend::Backend>,
    pub steps: Vec<StepRecord>,
    /// Scores taken every `metrics_every` steps.
    #[serde(default)]
    pub metrics: Vec<MetricRecord>,
    /// The dataset of the evaluator that took them (`mnist`, `fashion-mnist`, …).
    #[serde(default)]
    pub evaluator: Option<String>,
}

/// The generator's scores after a step, and what computing them cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub step: i64,
    pub scores: crate::metrics::Scores,
    pub seconds: f64,
}

impl History {
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn last(&self) -> Option<&StepRecord> {
        self.steps.last()
    }
}

/// What one VAE training step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VaeStep {
    pub step: i64,
    /// reconstruction + λ_KL · kl.
    pub loss: f64,
    pub reconstruction: f64,
    /// KL per latent dimension, averaged (unweighted).
    pub kl: f64,
}

/// The held-out set's reconstruction error after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs done (fractional for a run that ends mid-epoch).
    pub epoch: f64,
    pub step: i64,
    /// `VaeModel::test_mse` on the held-out set.
    pub test_mse: f64,
}

/// Per-step losses and per-epoch held-out MSE of a VAE run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VaeHistory {
    /// The backend the run computed on (`gan_lab::backend`).
    #[serde(default)]
    pub backend: Option<crate::backend::Backend>,
    pub steps: Vec<VaeStep>,
    pub epochs: Vec<EpochRecord>,
}
