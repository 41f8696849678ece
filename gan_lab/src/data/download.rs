//! Downloading a dataset's official files, as torchvision does: the publisher's checksum, a
//! progress bar, downloads that resume where they stopped, and a file that appears under its
//! name only once it is complete and verified.

use crate::files;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The checksum a publisher gives for a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Checksum {
    Sha256(String),
    /// What torchvision and the CIFAR and CelebA pages publish.
    Md5(String),
}

impl Checksum {
    fn kind(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "SHA-256",
            Checksum::Md5(_) => "MD5",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Md5(h) => h,
        }
    }

    /// The same kind of checksum of the file at `path`, in hex.
    fn of_file(&self, path: &Path) -> Result<String> {
        use sha2::Digest;
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut sha = sha2::Sha256::new();
        let mut md5 = md5::Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            match self {
                Checksum::Sha256(_) => sha.update(&buf[..n]),
                Checksum::Md5(_) => md5.update(&buf[..n]),
            }
        }
        Ok(match self {
            Checksum::Sha256(_) => format!("{:x}", sha.finalize()),
            Checksum::Md5(_) => format!("{:x}", md5.finalize()),
        })
    }

    fn matches(&self, path: &Path) -> Result<bool> {
        Ok(self.of_file(path)? == self.expected())
    }
}

/// One file of a dataset's official distribution.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    pub name: String,
    /// Where its publisher serves it.
    pub url: String,
    pub checksum: Checksum,
}

/// A dataset's official files and where a user gets them by hand when the host refuses.
#[derive(Debug, Clone)]
pub struct RemoteSet {
    /// The name `gan-lab data fetch` takes.
    pub name: &'static str,
    /// Its folder under `datasets/`.
    pub folder: &'static str,
    /// The publisher's page.
    pub page: &'static str,
    pub files: Vec<RemoteFile>,
}

/// The datasets `gan-lab data fetch` knows.
pub const FETCHABLE: [&str; 3] = ["mnist", "cifar10", "celeba"];

fn file(name: &str, url: String, checksum: Checksum) -> RemoteFile {
    RemoteFile { name: name.to_string(), url, checksum }
}

/// A file on Google Drive, where CelebA's authors share it; `confirm=t` skips the page Drive
/// shows instead of files too large for its virus scan.
fn drive_file(name: &str, id: &str, md5: &str) -> RemoteFile {
    let url = format!("https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t");
    file(name, url, Checksum::Md5(md5.to_string()))
}

impl RemoteSet {
    /// The official 60k/10k MNIST files (the mirror PyTorch's own examples use).
    pub fn mnist() -> RemoteSet {
        let base = "https://ossci-datasets.s3.amazonaws.com/mnist";
        let files = [
            ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ];
        RemoteSet {
            name: "mnist",
            folder: "mnist-full",
            page: "http://yann.lecun.com/exdb/mnist/",
            files: files
                .iter()
                .map(|(name, sha)| file(name, format!("{base}/{name}"), Checksum::Sha256(sha.to_string())))
                .collect(),
        }
    }

    /// CIFAR-10's binary version: one tarball of six batch files, the MD5 its page publishes.
    pub fn cifar10() -> RemoteSet {
        let name = "cifar-10-binary.tar.gz";
        RemoteSet {
            name: "cifar10",
            folder: "cifar10",
            page: "https://www.cs.toronto.edu/~kriz/cifar.html",
            files: vec![file(
                name,
                format!("https://www.cs.toronto.edu/~kriz/{name}"),
                Checksum::Md5("c32a1d4ab5d03f1284b67883e8d87530".into()),
            )],
        }
    }

    /// CelebA's aligned-and-cropped faces, their 40 attributes and the official partition,
    /// from the authors' Google Drive (the files and MD5s torchvision uses).
    pub fn celeba() -> RemoteSet {
        RemoteSet {
            name: "celeba",
            folder: "celeba",
            page: "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive: Img/img_align_celeba.zip, Anno/list_attr_celeba.txt, Eval/list_eval_partition.txt)",
            files: vec![
                drive_file("img_align_celeba.zip", "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"),
                drive_file("list_attr_celeba.txt", "0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c"),
                drive_file("list_eval_partition.txt", "0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668"),
            ],
        }
    }

    /// The set `gan-lab data fetch NAME` downloads.
    pub fn named(name: &str) -> Result<RemoteSet> {
        Ok(match name {
            "mnist" => RemoteSet::mnist(),
            "cifar10" => RemoteSet::cifar10(),
            "celeba" => RemoteSet::celeba(),
            other => bail!("dataset `{other}`: expected one of {}", FETCHABLE.join(", ")),
        })
    }

    /// The same files from a mirror that serves them under their names at `base`.
    pub fn from_mirror(mut self, base: &str) -> RemoteSet {
        for f in &mut self.files {
            f.url = format!("{}/{}", base.trim_end_matches('/'), f.name);
        }
        self
    }

