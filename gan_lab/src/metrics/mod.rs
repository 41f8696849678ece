//! Judging generators by numbers, on a frozen evaluator of their dataset (the MNIST digits' by
//! default; [`crate::models::classifier`]): Inception score, Mode score (IFT6135 assignment 4
//! section 4.2) and the Fréchet distance on the evaluator's penultimate features (FID's formula).
//!
//! ImageNet's Inception network is not reachable offline, so these are the MNIST versions of the
//! scores: comparable between models trained here, not with published ImageNet-based numbers. The
//! scores take class probabilities and features, so any extractor (an Inception network for users
//! who have its weights) can feed them.

mod evaluator;

pub use evaluator::{
    evaluator_name, evaluator_path, shipped_path, ClassAccuracy, CodeAccuracy, ConfidenceReport, Evaluator,
    EvaluatorInfo,
};

use tch::{Kind, Tensor};

/// What the scores need from a classifier: class probabilities `[N, K]` and features `[N, D]`
/// of images. The frozen MNIST [`Evaluator`] is one; an Inception network loaded by a user who has
/// its weights can be another.
pub trait Extractor {
    fn probabilities(&self, images: &Tensor) -> Tensor;
    fn features(&self, images: &Tensor) -> Tensor;
}

impl Extractor for Evaluator {
    fn probabilities(&self, images: &Tensor) -> Tensor {
        Evaluator::probabilities(self, images)
    }
    fn features(&self, images: &Tensor) -> Tensor {
        Evaluator::features(self, images)
    }
}

/// Mean and standard deviation over splits.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    pub mean: f64,
    pub std: f64,
}

fn over_splits(probs: &Tensor, splits: i64, score: impl Fn(&Tensor) -> f64) -> Score {
    let n = probs.size()[0];
    assert!(splits >= 1 && splits <= n, "splits = {splits}: expected between 1 and the {n} samples");
    let values: Vec<f64> = (0..splits)
        .map(|i| {
            let (start, end) = (i * n / splits, (i + 1) * n / splits);
            score(&probs.narrow(0, start, end - start))
        })
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Score { mean, std: var.sqrt() }
}

/// Inception score exp(E_x KL(p(y|x) ‖ p(y))) (Salimans et al., 2016) of class probabilities
/// `[N, K]`, computed on `splits` consecutive parts: mean and (population) standard deviation.
pub fn inception_score(probs: &Tensor, splits: i64) -> Score {
    over_splits(probs, splits, |p| inception_score_of(&p.to_kind(Kind::Double).clamp_min(1e-12)))
}

/// Exercise `metrics.inception_score`: exp(E_x KL(p(y|x) ‖ p(y))) of one set of class
/// probabilities `p` `[N, K]` (f64, no zeros), with p(y) the mean of the rows.
pub fn inception_score_of(p: &Tensor) -> f64 {
    // BEGIN SOLUTION metrics.inception_score
    let marginal = p.mean_dim(0, true, Kind::Double);
    let kl = (p * (p.log() - marginal.log())).sum_dim_intlist(1, false, Kind::Double);
    kl.mean(Kind::Double).double_value(&[]).exp()
    // END SOLUTION
}

/// Mode score exp(E_x KL(p(y|x) ‖ p(y)) − KL(p(y) ‖ p(y*))) (Che et al., 2017, as in
/// IFT6135 assignment 4, section 4.2), with `real_marginal` p(y*) the class marginal of real data.
pub fn mode_score(probs: &Tensor, real_marginal: &Tensor, splits: i64) -> Score {
    let real = real_marginal.to_kind(Kind::Double).clamp_min(1e-12);
    over_splits(probs, splits, |p| mode_score_of(&p.to_kind(Kind::Double).clamp_min(1e-12), &real))
}

/// Exercise `metrics.mode_score`: exp(E_x KL(p(y|x) ‖ p(y)) − KL(p(y) ‖ p(y*))) of one set of class
/// probabilities `p` `[N, K]` (f64, no zeros), p(y) the mean of its rows, `real` = p(y*) `[K]`.
pub fn mode_score_of(p: &Tensor, real: &Tensor) -> f64 {
    // BEGIN SOLUTION metrics.mode_score
    let marginal = p.mean_dim(0, true, Kind::Double);
    let kl = (p * (p.log() - marginal.log())).sum_dim_intlist(1, false, Kind::Double);
    let marginal = marginal.squeeze_dim(0);
    let kl_marginal = (&marginal * (marginal.log() - real.log())).sum(Kind::Double);
    (kl.mean(Kind::Double) - kl_marginal).double_value(&[]).exp()
    // END SOLUTION
}

/// Mean `[D]` and covariance `[D, D]` (unbiased, as numpy's `cov`) of features `[N, D]`, in f64.
pub fn feature_statistics(features: &Tensor) -> (Tensor, Tensor) {
    let f = features.to_kind(Kind::Double);
    let n = f.size()[0];
    assert!(n >= 2, "feature statistics need at least 2 samples, got {n}");
    let mu = f.mean_dim(0, false, Kind::Double);
    let centred = &f - &mu;
    let cov = centred.tr().matmul(&centred) / (n - 1) as f64;
    (mu, cov)
}

