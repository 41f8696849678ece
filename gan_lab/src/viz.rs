//! All pictures: the sample grid (one function, used everywhere), loss curves, and strips of
//! latent interpolations. Notebook display ([`crate::notebook`]) is a thin layer over these.

use crate::files;
use crate::history::{History, StepRecord};
use anyhow::{bail, Context, Result};
use image::RgbImage;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;
use tch::{Kind, Tensor};

/// Pixels between tiles in a grid.
pub const GRID_PADDING: u32 = 2;

/// Tiles images `[N, C, H, W]` in [-1, 1] (C = 1 or 3) into a grid `ncols` wide, row by row:
/// image k sits in row k / ncols, column k % ncols, with [`GRID_PADDING`] pixels of black around
/// each tile. Grey images become grey RGB.
pub fn grid(images: &Tensor, ncols: i64) -> RgbImage {
    let size = images.size();
    assert_eq!(size.len(), 4, "grid: expected images [N, C, H, W], got {size:?}");
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    assert!(c == 1 || c == 3, "grid: expected 1 or 3 channels, got {c}");
    assert!(ncols >= 1, "grid: expected ncols ≥ 1, got {ncols}");
    let ncols = ncols.min(n.max(1));
    let nrows = (n + ncols - 1) / ncols;
    let pad = GRID_PADDING as i64;
    // [N, C, H, W] in [-1, 1] → [N, H, W, 3] bytes.
    let bytes = ((images.detach().to_device(tch::Device::Cpu).clamp(-1.0, 1.0) + 1.0) * 127.5)
        .round()
        .to_kind(Kind::Uint8)
        .expand([n, 3, h, w], false)
        .permute([0, 2, 3, 1])
        .contiguous();
    let bytes: Vec<u8> = Vec::try_from(bytes.view([-1])).expect("uint8 tensor");
    let width = (ncols * (w + pad) + pad) as u32;
    let height = (nrows * (h + pad) + pad) as u32;
    let mut out = RgbImage::new(width, height);
    for k in 0..n {
        let (row, col) = (k / ncols, k % ncols);
        let (x0, y0) = (pad + col * (w + pad), pad + row * (h + pad));
        for y in 0..h {
            for x in 0..w {
                let i = (((k * h + y) * w + x) * 3) as usize;
                out.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb([bytes[i], bytes[i + 1], bytes[i + 2]]));
            }
        }
    }
    out
}

/// The square-ish number of columns for `n` images (8 for 64).
pub fn default_columns(n: i64) -> i64 {
    ((n as f64).sqrt().ceil() as i64).max(1)
}

/// PNG bytes of an image.
/// Text made safe to put in HTML.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A table of text cells: printed as Markdown, shown as HTML in notebooks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// The table as HTML, its cells escaped.
    pub fn html(&self) -> String {
        let row = |cells: &[String], tag: &str| {
            cells.iter().map(|c| format!("<{tag}>{}</{tag}>", escape_html(c))).collect::<String>()
        };
        let body: String = self.rows.iter().map(|r| format!("<tr>{}</tr>", row(r, "td"))).collect();
        format!("<table><thead><tr>{}</tr></thead><tbody>{body}</tbody></table>", row(&self.header, "th"))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "| {} |", self.header.join(" | "))?;
        writeln!(f, "|{}", " --- |".repeat(self.header.len()))?;
        for row in &self.rows {
            writeln!(f, "| {} |", row.join(" | "))?;
        }
        Ok(())
    }
}

pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).expect("PNG encoding into memory");
    buf.into_inner()
}

/// Saves an image as PNG, atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    files::write_atomic(path, &png_bytes(img))
}

/// Saves a grid of `images` as PNG.
pub fn save_grid(images: &Tensor, ncols: i64, path: &Path) -> Result<()> {
    save_png(&grid(images, ncols), path)
}

/// A looping animated GIF of `frames`, `delay_ms` per frame.
pub fn gif_bytes(frames: &[RgbImage], delay_ms: u32) -> Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut buf = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut buf, 10);
        encoder.set_repeat(Repeat::Infinite)?;
        let delay = image::Delay::from_numer_denom_ms(delay_ms, 1);
        for frame in frames {
            let rgba = image::DynamicImage::ImageRgb8(frame.clone()).to_rgba8();
            encoder.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))?;
        }
    }
    Ok(buf)
}

