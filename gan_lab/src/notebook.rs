//! Inline display in notebooks run by the evcxr Jupyter kernel: a thin layer over [`crate::viz`].
//!
//! evcxr shows a cell's value through its inherent `evcxr_display` method, which prints
//! `EVCXR_BEGIN_CONTENT <mime>`, the content, `EVCXR_END_CONTENT`. A cell sends one result with
//! one entry per MIME type, so several pictures in one cell are composed into one HTML [`Panel`].

use crate::train::{Gan, History};
use crate::vae::{VaeHistory, VaeModel};
use crate::viz;
use base64::Engine;
use image::RgbImage;
use std::fmt::Write;
use tch::Tensor;

fn emit(mime: &str, content: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT");
}

fn base64_png(image: &RgbImage) -> String {
    base64::engine::general_purpose::STANDARD.encode(viz::png_bytes(image))
}

/// A raster picture (sample grid, interpolation strip), shown as PNG.
pub struct Picture {
    pub image: RgbImage,
    /// Display scale: small digits are shown enlarged, pixels kept sharp.
    pub scale: u32,
}

impl Picture {
    pub fn new(image: RgbImage) -> Picture {
        Picture { image, scale: 2 }
    }

    pub fn evcxr_display(&self) {
        emit("image/png", &base64_png(&self.scale_up()))
    }

    fn scale_up(&self) -> RgbImage {
        let (w, h) = (self.image.width() * self.scale, self.image.height() * self.scale);
        image::imageops::resize(&self.image, w, h, image::imageops::FilterType::Nearest)
    }

