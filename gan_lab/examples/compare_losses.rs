//! The loss-families lesson's comparison: DCGAN, LSGAN, WGAN, WGAN-GP and SAGAN trained on the
//! shipped MNIST digits for the same number of generator updates, each scored (IS, Mode score,
//! FID on the MNIST evaluator) and timed per generator update. Prints a Markdown table and writes
//! each run's pictures and history to runs/compare/<model>/.
//!
//! `cargo run --release --example compare_losses -- [generator updates, default 1500]`

use gan_lab::data::{Dataset, Split};
use gan_lab::losses::Objective;
use gan_lab::metrics::{Evaluator, RealReference};
use gan_lab::{Dcgan, Gan, Sagan};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let steps: i64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1500);
    let data = Dataset::mnist(Split::Train)?;
    let ev = Evaluator::shipped()?;
    let reference = RealReference::new(&ev, &data.images);
    let out = std::path::Path::new("runs/compare");
    type Train = Box<dyn Fn(&Dataset) -> anyhow::Result<Gan>>;
    let runs: Vec<(&str, Train)> = vec![
        ("DCGAN", Box::new(move |d| Dcgan::mnist32().steps(steps).out_dir(out.join("dcgan")).train(d))),
        (
            "LSGAN",
            Box::new(move |d| {
                Dcgan::mnist32().objective(Objective::LeastSquares).steps(steps).out_dir(out.join("lsgan")).train(d)
            }),
        ),
        (
            "WGAN",
            Box::new(move |d| {
                Dcgan::mnist32().objective(Objective::wgan()).steps(steps).out_dir(out.join("wgan")).train(d)
            }),
        ),
        (
            "WGAN-GP",
            Box::new(move |d| {
                Dcgan::mnist32().objective(Objective::wgan_gp()).steps(steps).out_dir(out.join("wgan-gp")).train(d)
            }),
        ),
        ("SAGAN", Box::new(move |d| Sagan::mnist32().steps(steps).out_dir(out.join("sagan")).train(d))),
    ];
    let mut rows = Vec::new();
    for (name, train) in runs {
        eprintln!("== {name}");
        let started = Instant::now();
        let gan = train(&data)?;
        let seconds = started.elapsed().as_secs_f64();
        let scores = reference.score(&ev, &gan.sample(reference.ceiling.n, 2));
        let critic_updates = gan.config.n_critic.updates_before(gan.step);
        let row = format!(
            "| {name} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.2} | {critic_updates} | {:.0} | {:.1} |",
            scores.inception.mean,
            scores.inception.std,
            scores.mode.mean,
            scores.mode.std,
            scores.fid,
            1000.0 * seconds / gan.step.max(1) as f64,
            seconds
        );
        println!("{row}");
        rows.push(row);
    }
    let c = &reference.ceiling;
    println!(
        "\n{steps} generator updates each, batch 64, seed 0, {} threads; scores on {} samples\n",
        tch::get_num_threads(),
        c.n
    );
    println!("| model | IS | Mode score | FID | critic updates | ms per G update | s total |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
    println!(
        "| real digits (ceiling) | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.2} | | | |",
        c.inception.mean, c.inception.std, c.mode.mean, c.mode.std, c.fid
    );
    Ok(())
}
