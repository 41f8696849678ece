//! Exploring a trained model: interpolations and sweeps in the latent space, grids by class and
//! by latent code, how well the classes and codes come out. Free functions over a trained [`Gan`]
//! or [`VaeModel`]; the pictures of their results are [`crate::viz`]'s.

use crate::data::Dataset;
use crate::rng::mix;
use crate::train::Gan;
use crate::vae::VaeModel;
use anyhow::{bail, ensure, Result};
use image::RgbImage;
use tch::{Device, Kind, Tensor};

/// Exercise `dcgan.interpolate`: linear interpolation between latent vectors `z1` and `z2`
/// (each `[latent_dim]`): `steps` rows (1 − α)·z1 + α·z2 for α evenly from 0 to 1 →
/// `[steps, latent_dim]`, starting at z1 and ending at z2.
pub fn interpolate(z1: &Tensor, z2: &Tensor, steps: i64) -> Tensor {
    assert_eq!(z1.size(), z2.size(), "interpolate: z1 and z2 must have the same shape");
    assert!(steps >= 2, "interpolate: expected at least 2 steps, got {steps}");
    // BEGIN SOLUTION dcgan.interpolate
    let alpha = Tensor::linspace(0.0, 1.0, steps, (Kind::Float, z1.device())).unsqueeze(1);
    z1.unsqueeze(0) * (1.0 - &alpha) + z2.unsqueeze(0) * alpha
    // END SOLUTION
}

/// Screen-space interpolation: pixel blends (1 − α)·x1 + α·x2 of two images `[C, H, W]`,
/// `steps` of them → `[steps, C, H, W]`; to compare with interpolating the latent vectors.
pub fn blend(x1: &Tensor, x2: &Tensor, steps: i64) -> Tensor {
    let shape = x1.size();
    let flat = interpolate(&x1.reshape([-1]), &x2.reshape([-1]), steps);
    flat.view([&[steps], shape.as_slice()].concat().as_slice())
}

/// α of frame `t` of `frames` in a looping walk: from 0 up to 1 and back, easing at both ends.
fn loop_alpha(t: i64, frames: i64) -> f64 {
    0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / frames as f64).cos()
}

/// Frames of a walk from each row of `z` to the next row (the last to the first) and back,
/// `frames` of them, as grids `ncols` wide: a looping latent interpolation.
pub fn interpolation_frames(gan: &Gan, z: &Tensor, frames: i64, ncols: i64) -> Vec<RgbImage> {
    let z2 = z.roll([1], [0]);
    (0..frames)
        .map(|t| {
            let a = loop_alpha(t, frames);
            crate::viz::grid(&gan.generate(&(z * (1.0 - a) + &z2 * a)), ncols)
        })
        .collect()
}

/// Frames of the walk from each row of `z1` to the same row of `z2` and back, `frames` of them,
/// one row per pair: on the left the latent interpolation G((1 − α)·z1 + α·z2), on the right the
/// screen-space one, the pixel blend (1 − α)·G(z1) + α·G(z2) of its two ends (IFT6135
/// assignment 4's two GIFs, side by side).
pub fn latent_vs_screen_frames(gan: &Gan, z1: &Tensor, z2: &Tensor, frames: i64) -> Vec<RgbImage> {
    let (x1, x2) = (gan.generate(z1), gan.generate(z2));
    (0..frames)
        .map(|t| {
            let a = loop_alpha(t, frames);
            let latent = gan.generate(&(z1 * (1.0 - a) + z2 * a));
            let screen = &x1 * (1.0 - a) + &x2 * a;
            crate::viz::grid(&Tensor::stack(&[latent, screen], 1).flatten(0, 1), 2)
        })
        .collect()
}

/// The frozen evaluator's accuracy on `n` conditional samples (classes in turn, noise drawn
/// with `seed`): how often it reads the class that was asked for.
pub fn class_accuracy(
    gan: &Gan,
    ev: &crate::metrics::Evaluator,
    n: i64,
    seed: u64,
) -> Result<crate::metrics::ClassAccuracy> {
    ensure!(gan.classes > 0, "class accuracy: this {} is not conditional", gan.family);
    let labels = gan.cycled_labels(n);
    let z = gan.draw_latent(n, mix(seed, 0xC1A55));
    let images = gan.generate_labeled(&z, &labels)?;
    Ok(crate::metrics::ClassAccuracy::measure(ev, &images, &labels, gan.classes))
}