    fn html(&self) -> String {
        format!(r#"<img src="data:image/png;base64,{}">"#, base64_png(&self.scale_up()))
    }
}

/// An animation (a looping GIF), shown inline.
pub struct Animation(pub Vec<u8>);

impl Animation {
    pub fn evcxr_display(&self) {
        emit("image/gif", &base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

/// A looping walk through the latent space: 16 samples, each moving to the next one's z and back.
pub fn interpolation_animation(gan: &Gan, seed: u64) -> anyhow::Result<Animation> {
    let z = gan.draw_latent(16, seed);
    Ok(Animation(viz::gif_bytes(&crate::explore::interpolation_frames(gan, &z, 24, 4), 80)?))
}

/// The same walk in latent space and in screen space, as a looping GIF: for 4 pairs of z (one
/// row each), G((1 − α)·z1 + α·z2) on the left beside the pixel blend (1 − α)·G(z1) + α·G(z2).
pub fn latent_vs_screen_animation(gan: &Gan, seed: u64) -> anyhow::Result<Animation> {
    let z = gan.draw_latent(8, seed);
    let frames = crate::explore::latent_vs_screen_frames(gan, &z.narrow(0, 0, 4), &z.narrow(0, 4, 4), 24);
    Ok(Animation(viz::gif_bytes(&frames, 80)?))
}

/// The fixed noise's images through training (the snapshots), as a looping GIF.
pub fn progress_animation(gan: &Gan) -> anyhow::Result<Animation> {
    let frames: Vec<RgbImage> = gan.snapshots.iter().map(|(_, images)| viz::grid(images, gan.grid_columns())).collect();
    anyhow::ensure!(!frames.is_empty(), "no snapshots: train with .snapshot_every(n)");
    Ok(Animation(viz::gif_bytes(&frames, 400)?))
}

/// Sweeps of latent dimension `dim` from -3 to 3 (11 columns) for 8 draws of z (rows).
pub fn sweep(gan: &Gan, dim: i64, seed: u64) -> anyhow::Result<Picture> {
    let z = gan.draw_latent(8, seed);
    Ok(grid(&crate::explore::sweep(gan, &z, dim, -3.0, 3.0, 11)?, 11))
}

/// A vector picture (loss curves), shown as SVG.
pub struct Svg(pub String);

impl Svg {
    pub fn evcxr_display(&self) {
        emit("image/svg+xml", &self.0)
    }
}

/// A grid of images `[N, C, H, W]` in [-1, 1], `ncols` wide.
pub fn grid(images: &Tensor, ncols: i64) -> Picture {
    Picture::new(viz::grid(images, ncols))
}

/// `n` samples of `gan` in a square grid.
pub fn samples(gan: &Gan, n: i64, seed: u64) -> Picture {
    grid(&gan.sample(n, seed), viz::default_columns(n))
}

/// `n` samples beside the mode-collapse signals the frozen evaluator reads from them (class
/// histogram, its entropy, the most over-represented class, near-duplicates). Needs 1-channel
/// 32×32 images.
pub fn samples_with_diagnostics(gan: &Gan, n: i64, seed: u64) -> anyhow::Result<Panel> {
    let images = gan.sample(n, seed);
    let ev = crate::metrics::Evaluator::shipped()?;
    let signals = crate::metrics::collapse_signals(&ev, &images);
    Ok(Panel::new()
        .picture(&format!("{n} samples"), &grid(&images, viz::default_columns(n)))
        .text("classes read by the evaluator", &signals.to_string()))
}

/// A chart as SVG; a failure to draw shows as its message.
pub fn chart<C: viz::Chart + ?Sized>(chart: &C) -> Svg {
    Svg(viz::chart_svg(chart).unwrap_or_else(|e| format!("<svg><text y=\"20\">{e:#}</text></svg>")))
}

/// The loss curves of a run.
pub fn losses(history: &History) -> Svg {
    chart(history)
}

/// The conditional lesson's final test: a row per class, a column per noise vector (`k` drawn with `seed`).
pub fn class_grid(gan: &Gan, k: i64, seed: u64) -> anyhow::Result<Picture> {
    let z = gan.draw_latent(k, seed);
    Ok(grid(&crate::explore::class_grid(gan, &z)?, k))
}

/// For each class (rows), 10 images along the line between two noise vectors drawn with `seed`.
pub fn class_interpolation(gan: &Gan, seed: u64) -> anyhow::Result<Picture> {
    let z = gan.draw_latent(2, seed);
    Ok(grid(&crate::explore::class_interpolation(gan, &z.get(0), &z.get(1), 10)?, 10))
}

/// The Inception and Mode scores of several models side by side, as grouped bars.
pub fn scores(rows: &[(&str, crate::metrics::Scores)]) -> Svg {
    chart(&viz::Bars::scores(rows))
}

/// What SAGAN's self-attention learned: for 4 samples (rows), where three query pixels look in
/// G's attention block, beside the learned γ of G's and D's blocks.
pub fn attention(gan: &Gan, seed: u64) -> anyhow::Result<Panel> {
    let (images, beta) = crate::explore::attention(gan, &gan.draw_latent(4, seed))?;
    let s = images.size()[2];
    let queries = [(s / 4, s / 2), (s / 2, s / 2), (3 * s / 4, s / 4)];
    let (g, d) = crate::explore::attention_gammas(gan).unwrap_or((f64::NAN, f64::NAN));
    Ok(Panel::new()
        .picture(
            "each row: a sample, then where 3 query pixels (cyan) look in G's attention block (brightest: most weight)",
            &grid(&viz::attention_tiles(&images, &beta, &queries)?, 1 + queries.len() as i64),
        )
        .text("learned γ (both start at 0)", &format!("G: {g:+.4}\nD: {d:+.4}")))
}

/// The latent scan: every dimension's visible effect (mean pixel change between z_d = −3 and +3
/// over 64 draws of z), and sweeps from −3 to 3 of the strongest dimensions and, for contrast,
/// the weakest, on one z.
pub struct LatentScan {
    /// (dimension, effect), strongest first.
    pub strongest: Vec<(i64, f64)>,
    pub weakest: (i64, f64),
    /// One row per dimension: the strongest, then the weakest.
    pub picture: Picture,
}

impl LatentScan {
    /// Scans `gan`, sweeping its `n` strongest dimensions (noise drawn with `seed`).
    pub fn new(gan: &Gan, n: i64, seed: u64) -> anyhow::Result<LatentScan> {
        let z = gan.draw_latent(64, seed);
        let ranked = crate::explore::strongest_dimensions(gan, &z, 3.0, gan.latent_dim)?;
        let strongest: Vec<(i64, f64)> = ranked.iter().copied().take(n.max(1) as usize).collect();
        let weakest = *ranked.last().expect("at least one latent dimension");
        let rows: Vec<Tensor> = strongest
            .iter()
            .chain([&weakest])
            .map(|&(dim, _)| crate::explore::sweep(gan, &z.narrow(0, 0, 1), dim, -3.0, 3.0, 11))
            .collect::<anyhow::Result<_>>()?;
        Ok(LatentScan { strongest, weakest, picture: grid(&Tensor::cat(&rows, 0), 11) })
    }

    pub fn evcxr_display(&self) {
        Panel::new().picture(&self.to_string(), &self.picture).evcxr_display()
    }
}

impl std::fmt::Display for LatentScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.strongest.iter().map(|(d, e)| format!("z{d} ({e:.3})")).collect();
        write!(
            f,
            "rows: {}, then the weakest z{} ({:.3}); z_d from −3 to 3",
            dims.join(", "),
            self.weakest.0,
            self.weakest.1
        )
    }
}

/// Per-class accuracy of conditional generators, as grouped bars.
pub fn class_accuracy(models: &[(&str, &crate::metrics::ClassAccuracy)]) -> Svg {
    chart(&viz::Bars::class_accuracy(models))
}

/// InfoGAN: `rows` latent vectors drawn with `seed` (continuous codes at 0), each with every value
/// of categorical code `code` in turn: a row per z, a column per value.
pub fn code_grid(gan: &Gan, code: usize, rows: i64, seed: u64) -> anyhow::Result<Picture> {
    let z = crate::explore::with_continuous(gan, &gan.draw_latent(rows, seed), 0.0)?;
    let images = crate::explore::code_grid(gan, &z, code)?;
    Ok(grid(&images, gan.codes.categorical[code]))
}

/// InfoGAN: continuous code `code` swept from `from` to `to` (10 columns), a row per value of the
/// first categorical code, the noise drawn with `seed`.
pub fn code_sweep(gan: &Gan, code: i64, from: f64, to: f64, seed: u64) -> anyhow::Result<Picture> {
    let rows = crate::explore::sweep_rows(gan, &gan.draw_latent(1, seed))?;
    Ok(grid(&crate::explore::code_sweep(gan, &rows, code, from, to, 10)?, 10))
}

/// Images of the linear interpolation from `z1` to `z2` in `steps` steps, in one row.
pub fn interpolation(gan: &Gan, z1: &Tensor, z2: &Tensor, steps: i64) -> Picture {
    grid(&crate::explore::interpolation(gan, z1, z2, steps), steps)
}

/// The VAE's learning curves: reconstruction per step with the held-out MSE per epoch, KL per step.
pub fn vae_curves(history: &VaeHistory) -> Svg {
    chart(history)
}

/// The first `n` images of `data` (top row) above their reconstructions by `vae`, with the MSE
/// over the whole of `data`.
pub fn reconstructions(vae: &VaeModel, data: &crate::data::Dataset, n: i64) -> anyhow::Result<Panel> {
    let rows = crate::explore::reconstruction_rows(vae, &data.images, n)?;
    let mse = vae.test_mse(data)?;
    Ok(Panel::new().picture(
        &format!(
            "{n} images of {} above their reconstructions; MSE over its {} images: {mse:.5}",
            data.name,
            data.len()
        ),
        &grid(&rows, n),
    ))
}

/// `n` images the VAE decodes from draws of the prior N(0, I).
pub fn vae_samples(vae: &VaeModel, n: i64, seed: u64) -> Picture {
    grid(&vae.sample(n, seed), viz::default_columns(n))
}

/// The t-SNE map of the encoder's means for the first `n` images of `data`, coloured by label.
pub fn latent_map(vae: &VaeModel, data: &crate::data::Dataset, n: i64) -> anyhow::Result<Picture> {
    let map = crate::explore::latent_map(vae, data, n)?;
    Ok(Picture { image: viz::chart_image(&map)?, scale: 1 })
}

/// `steps` images between the encodings of images `a` and `b` of `data`, in one row.
pub fn vae_interpolation(
    vae: &VaeModel,
    data: &crate::data::Dataset,
    a: i64,
    b: i64,
    steps: i64,
) -> anyhow::Result<Picture> {
    let n = data.len();
    anyhow::ensure!((0..n).contains(&a) && (0..n).contains(&b), "images {a} and {b}: expected indices below {n}");
    Ok(grid(&crate::explore::encoded_interpolation(vae, &data.images.get(a), &data.images.get(b), steps)?, steps))
}

impl VaeHistory {
    /// A VAE run's history shows as its learning curves.
    pub fn evcxr_display(&self) {
        vae_curves(self).evcxr_display()
    }
}

impl VaeModel {
    /// A trained VAE shows 32 samples beside its learning curves.
    pub fn evcxr_display(&self) {
        let last = self.history.steps.last().map(|r| {
            format!("step {}\nloss {:.4}\nreconstruction {:.4}\nKL {:.3}", r.step + 1, r.loss, r.reconstruction, r.kl)
        });
        Panel::new()
            .picture("32 samples from the prior", &vae_samples(self, 32, 0))
            .svg("learning curves", &vae_curves(&self.history))
            .text("last step", &last.unwrap_or_else(|| "not trained yet".into()))
            .evcxr_display()
    }
}

impl crate::vae::Comparison {
    pub fn evcxr_display(&self) {
        self.table().evcxr_display()
    }
}

impl viz::Table {
    pub fn evcxr_display(&self) {
        emit("text/html", &self.html())
    }
}

/// The lesson-1 experiments side by side, judged without the lesson-2 scores. For each run: its
/// training (steps, seconds, and the losses and D's mean outputs over its last 100 steps) and
/// 1,000 of its samples as the frozen digit evaluator reads them (the share it reads as a clear
/// digit, how evenly the classes spread, the most frequent class, near-duplicates) with their
/// sharpness. 64×64 samples are averaged down to 32×32 for the evaluator.
#[derive(Default)]
pub struct Experiments {
    table: viz::Table,
}

impl Experiments {
    pub fn new() -> Experiments {
        let header = [
            "run",
            "steps",
            "train s",
            "D loss",
            "G loss",
            "D(x)",
            "D(G(z))",
            "clear digits",
            "class entropy",
            "most frequent",
            "near-duplicates",
            "sharpness",
        ];
        Experiments { table: viz::Table::new(&header) }
    }

