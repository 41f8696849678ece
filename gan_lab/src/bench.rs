//! `gan-lab bench`: gan_lab's training speed beside the PyTorch eager reference of the same model
//! and optimizers (`tests/reference/bench_reference.py`, run with the project's Python torch), on
//! both of gan_lab's backends (`gan_lab::backend`: its fast kernels, and stock libtorch).
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
        Ok(Case { model: model.into(), batch, steps, warmup: 3, bf16: false, profile: false })
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    })
}

/// Runs one measurement in a child process and reads the JSON line it prints last.
fn run_child(mut command: Command, what: &str) -> Result<Measure> {
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
    pub reference: Measure,
    pub flops_per_step: f64,
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
        // One list of runs per side: each backend of gan_lab, then the reference.
        let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); backends.len() + 1];
        for round in 0..rounds {
            for k in 0..runs.len() {
                let side = (k + round) % runs.len();
                let measure = match backends.get(side) {
                    Some(&backend) => {
                        let mut worker = Command::new(exe);
                        worker.env("GAN_LAB_BACKEND", backend.name());
                        worker.args(["bench", "--worker", "--models", &case.model, "--batch", &case.batch.to_string()]);
                        worker.args(["--threads", &threads.to_string()]);
                        if case.bf16 {
                            worker.arg("--bf16");
                        }
                        let m = run_child(worker, &format!("gan_lab ({backend}) {what}"))?;
                        ensure!(m.backend == Some(backend), "{what}: gan_lab ran on {:?}, not {backend}", m.backend);
                        m
                    }
                    None => {
                        let mut reference = Command::new(python);
                        reference.arg(script).arg(&case.model);
                        for n in [case.batch, case.steps, case.warmup, threads] {
                            reference.arg(n.to_string());
                        }
                        if case.bf16 {
                            reference.arg("bf16");
                        }
                        run_child(reference, &format!("PyTorch reference {what}"))?
                    }
                };
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
                let name = backends.get(side).map_or("PyTorch".to_owned(), |b| format!("gan_lab {b}"));
                line += &format!(" {name} {:.1} ms", r[round].ms_per_step);
            }
            eprintln!("{line} per step");
        }
        let mut medians: Vec<Measure> = runs.iter().map(|r| median_measure(r)).collect();
        let reference = medians.pop().expect("the reference's runs");
        let stock = medians.pop().expect("the stock backend's runs");
        let flops_per_step = reference.flops_per_step.context("the reference did not count its operations")?;
        rows.push(Row { case: case.clone(), ours: medians.pop(), stock, reference, flops_per_step });
    }
    Ok(rows)
}

/// The table `docs/performance.md` shows: per case and side, ms per step, images per second, peak memory,
/// GFLOP/s and its share of the measured matmul rate, and gan_lab's speed-up.
pub fn table(rows: &[Row], peak_gflops: f64) -> String {
    let mut out = String::from(
        "| model | batch | implementation | ms per step | images/s | peak RSS (MB) | GFLOP/s | % of matmul peak | speed-up |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        let sides = [("gan_lab", r.ours.as_ref()), ("gan_lab on stock libtorch", Some(&r.stock))];
        for (name, m) in sides.into_iter().filter_map(|(n, m)| Some((n, m?))).chain([("PyTorch eager", &r.reference)]) {
            let gflops = r.flops_per_step / m.ms_per_step / 1e6;
            let speedup = if name.starts_with("gan_lab") {
                format!("{:.2}×", r.reference.ms_per_step / m.ms_per_step)
            } else {
                String::new()
            };
            out += &format!(
                "| {} | {} | {name} | {:.1} | {:.0} | {:.0} | {:.1} | {:.0}% | {speedup} |\n",
                r.case.label(),
                r.case.batch,
                m.ms_per_step,
                1000.0 * r.case.batch as f64 / m.ms_per_step,
                m.peak_rss_mb,
                gflops,
                100.0 * gflops / peak_gflops,
            );
        }
    }
    out
}