/// The lesson's final test: one row per class, one column per noise vector of `z` `[k, latent_dim]`,
/// → images `[classes · k, C, S, S]` (show with `k` columns).
pub fn class_grid(gan: &Gan, z: &Tensor) -> Result<Tensor> {
    let k = z.size()[0];
    let labels = Tensor::arange(gan.classes, (Kind::Int64, gan.device())).repeat_interleave_self_int(k, 0, None);
    gan.generate_labeled(&z.repeat([gan.classes, 1]), &labels)
}

/// For each class, `steps` images along the line from `z1` to `z2` → `[classes · steps, C, S, S]`.
pub fn class_interpolation(gan: &Gan, z1: &Tensor, z2: &Tensor, steps: i64) -> Result<Tensor> {
    let line = interpolate(z1, z2, steps);
    let labels = Tensor::arange(gan.classes, (Kind::Int64, gan.device())).repeat_interleave_self_int(steps, 0, None);
    gan.generate_labeled(&line.repeat([gan.classes, 1]), &labels)
}

/// `z` `[k, latent_dim]` with categorical code `code` set to `value` in every row.
pub fn with_code(gan: &Gan, z: &Tensor, code: usize, value: i64) -> Result<Tensor> {
    gan.check_latent(z)?;
    let k = categorical_values(gan, code)?;
    ensure!((0..k).contains(&value), "value = {value}: categorical code {code} takes 0..={}", k - 1);
    let z = z.copy();
    let at = gan.noise_dim() + gan.codes.categorical_offset(code);
    let _ = z.narrow(1, at, k).fill_(0.0);
    let _ = z.select(1, at + value).fill_(1.0);
    Ok(z)
}

/// `z` `[k, latent_dim]` with every continuous code set to `value`.
pub fn with_continuous(gan: &Gan, z: &Tensor, value: f64) -> Result<Tensor> {
    gan.check_latent(z)?;
    let z = z.copy();
    let _ = z.narrow(1, gan.noise_dim() + gan.codes.continuous_offset(), gan.codes.continuous).fill_(value);
    Ok(z)
}

/// Each row of `z` `[rows, latent_dim]` with every value of categorical code `code` in turn
/// (the rest fixed) → `[rows · k, latent_dim]`.
pub fn code_values(gan: &Gan, z: &Tensor, code: usize) -> Result<Tensor> {
    let k = categorical_values(gan, code)?;
    let rows = z.size()[0];
    let per_value: Vec<Tensor> = (0..k).map(|v| with_code(gan, z, code, v)).collect::<Result<_>>()?;
    // [k, rows, latent] → [rows, k, latent]: row r holds z_r with each value in turn.
    Ok(Tensor::stack(&per_value, 0).transpose(0, 1).reshape([rows * k, gan.latent_dim]))
}

/// For each row of `z` `[rows, latent_dim]`, the images of every value of categorical code
/// `code` (the rest of z fixed) → `[rows · k, C, S, S]`: show with k columns.
pub fn code_grid(gan: &Gan, z: &Tensor, code: usize) -> Result<Tensor> {
    Ok(gan.generate(&code_values(gan, z, code)?))
}

/// Rows for a continuous-code sweep from one latent vector `z` `[1, latent_dim]`: one per value
/// of the first categorical code (the paper's figure), or `z` itself without one.
pub fn sweep_rows(gan: &Gan, z: &Tensor) -> Result<Tensor> {
    gan.check_latent(z)?;
    match gan.codes.categorical.is_empty() {
        true => Ok(z.shallow_clone()),
        false => code_values(gan, z, 0),
    }
}

