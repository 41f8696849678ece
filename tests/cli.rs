//! The `gan-lab` command as a user runs it: one-line errors without backtraces, and Ctrl-C
//! saving a checkpoint that a second run resumes.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gan_lab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gan-lab"));
    c.env("GAN_LAB_PROGRESS", "off").env_remove("GAN_LAB_QUICK");
    c
}

fn fails_with(args: &[&str], expected: &str) {
    let out = gan_lab().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: expected `{expected}` in {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one-line error: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    fails_with(&["train", "dcgan", "--latent-dim", "0", "--out", out], "latent_dim = 0: expected 1 or more");
    fails_with(&["train", "dcgan", "--batch-size", "0", "--out", out], "batch_size = 0: expected 1 or more");
    fails_with(
        &["train", "dcgan", "--batch-size", "100000", "--out", out],
        "batch size 100000: expected between 1 and the dataset's 9001 images",
    );
    fails_with(&["train", "dcgan", "--image-size", "48", "--out", out], "image size 48: expected 32 or 64");
    fails_with(
        &["train", "dcgan", "--dataset", "cifar-11", "--out", out],
        "expected mnist, mnist-full, fashion-mnist, cifar10, celeba or a folder",
    );
    fails_with(&["train", "dcgan", "--resume", "/nonexistent/checkpoint", "--out", out], "/nonexistent/checkpoint");
    if gan_lab::device::cuda_devices() == 0 {
        // One line naming the device, the GPUs libtorch sees and its own reason; nothing written.
        let cuda = "device cuda:0: libtorch cannot compute there (0 CUDA GPU(s) visible): ";
        fails_with(&["train", "dcgan", "--device", "cuda", "--out", out], cuda);
        fails_with(&["train", "vae", "--device", "cuda:0", "--out", out], cuda);
    }
    let bad = gan_lab().args(["train", "dcgan", "--device", "gpu", "--out", out]).output().unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("device \"gpu\": expected cpu, cuda or cuda:N"), "{stderr}");
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let under_file = dir.path().join("file/run");
    fails_with(&["train", "dcgan", "--out", under_file.to_str().unwrap()], "output directory");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("bad.png"), "not a png").unwrap();
    fails_with(&["train", "dcgan", "--dataset", images.to_str().unwrap(), "--out", out], "bad.png");
    assert!(!std::path::Path::new(out).join("samples.png").exists(), "nothing written on error");
}

#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = gan_lab()
        .args(["train", "dcgan", "--steps", "100000", "--batch-size", "16", "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the command says it trains (its Ctrl-C handler is in place), then interrupt.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("Ctrl-C stops and saves a checkpoint"), "{first}");
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr: String = lines.map_while(Result::ok).collect::<Vec<_>>().join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint saved"), "{stderr}");
    let checkpoint = out.join("checkpoint");
    let step = gan_lab::checkpoint::step_of(&checkpoint).unwrap();
    assert!(step > 0 && step < 100000, "interrupted at step {step}");
    assert!(out.join("samples.png").is_file());

    let target = (step + 2).to_string();
    let resumed = gan_lab()
        .args(["train", "dcgan", "--steps", &target, "--batch-size", "16", "--out"])
        .arg(&out)
        .arg("--resume")
        .arg(&checkpoint)
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("trained 2 steps"));
    assert_eq!(gan_lab::checkpoint::step_of(&checkpoint).unwrap(), step + 2);
}