    /// Where to put the files by hand, with what each must hash to.
    fn by_hand(&self, dir: &Path) -> String {
        let list: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("{} ({} {})", f.name, f.checksum.kind(), f.checksum.expected()))
            .collect();
        format!(
            "download them by hand from {} into {}: {}; then run `gan-lab data fetch {}` again to verify them",
            self.page,
            dir.display(),
            list.join(", "),
            self.name
        )
    }
}

/// Downloads the files of `set` into `dir`. A file already there with the right checksum is
/// kept; a download that stops half-way keeps what it received in `NAME.part` and the next
/// fetch resumes from there; a file appears under its name only once complete and verified.
pub fn fetch(set: &RemoteSet, dir: &Path, show_progress: bool) -> Result<()> {
    files::ensure_writable_dir(dir)?;
    for file in &set.files {
        let dest = dir.join(&file.name);
        if dest.is_file() && file.checksum.matches(&dest)? {
            eprintln!("{}: present, checksum verified", dest.display());
            continue;
        }
        // What went wrong first, then the way round it.
        download(file, &dest, show_progress)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}; {}", file.name, set.by_hand(dir)))?;
        eprintln!("{}: downloaded, checksum verified", dest.display());
    }
    Ok(())
}

/// One file into `dest`, through `dest.part`.
fn download(file: &RemoteFile, dest: &Path, show_progress: bool) -> Result<()> {
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let have = part.metadata().map(|m| m.len()).unwrap_or(0);
    let mut request = ureq::get(&file.url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = request.call().with_context(|| format!("download of {} failed", file.url))?;
    let response = past_confirmation_page(response, file)?;
    // 206: the server sends the rest; 200: the whole file again.
    let resumed = response.status() == 206;
    let start = if resumed { have } else { 0 };
    let length: Option<u64> = response.header("Content-Length").and_then(|v| v.parse().ok());
    let total = length.map(|n| n + start);
    let bar =
        if show_progress { indicatif::ProgressBar::new(total.unwrap_or(0)) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(file.name.clone());
    let mut out =
        if resumed { std::fs::OpenOptions::new().append(true).open(&part) } else { std::fs::File::create(&part) }
            .with_context(|| format!("cannot write {}", part.display()))?;
    let mut received = start;
    bar.set_position(received);
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let outcome: std::io::Result<()> = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Err(e);
                }
                received += n as u64;
                bar.set_position(received);
            }
            Err(e) => break Err(e),
        }
    };
    out.sync_all().with_context(|| format!("cannot write {}", part.display()))?;
    bar.finish_and_clear();
    let cut_short = total.is_some_and(|t| received < t);
    if outcome.is_err() || cut_short {
        let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
        bail!(
            "download of {} cut short at {received}{of} bytes ({}); the part received is kept in {}: \
             run the same command again to resume",
            file.url,
            outcome.err().map(|e| e.to_string()).unwrap_or_else(|| "connection closed".into()),
            part.display()
        );
    }
    let got = file.checksum.of_file(&part)?;
    if got != file.checksum.expected() {
        let _ = std::fs::remove_file(&part);
        bail!(
            "{} {got} of the downloaded file does not match the published {}; the download was removed",
            file.checksum.kind(),
            file.checksum.expected()
        );
    }
    std::fs::rename(&part, dest).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

/// Google Drive answers a request for a file too large for its virus scan with a page holding a
/// form that confirms the download, and a file over its daily quota with a page saying so. The
/// first is followed; anything else that is a web page where a file was expected is an error.
fn past_confirmation_page(response: ureq::Response, file: &RemoteFile) -> Result<ureq::Response> {
    let is_page = response.content_type().starts_with("text/html") && !file.name.ends_with(".html");
    if !is_page {
        return Ok(response);
    }
    let mut page = String::new();
    response.into_reader().take(1 << 20).read_to_string(&mut page).ok();
    if let Some(url) = confirmation_url(&page) {
        let response = ureq::get(&url).call().with_context(|| format!("download of {url} failed"))?;
        if !response.content_type().starts_with("text/html") {
            return Ok(response);
        }
    }
    bail!(
        "{} answered with a web page instead of the file (Google Drive does so when a file's daily download quota is used up)",
        file.url
    )
}

/// The address a download-confirmation form submits to: its `action` with its hidden inputs.
fn confirmation_url(page: &str) -> Option<String> {
    let form_at = page.find("<form")?;
    let form = &page[form_at..page[form_at..].find("</form>").map(|e| form_at + e).unwrap_or(page.len())];
    let action = attribute(&form[..form.find('>')?], "action")?;
    let mut query = Vec::new();
    for input in form.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap_or(input.len())];
        if attribute(tag, "type").as_deref() == Some("hidden") {
            query.push(format!("{}={}", attribute(tag, "name")?, attribute(tag, "value").unwrap_or_default()));
        }
    }
    query.iter().any(|q| q.starts_with("confirm=")).then(|| {
        let sep = if action.contains('?') { '&' } else { '?' };
        format!("{}{sep}{}", action.replace("&amp;", "&"), query.join("&"))
    })
}

/// The value of `name="..."` in an HTML tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    Some(tag[start..start + tag[start..].find('"')?].to_string())
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    Checksum::Sha256(String::new()).of_file(path)
}