/// Saves `frames` as a looping animated GIF, `delay_ms` per frame, atomically.
pub fn save_gif(frames: &[RgbImage], delay_ms: u32, path: &Path) -> Result<()> {
    files::write_atomic(path, &gif_bytes(frames, delay_ms)?)
}

static FONT: Once = Once::new();

/// Plot text uses the bundled DejaVu Sans Mono, so plots look the same on every machine.
fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// A picture drawn with plotters, rendered the same way to SVG (notebooks) and PNG (run folders).
pub trait Chart {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already filled white; presented by the caller).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

fn render<DB: DrawingBackend, C: Chart + ?Sized>(chart: &C, root: DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    register_font();
    root.fill(&WHITE).map_err(plot_err)?;
    chart.draw(&root)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// `chart` as an SVG document.
pub fn chart_svg<C: Chart + ?Sized>(chart: &C) -> Result<String> {
    let mut svg = String::new();
    render(chart, SVGBackend::with_string(&mut svg, chart.size()).into_drawing_area())?;
    Ok(svg)
}

/// `chart` as an RGB image.
pub fn chart_image<C: Chart + ?Sized>(chart: &C) -> Result<RgbImage> {
    let (w, h) = chart.size();
    let mut buf = vec![0u8; (w * h * 3) as usize];
    render(chart, BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area())?;
    RgbImage::from_raw(w, h, buf).context("plot buffer size")
}

/// Saves `chart` as SVG or PNG, chosen by the extension of `path`.
pub fn save_chart<C: Chart + ?Sized>(chart: &C, path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => files::write_atomic(path, chart_svg(chart)?.as_bytes()),
        Some("png") => save_png(&chart_image(chart)?, path),
        _ => bail!("plot {}: expected a .svg or .png file name", path.display()),
    }
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    /// (x, y) points; non-finite y values are skipped.
    pub points: Vec<(f64, f64)>,
    /// Marks each point (sparse series such as per-epoch values).
    pub markers: bool,
}

impl Series {
    pub fn new(name: &str, color: RGBColor, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            color,
            points: points.into_iter().filter(|p| p.1.is_finite()).collect(),
            markers: false,
        }
    }
    pub fn with_markers(mut self) -> Series {
        self.markers = true;
        self
    }
}

