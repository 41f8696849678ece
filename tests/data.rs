//! The data layer: IDX reading and its errors, the shipped digits, Fashion-MNIST, image folders
//! with and without classes, CIFAR-10 and CelebA in their official formats, seeded batches, and
//! the download of official files against a local HTTP server.

mod common;
use common::err_of;
use gan_lab::data::{self, Batcher, CelebaOptions, Checksum, Dataset, RemoteFile, RemoteSet, Source, Split};
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
    assert!(msg.contains("expected mnist, mnist-full, fashion-mnist, cifar10, celeba or a folder"), "{msg}");
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

/// What the local HTTP server answers for one path (query included).
struct Served {
    path: String,
    body: Vec<u8>,
    /// A request without a Range header gets only this many bytes of the announced length.
    cut: Option<usize>,
    content_type: &'static str,
}

fn served(path: &str, body: &[u8]) -> Served {
    Served { path: path.into(), body: body.to_vec(), cut: None, content_type: "application/octet-stream" }
}

/// An HTTP server on 127.0.0.1 serving `files`, honouring `Range: bytes=N-` with 206; logs each
/// request's path and range.
fn serve(files: Vec<Served>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let range: Option<usize> = request
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("range: bytes=").map(|r| r.trim_end_matches('-').to_string())
                })
                .and_then(|r| r.parse().ok());
            seen.lock().unwrap().push(format!("{path} {range:?}"));
            match files.iter().find(|f| f.path == path) {
                Some(f) => {
                    let (status, from, to) = match (range, f.cut) {
                        (Some(start), _) => ("206 Partial Content", start, f.body.len()),
                        (None, Some(cut)) => ("200 OK", 0, cut),
                        (None, None) => ("200 OK", 0, f.body.len()),
                    };
                    let length = f.body.len() - from;
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {length}\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
                        f.content_type
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&f.body[from..to]);
                }
                None => {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        }
    });
    (format!("http://{addr}"), log)
}

fn sha(bytes: &[u8]) -> Checksum {
    use sha2::Digest;
    Checksum::Sha256(format!("{:x}", sha2::Sha256::digest(bytes)))
}

fn md5(bytes: &[u8]) -> Checksum {
    use md5::Digest;
    Checksum::Md5(format!("{:x}", md5::Md5::digest(bytes)))
}