/// The loss families and the D:G update ratio from the command line: `--objective`, `--n-critic`,
/// `--g-steps`, and SAGAN; the history records the G updates per step.
#[test]
fn objectives_and_update_ratios_train_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    // A folder of eight grey 32×32 images: quick to load, and no digit scores after training.
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for i in 0..8u8 {
        let picture = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([(x as u8 * 8) ^ (y as u8 * i)]));
        picture.save(images.join(format!("{i}.png"))).unwrap();
    }
    let runs: [(&str, &[&str]); 3] = [
        ("dcgan", &["--objective", "lsgan", "--g-steps", "2"]),
        ("dcgan", &["--objective", "wgan", "--n-critic", "2"]),
        ("sagan", &["--g-steps", "2"]),
    ];
    for (i, (model, extra)) in runs.iter().enumerate() {
        let run = dir.path().join(format!("run{i}"));
        let out = gan_lab()
            .args(["train", model, "--steps", "2", "--batch-size", "8", "--snapshot-every", "0", "--dataset"])
            .arg(&images)
            .args(*extra)
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap();
        assert!(out.status.success(), "{model} {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let history: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("history.json")).unwrap()).unwrap();
        let steps = history["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{model} {extra:?}");
        let g_updates = if extra.contains(&"--g-steps") { 2 } else { 1 };
        assert!(steps.iter().all(|s| s["g_updates"] == g_updates), "{model} {extra:?}: {steps:?}");
        if extra.contains(&"wgan") {
            assert!(steps.iter().all(|s| s["wasserstein"].is_number()), "a Wasserstein estimate per step");
        }
    }
    let out = dir.path().join("bad");
    let out = out.to_str().unwrap();
    fails_with(
        &["train", "dcgan", "--objective", "wgan-xp", "--out", out],
        "--objective wgan-xp: expected nonsaturating",
    );
    fails_with(&["train", "dcgan", "--g-steps", "0", "--out", out], "g_steps = 0: expected 1 or more");
    fails_with(&["train", "dcgan", "--n-critic", "0", "--out", out], "n_critic = 0: expected 1 or more");
    // The conditional SAGAN on a labelled folder (one sub-folder per class), at 64×64 in colour: two
    // classes from the folder, the label embedding and projection in the checkpoint, a class grid
    // among the outputs.
    let labelled = dir.path().join("labelled");
    for class in ["frown", "smile"] {
        std::fs::create_dir_all(labelled.join(class)).unwrap();
        for i in 0..4u8 {
            let picture = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([(x as u8 * 8) ^ (y as u8 * i)]));
            picture.save(labelled.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let run = dir.path().join("conditional");
    let out = gan_lab()
        .args(["train", "sagan", "--conditional", "--steps", "2", "--batch-size", "8", "--snapshot-every", "0"])
        .args(["--image-size", "64", "--channels", "3", "--dataset"])
        .arg(&labelled)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "sagan --conditional: {}", String::from_utf8_lossy(&out.stderr));
    assert!(run.join("class_grid.png").is_file());
    let config = |run: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap()).unwrap()
    };
    // SAGAN tracks FID every 500 iterations where the data has an evaluator (MNIST), not on a folder.
    assert_eq!(config(&run)["config"]["metrics_every"], 0);
    assert_eq!(config(&run)["architecture"]["image_size"], 64);
    assert_eq!(config(&run)["architecture"]["channels"], 3);
    // `sample` reads any family's checkpoint: two classes cycle through the grid.
    let png = dir.path().join("conditional.png");
    let sample = gan_lab()
        .args(["sample", "--n", "4", "--checkpoint"])
        .arg(run.join("checkpoint"))
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(sample.status.success(), "{}", String::from_utf8_lossy(&sample.stderr));
    assert_eq!(image::open(&png).unwrap().width(), 2 * 66 + 2, "64×64 samples, a column per class");
    let digits = dir.path().join("digits");
    let out = gan_lab()
        .args(["train", "sagan", "--steps", "1", "--batch-size", "8", "--snapshot-every", "0", "--out"])
        .arg(&digits)
        .output()
        .unwrap();
    assert!(out.status.success(), "sagan on mnist: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(config(&digits)["config"]["metrics_every"], 500);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["architecture"]["classes"], 2, "{state}");
    let weights = tch::Tensor::read_safetensors(run.join("checkpoint/discriminator.safetensors")).unwrap();
    let embed = weights.iter().find(|(name, _)| name == "embed.weight").expect("D's projection embedding");
    assert_eq!(embed.1.size(), [2, 256], "as wide as D's last block at 64×64 (8ndf)");
    // Without labels there is nothing to condition on.
    let unlabelled = gan_lab()
        .args(["train", "sagan", "--conditional", "--batch-size", "8", "--dataset"])
        .arg(&images)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unlabelled.stderr);
    assert!(!unlabelled.status.success() && stderr.contains("has no labels"), "{stderr}");
}