/// Colours of successive series (matplotlib's "tab10").
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Lines against a shared x axis from 0 to `x_max`; the y axis spans the data and 0.
pub fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    x_max: f64,
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo.is_finite() { (lo.min(0.0), hi.max(lo + 1e-3)) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x_max.max(1.0), lo..hi * 1.05)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    for s in series {
        let color = s.color;
        let width = if s.markers { 2 } else { 1 };
        let line = LineSeries::new(s.points.iter().copied(), color.stroke_width(width));
        chart
            .draw_series(if s.markers { line.point_size(3) } else { line })
            .map_err(plot_err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    Ok(())
}

/// The D and G losses of a GAN run per step (with the family's extra series), and its scores
/// (FID, IS) in a second panel when it has them.
impl Chart for History {
    fn size(&self) -> (u32, u32) {
        if self.metrics.is_empty() {
            (720, 400)
        } else {
            (720, 640)
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        if self.metrics.is_empty() {
            draw_loss_chart(self, root)
        } else {
            let (top, bottom) = root.split_vertically(400);
            draw_loss_chart(self, &top)?;
            draw_score_chart(self, &bottom)
        }
    }
}

/// An optional series of a step record.
type Field = fn(&StepRecord) -> Option<f64>;

fn draw_loss_chart<DB: DrawingBackend>(history: &History, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let line = |name: &str, color: usize, value: Field| {
        Series::new(
            name,
            PALETTE[color],
            history.steps.iter().map(|r| (r.step as f64, value(r).unwrap_or(f64::NAN))).collect(),
        )
    };
    let mut series = vec![line("D loss", 0, |r| Some(r.d_loss)), line("G loss", 1, |r| Some(r.g_loss))];
    let extra: [(&str, usize, Field); 4] = [
        ("D class loss (real)", 2, |r| r.class_loss),
        ("critic's W estimate E[f(x)] − E[f(G(z))]", 3, |r| r.wasserstein),
        ("G information loss (weighted)", 4, |r| r.information),
        ("MI lower bound, categorical codes (nats)", 5, |r| r.mutual_information),
    ];
    series.extend(
        extra.into_iter().map(|(name, color, value)| line(name, color, value)).filter(|s| !s.points.is_empty()),
    );
    draw_lines(root, "Losses per training step", ("step", "loss"), history.len() as f64, &series)
}

/// FID (left axis) and Inception score (right axis) against the step.
fn draw_score_chart<DB: DrawingBackend>(history: &History, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let steps = history.len().max(1) as f64;
    let fid_max = history.metrics.iter().map(|m| m.scores.fid).fold(1.0, f64::max) * 1.05;
    let is_max = history.metrics.iter().map(|m| m.scores.inception.mean).fold(1.0, f64::max) * 1.05;
    let evaluator = match history.evaluator.as_deref() {
        None | Some("mnist") => "MNIST".to_string(),
        Some(other) => other.to_string(),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Scores on the {evaluator} evaluator"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .right_y_label_area_size(48)
        .build_cartesian_2d(0f64..steps, 0f64..fid_max)
        .map_err(plot_err)?
        .set_secondary_coord(0f64..steps, 0f64..is_max);
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("FID (lower is better)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    chart
        .configure_secondary_axes()
        .y_desc("IS (higher is better)")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    let (fid_color, is_color) = (RGBColor(44, 160, 44), RGBColor(148, 103, 189));
    let points = |f: fn(&crate::history::MetricRecord) -> f64| -> Vec<(f64, f64)> {
        history.metrics.iter().map(|m| (m.step as f64, f(m))).collect()
    };
    chart
        .draw_series(LineSeries::new(points(|m| m.scores.fid), fid_color.stroke_width(2)).point_size(3))
        .map_err(plot_err)?
        .label("FID")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], fid_color.stroke_width(2)));
    chart
        .draw_secondary_series(
            LineSeries::new(points(|m| m.scores.inception.mean), is_color.stroke_width(2)).point_size(3),
        )
        .map_err(plot_err)?
        .label("IS")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], is_color.stroke_width(2)));
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;
    Ok(())
}

/// The legend of a chart's labelled series at `position`, in the house style.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(plot_err)
}

fn plot_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow::Error::new(e).context("plotting failed")
}

/// The loss curves as an SVG document.
pub fn loss_curves_svg(history: &History) -> Result<String> {
    chart_svg(history)
}

/// The loss curves as an RGB image.
pub fn loss_curves_image(history: &History) -> Result<RgbImage> {
    chart_image(history)
}

/// Saves the loss curves as SVG or PNG, chosen by the extension of `path`.
pub fn save_loss_curves(history: &History, path: &Path) -> Result<()> {
    save_chart(history, path)
}