/// Square root of a symmetric positive semi-definite matrix through its eigendecomposition;
/// eigenvalues that rounding made slightly negative are taken as 0.
pub fn sqrt_psd(m: &Tensor) -> Tensor {
    let sym = (m + m.tr()) / 2.0;
    let (values, vectors) = sym.linalg_eigh("L");
    let roots = values.clamp_min(0.0).sqrt();
    (&vectors * roots.unsqueeze(0)).matmul(&vectors.tr())
}

/// Fréchet distance between Gaussians N(μ1, Σ1) and N(μ2, Σ2):
/// ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½). The trace of (Σ1 Σ2)^½ is computed as that of
/// (Σ1^½ Σ2 Σ1^½)^½, which has the same eigenvalues and is symmetric, so it stays real and stable.
///
/// Exercise `metrics.frechet_distance` (with [`sqrt_psd`] given).
pub fn frechet_distance(mu1: &Tensor, cov1: &Tensor, mu2: &Tensor, cov2: &Tensor) -> f64 {
    // BEGIN SOLUTION metrics.frechet_distance
    let diff = (mu1 - mu2).square().sum(Kind::Double).double_value(&[]);
    let s1 = sqrt_psd(cov1);
    let middle = s1.matmul(cov2).matmul(&s1);
    let trace_sqrt = sqrt_psd(&middle).trace().double_value(&[]);
    let traces = cov1.trace().double_value(&[]) + cov2.trace().double_value(&[]);
    (diff + traces - 2.0 * trace_sqrt).max(0.0)
    // END SOLUTION
}

/// The Fréchet distance between two sets of features `[N, D]`.
pub fn frechet_distance_of(features1: &Tensor, features2: &Tensor) -> f64 {
    let (mu1, cov1) = feature_statistics(features1);
    let (mu2, cov2) = feature_statistics(features2);
    frechet_distance(&mu1, &cov1, &mu2, &cov2)
}

/// Inception score, Mode score and Fréchet distance of one set of images.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub inception: Score,
    pub mode: Score,
    pub fid: f64,
    /// [`sharpness`]: higher is crisper.
    #[serde(default)]
    pub sharpness: f64,
    /// Images scored.
    pub n: i64,
}

/// The reference the scores need from real data: the class marginal p(y*) and the feature
/// statistics of one half of the real training digits; the other half gives the ceilings.
pub struct RealReference {
    pub marginal: Tensor,
    pub mu: Tensor,
    pub cov: Tensor,
    /// The scores of real digits: the best a generator can expect with this evaluator.
    pub ceiling: Scores,
}

/// Splits for the Inception and Mode scores.
pub const SPLITS: i64 = 10;

impl RealReference {
    /// From real images `[N, C, S, S]` (the shipped training digits): FID statistics on one
    /// half, ceilings from the other half scored against them. The halves are drawn by a fixed
    /// permutation, so that a set stored class by class (a folder per class) gives both halves,
    /// and each split of the Inception score, every class.
    pub fn new(ev: &dyn Extractor, real: &Tensor) -> RealReference {
        let n = real.size()[0];
        let order = Tensor::from_slice(&crate::data::permutation(n as usize, 0x5EED));
        let (a, b) = (
            real.index_select(0, &order.narrow(0, 0, n / 2)),
            real.index_select(0, &order.narrow(0, n / 2, n - n / 2)),
        );
        let (mu, cov) = feature_statistics(&ev.features(&a));
        let marginal = ev.probabilities(real).to_kind(Kind::Double).mean_dim(0, false, Kind::Double);
        let mut reference = RealReference { marginal, mu, cov, ceiling: Scores::default() };
        reference.ceiling = reference.score(ev, &b);
        reference
    }

    /// Scores of images `[N, 1, 32, 32]` against this reference.
    pub fn score(&self, ev: &dyn Extractor, images: &Tensor) -> Scores {
        let probs = ev.probabilities(images);
        let (mu, cov) = feature_statistics(&ev.features(images));
        Scores {
            inception: inception_score(&probs, SPLITS),
            mode: mode_score(&probs, &self.marginal, SPLITS),
            fid: frechet_distance(&mu, &cov, &self.mu, &self.cov),
            sharpness: sharpness(images),
            n: images.size()[0],
        }
    }
}

impl Default for Scores {
    fn default() -> Self {
        let zero = Score { mean: 0.0, std: 0.0 };
        Scores { inception: zero, mode: zero, fid: 0.0, sharpness: 0.0, n: 0 }
    }
}

impl std::fmt::Display for Scores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IS {:.3} ± {:.3}   Mode score {:.3} ± {:.3}   FID {:.3}   sharpness {:.4}   ({} images)",
            self.inception.mean, self.inception.std, self.mode.mean, self.mode.std, self.fid, self.sharpness, self.n
        )
    }
}

