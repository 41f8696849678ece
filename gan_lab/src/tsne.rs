//! t-SNE (van der Maaten and Hinton, 2008): points in many dimensions to 2-D maps where
//! neighbours stay neighbours, for looking at a latent space. Exact (all pairs), on tch tensors:
//! 2,000 points take seconds on two cores.

use crate::rng::with_seed;
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// t-SNE's settings; the defaults are the paper's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tsne {
    /// The effective number of neighbours each point's Gaussian covers.
    pub perplexity: f64,
    pub iterations: i64,
    pub learning_rate: f64,
    /// P is multiplied by this for the first `exaggeration_iterations`, to form tight clusters early.
    pub early_exaggeration: f64,
    pub exaggeration_iterations: i64,
    /// Seeds the initial map.
    pub seed: u64,
}

impl Default for Tsne {
    fn default() -> Self {
        Tsne {
            perplexity: 30.0,
            iterations: 1000,
            learning_rate: 200.0,
            early_exaggeration: 12.0,
            exaggeration_iterations: 250,
            seed: 0,
        }
    }
}

const OPTIONS: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Squared Euclidean distances between the rows of `x` `[N, D]`, `[N, N]`.
fn squared_distances(x: &Tensor) -> Tensor {
    let sq = x.square().sum_dim_intlist(1, true, Kind::Double);
    (&sq + sq.transpose(0, 1) - x.matmul(&x.transpose(0, 1)) * 2.0).clamp_min(0.0)
}

impl Tsne {
    /// The conditional probabilities p(j|i) `[N, N]` of the high-dimensional points `x`: a
    /// Gaussian around each point whose width is found by bisection so that its perplexity
    /// 2^H(P_i) matches `self.perplexity`.
    pub fn conditional_probabilities(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        let d = squared_distances(&x.to_kind(Kind::Double));
        // Scale-free start: distances relative to their mean keep exp() in range. The diagonal is
        // pushed out of reach: a point is not its own neighbour.
        let d = &d / d.mean(Kind::Double).clamp_min(1e-12) + Tensor::eye(n, OPTIONS) * 1e30;
        // Subtracting each row's smallest distance leaves P unchanged and avoids underflow.
        let shifted = &d - d.amin([1i64], true);
        let target = self.perplexity.ln();
        let mut beta = Tensor::ones([n, 1], OPTIONS);
        let mut lo = Tensor::zeros([n, 1], OPTIONS);
        let mut hi = Tensor::full([n, 1], f64::INFINITY, OPTIONS);
        let mut p = Tensor::new();
        for _ in 0..64 {
            let e = (-&shifted * &beta).exp();
            let sum = e.sum_dim_intlist(1, true, Kind::Double);
            p = &e / &sum;
            let entropy = sum.log() + &beta * (&p * &shifted).sum_dim_intlist(1, true, Kind::Double);
            let too_flat = entropy.gt(target); // too many neighbours: narrow the Gaussian
            lo = lo.where_self(&too_flat.logical_not(), &beta);
            hi = hi.where_self(&too_flat, &beta);
            let up = (&beta * 2.0).where_self(&hi.isinf(), &((&lo + &hi) * 0.5));
            let down = (&lo + &hi) * 0.5;
            beta = up.where_self(&too_flat, &down);
        }
        p
    }

    /// The 2-D map `[N, 2]` of the points `x` `[N, D]`.
    pub fn fit(&self, x: &Tensor) -> Result<Tensor> {
        ensure!(x.dim() == 2, "t-SNE: expected points [N, D], got shape {:?}", x.size());
        let n = x.size()[0];
        ensure!(
            self.perplexity >= 1.0 && (n as f64) > 3.0 * self.perplexity,
            "perplexity = {}: expected at least 1 and under a third of the {n} points",
            self.perplexity
        );
        ensure!(self.iterations >= 1, "iterations = {}: expected 1 or more", self.iterations);
        ensure!(self.learning_rate > 0.0, "learning_rate = {}: expected a positive rate", self.learning_rate);
        ensure!(x.isfinite().all().int64_value(&[]) == 1, "t-SNE: the points hold NaN or infinite values");
        let p = self.conditional_probabilities(x);
        // The map is optimised in single precision: every iteration streams a few N×N matrices,
        // and memory traffic is what it costs. Ops run in place where the formula allows.
        let p = ((&p + p.transpose(0, 1)) / (2.0 * n as f64)).clamp_min(1e-12).to_kind(Kind::Float);
        let mut y = with_seed(self.seed, || Tensor::randn([n, 2], OPTIONS) * 1e-4).to_kind(Kind::Float);
        let mut update = y.zeros_like();
        let mut gains = y.ones_like();
        let exaggerated = &p * self.early_exaggeration;
        for it in 0..self.iterations {
            let early = it < self.exaggeration_iterations;
            let target = if early { &exaggerated } else { &p };
            let momentum = if early { 0.5 } else { 0.8 };
            // Student-t kernel between map points, num_ij = 1/(1 + |y_i − y_j|²) (0 on the diagonal),
            // q_ij = num_ij / Σ num, and the gradient 4 Σ_j (p_ij − q_ij) num_ij (y_i − y_j).
            // 1 + |y_i|² + |y_j|² − 2 y_i·y_j in one product: [−2y, 1 + |y|², 1] · [y, 1, |y|²]ᵀ.
            let sq = y.square().sum_dim_intlist(1, true, Kind::Float);
            let ones = sq.ones_like();
            let left = Tensor::cat(&[&y * -2.0, &sq + 1.0, ones.shallow_clone()], 1);
            let right = Tensor::cat(&[y.shallow_clone(), ones, sq], 1);
            let mut num = left.matmul(&right.transpose(0, 1));
            let _ = num.clamp_min_(1.0).reciprocal_().fill_diagonal_(0.0, false);
            let z = num.sum(Kind::Float);
            let mut pq = &num / z;
            let _ = pq.neg_();
            pq += target;
            pq *= &num;
            let grad = (pq.sum_dim_intlist(1, true, Kind::Float) * &y - pq.matmul(&y)) * 4.0;
            // Jacobs' adaptive gains: grow where the gradient keeps its direction, shrink elsewhere.
            let same = grad.sign().eq_tensor(&update.sign());
            gains = ((&gains * 0.8).where_self(&same, &(&gains + 0.2))).clamp_min(0.01);
            update = &update * momentum - &gains * &grad * self.learning_rate;
            y = &y + &update;
            y = &y - y.mean_dim(0, true, Kind::Float);
        }
        Ok(y.to_kind(Kind::Float))
    }
}