/// The VAE's learning curves: the reconstruction term per step with the held-out MSE per epoch
/// above, the KL term per step below.
impl Chart for crate::history::VaeHistory {
    fn size(&self) -> (u32, u32) {
        (720, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (top, bottom) = root.split_vertically(340);
        let per_step =
            |value: fn(&crate::history::VaeStep) -> f64| self.steps.iter().map(|r| (r.step as f64, value(r))).collect();
        let held_out = self.epochs.iter().map(|e| (e.step as f64, e.test_mse)).collect();
        let steps = self.steps.len() as f64;
        let reconstruction = [
            Series::new("reconstruction (training batch)", PALETTE[0], per_step(|r| r.reconstruction)),
            Series::new("MSE on the held-out set, per epoch", PALETTE[1], held_out).with_markers(),
        ];
        draw_lines(&top, "Reconstruction per training step", ("step", "per pixel"), steps, &reconstruction)?;
        let kl = [Series::new("KL(q(z|x) ‖ N(0, I)) per latent dimension", PALETTE[2], per_step(|r| r.kl))];
        draw_lines(&bottom, "KL divergence per training step", ("step", "nats"), steps, &kl)
    }
}

/// Saves the VAE's learning curves as SVG or PNG, chosen by the extension of `path`.
pub fn save_vae_curves(history: &crate::history::VaeHistory, path: &Path) -> Result<()> {
    save_chart(history, path)
}

/// Points in 2-D coloured by label (a t-SNE map of a latent space), with a legend of the labels.
pub struct Scatter {
    pub caption: String,
    /// `[N, 2]`.
    pub points: Tensor,
    /// `[N]` integer labels, or `None` for one colour.
    pub labels: Option<Tensor>,
}

impl Chart for Scatter {
    fn size(&self) -> (u32, u32) {
        (640, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let n = self.points.size()[0];
        let xy: Vec<f64> = Vec::try_from(self.points.to_kind(Kind::Double).reshape([-1]))?;
        let labels: Vec<i64> = match &self.labels {
            Some(l) => Vec::try_from(l.to_kind(Kind::Int64))?,
            None => vec![0; n as usize],
        };
        let bounds = |k: usize| {
            let v = xy.iter().skip(k).step_by(2);
            let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            if lo.is_finite() {
                (lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9))
            } else {
                (0.0, 1.0)
            }
        };
        let ((x0, x1), (y0, y1)) = (bounds(0), bounds(1));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.caption, ("sans-serif", 18))
            .margin(12)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart.configure_mesh().disable_mesh().disable_axes().draw().map_err(plot_err)?;
        let mut classes: Vec<i64> = labels.clone();
        classes.sort_unstable();
        classes.dedup();
        for class in classes {
            let color = PALETTE[class.rem_euclid(PALETTE.len() as i64) as usize];
            let points = (0..n as usize).filter(|&i| labels[i] == class).map(|i| (xy[2 * i], xy[2 * i + 1]));
            let series = chart.draw_series(points.map(|p| Circle::new(p, 2, color.filled()))).map_err(plot_err)?;
            if self.labels.is_some() {
                series.label(class.to_string()).legend(move |(x, y)| Circle::new((x + 6, y), 4, color.filled()));
            }
        }
        if self.labels.is_some() {
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

/// Grouped bars: one group per category along x, one bar per series in each group (one colour
/// per series, named in the legend); the y axis runs from 0 to `y_max`, or to the data.
pub struct Bars {
    pub caption: String,
    pub x_desc: String,
    pub y_desc: String,
    pub categories: Vec<String>,
    /// (name, one value per category); non-finite values draw no bar.
    pub series: Vec<(String, Vec<f64>)>,
    pub y_max: Option<f64>,
    /// Where the legend sits (clear of the tallest bars).
    pub legend: SeriesLabelPosition,
}

impl Bars {
    /// Per-class accuracy of conditional generators, one series per model, in percent.
    pub fn class_accuracy(models: &[(&str, &crate::metrics::ClassAccuracy)]) -> Bars {
        let classes = models.iter().map(|(_, a)| a.per_class.len()).max().unwrap_or(0);
        Bars {
            caption: "Evaluator's class = requested class, per class".into(),
            x_desc: "requested class".into(),
            y_desc: "accuracy (%)".into(),
            categories: (0..classes).map(|c| c.to_string()).collect(),
            series: models
                .iter()
                .map(|(name, a)| {
                    (
                        format!("{name} ({:.1}% overall)", 100.0 * a.overall),
                        a.per_class.iter().map(|v| 100.0 * v).collect(),
                    )
                })
                .collect(),
            y_max: Some(100.0),
            legend: SeriesLabelPosition::LowerRight,
        }
    }

    /// The Inception and Mode scores of several models (and of real data, as a row named so),
    /// one group per model.
    pub fn scores(rows: &[(&str, crate::metrics::Scores)]) -> Bars {
        Bars {
            caption: "Inception and Mode scores (higher is better)".into(),
            x_desc: "model".into(),
            y_desc: "score".into(),
            categories: rows.iter().map(|(name, _)| name.to_string()).collect(),
            series: vec![
                ("Inception score".into(), rows.iter().map(|(_, s)| s.inception.mean).collect()),
                ("Mode score".into(), rows.iter().map(|(_, s)| s.mode.mean).collect()),
            ],
            y_max: None,
            legend: SeriesLabelPosition::UpperLeft,
        }
    }
}

impl Chart for Bars {
    fn size(&self) -> (u32, u32) {
        (720, 320)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let groups = self.categories.len();
        let top = self.y_max.unwrap_or_else(|| {
            let hi =
                self.series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite()).fold(0.0, f64::max);
            1.1 * hi.max(1e-3)
        });
        let mut chart = ChartBuilder::on(root)
            .caption(&self.caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5f64..groups as f64 - 0.5, 0f64..top)
            .map_err(plot_err)?;
        let name = |x: &f64| {
            let k = x.round();
            match (k - x).abs() < 1e-6 && k >= 0.0 {
                true => self.categories.get(k as usize).cloned().unwrap_or_default(),
                false => String::new(),
            }
        };
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_labels(groups)
            .x_label_formatter(&name)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_err)?;
        let width = 0.8 / self.series.len().max(1) as f64;
        for (m, (name, values)) in self.series.iter().enumerate() {
            let color = PALETTE[m % PALETTE.len()];
            let left = -0.4 + m as f64 * width;
            chart
                .draw_series(values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(c, v)| {
                    let x = c as f64 + left;
                    Rectangle::new([(x, 0.0), (x + width * 0.9, *v)], color.filled())
                }))
                .map_err(plot_err)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        draw_legend(&mut chart, self.legend.clone())
    }
}

/// For each of the images `[k, C, S, S]` in [-1, 1], a row of tiles: the image, then for each
/// query pixel (row, column) where an attention block looks from there: the attention weights
/// `beta` `[k, N, N]` of the query's position over the N = side² positions of the block's maps,
/// scaled to the image as a heat map (dark, red, yellow, white: the most attention) over the
/// darkened image, the query pixel marked in cyan → `[k · (1 + queries), 3, S, S]` in [-1, 1].
pub fn attention_tiles(images: &Tensor, beta: &Tensor, queries: &[(i64, i64)]) -> Result<Tensor> {
    let images = images.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let beta = beta.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let (shape, b) = (images.size(), beta.size());
    if shape.len() != 4 || shape[2] != shape[3] {
        bail!("attention tiles: expected square images [k, C, S, S], got {shape:?}");
    }
    let (k, s) = (shape[0], shape[2]);
    let side = (b.get(1).copied().unwrap_or(0) as f64).sqrt().round() as i64;
    if b.len() != 3 || b[0] != k || b[1] != b[2] || side * side != b[1] || side == 0 || side > s {
        bail!(
            "attention tiles: expected beta [{k}, N, N] with N = side² and side ≤ {s} (one map per image), got {b:?}"
        );
    }
    if let Some((r, c)) = queries.iter().find(|(r, c)| !(0..s).contains(r) || !(0..s).contains(c)) {
        bail!("attention tiles: query pixel ({r}, {c}) is outside the {s}×{s} images");
    }
    let grey = (images.mean_dim([1].as_slice(), true, Kind::Float) + 1.0) / 2.0; // [k, 1, S, S] in [0, 1]
    let cyan = Tensor::from_slice(&[0f32, 1.0, 1.0]).view([1, 3, 1, 1]);
    let mut tiles = vec![grey.expand([k, 3, s, s], false)];
    for &(r, c) in queries {
        let j = (r * side / s) * side + c * side / s;
        let w = beta.select(1, j).view([k, 1, side, side]);
        let w = &w / w.amax([2, 3].as_slice(), true).clamp_min(1e-12);
        let heat = w.upsample_nearest2d([s, s], None, None) * 3.0;
        let hot = Tensor::cat(&[heat.clamp(0.0, 1.0), (&heat - 1.0).clamp(0.0, 1.0), (&heat - 2.0).clamp(0.0, 1.0)], 1);
        let tile = &grey * 0.3 + hot * 0.7;
        let (r0, c0) = (r.clamp(0, s - 2), c.clamp(0, s - 2));
        tile.narrow(2, r0, 2).narrow(3, c0, 2).copy_(&cyan.expand([k, 3, 2, 2], false));
        tiles.push(tile);
    }
    Ok(Tensor::stack(&tiles, 1).view([-1, 3, s, s]) * 2.0 - 1.0)
}