    /// Adds the run `gan` as `name`. Fails for samples the digit evaluator cannot read (not
    /// one-channel 32×32 or 64×64).
    pub fn add(mut self, name: &str, gan: &Gan) -> anyhow::Result<Experiments> {
        let mut images = gan.sample(1000, 7);
        let size = images.size();
        anyhow::ensure!(
            size[1] == 1 && (size[2] == 32 || size[2] == 64),
            "{name}: the digit evaluator reads one-channel 32×32 or 64×64 images, not {:?}",
            &size[1..]
        );
        if size[2] == 64 {
            images = images.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
        }
        let ev = crate::metrics::Evaluator::shipped()?;
        let signals = crate::metrics::collapse_signals(&ev, &images);
        let last = &gan.history.steps[gan.history.steps.len().saturating_sub(100)..];
        let mean = |f: fn(&crate::history::StepRecord) -> f64| {
            format!("{:.2}", last.iter().map(f).sum::<f64>() / last.len().max(1) as f64)
        };
        self.table.rows.push(vec![
            name.to_string(),
            gan.step.to_string(),
            format!("{:.0}", gan.seconds),
            mean(|r| r.d_loss),
            mean(|r| r.g_loss),
            mean(|r| r.d_real),
            mean(|r| r.d_fake),
            format!("{:.0}%", 100.0 * ev.confident_share(&images, 0.9)),
            format!("{:.2} nats", signals.entropy),
            format!("{} ({:.0}%)", signals.top_class, 100.0 * signals.class_shares[signals.top_class]),
            format!("{:.1}%", 100.0 * signals.near_duplicate_rate),
            format!("{:.3}", crate::metrics::sharpness(&images)),
        ]);
        Ok(self)
    }

