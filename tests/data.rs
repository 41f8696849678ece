//! The data layer: IDX reading and its errors, the shipped digits, Fashion-MNIST, image folders,
//! seeded batches, and the download of official files against a local HTTP server.

mod common;
use common::err_of;
use gan_lab::data::{self, Batcher, Dataset, RemoteFile, Source, Split};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn idx_bytes(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes `n` 28×28 images whose pixels all equal their index, and labels i % 10.
fn write_idx_pair(dir: &Path, n: u32, gzip: bool) -> (PathBuf, PathBuf) {
    let pixels: Vec<u8> = (0..n).flat_map(|i| std::iter::repeat_n(i as u8, 784)).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let mut images = idx_bytes(0x803, &[n, 28, 28], &pixels);
    let mut label_bytes = idx_bytes(0x801, &[n], &labels);
    let ext = if gzip { ".gz" } else { "" };
    if gzip {
        images = gz(&images);
        label_bytes = gz(&label_bytes);
    }
    let (ip, lp) = (dir.join(format!("images{ext}")), dir.join(format!("labels{ext}")));
    std::fs::write(&ip, images).unwrap();
    std::fs::write(&lp, label_bytes).unwrap();
    (ip, lp)
}

#[test]
fn idx_reads_raw_and_gzip_alike_scaled_to_unit_range() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let (ip, lp) = write_idx_pair(dir.path(), 12, gzip);
        let ds = Dataset::from_idx(&ip, &lp, 32).unwrap();
        assert_eq!(ds.images.size(), [12, 1, 32, 32]);
        // Pixel value 0 maps to -1 and 11 to 11/127.5 - 1; resizing a constant image keeps it.
        let first = ds.images.get(0).mean(tch::Kind::Float).double_value(&[]);
        let last = ds.images.get(11).mean(tch::Kind::Float).double_value(&[]);
        assert!((first + 1.0).abs() < 1e-6, "image 0 mean {first}");
        assert!((last - (11.0 / 127.5 - 1.0)).abs() < 1e-5, "image 11 mean {last}");
        let labels: Vec<i64> = Vec::try_from(ds.labels.unwrap()).unwrap();
        assert_eq!(labels, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    }
}

#[test]
fn idx_rejects_wrong_magic_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = write_idx_pair(dir.path(), 3, false);
    // An image file where a label file is expected.
    let msg = err_of(Dataset::from_idx(&ip, &ip, 32));
    assert!(msg.contains("wrong magic number 0x00000803") && msg.contains("expected 0x00000801"), "{msg}");
    assert!(msg.contains(&ip.display().to_string()), "{msg}");
    std::fs::write(&lp, idx_bytes(0x0d01, &[3], &[0, 1, 2])).unwrap();
    assert!(err_of(Dataset::from_idx(&ip, &lp, 32)).contains("wrong magic number"));
}

#[test]
fn idx_rejects_truncated_and_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = write_idx_pair(dir.path(), 5, false);
    let bytes = std::fs::read(&ip).unwrap();
    std::fs::write(&ip, &bytes[..bytes.len() - 100]).unwrap();
    let msg = err_of(Dataset::from_idx(&ip, &lp, 32));
    assert!(msg.contains("truncated") && msg.contains("5×28×28"), "{msg}");
    std::fs::write(&ip, &bytes[..10]).unwrap();
    assert!(err_of(Dataset::from_idx(&ip, &lp, 32)).contains("header cut short"));

    let (gip, glp) = write_idx_pair(dir.path(), 5, true);
    let zipped = std::fs::read(&gip).unwrap();
    std::fs::write(&gip, &zipped[..zipped.len() / 2]).unwrap();
    let msg = err_of(Dataset::from_idx(&gip, &glp, 32));
    assert!(msg.contains("corrupt or truncated gzip") && msg.contains("images.gz"), "{msg}");
}