/// Continuous code `code` of each row of `z` `[rows, latent_dim]` swept over `steps` values
/// from `from` to `to` → `[rows · steps, C, S, S]` (the codes are drawn from U(−1, 1): beyond
/// that range the sweep extrapolates).
pub fn code_sweep(gan: &Gan, z: &Tensor, code: i64, from: f64, to: f64, steps: i64) -> Result<Tensor> {
    ensure!(
        (0..gan.codes.continuous).contains(&code),
        "continuous code {code}: this {} has {} continuous codes",
        gan.family,
        gan.codes.continuous
    );
    gan.check_latent(z)?;
    ensure!(steps >= 1, "steps = {steps}: expected 1 or more");
    sweep(gan, z, gan.noise_dim() + gan.codes.continuous_offset() + code, from, to, steps)
}

/// How well categorical code `code` captures the digit: `n` samples (values in turn, the rest
/// of z drawn with `seed`) judged by the frozen evaluator, each value mapped to a digit by the
/// Hungarian assignment.
pub fn code_accuracy(
    gan: &Gan,
    ev: &crate::metrics::Evaluator,
    n: i64,
    seed: u64,
    code: usize,
) -> Result<crate::metrics::CodeAccuracy> {
    let k = categorical_values(gan, code)?;
    ensure!(n >= 1, "n = {n}: expected 1 or more samples");
    let z = gan.draw_latent(n, mix(seed, 0xC0DE));
    let values = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(k);
    let at = gan.noise_dim() + gan.codes.categorical_offset(code);
    z.narrow(1, at, k).copy_(&crate::models::one_hot(&values, k));
    crate::metrics::CodeAccuracy::measure(ev, &gan.generate(&z), &values, k)
}

fn categorical_values(gan: &Gan, code: usize) -> Result<i64> {
    match gan.codes.categorical.get(code) {
        Some(&k) => Ok(k),
        None => {
            bail!("categorical code {code}: this {} has {} categorical codes", gan.family, gan.codes.categorical.len())
        }
    }
}

/// Sweeps latent dimension `dim` of each row of `z` `[k, latent_dim]` over `steps` values from
/// `from` to `to` (the others fixed) → images `[k · steps, C, S, S]`, one row per z.
pub fn sweep(gan: &Gan, z: &Tensor, dim: i64, from: f64, to: f64, steps: i64) -> Result<Tensor> {
    ensure!(
        (0..gan.latent_dim).contains(&dim),
        "sweep: dimension {dim}: expected a latent dimension between 0 and {}",
        gan.latent_dim - 1
    );
    ensure!(steps >= 2, "sweep: {steps} steps: expected 2 or more");
    gan.check_latent(z)?;
    let k = z.size()[0];
    let values = Tensor::linspace(from, to, steps, (Kind::Float, z.device()));
    let zs = z.unsqueeze(1).repeat([1, steps, 1]); // [k, steps, latent_dim]
    zs.select(2, dim).copy_(&values.unsqueeze(0).expand([k, steps], false));
    Ok(gan.generate(&zs.view([k * steps, gan.latent_dim])))
}

/// How much each latent dimension visibly changes the images: for dimension d, the mean absolute
/// pixel difference between G(z) with z_d set to −`amount` and to +`amount`, the other
/// coordinates of each row of `z` `[k, latent_dim]` kept → `[latent_dim]`. IFT6135 assignment 4
/// sweeps single dimensions; this finds the ones worth sweeping.
pub fn dimension_effects(gan: &Gan, z: &Tensor, amount: f64) -> Result<Tensor> {
    gan.check_latent(z)?;
    let (k, d) = (z.size()[0], gan.latent_dim);
    let ends = Tensor::from_slice(&[-amount as f32, amount as f32]).to_device(z.device()).unsqueeze(1);
    let effects: Vec<Tensor> = (0..d)
        .map(|dim| {
            let zs = z.unsqueeze(0).repeat([2, 1, 1]); // [2, k, latent_dim]: z_d at −amount, then +amount
            zs.select(2, dim).copy_(&ends.expand([2, k], false));
            let images = gan.generate(&zs.view([2 * k, d]));
            (images.narrow(0, 0, k) - images.narrow(0, k, k)).abs().mean(Kind::Float)
        })
        .collect();
    Ok(Tensor::stack(&effects, 0))
}

