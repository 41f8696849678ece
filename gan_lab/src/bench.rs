//! `gan-lab bench`: gan_lab's training speed beside the PyTorch reference of the same model and
//! optimizers (`tests/reference/bench_reference.py`, run with the project's Python torch) as an
//! informed user runs it (eager NCHW as the course notebooks do, channels-last, `torch.compile`;
//! in bfloat16, autocast eager and channels-last), on both of gan_lab's backends
//! (`gan_lab::backend`: its fast kernels, and stock libtorch). gan_lab's speed-up is against the
//! fastest variant of the same precision.
//!
//! Each measurement runs in its own process, so that peak memory is the model's alone; the sides'
//! runs alternate, round after round, and the table shows medians. The
//! machine's fp32 matrix-multiply rate is measured in the same invocation, and each model's
//! floating-point operations per step (counted once by PyTorch's flop counter, the same model on
//! both sides) turn times into a share of it.

use crate::backend::ops::OpTime;
use crate::backend::Backend;
use crate::builders::Vae;
use crate::data::Dataset;
use crate::losses::Objective;
use crate::rng::with_seed;
use crate::train::Gan;
use crate::{Cdcgan, Dcgan, Infogan};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// The lesson models the benchmark knows, by their command-line names.
pub const MODELS: [&str; 5] = ["dcgan", "cdcgan", "vae", "wgan-gp", "infogan"];

/// One benchmark case: a model at a batch size, with its timed steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub model: String,
    pub batch: i64,
    pub steps: i64,
    pub warmup: i64,
    /// Forward passes in bfloat16 on both sides (gan_lab's `bf16`, the reference's autocast).
    pub bf16: bool,
    /// Time each libtorch op over gan_lab's timed steps and print the table (`--profile`).
    pub profile: bool,
    /// The ways of running the PyTorch reference to measure ([`VARIANTS`]); gan_lab's speed-up is
    /// against the fastest.
    pub references: Vec<String>,
}

/// How an informed PyTorch user runs the reference's code: as written (NCHW, eager), with
/// channels-last weights and batches, or `torch.compile`d (inductor, channels-last).
pub const VARIANTS: [&str; 3] = ["eager", "channels-last", "compile"];

/// The reference variants measured by default: all of them in float32; in bfloat16 (autocast),
/// eager and channels-last.
pub fn default_references(bf16: bool) -> Vec<String> {
    let n = if bf16 { 2 } else { 3 };
    VARIANTS[..n].iter().map(|v| v.to_string()).collect()
}

/// The table's name of a reference variant.
fn variant_name(variant: &str) -> String {
    match variant {
        "eager" => "PyTorch eager (NCHW)".into(),
        "channels-last" => "PyTorch channels-last".into(),
        "compile" => "PyTorch torch.compile".into(),
        other => format!("PyTorch {other}"),
    }
}

impl Case {
    /// `model` at `batch` with steps that take a few seconds each (a WGAN-GP step is five critic
    /// updates with a double backward; an InfoGAN step has two 8192×1024 dense layers).
    pub fn new(model: &str, batch: i64) -> Result<Case> {
        ensure!(MODELS.contains(&model), "model `{model}`: expected one of {}", MODELS.join(", "));
        ensure!(batch >= 2, "batch {batch}: expected 2 or more");
        let steps = match model {
            "dcgan" | "vae" => 40,
            "cdcgan" => 15,
            "infogan" => 12,
            _ => 6,
        };
        Ok(Case {
            model: model.into(),
            batch,
            steps,
            warmup: 3,
            bf16: false,
            profile: false,
            references: default_references(false),
        })
    }

    /// The model's name, with "(bf16)" when the case runs in bfloat16.
    pub fn label(&self) -> String {
        match self.bf16 {
            true => format!("{} (bf16)", self.model),
            false => self.model.clone(),
        }
    }

    /// The lesson set: DCGAN at batch 64 and 128, then the other models at 64.
    pub fn lessons() -> Vec<Case> {
        let mut cases = vec![Case::new("dcgan", 64).unwrap(), Case::new("dcgan", 128).unwrap()];
        cases.extend(MODELS[1..].iter().map(|m| Case::new(m, 64).unwrap()));
        cases
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    pub ms_per_step: f64,
    pub peak_rss_mb: f64,
    /// Counted by the reference only.
    #[serde(default)]
    pub flops_per_step: Option<f64>,
    pub threads: i64,
    /// What the run really computed its forward passes in.
    #[serde(default)]
    pub precision: Option<Precision>,
    /// gan_lab's backend (none for the reference).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The reference's variant ([`VARIANTS`]; none for gan_lab).
    #[serde(default)]
    pub variant: Option<String>,
}

/// A run's printed result: a measure, or why the variant cannot run this model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Printed {
    Unavailable { unavailable: String },
    Measured(Measure),
}