#[test]
fn idx_rejects_count_mismatch_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = write_idx_pair(dir.path(), 5, false);
    std::fs::write(&lp, idx_bytes(0x801, &[4], &[0, 1, 2, 3])).unwrap();
    let msg = err_of(Dataset::from_idx(&ip, &lp, 32));
    assert!(msg.contains("holds 5 images but") && msg.contains("holds 4 labels"), "{msg}");
    let missing = dir.path().join("nope.gz");
    let msg = err_of(Dataset::from_idx(&missing, &lp, 32));
    assert!(msg.contains("nope.gz") && msg.contains("cannot read"), "{msg}");
}

#[test]
fn image_size_other_than_32_or_64_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = write_idx_pair(dir.path(), 2, false);
    let msg = err_of(Dataset::from_idx(&ip, &lp, 48));
    assert!(msg.contains("image size 48: expected 32 or 64"), "{msg}");
}

#[test]
fn shipped_mnist_holds_real_digits_split_in_two() {
    let train = Dataset::mnist(Split::Train).unwrap();
    let test = Dataset::mnist(Split::Test).unwrap();
    assert_eq!(train.images.size(), [9001, 1, 32, 32]);
    assert_eq!(test.images.size(), [999, 1, 32, 32]);
    assert_eq!(train.images.min().double_value(&[]), -1.0);
    assert_eq!(train.images.max().double_value(&[]), 1.0);
    // Every class is present in both parts, in MNIST-like proportions.
    for ds in [&train, &test] {
        let counts = ds.labels.as_ref().unwrap().bincount::<tch::Tensor>(None, 10);
        let counts: Vec<i64> = Vec::try_from(counts).unwrap();
        let n = ds.len() as f64;
        assert!(counts.iter().all(|&c| (c as f64) > 0.07 * n && (c as f64) < 0.13 * n), "{counts:?}");
    }
    // 64×64 loads through the same path.
    let big = Dataset::load(&Source::Mnist, Split::Test, 64, 1).unwrap();
    assert_eq!(big.images.size(), [999, 1, 64, 64]);
}

#[test]
fn fashion_mnist_loads_through_the_same_reader() {
    let ds = Dataset::load(&"fashion-mnist".parse().unwrap(), Split::Test, 32, 1).unwrap();
    assert_eq!(ds.images.size(), [10000, 1, 32, 32]);
    assert_eq!(ds.labels.unwrap().max().int64_value(&[]), 9);
}

#[test]
fn unknown_dataset_name_lists_the_choices() {
    let msg = err_of("cifar-11".parse::<Source>());
    assert!(msg.contains("expected mnist, mnist-full, fashion-mnist or a folder"), "{msg}");
}