/// A set of one file served at `url/name`.
fn one_file(url: &str, name: &str, checksum: Checksum) -> RemoteSet {
    RemoteSet {
        name: "test",
        folder: "test",
        page: "the test's page",
        files: vec![RemoteFile { name: name.into(), url: format!("{url}/{name}"), checksum }],
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut left: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    left
}

#[test]
fn fetch_verifies_checksums_resumes_cut_downloads_and_never_shows_partial_files() {
    let good = gz(&idx_bytes(0x801, &[3], &[1, 2, 3]));
    let other = gz(&idx_bytes(0x801, &[3], &[4, 5, 6]));
    let long: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (url, log) = serve(vec![
        served("good.gz", &good),
        served("tampered.gz", &other),
        Served { cut: Some(40_000), ..served("short.bin", &long) },
    ]);
    let dir = tempfile::tempdir().unwrap();
    data::fetch(&one_file(&url, "good.gz", sha(&good)), dir.path(), false).unwrap();
    assert_eq!(std::fs::read(dir.path().join("good.gz")).unwrap(), good);
    assert_eq!(data::read_idx(&dir.path().join("good.gz"), 1).unwrap().data, vec![1, 2, 3]);
    // Present with the right checksum: kept without downloading (the server would now fail it).
    data::fetch(&one_file("http://127.0.0.1:9", "good.gz", sha(&good)), dir.path(), false).unwrap();

    // A checksum that does not match: an error naming the file and where to get it by hand;
    // nothing is left behind. MD5, as CIFAR's and CelebA's publishers give, is checked the same way.
    for checksum in [sha(&good), md5(&good)] {
        let msg = err_of(data::fetch(&one_file(&url, "tampered.gz", checksum), dir.path(), false));
        assert!(msg.contains("tampered.gz") && msg.contains("does not match the published"), "{msg}");
        assert!(msg.contains("by hand from the test's page"), "{msg}");
    }
    assert_eq!(listing(dir.path()), vec!["good.gz"]);

    // Cut short: the part is kept and named; the next fetch asks for the rest and completes.
    let msg = err_of(data::fetch(&one_file(&url, "short.bin", md5(&long)), dir.path(), false));
    assert!(msg.contains("short.bin") && msg.contains("cut short at 40000 of 100000 bytes"), "{msg}");
    assert!(msg.contains("run the same command again to resume"), "{msg}");
    assert_eq!(listing(dir.path()), vec!["good.gz", "short.bin.part"]);
    data::fetch(&one_file(&url, "short.bin", md5(&long)), dir.path(), false).unwrap();
    assert_eq!(std::fs::read(dir.path().join("short.bin")).unwrap(), long);
    assert!(log.lock().unwrap().contains(&"short.bin Some(40000)".to_string()), "{:?}", log.lock().unwrap());
    assert_eq!(listing(dir.path()), vec!["good.gz", "short.bin"]);

    let msg404 = err_of(data::fetch(&one_file(&url, "missing.gz", sha(&long)), dir.path(), false));
    assert!(msg404.contains("missing.gz") && msg404.contains("404"), "{msg404}");
    assert_eq!(listing(dir.path()), vec!["good.gz", "short.bin"]);
}

#[test]
fn fetch_follows_a_download_confirmation_page_and_explains_a_refusal() {
    let zip_bytes = vec![9u8; 5000];
    let (url, _) = serve(vec![
        served("download?id=abc&export=download&confirm=t", &zip_bytes),
        Served {
            content_type: "text/html",
            ..served("quota.zip", b"<html><title>Google Drive - Quota exceeded</title>Too many users</html>")
        },
    ]);
    // Drive's page for a file too large for its virus scan: a form whose action, with its hidden
    // inputs, downloads the file.
    let (url2, _) = {
        let page = format!(
            r#"<html><form action="{url}/download" method="get"><input type="hidden" name="id" value="abc"><input type="hidden" name="export" value="download"><input type="hidden" name="confirm" value="t"></form></html>"#
        );
        serve(vec![Served { content_type: "text/html", ..served("big.zip", page.as_bytes()) }])
    };
    let dir = tempfile::tempdir().unwrap();
    data::fetch(&one_file(&url2, "big.zip", md5(&zip_bytes)), dir.path(), false).unwrap();
    assert_eq!(std::fs::read(dir.path().join("big.zip")).unwrap(), zip_bytes);

    let msg = err_of(data::fetch(&one_file(&url, "quota.zip", md5(&zip_bytes)), dir.path(), false));
    assert!(msg.contains("quota.zip") && msg.contains("web page instead of the file"), "{msg}");
    assert!(
        msg.contains(&format!("by hand from the test's page into {}: quota.zip (MD5 ", dir.path().display())),
        "{msg}"
    );
    assert_eq!(listing(dir.path()), vec!["big.zip"]);
}

/// CIFAR-10's binary records: a label byte, then 1,024 red, 1,024 green and 1,024 blue bytes.
fn cifar_records(labels: &[u8], red: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &l in labels {
        bytes.push(l);
        bytes.extend(std::iter::repeat_n(red, 1024));
        bytes.extend(std::iter::repeat_n(l * 20, 1024));
        bytes.extend(std::iter::repeat_n(255, 1024));
    }
    bytes
}

/// The official tarball's layout: cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin.
fn cifar_tarball(batches: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, bytes) in batches {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn cifar10_fetches_and_loads_from_its_official_tarball() {
    let mut batches: Vec<(String, Vec<u8>)> =
        (1..=5u8).map(|i| (format!("data_batch_{i}.bin"), cifar_records(&[i, i + 1], 10 * i))).collect();
    batches.push(("test_batch.bin".into(), cifar_records(&[9, 0, 3], 0)));
    let tarball = cifar_tarball(&batches);
    let (url, _) = serve(vec![served("cifar-10-binary.tar.gz", &tarball)]);
    let dir = tempfile::tempdir().unwrap();
    // The official set, from a mirror: the generated tarball fails the published MD5.
    let official = RemoteSet::cifar10().from_mirror(&url);
    let msg = err_of(data::fetch(&official, dir.path(), false));
    assert!(msg.contains("cifar-10-binary.tar.gz") && msg.contains("c32a1d4ab5d03f1284b67883e8d87530"), "{msg}");
    assert!(msg.contains("https://www.cs.toronto.edu/~kriz/cifar.html"), "{msg}");
    let msg = err_of(Dataset::cifar10(dir.path(), Split::Train, 32, 3));
    assert!(msg.contains("run `gan-lab data fetch cifar10` first"), "{msg}");

    let mut set = official;
    set.files[0].checksum = md5(&tarball);
    data::fetch(&set, dir.path(), false).unwrap();
    let train = Dataset::cifar10(dir.path(), Split::Train, 32, 3).unwrap();
    assert_eq!(train.images.size(), [10, 3, 32, 32]);
    assert_eq!(Vec::<i64>::try_from(train.labels.as_ref().unwrap()).unwrap(), vec![1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    // Planes in order R, G, B, scaled to [-1, 1]: record 0 of batch 1 is R 10, G 20, B 255.
    let px = |c: i64| train.images.double_value(&[0, c, 5, 7]);
    assert!((px(0) - (10.0 / 127.5 - 1.0)).abs() < 1e-6 && (px(1) - (20.0 / 127.5 - 1.0)).abs() < 1e-6 && px(2) == 1.0);
    assert_eq!(train.classes[3], "cat");
    assert!(
        train
            .describe()
            .contains("cifar10 train: 10 images, 32×32 RGB; per class: airplane 0, automobile 1, bird 2, cat 2"),
        "{}",
        train.describe()
    );

    let test = Dataset::cifar10(dir.path(), Split::Test, 64, 1).unwrap();
    assert_eq!(test.images.size(), [3, 1, 64, 64]);
    assert_eq!(Vec::<i64>::try_from(test.labels.as_ref().unwrap()).unwrap(), vec![9, 0, 3]);

    // The extracted folder reads the same; a batch of a wrong length is named.
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("cifar-10-batches-bin")).unwrap();
    std::fs::write(folder.path().join("cifar-10-batches-bin/test_batch.bin"), cifar_records(&[9, 0, 3], 0)).unwrap();
    let same = Dataset::cifar10(folder.path(), Split::Test, 64, 1).unwrap();
    assert!(same.images.equal(&test.images));
    let mut cut = cifar_records(&[1], 0);
    cut.pop();
    std::fs::write(folder.path().join("cifar-10-batches-bin/test_batch.bin"), cut).unwrap();
    let msg = err_of(Dataset::cifar10(folder.path(), Split::Test, 32, 3));
    assert!(
        msg.contains("test_batch.bin") && msg.contains("3072 bytes, expected a whole number of 3073-byte records"),
        "{msg}"
    );
    std::fs::write(folder.path().join("cifar-10-batches-bin/test_batch.bin"), cifar_records(&[12], 0)).unwrap();
    assert!(err_of(Dataset::cifar10(folder.path(), Split::Test, 32, 3)).contains("record 0 has label 12"));
}

/// A CelebA folder in the official formats: `img_align_celeba.zip` of 178×218 JPEGs, the
/// attribute list (count, names, one line of 1/-1 per image) and the partition list.
fn celeba_files() -> Vec<(String, Vec<u8>)> {
    let names: Vec<String> = (1..=6).map(|i| format!("{i:06}.jpg")).collect();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (i, name) in names.iter().enumerate() {
        // The face's centre square is a grey level that tells the images apart; the top and
        // bottom bands, which the centre crop removes, are black.
        let level = 40 * i as u8;
        let img = image::RgbImage::from_fn(178, 218, |_, y| {
            if (20..198).contains(&y) {
                image::Rgb([level, level, level])
            } else {
                image::Rgb([0, 0, 0])
            }
        });
        let mut jpeg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
        zip.start_file(format!("img_align_celeba/{name}"), zip::write::FileOptions::default()).unwrap();
        zip.write_all(&jpeg).unwrap();
    }
    let zip = zip.finish().unwrap().into_inner();
    let smiling = [1, -1, 1, 1, -1, -1];
    let mut attr = format!("{}\n5_o_Clock_Shadow Male Smiling \n", names.len());
    for (name, s) in names.iter().zip(smiling) {
        attr += &format!("{name} -1  1 {s:2}\n");
    }
    let partition: String = names.iter().zip([0, 0, 0, 0, 1, 2]).map(|(n, p)| format!("{n} {p}\n")).collect();
    vec![
        ("img_align_celeba.zip".into(), zip),
        ("list_attr_celeba.txt".into(), attr.into_bytes()),
        ("list_eval_partition.txt".into(), partition.into_bytes()),
    ]
}

#[test]
fn celeba_fetches_and_loads_faces_labelled_by_an_attribute() {
    let files = celeba_files();
    let (url, _) = serve(files.iter().map(|(n, b)| served(n, b)).collect());
    let dir = tempfile::tempdir().unwrap();
    let msg = err_of(Dataset::celeba(dir.path(), Split::Train, 64, 3, &CelebaOptions::default()));
    assert!(msg.contains("run `gan-lab data fetch celeba` first"), "{msg}");
    let mut set = RemoteSet::celeba().from_mirror(&url);
    assert_eq!(
        set.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>()
    );
    let msg = err_of(data::fetch(&set, dir.path(), false));
    assert!(msg.contains("img_align_celeba.zip") && msg.contains("00d2c5bc6d35e252742224ab0c1e8fcb"), "{msg}");
    for (f, (_, bytes)) in set.files.iter_mut().zip(&files) {
        f.checksum = md5(bytes);
    }
    data::fetch(&set, dir.path(), false).unwrap();

    let smiling = CelebaOptions { attribute: Some("Smiling".into()), limit: None };
    let train = Dataset::celeba(dir.path(), Split::Train, 64, 3, &smiling).unwrap();
    assert_eq!(train.images.size(), [4, 3, 64, 64]);
    assert_eq!(Vec::<i64>::try_from(train.labels.as_ref().unwrap()).unwrap(), vec![1, 0, 1, 1]);
    assert_eq!(train.classes, vec!["not Smiling", "Smiling"]);
    assert!(train.describe().contains("per class: not Smiling 1, Smiling 3"), "{}", train.describe());
    // The centre crop removes the black bands: image 2 is grey level 40 throughout.
    let img = train.images.get(1);
    assert!((img.mean(tch::Kind::Float).double_value(&[]) - (40.0 / 127.5 - 1.0)).abs() < 0.03);
    assert!((img.min().double_value(&[]) - (40.0 / 127.5 - 1.0)).abs() < 0.05, "no black band left");

    let test = Dataset::celeba(dir.path(), Split::Test, 32, 1, &CelebaOptions::default()).unwrap();
    assert_eq!(test.images.size(), [1, 1, 32, 32]);
    assert!(test.labels.is_none());
    let limited =
        Dataset::celeba(dir.path(), Split::Train, 32, 3, &CelebaOptions { attribute: None, limit: Some(2) }).unwrap();
    assert_eq!(limited.len(), 2);
    assert!(limited.images.equal(
        &Dataset::celeba(dir.path(), Split::Train, 32, 3, &CelebaOptions::default()).unwrap().images.narrow(0, 0, 2)
    ));

    let msg = err_of(Dataset::celeba(
        dir.path(),
        Split::Train,
        32,
        3,
        &CelebaOptions { attribute: Some("Smiles".into()), limit: None },
    ));
    assert!(msg.contains("attribute `Smiles`") && msg.contains("5_o_Clock_Shadow, Male, Smiling"), "{msg}");
    // A member missing from the archive is named.
    std::fs::write(dir.path().join("list_eval_partition.txt"), "000001.jpg 0\n000099.jpg 0\n").unwrap();
    let msg = err_of(Dataset::celeba(dir.path(), Split::Train, 32, 3, &CelebaOptions::default()));
    assert!(msg.contains("img_align_celeba/000099.jpg: not in the archive"), "{msg}");
}

#[test]
fn labelled_image_folders_take_their_classes_from_sub_folders() {
    let dir = tempfile::tempdir().unwrap();
    for (class, n, colour) in [("sketch", 3, [255u8, 255, 255]), ("photo", 2, [0, 0, 0])] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..n {
            image::RgbImage::from_pixel(40, 30, image::Rgb(colour))
                .save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::create_dir(dir.path().join(".cache")).unwrap();
    let ds = Dataset::from_folder(dir.path(), 64, 3).unwrap();
    assert_eq!(ds.images.size(), [5, 3, 64, 64]);
    assert_eq!(ds.classes, vec!["photo", "sketch"]);
    assert_eq!(Vec::<i64>::try_from(ds.labels.as_ref().unwrap()).unwrap(), vec![0, 0, 1, 1, 1]);
    assert_eq!(ds.images.get(0).max().double_value(&[]), -1.0);
    assert_eq!(ds.images.get(4).min().double_value(&[]), 1.0);
    assert!(ds.describe().ends_with("5 images, 64×64 RGB; per class: photo 2, sketch 3"), "{}", ds.describe());
    let source: Source = dir.path().to_str().unwrap().parse().unwrap();
    assert_eq!(
        Dataset::load(&source, Split::Train, 32, 1).unwrap().class_counts(),
        vec![("photo".into(), 2), ("sketch".into(), 3)]
    );

    std::fs::write(dir.path().join("sketch/bad.jpg"), b"not a jpeg").unwrap();
    let msg = err_of(Dataset::from_folder(dir.path(), 32, 1));
    assert!(msg.contains("sketch/bad.jpg") && msg.contains("cannot decode"), "{msg}");
    // At most 3 of the 6 files (photo 0, 1; sketch 0, 1, 2, bad): every second one, both classes
    // kept, and the bad file, not among them, never read.
    let few = Dataset::from_folder_at_most(dir.path(), 32, 1, Some(3)).unwrap();
    assert_eq!(few.class_counts(), vec![("photo".into(), 1), ("sketch".into(), 2)]);
    assert_eq!(Dataset::from_folder_at_most(dir.path(), 32, 1, Some(99)).map(|d| d.len()).ok(), None, "all: bad read");
    std::fs::remove_file(dir.path().join("sketch/bad.jpg")).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3])).save(dir.path().join("stray.png")).unwrap();
    let msg = err_of(Dataset::from_folder(dir.path(), 32, 1));
    assert!(msg.contains("holds both images and sub-folders"), "{msg}");
}