    pub fn table(&self) -> &viz::Table {
        &self.table
    }

    pub fn evcxr_display(&self) {
        self.table.evcxr_display()
    }
}

impl std::fmt::Display for Experiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.table.fmt(f)
    }
}

/// Several pictures and texts in one cell result (HTML), side by side.
#[derive(Default)]
pub struct Panel {
    items: Vec<String>,
}

impl Panel {
    pub fn new() -> Panel {
        Panel::default()
    }

    fn item(mut self, caption: &str, body: String) -> Panel {
        self.items.push(format!(
            "<figure style=\"margin:0\">{body}<figcaption style=\"text-align:center\">{}</figcaption></figure>",
            viz::escape_html(caption)
        ));
        self
    }

    pub fn picture(self, caption: &str, picture: &Picture) -> Panel {
        self.item(caption, picture.html())
    }

    pub fn svg(self, caption: &str, svg: &Svg) -> Panel {
        self.item(caption, svg.0.clone())
    }

    pub fn text(self, caption: &str, text: &str) -> Panel {
        self.item(caption, format!("<pre>{}</pre>", viz::escape_html(text)))
    }

    pub fn html(&self) -> String {
        let mut out = String::from("<div style=\"display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start\">");
        for item in &self.items {
            let _ = write!(out, "{item}");
        }
        out + "</div>"
    }