#[test]
fn sample_and_explore_read_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let train = gan_lab()
        .args(["train", "dcgan", "--steps", "12", "--batch-size", "16", "--snapshot-every", "4", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(train.status.success(), "{}", String::from_utf8_lossy(&train.stderr));
    let checkpoint = run.join("checkpoint");
    let out = dir.path().join("explore");
    let explore = gan_lab()
        .args(["explore", "--dim", "5", "--checkpoint"])
        .arg(&checkpoint)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(explore.status.success(), "{}", String::from_utf8_lossy(&explore.stderr));
    let frames = |name: &str| {
        use image::AnimationDecoder;
        let file = std::io::BufReader::new(std::fs::File::open(out.join(name)).unwrap());
        image::codecs::gif::GifDecoder::new(file).unwrap().into_frames().count()
    };
    assert_eq!(frames("interpolation.gif"), 24);
    assert_eq!(frames("latent-vs-screen.gif"), 24);
    let stdout = String::from_utf8_lossy(&explore.stdout);
    assert!(stdout.contains("dimensions of largest visible effect"), "{stdout}");
    // The five strongest dimensions, two rows of eleven each.
    let strongest = image::open(out.join("strongest.png")).unwrap();
    assert_eq!((strongest.width(), strongest.height()), (11 * 34 + 2, 10 * 34 + 2));
    assert_eq!(frames("progress.gif"), 3, "snapshots at steps 4, 8 and 12");
    let sweep = image::open(out.join("sweep.png")).unwrap();
    assert_eq!((sweep.width(), sweep.height()), (11 * 34 + 2, 8 * 34 + 2), "8 rows of z, 11 values");
    let pair = image::open(out.join("latent-vs-screen.png")).unwrap();
    assert_eq!((pair.width(), pair.height()), (10 * 34 + 2, 8 * 34 + 2));
    fails_with(
        &["explore", "--dim", "100", "--checkpoint", checkpoint.to_str().unwrap(), "--out", out.to_str().unwrap()],
        "--dim 100: expected a latent dimension between 0 and 99",
    );
    let png = dir.path().join("s.png");
    let sample = gan_lab()
        .args(["sample", "--n", "10", "--checkpoint"])
        .arg(&checkpoint)
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(sample.status.success(), "{}", String::from_utf8_lossy(&sample.stderr));
    assert_eq!(image::open(&png).unwrap().width(), 4 * 34 + 2);
    fails_with(&["sample", "--checkpoint", "/nonexistent", "--out", png.to_str().unwrap()], "/nonexistent");
}

/// `bench --profile` times one case op by op: per step, each player's optimizer update once, the
/// convolutions' backward, and the time inside ops no more than the step.
#[test]
fn bench_profile_shows_where_a_step_goes() {
    if !gan_lab::backend::ops::PROFILER_BUILT {
        fails_with(&["bench", "--profile", "--models", "dcgan"], "the op profiler is part of the C++ kernels");
        return;
    }
    fails_with(&["bench", "--profile", "--models", "dcgan,vae"], "--profile measures one case");
    let out =
        gan_lab().args(["bench", "--profile", "--models", "dcgan", "--batch", "8", "--threads", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("dcgan at batch 8, 1 threads, 40 timed steps\n"), "{stdout}");
    let row = |op: &str| -> Vec<f64> {
        let line = stdout.lines().find(|l| l.ends_with(&format!("  {op}"))).unwrap_or_else(|| panic!("{op}: {stdout}"));
        line.split_whitespace().take(3).map(|v| v.parse().unwrap()).collect()
    };
    assert_eq!(row("gan_lab::optimizer_update")[0], 2.0, "one update per player per step: {stdout}");
    let conv = row("aten::convolution_backward");
    assert!(conv[0] > 0.0 && conv[1] > 0.0 && conv[1] <= conv[2], "{stdout}");
    let replaced = stdout.lines().nth(1).unwrap();
    if std::env::var("GAN_LAB_BACKEND").is_ok_and(|b| b.trim() == "libtorch") {
        assert_eq!(replaced, "stock libtorch: no op replaced", "{stdout}");
    } else {
        assert!(replaced.starts_with("libtorch ops replaced by gan_lab's: convolution, "), "{stdout}");
        assert!(replaced.contains("float32 matrix products: "), "the products' choice and why: {stdout}");
    }
    let words: Vec<&str> = stdout.lines().nth(2).unwrap().split_whitespace().collect();
    let (step, inside): (f64, f64) = (words[0].parse().unwrap(), words[8].parse().unwrap());
    assert!(inside > 0.5 * step && inside <= step, "{stdout}");
    assert!(!stdout.contains("ms_per_step"), "no worker line: {stdout}");
}

#[test]
fn bench_prints_both_sides_and_refuses_unknown_models() {
    fails_with(&["bench", "--models", "gpt"], "model `gpt`: expected one of dcgan, cdcgan, vae, wgan-gp, infogan");
    fails_with(&["bench", "--models", "vae", "--batch", "1"], "batch 1: expected 2 or more");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("bench.md");
    fails_with(
        &["bench", "--models", "vae", "--reference", "jit"],
        "--reference jit: expected eager, channels-last, compile",
    );
    let out = gan_lab()
        .args(["bench", "--models", "vae", "--batch", "8", "--rounds", "1", "--threads", "1"])
        .args(["--reference", "eager,channels-last", "--out"])
        .arg(&table)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| vae | 8 |")).collect();
    // gan_lab on each backend this build has (fast, where the kernels were built; stock libtorch),
    // then each PyTorch variant asked for.
    let ours = if gan_lab::backend::KERNELS_BUILT { 2 } else { 1 };
    assert_eq!(rows.len(), ours + 2, "gan_lab's rows and a row per PyTorch variant: {stdout}");
    if ours == 2 {
        assert!(rows[0].contains("| gan_lab |"), "{stdout}");
    }
    assert!(rows[ours - 1].contains("gan_lab on stock libtorch"), "{stdout}");
    assert!(rows[ours].contains("PyTorch eager (NCHW)"), "{stdout}");
    assert!(rows[ours + 1].contains("PyTorch channels-last"), "{stdout}");
    let ms = |row: &str| -> f64 { row.split('|').map(str::trim).nth(4).unwrap().parse().unwrap() };
    for row in &rows {
        let rss: f64 = row.split('|').map(str::trim).nth(6).unwrap().parse().unwrap();
        assert!(ms(row) > 0.0 && rss > 50.0, "ms per step and peak memory measured: {row}");
    }
    // The speed-up is against the fastest variant, and the table says which one that is.
    let fastest: Vec<&&str> = rows[ours..].iter().filter(|r| r.contains("(fastest)")).collect();
    assert_eq!(fastest.len(), 1, "one variant marked fastest: {stdout}");
    assert!(rows[ours..].iter().all(|r| ms(r) >= ms(fastest[0])), "{stdout}");
    for row in &rows[..ours] {
        let speedup: f64 =
            row.trim_end_matches(" |").rsplit('|').next().unwrap().trim().trim_end_matches('×').parse().unwrap();
        let expected = ms(fastest[0]) / ms(row);
        // Both times are printed to 0.1 ms and the speed-up to 0.01, so recomputing it from the
        // printed times can differ by their rounding: 0.05 ms on each side, 0.005 on the ratio.
        let rounding = expected * (0.05 / ms(row) + 0.05 / ms(fastest[0])) + 0.005;
        assert!(
            (speedup - expected).abs() <= rounding + 1e-9,
            "speed-up {speedup} against the fastest: {expected:.3} ± {rounding:.3} ({row})"
        );
    }
    assert!(stdout.contains("1 threads"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&table).unwrap().lines().count(), ours + 4, "the table saved with --out");

    // In bfloat16 both sides run in it (each reports its precision, and the bench checks them).
    if gan_lab::backend::perf::bf16_supported() {
        let out =
            gan_lab().args(["bench", "--models", "vae", "--batch", "8", "--rounds", "1", "--bf16"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.lines().filter(|l| l.starts_with("| vae (bf16) | 8 |")).count(), ours + 2, "{stdout}");
        assert!(stdout.contains("bfloat16 forward passes on both sides"), "{stdout}");
    }
}

/// The course texts' data from the command line: `data fetch` lists the sets and refuses a file
/// whose checksum differs; a conditional DCGAN trains on a labelled folder of 64×64 colour
/// images, taking its classes from the sub-folders; missing data names the command that fetches it.
#[test]
fn course_datasets_from_the_command_line() {
    let help = gan_lab().args(["data", "fetch", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("mnist, cifar10, celeba"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("sketches");
    for (class, colour) in [("photo", [200u8, 40, 40]), ("sketch", [240, 240, 240])] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..8u8 {
            let picture = image::RgbImage::from_fn(80, 72, |x, y| {
                image::Rgb([colour[0] ^ (x as u8 * i), colour[1] ^ (y as u8), colour[2]])
            });
            picture.save(images.join(class).join(format!("{i}.jpg"))).unwrap();
        }
    }
    let run = dir.path().join("run");
    let out = gan_lab()
        .args(["train", "cdcgan", "--steps", "2", "--batch-size", "8", "--snapshot-every", "0"])
        .args(["--image-size", "64", "--channels", "3", "--dataset"])
        .arg(&images)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("16 images, 64×64 RGB; per class: photo 8, sketch 8"), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap()).unwrap();
    let text = state.to_string();
    assert!(
        text.contains(r#""classes":2"#) && text.contains(r#""image_size":64"#) && text.contains(r#""channels":3"#),
        "{text}"
    );
    let samples = image::open(run.join("samples.png")).unwrap();
    assert!(samples.width() >= 2 * 64, "a column of 64×64 samples per class: {}", samples.width());

    // The VAE takes the same data settings.
    let out = gan_lab()
        .args([
            "train",
            "vae",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--image-size",
            "64",
            "--channels",
            "3",
            "--dataset",
        ])
        .arg(&images)
        .arg("--out")
        .arg(dir.path().join("vae"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("16 images, 64×64 RGB; per class: photo 8, sketch 8"), "{stderr}");

    // An evaluator for the folder's classes, written where asked, with its classes beside it.
    let ev = dir.path().join("ev/sketches_lenet.safetensors");
    let out = gan_lab()
        .args(["evaluator", "train", "--epochs", "1", "--dataset"])
        .arg(&images)
        .arg("--out")
        .arg(&ev)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("sketches evaluator trained in"), "{stdout}");
    let info = std::fs::read_to_string(format!("{}.json", ev.display())).unwrap();
    assert!(info.contains("\"photo\"") && info.contains("\"channels\": 1"), "{info}");

    // A mirror serving a file that is not the official one: refused, nothing kept.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            use std::io::{Read, Write};
            let mut stream = stream.unwrap();
            let _ = stream.read(&mut [0u8; 4096]);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        }
    });
    let fetched = dir.path().join("cifar10");
    fails_with(
        &["data", "fetch", "cifar10", "--mirror", &format!("http://{addr}"), "--dir", fetched.to_str().unwrap()],
        "of the downloaded file does not match the published c32a1d4ab5d03f1284b67883e8d87530; the download was \
         removed; download them by hand from https://www.cs.toronto.edu/~kriz/cifar.html",
    );
    assert_eq!(std::fs::read_dir(&fetched).unwrap().count(), 0, "nothing left after a bad checksum");

    let out = dir.path().join("bad");
    let out = out.to_str().unwrap();
    fails_with(&["train", "dcgan", "--attribute", "Smiling", "--out", out], "--attribute: only --dataset celeba");
    let empty = tempfile::tempdir().unwrap();
    for (set, command) in [("cifar10", "gan-lab data fetch cifar10"), ("celeba", "gan-lab data fetch celeba")] {
        let result = gan_lab()
            .env("GAN_LAB_DATA", empty.path())
            .args(["train", "dcgan", "--dataset", set, "--out", out])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(command) && stderr.trim_end().lines().count() == 1, "{stderr}");
    }
}