/// The `n` latent dimensions of largest [`dimension_effects`], largest first, each with its effect.
pub fn strongest_dimensions(gan: &Gan, z: &Tensor, amount: f64, n: i64) -> Result<Vec<(i64, f64)>> {
    ensure!(n >= 1, "n = {n}: expected 1 or more dimensions");
    let (effects, dims) = dimension_effects(gan, z, amount)?.topk(n.min(gan.latent_dim), 0, true, true);
    let effects = Vec::<f64>::try_from(effects.to_device(Device::Cpu).to_kind(Kind::Double))?;
    let dims = Vec::<i64>::try_from(dims.to_device(Device::Cpu))?;
    Ok(dims.into_iter().zip(effects).collect())
}

/// Images along the line from `z1` to `z2` (each `[latent_dim]`), `steps` of them.
pub fn interpolation(gan: &Gan, z1: &Tensor, z2: &Tensor, steps: i64) -> Tensor {
    gan.generate(&interpolate(z1, z2, steps))
}

/// `steps` images decoded along the line between the encodings (means) of the images `a` and
/// `b` (each `[C, S, S]`).
pub fn encoded_interpolation(vae: &VaeModel, a: &Tensor, b: &Tensor, steps: i64) -> Result<Tensor> {
    ensure!(steps >= 2, "steps = {steps}: expected 2 or more");
    let (mu, _) = vae.encode(&Tensor::stack(&[a, b], 0))?;
    vae.decode(&interpolate(&mu.get(0), &mu.get(1), steps))
}

/// The first `n` of `images` in one row and their reconstructions in the row below, `[2n, C, S, S]`.
pub fn reconstruction_rows(vae: &VaeModel, images: &Tensor, n: i64) -> Result<Tensor> {
    ensure!(n >= 1 && n <= images.size()[0], "n = {n}: expected between 1 and the {} images given", images.size()[0]);
    let originals = images.narrow(0, 0, n);
    Ok(Tensor::cat(&[originals.shallow_clone(), vae.reconstruct(&originals)?.to_device(originals.device())], 0))
}

/// The t-SNE map of the encoder's means for the first `n` images of `data` (all of them if
/// fewer), coloured by label when `data` has labels.
pub fn latent_map(vae: &VaeModel, data: &Dataset, n: i64) -> Result<crate::viz::Scatter> {
    ensure!(n >= 10, "n = {n}: expected 10 or more points for a t-SNE map");
    let shown = data.take(n);
    let mu = vae.encode(&shown.images)?.0.to_device(Device::Cpu);
    let tsne = crate::tsne::Tsne { perplexity: 30f64.min((shown.len() as f64 - 1.0) / 3.0), ..Default::default() };
    Ok(crate::viz::Scatter {
        caption: format!("t-SNE of {} latent means ({})", shown.len(), shown.name),
        points: tsne.fit(&mu)?,
        labels: shown.labels.as_ref().map(|l| l.shallow_clone()),
    })
}

/// What G's self-attention block attends to (SAGAN): the images of `z` `[k, latent_dim]` and the
/// block's attention maps for them `[k, N, N]` (row j: how much output position j draws on each
/// input position, over the N = side² positions of the block's feature maps).
pub fn attention(gan: &Gan, z: &Tensor) -> Result<(Tensor, Tensor)> {
    ensure!(gan.generator.attention().is_some(), "this {} has no self-attention block (SAGAN has)", gan.family);
    gan.check_latent(z)?;
    let images = gan.generate(z);
    let beta = gan.generator.attention().and_then(|a| a.last_attention_map()).expect("set by the forward pass");
    Ok((images, beta))
}

/// The learned γ of G's and D's self-attention blocks (how much of the attention output each adds
/// to its input; both start at 0), or `None` for a family without attention.
pub fn attention_gammas(gan: &Gan) -> Option<(f64, f64)> {
    let gamma = |a: &crate::models::layers::SelfAttention| a.gamma.double_value(&[0]);
    Some((gamma(gan.generator.attention()?), gamma(gan.discriminator.attention()?)))
}
