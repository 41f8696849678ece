//! What scoring costs against training: times K = 500 DCGAN training steps, then IS, Mode score
//! and FID on 10,000 generated samples, in the same run, and prints both.
//!
//! `cargo run --release --example metrics_cost`

use gan_lab::data::{Dataset, Split};
use gan_lab::metrics::{Evaluator, RealReference};
use gan_lab::Dcgan;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let data = Dataset::mnist(Split::Train)?;
    let steps = 500;
    let started = Instant::now();
    let gan = Dcgan::mnist32().steps(steps).seed(0).train(&data)?;
    let train_s = started.elapsed().as_secs_f64();
    let ev = Evaluator::shipped()?;
    let reference = RealReference::new(&ev, &data.images);
    let started = Instant::now();
    let scores = reference.score(&ev, &gan.sample(10_000, 1));
    let score_s = started.elapsed().as_secs_f64();
    println!(
        "{steps} training steps: {train_s:.1} s ({:.1} ms per step, {} threads)",
        1000.0 * train_s / steps as f64,
        tch::get_num_threads()
    );
    println!(
        "sampling 10,000 images + IS + Mode score + FID: {score_s:.1} s ({:.1}% of the {steps} steps)",
        100.0 * score_s / train_s
    );
    println!("{scores}");
    Ok(())
}