#[test]
fn image_folder_loads_grey_or_rgb_with_centre_crop() {
    let dir = tempfile::tempdir().unwrap();
    // A 60×40 image: the centre 40×40 square is red, the 10-pixel side bands are blue.
    let img = image::RgbImage::from_fn(60, 40, |x, _| {
        if (10..50).contains(&x) {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    img.save(dir.path().join("a.png")).unwrap();
    image::RgbImage::from_pixel(50, 80, image::Rgb([0, 255, 0])).save(dir.path().join("b.jpg")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();

    let rgb = Dataset::from_folder(dir.path(), 64, 3).unwrap();
    assert_eq!(rgb.images.size(), [2, 3, 64, 64]);
    assert!(rgb.labels.is_none());
    let a = rgb.images.get(0);
    // After the centre crop only red is left: R = 1, B = -1 everywhere.
    assert!((a.get(0).mean(tch::Kind::Float).double_value(&[]) - 1.0).abs() < 1e-3);
    assert!((a.get(2).mean(tch::Kind::Float).double_value(&[]) + 1.0).abs() < 1e-3);
    let b = rgb.images.get(1);
    assert!(b.get(1).mean(tch::Kind::Float).double_value(&[]) > 0.95, "JPEG green channel");

    let grey = Dataset::from_folder(dir.path(), 32, 1).unwrap();
    assert_eq!(grey.images.size(), [2, 1, 32, 32]);

    std::fs::write(dir.path().join("broken.png"), b"\x89PNG garbage").unwrap();
    let msg = err_of(Dataset::from_folder(dir.path(), 32, 1));
    assert!(msg.contains("broken.png"), "{msg}");
    let empty = tempfile::tempdir().unwrap();
    assert!(err_of(Dataset::from_folder(empty.path(), 32, 1)).contains("no PNG or JPEG images"));
}

#[test]
fn batches_are_seeded_shuffled_and_cover_each_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, lp) = write_idx_pair(dir.path(), 40, false);
    let ds = Dataset::from_idx(&ip, &lp, 32).unwrap();
    let labels_of = |seed: u64, step: i64| -> Vec<i64> {
        let mut b = Batcher::new(&ds, 8, seed).unwrap();
        Vec::try_from(b.batch(&ds, step).1.unwrap()).unwrap()
    };
    assert_eq!(labels_of(1, 3), labels_of(1, 3));
    assert_ne!(labels_of(1, 0), labels_of(2, 0));
    // One epoch (5 batches of 8) visits every image exactly once, via the pixel values.
    let mut b = Batcher::new(&ds, 8, 7).unwrap();
    let mut seen: Vec<i64> = (0..5)
        .flat_map(|s| {
            let means = b.batch(&ds, s).0.mean_dim(&[1i64, 2, 3][..], false, tch::Kind::Float);
            Vec::<f64>::try_from(means).unwrap().into_iter().map(|m| ((m + 1.0) * 127.5).round() as i64)
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
    // Epoch 2 is another order.
    assert_ne!(labels_of(7, 0), labels_of(7, 5));
    assert!(err_of(Batcher::new(&ds, 41, 0)).contains("batch size 41: expected between 1 and the dataset's 40 images"));
    assert!(err_of(Batcher::new(&ds, 0, 0)).contains("batch size 0"));
}

/// A one-shot HTTP server on 127.0.0.1 serving `files`; a body can be cut short of its
/// announced length.
fn serve(files: Vec<(String, Vec<u8>, usize)>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            match files.iter().find(|(name, _, _)| *name == path) {
                Some((_, body, send)) => {
                    let head =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body[..*send]);
                }
                None => {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        }
    });
    format!("http://{addr}/")
}

fn sha(bytes: &[u8]) -> &'static str {
    use sha2::Digest;
    Box::leak(format!("{:x}", sha2::Sha256::digest(bytes)).into_boxed_str())
}

#[test]
fn fetch_downloads_verifies_and_never_leaves_partial_files() {
    let good = gz(&idx_bytes(0x801, &[3], &[1, 2, 3]));
    let other = gz(&idx_bytes(0x801, &[3], &[4, 5, 6]));
    let long = vec![7u8; 100_000];
    let url = serve(vec![
        ("good.gz".into(), good.clone(), good.len()),
        ("tampered.gz".into(), other.clone(), other.len()),
        ("short.gz".into(), long.clone(), 50_000),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let leaked: &'static str = Box::leak("good.gz".to_string().into_boxed_str());
    data::fetch(&url, &[RemoteFile { name: leaked, sha256: sha(&good) }], dir.path(), false).unwrap();
    assert_eq!(std::fs::read(dir.path().join("good.gz")).unwrap(), good);
    assert_eq!(data::read_idx(&dir.path().join("good.gz"), 1).unwrap().data, vec![1, 2, 3]);
    // Present with the right checksum: kept without downloading (the server would now fail it).
    data::fetch("http://127.0.0.1:9/", &[RemoteFile { name: leaked, sha256: sha(&good) }], dir.path(), false).unwrap();

    let msg = err_of(data::fetch(&url, &[RemoteFile { name: "tampered.gz", sha256: sha(&good) }], dir.path(), false));
    assert!(msg.contains("tampered.gz") && msg.contains("does not match"), "{msg}");
    let msg = err_of(data::fetch(&url, &[RemoteFile { name: "short.gz", sha256: sha(&long) }], dir.path(), false));
    assert!(msg.contains("short.gz"), "{msg}");
    let msg404 = err_of(data::fetch(&url, &[RemoteFile { name: "missing.gz", sha256: sha(&long) }], dir.path(), false));
    assert!(msg404.contains("missing.gz"), "{msg404}");
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, vec!["good.gz"], "no partial or temporary files");
}