/// The variance of the Laplacian, a measure of sharpness that needs no classifier: each image's
/// grey levels mapped from [-1, 1] to [0, 1], filtered with the 3×3 Laplacian [0 1 0; 1 −4 1; 0 1 0]
/// over the valid pixels, the variance of the response per image and channel, averaged over
/// them. Blur weakens edges and lowers it; noise raises it, so read it beside FID.
pub fn sharpness(images: &Tensor) -> f64 {
    let (n, c) = (images.size()[0], images.size()[1]);
    let kernel = Tensor::from_slice(&[0f32, 1., 0., 1., -4., 1., 0., 1., 0.]).view([1, 1, 3, 3]);
    let grey = ((images.to_kind(Kind::Float) + 1.0) * 0.5).reshape([n * c, 1, images.size()[2], images.size()[3]]);
    let response = grey.conv2d::<Tensor>(&kernel, None, 1, 0, 1, 1).flatten(1, -1);
    response.var_dim(1, false, false).mean(Kind::Double).double_value(&[])
}

/// Root-mean-square pixel difference below which two images count as near-duplicates (5% of the
/// [-1, 1] range).
pub const NEAR_DUPLICATE_RMS: f64 = 0.1;

/// Signs of mode collapse in a set of samples: how the evaluator spreads them over classes, and
/// how many are near-copies of another sample.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollapseSignals {
    /// Share of samples per predicted class.
    pub class_shares: Vec<f64>,
    /// Entropy of `class_shares` in nats (ln 10 ≈ 2.303 when all ten digits are equally frequent).
    pub entropy: f64,
    /// The most frequent class and how many times its fair share (0.1) it takes.
    pub top_class: usize,
    pub top_over_representation: f64,
    /// Share of samples with another sample closer than [`NEAR_DUPLICATE_RMS`].
    pub near_duplicate_rate: f64,
}

/// Collapse signals of images `[N, 1, 32, 32]`.
pub fn collapse_signals(ev: &dyn Extractor, images: &Tensor) -> CollapseSignals {
    let n = images.size()[0];
    let predicted = ev.probabilities(images).argmax(-1, false);
    let counts: Vec<i64> = Vec::try_from(predicted.bincount::<Tensor>(None, 10)).expect("counts");
    let class_shares: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let entropy = -class_shares.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>();
    let (top_class, top_share) =
        class_shares.iter().cloned().enumerate().fold((0, 0.0), |a, (i, p)| if p > a.1 { (i, p) } else { a });
    let flat = images.to_kind(Kind::Float).reshape([n, -1]);
    let pixels = flat.size()[1] as f64;
    let distances = tch::no_grad(|| Tensor::cdist(&flat, &flat, 2.0, None::<i64>)) / pixels.sqrt();
    let distances = distances + Tensor::eye(n, (Kind::Float, flat.device())) * 1e9; // not itself
    let (nearest, _) = distances.min_dim(1, false);
    let near_duplicate_rate = nearest.lt(NEAR_DUPLICATE_RMS).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    CollapseSignals { class_shares, entropy, top_class, top_over_representation: top_share / 0.1, near_duplicate_rate }
}

impl std::fmt::Display for CollapseSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (class, share) in self.class_shares.iter().enumerate() {
            writeln!(f, "{class} {:<30} {:5.1}%", "█".repeat((share * 100.0).round() as usize), 100.0 * share)?;
        }
        writeln!(
            f,
            "class entropy {:.3} nats (ln 10 = {:.3} when all digits are equally frequent)",
            self.entropy,
            10f64.ln()
        )?;
        writeln!(f, "most frequent: {} at {:.1}× its fair share", self.top_class, self.top_over_representation)?;
        write!(f, "near-duplicates: {:.1}% of samples", 100.0 * self.near_duplicate_rate)
    }
}

/// The one-to-one assignment of rows to columns (rows ≤ columns) that maximises the summed
/// `score`: for each row, its column. The Hungarian method (Kuhn–Munkres) with potentials, O(n²m).
pub fn assignment(score: &[Vec<f64>]) -> Vec<usize> {
    let n = score.len();
    let m = score.first().map_or(0, |r| r.len());
    assert!(n <= m && score.iter().all(|r| r.len() == m), "assignment: expected rows ≤ columns, all rows equally long");
    let cost = |i: usize, j: usize| -score[i - 1][j - 1];
    // 1-based rows and columns; column 0 is a virtual start. p[j]: the row in column j.
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; m + 1]);
    let (mut p, mut way) = (vec![0usize; m + 1], vec![0usize; m + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (p[j0], f64::INFINITY, 0);
            for j in 1..=m {
                if !used[j] {
                    let reduced = cost(i0, j) - u[i0] - v[j];
                    if reduced < min_to[j] {
                        min_to[j] = reduced;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        }
    }
    let mut column = vec![0; n];
    for j in 1..=m {
        if p[j] != 0 {
            column[p[j] - 1] = j - 1;
        }
    }
    column
}