/// The precision of a run's forward passes, as both sides report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Bf16,
}

impl Precision {
    pub fn of(bf16: bool) -> Precision {
        if bf16 {
            Precision::Bf16
        } else {
            Precision::Fp32
        }
    }
}

/// Peak resident memory of this process so far, in MB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The fp32 matrix-multiply rate in GFLOP/s: the best of `reps` products of two n×n matrices, by
/// oneDNN's matmul (`onednn`, as the fast backend computes them where it replaces libtorch's; 0
/// in builds without the kernels) or by libtorch's own kernel (the `out=` form, never replaced:
/// MKL's sgemm, what PyTorch runs).
pub fn matmul_peak(n: i64, reps: usize, onednn: bool) -> f64 {
    if onednn {
        return crate::backend::ops::product_gflops(n, n, n, true, reps as i32);
    }
    let (a, b) = with_seed(0, || {
        (Tensor::randn([n, n], (Kind::Float, Device::Cpu)), Tensor::randn([n, n], (Kind::Float, Device::Cpu)))
    });
    let out = Tensor::empty([n, n], (Kind::Float, Device::Cpu));
    let _ = a.mm_out(&out, &b);
    let best = (0..reps)
        .map(|_| {
            let started = Instant::now();
            let _ = a.mm_out(&out, &b);
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// Random images in [-1, 1] with random labels: speed does not depend on the pixels.
fn random_data(n: i64) -> Dataset {
    with_seed(0, || Dataset {
        name: "random".into(),
        images: Tensor::rand([n, 1, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0,
        labels: Some(Tensor::randint(10, [n], (Kind::Int64, Device::Cpu))),
        classes: (0..10).map(|c| c.to_string()).collect(),
    })
}

/// Trains `gan` for `warmup` steps, then times `steps` more through the library's training loop;
/// returns the seconds and whether the model trained in bfloat16.
fn time_gan(mut gan: Gan, data: &Dataset, case: &Case) -> Result<(f64, bool)> {
    gan.config.snapshot_every = 0;
    gan.config.metrics_every = 0;
    gan.config.steps = case.warmup;
    gan.train(data, |_| Ok(()))?;
    gan.config.steps = case.warmup + case.steps;
    let seconds = timed(case, || gan.train(data, |_| Ok(())).map(|_| ()))?;
    Ok((seconds, gan.config.bf16))
}

/// The seconds `run` takes; with `case.profile`, also prints where they went, op by op.
fn timed(case: &Case, run: impl FnOnce() -> Result<()>) -> Result<f64> {
    if case.profile {
        crate::backend::ops::profile_start();
    }
    let faults = minor_page_faults();
    let started = Instant::now();
    run()?;
    let seconds = started.elapsed().as_secs_f64();
    if case.profile {
        let (wall_ms, ops) = crate::backend::ops::profile_stop();
        let faults = (minor_page_faults() - faults) as f64 / case.steps as f64;
        let (model, batch, threads, bf16) =
            (&case.model, case.batch, tch::get_num_threads(), if case.bf16 { ", bfloat16" } else { "" });
        println!("{model} at batch {batch}{bf16}, {threads} threads, {} timed steps", case.steps);
        println!("{}", replacements());
        print!("{}", profile_table(wall_ms, &ops, case.steps, 40));
        println!("{faults:.0} page faults per step (memory the process touched for the first time)");
    }
    Ok(seconds)
}

/// Which of libtorch's ops this process's backend replaced, and who computes its products.
pub fn replacements() -> String {
    match (crate::backend::current(), crate::backend::products()) {
        (crate::backend::Backend::Fast, Some(products)) => format!(
            "libtorch ops replaced by gan_lab's: convolution, convolution_backward, \
             _convolution_double_backward; {products}"
        ),
        _ => "stock libtorch: no op replaced".to_owned(),
    }
}

/// The process's minor page faults so far (Linux; 0 elsewhere).
fn minor_page_faults() -> i64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (in parentheses, which may hold spaces): minflt is the 8th.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(7)?.parse().ok()).unwrap_or(0)
}

/// Per training step: the calls, self and total milliseconds of the `top` ops with the most self
/// time, and the time outside every op (the training loop's own code).
pub fn profile_table(wall_ms: f64, ops: &[OpTime], steps: i64, top: usize) -> String {
    let per_step = |ms: f64| ms / steps as f64;
    let step = per_step(wall_ms);
    // Self times of nested ops add up to the time inside top-level ops.
    let inside: f64 = ops.iter().map(|o| o.self_ms).sum();
    let mut text = format!(
        "{step:.2} ms per step with every op timed; {:.2} ms in ops, {:.2} outside them\n\
         {:>9} {:>9} {:>9}  op\n",
        per_step(inside),
        step - per_step(inside),
        "calls",
        "self ms",
        "total ms"
    );
    for o in ops.iter().take(top) {
        text += &format!(
            "{:>9.1} {:>9.3} {:>9.3}  {}\n",
            o.calls as f64 / steps as f64,
            per_step(o.self_ms),
            per_step(o.total_ms),
            o.name
        );
    }
    text
}

/// gan_lab's side of one case, in this process: milliseconds per training step and peak memory.
pub fn measure(case: &Case, threads: i64) -> Result<Measure> {
    tch::set_num_threads(threads as i32);
    std::env::set_var("GAN_LAB_PROGRESS", "off");
    let data = random_data(case.batch * 4);
    let b = case.batch;
    let bf16 = case.bf16;
    let (seconds, ran_bf16) = match case.model.as_str() {
        "dcgan" => time_gan(Dcgan::mnist32().batch_size(b).bf16(bf16).build()?, &data, case)?,
        "cdcgan" => time_gan(Cdcgan::mnist32().batch_size(b).bf16(bf16).build()?, &data, case)?,
        "wgan-gp" => {
            time_gan(Dcgan::mnist32().objective(Objective::wgan_gp()).batch_size(b).bf16(bf16).build()?, &data, case)?
        }
        "infogan" => time_gan(Infogan::mnist32().batch_size(b).bf16(bf16).build()?, &data, case)?,
        "vae" => {
            let mut vae = Vae::mnist32().batch_size(b).bf16(bf16).steps(case.warmup).build()?;
            vae.fit(&data, None)?;
            vae.train.steps = case.warmup + case.steps;
            let seconds = timed(case, || vae.fit(&data, None).map(|_| ()))?;
            (seconds, vae.train.bf16)
        }
        other => bail!("model `{other}`: expected one of {}", MODELS.join(", ")),
    };
    Ok(Measure {
        ms_per_step: 1000.0 * seconds / case.steps as f64,
        peak_rss_mb: peak_rss_mb(),
        flops_per_step: None,
        threads: tch::get_num_threads() as i64,
        precision: Some(Precision::of(ran_bf16)),
        backend: Some(crate::backend::current()),
        variant: None,
    })
}

/// Runs one measurement in a child process and reads the JSON line it prints last.
fn run_child(mut command: Command, what: &str) -> Result<Printed> {
    let out = command.output().with_context(|| format!("{what}: cannot start it"))?;
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().rev().find(|l| l.starts_with('{')).with_context(|| format!("{what}: no result printed"))?;
    serde_json::from_str(line).with_context(|| format!("{what}: unreadable result `{line}`"))
}

/// Medians of alternating runs of each side.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub case: Case,
    /// gan_lab on its fast backend (none in a build without the kernels).
    pub ours: Option<Measure>,
    /// gan_lab on stock libtorch.
    pub stock: Measure,
    /// Each reference variant measured: its median, or why it cannot run this model.
    pub references: Vec<(String, std::result::Result<Measure, String>)>,
    pub flops_per_step: f64,
}

impl Row {
    /// The fastest reference variant: what gan_lab's speed-up is against.
    pub fn fastest(&self) -> Option<(&str, &Measure)> {
        self.references
            .iter()
            .filter_map(|(v, m)| Some((v.as_str(), m.as_ref().ok()?)))
            .min_by(|a, b| a.1.ms_per_step.total_cmp(&b.1.ms_per_step))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_measure(runs: &[Measure]) -> Measure {
    Measure {
        ms_per_step: median(runs.iter().map(|m| m.ms_per_step).collect()),
        peak_rss_mb: runs.iter().map(|m| m.peak_rss_mb).fold(0.0, f64::max),
        flops_per_step: runs.iter().find_map(|m| m.flops_per_step),
        threads: runs[0].threads,
        precision: runs[0].precision,
        backend: runs[0].backend,
        variant: runs[0].variant.clone(),
    }
}

/// Measures each case `rounds` times on each side (gan_lab on each backend this build has, and the
/// reference), rotating which side goes first, with `exe` (this program) as gan_lab's worker and
/// `python` running `script`.
pub fn compare(
    cases: &[Case],
    rounds: usize,
    threads: i64,
    exe: &Path,
    python: &str,
    script: &Path,
) -> Result<Vec<Row>> {
    ensure!(rounds >= 1, "rounds = {rounds}: expected 1 or more");
    let backends: &[Backend] =
        if crate::backend::KERNELS_BUILT { &[Backend::Fast, Backend::Libtorch] } else { &[Backend::Libtorch] };
    let mut rows = Vec::new();
    for case in cases {
        let what = format!("{} batch {}", case.label(), case.batch);
        ensure!(!case.references.is_empty(), "{what}: no reference variant to compare with");
        // The sides: each backend of gan_lab, then each reference variant. A variant that cannot
        // run the model says so on its first run and is left out of the later rounds.
        let sides = backends.len() + case.references.len();
        let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); sides];
        let mut unavailable: Vec<Option<String>> = vec![None; sides];
        for round in 0..rounds {
            for k in 0..sides {
                let side = (k + round) % sides;
                if unavailable[side].is_some() {
                    continue;
                }
                let printed = match backends.get(side) {
                    Some(&backend) => {
                        let mut worker = Command::new(exe);
                        worker.env("GAN_LAB_BACKEND", backend.name());
                        worker.args(["bench", "--worker", "--models", &case.model, "--batch", &case.batch.to_string()]);
                        worker.args(["--threads", &threads.to_string()]);
                        if case.bf16 {
                            worker.arg("--bf16");
                        }
                        run_child(worker, &format!("gan_lab ({backend}) {what}"))?
                    }
                    None => {
                        let variant = &case.references[side - backends.len()];
                        let mut reference = Command::new(python);
                        reference.arg(script).arg(&case.model);
                        for n in [case.batch, case.steps, case.warmup, threads] {
                            reference.arg(n.to_string());
                        }
                        reference.arg(if case.bf16 { "bf16" } else { "fp32" }).arg(variant);
                        run_child(reference, &format!("PyTorch reference ({variant}) {what}"))?
                    }
                };
                let measure = match printed {
                    Printed::Measured(m) => m,
                    Printed::Unavailable { unavailable: why } => {
                        ensure!(side >= backends.len(), "{what}: gan_lab's worker printed no measure: {why}");
                        eprintln!("{what}: {} left out: {why}", variant_name(&case.references[side - backends.len()]));
                        unavailable[side] = Some(why);
                        continue;
                    }
                };
                if let Some(&backend) = backends.get(side) {
                    ensure!(
                        measure.backend == Some(backend),
                        "{what}: gan_lab ran on {:?}, not {backend}",
                        measure.backend
                    );
                }
                let want = Precision::of(case.bf16);
                ensure!(
                    measure.precision == Some(want),
                    "{what}: side {side} ran in {:?}, not {want:?}",
                    measure.precision
                );
                runs[side].push(measure);
            }
            let mut line = format!("{what}, round {}:", round + 1);
            for (side, r) in runs.iter().enumerate() {
                let name = match backends.get(side) {
                    Some(b) => format!("gan_lab {b}"),
                    None => variant_name(&case.references[side - backends.len()]),
                };
                if let Some(m) = r.get(round) {
                    line += &format!(" {name} {:.1} ms;", m.ms_per_step);
                }
            }
            eprintln!("{} per step", line.trim_end_matches(';'));
        }
        let mut references = Vec::new();
        for (i, variant) in case.references.iter().enumerate() {
            let side = backends.len() + i;
            let result = match &unavailable[side] {
                Some(why) => Err(why.clone()),
                None => Ok(median_measure(&runs[side])),
            };
            references.push((variant.clone(), result));
        }
        let flops_per_step = references
            .iter()
            .find_map(|(_, m)| m.as_ref().ok()?.flops_per_step)
            .context("the reference did not count its operations (the eager variant counts them)")?;
        let mut ours: Vec<Measure> = runs[..backends.len()].iter().map(|r| median_measure(r)).collect();
        let stock = ours.pop().expect("the stock backend's runs");
        let row = Row { case: case.clone(), ours: ours.pop(), stock, references, flops_per_step };
        ensure!(row.fastest().is_some(), "{what}: no reference variant could run");
        rows.push(row);
    }
    Ok(rows)
}

/// The table `docs/performance.md` shows: per case and side, ms per step, images per second, peak memory,
/// GFLOP/s and its share of the measured matmul rate, and gan_lab's speed-up against the fastest
/// reference variant of the same precision (marked "fastest").
pub fn table(rows: &[Row], peak_gflops: f64) -> String {
    let mut out = String::from(
        "| model | batch | implementation | ms per step | images/s | peak RSS (MB) | GFLOP/s | % of matmul peak | speed-up |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let (fastest_variant, fastest) = r.fastest().expect("compare keeps rows with a reference");
        let line = |name: &str, m: &Measure, speedup: &str| {
            let gflops = r.flops_per_step / m.ms_per_step / 1e6;
            format!(
                "| {} | {} | {name} | {:.1} | {:.0} | {:.0} | {:.1} | {:.0}% | {speedup} |\n",
                r.case.label(),
                r.case.batch,
                m.ms_per_step,
                1000.0 * r.case.batch as f64 / m.ms_per_step,
                m.peak_rss_mb,
                gflops,
                100.0 * gflops / peak_gflops,
            )
        };
        for (name, m) in [("gan_lab", r.ours.as_ref()), ("gan_lab on stock libtorch", Some(&r.stock))] {
            if let Some(m) = m {
                out += &line(name, m, &format!("{:.2}×", fastest.ms_per_step / m.ms_per_step));
            }
        }
        for (variant, m) in &r.references {
            let name = variant_name(variant);
            out += &match m {
                Ok(m) if variant == fastest_variant => line(&format!("{name} (fastest)"), m, ""),
                Ok(m) => line(&name, m, ""),
                Err(why) => {
                    let why = why.replace('|', "/");
                    format!("| {} | {} | {name} | n/a: {why} | | | | | |\n", r.case.label(), r.case.batch)
                }
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(ms: f64, variant: Option<&str>) -> Measure {
        Measure {
            ms_per_step: ms,
            peak_rss_mb: 500.0,
            flops_per_step: None,
            threads: 2,
            precision: Some(Precision::Fp32),
            backend: None,
            variant: variant.map(str::to_owned),
        }
    }

    /// The speed-up is against the fastest variant that ran, whichever it is; a variant that
    /// cannot run the model is listed with its reason and counts for nothing.
    #[test]
    fn speed_up_is_against_the_fastest_variant_and_unavailable_ones_are_listed() {
        let row = Row {
            case: Case::new("wgan-gp", 64).unwrap(),
            ours: Some(measured(50.0, None)),
            stock: measured(80.0, None),
            references: vec![
                ("eager".into(), Ok(measured(120.0, Some("eager")))),
                ("channels-last".into(), Ok(measured(100.0, Some("channels-last")))),
                ("compile".into(), Err("torch.compile: double backward".into())),
            ],
            flops_per_step: 1e9,
        };
        assert_eq!(row.fastest().map(|(v, _)| v), Some("channels-last"));
        let table = table(&[row], 100.0);
        let lines: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].contains("| gan_lab |") && lines[0].ends_with("| 2.00× |"), "{table}");
        assert!(lines[1].contains("stock libtorch") && lines[1].ends_with("| 1.25× |"), "{table}");
        assert!(lines[2].contains("PyTorch eager (NCHW) |"), "{table}");
        assert!(lines[3].contains("PyTorch channels-last (fastest)"), "{table}");
        assert!(lines[4].contains("PyTorch torch.compile | n/a: torch.compile: double backward"), "{table}");
    }

    #[test]
    fn printed_results_read_as_measures_or_reasons() {
        let m: Printed = serde_json::from_str(
            r#"{"ms_per_step": 3.0, "peak_rss_mb": 9.0, "threads": 1, "variant": "compile", "precision": "fp32"}"#,
        )
        .unwrap();
        assert!(matches!(m, Printed::Measured(Measure { ms_per_step, .. }) if ms_per_step == 3.0));
        let u: Printed = serde_json::from_str(r#"{"unavailable": "no compiler"}"#).unwrap();
        assert_eq!(u, Printed::Unavailable { unavailable: "no compiler".into() });
    }
}