    pub fn evcxr_display(&self) {
        emit("text/html", &self.html())
    }
}

impl History {
    /// A run's history shows as its loss curves.
    pub fn evcxr_display(&self) {
        losses(self).evcxr_display()
    }
}

impl Gan {
    /// A trained model shows its fixed-noise samples beside its loss curves.
    pub fn evcxr_display(&self) {
        let last = self.history.last().map(|r| {
            format!(
                "step {} ({:.0} s of training)\nD loss {:.3}\nG loss {:.3}\nD(x) {:.2}\nD(G(z)) {:.2}",
                r.step + 1,
                self.seconds,
                r.d_loss,
                r.g_loss,
                r.d_real,
                r.d_fake
            )
        });
        Panel::new()
            .picture("samples from the fixed noise", &grid(&self.generate(&self.fixed_noise), self.grid_columns()))
            .svg("losses", &losses(&self.history))
            .text("last step", &last.unwrap_or_else(|| "not trained yet".into()))
            .evcxr_display()
    }
}

impl crate::metrics::ClassAccuracy {
    /// Per-class bars beside the overall figure.
    pub fn evcxr_display(&self) {
        Panel::new()
            .svg("per class", &class_accuracy(&[("generator", self)]))
            .text("overall", &self.to_string())
            .evcxr_display()
    }
}

impl crate::metrics::CodeAccuracy {
    /// Per-value bars (each value labelled with its digit) beside the overall figure.
    pub fn evcxr_display(&self) {
        let as_classes =
            crate::metrics::ClassAccuracy { n: self.n, overall: self.overall, per_class: self.per_value.clone() };
        Panel::new()
            .svg("per code value", &class_accuracy(&[("code value → its digit", &as_classes)]))
            .text("overall", &self.to_string())
            .evcxr_display()
    }
}

/// A lesson's grades, shown as the table `gan-lab grade` prints.
pub struct Grades(pub Vec<crate::course::grade::ExerciseResult>);

impl Grades {
    pub fn evcxr_display(&self) {
        emit("text/plain", crate::course::grade::table(&self.0).trim_end())
    }
}

/// `gan-lab grade --lesson <lesson>` from a cell: builds this checkout's tests of that lesson
/// (`cargo test --release`, minutes the first time) and runs each exercise's checks in its own
/// process. Edits to `gan_lab/src` count at once; the kernel needs no restart for grading.
pub fn grade(lesson: &str) -> anyhow::Result<Grades> {
    let limits = crate::course::sandbox::Limits::default();
    Ok(Grades(crate::course::grade::grade(&crate::course::checkout(), &[lesson.to_owned()], limits)?))
}
