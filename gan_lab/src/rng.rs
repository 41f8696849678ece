//! Seeds: the lock every random draw in gan_lab goes through, independent seeds from one, and
//! the lesson's prior.

use tch::{Device, Kind, Tensor};

/// Exercise `dcgan.sample_prior`: `n` draws from the prior N(0, I) in `latent_dim` dimensions,
/// `[n, latent_dim]`, from libtorch's random generator.
pub fn sample_prior(n: i64, latent_dim: i64) -> Tensor {
    // BEGIN SOLUTION dcgan.sample_prior
    Tensor::randn([n, latent_dim], (Kind::Float, Device::Cpu))
    // END SOLUTION
}

static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with libtorch's global random generator seeded with `seed`, holding a lock so that
/// draws from other threads cannot interleave: every random draw in gan_lab goes through here,
/// which keeps runs deterministic by seed even when several train in one process.
pub fn with_seed<T>(seed: u64, f: impl FnOnce() -> T) -> T {
    let _guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    struct Seeded;
    impl Drop for Seeded {
        fn drop(&mut self) {
            crate::backend::ops::set_seeded(false);
        }
    }
    crate::backend::ops::set_seeded(true);
    let _seeded = Seeded; // dropped before the lock, also when `f` panics
    tch::manual_seed(seed as i64);
    f()
}

/// SplitMix64 of `seed` and `salt`: independent seeds for independent streams.
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed.wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 1 // non-negative as i64
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Calls in test code that draw from libtorch's global generator: tensors' random
    /// constructors and fills, gan_lab's samplers, layer constructors (their initial weights), and
    /// anything handed a parameter path (`vs.root()`) but for constant parameters.
    const DRAWS: [&str; 15] = [
        "Tensor::randn(",
        "Tensor::rand(",
        "Tensor::randint(",
        "Tensor::randperm(",
        ".randn_like(",
        ".rand_like(",
        ".uniform_(",
        ".normal_(",
        ".bernoulli",
        ".randn_standard(",
        "sample_prior(",
        "sample_codes(",
        "reparameterize(",
        "nn::conv",
        "nn::linear(",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if entry.is_dir() {
                rust_files(&entry, out);
            } else if entry.extension().is_some_and(|e| e == "rs") {
                out.push(entry);
            }
        }
    }

    /// `s` with comments, string and character literals blanked (same byte offsets and lines), so
    /// that only code is searched and parentheses match.
    fn code_only(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = b.to_vec();
        let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
            for c in &mut out[from..to] {
                if *c != b'\n' {
                    *c = b' ';
                }
            }
        };
        let mut i = 0;
        while i < b.len() {
            let end = match b[i] {
                b'/' if b.get(i + 1) == Some(&b'/') => s[i..].find('\n').map_or(b.len(), |e| i + e),
                b'"' => {
                    let mut j = i + 1;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    j + 1
                }
                b'\'' if b.get(i + 2) == Some(&b'\'') => i + 3,
                b'\'' if b.get(i + 1) == Some(&b'\\') => i + s[i + 2..].find('\'').map_or(b.len(), |e| i + 3 + e),
                _ => {
                    i += 1;
                    continue;
                }
            };
            let end = end.min(b.len());
            blank(&mut out, i, end);
            i = end;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Byte ranges of `with_seed(...)` calls: from the name to the closing parenthesis.
    fn seeded_spans(s: &str) -> Vec<(usize, usize)> {
        s.match_indices("with_seed(")
            .map(|(start, m)| {
                let mut depth = 1;
                let end = s[start + m.len()..]
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(s.len(), |(i, _)| start + m.len() + i);
                (start, end)
            })
            .collect()
    }

    /// The draws in `text[from..]` outside `with_seed`, as "line: text".
    fn unseeded_draws(text: &str, from: usize) -> Vec<String> {
        let code = code_only(text);
        let s = code.as_str();
        let spans = seeded_spans(s);
        let constant = [".root().ones(", ".root().zeros(", ".root().zeros_no_train("];
        let mut found: Vec<usize> =
            DRAWS.iter().flat_map(|d| s[from..].match_indices(d).map(|(i, _)| from + i)).collect();
        found.extend(s[from..].match_indices(".root()").map(|(i, _)| from + i).filter(|&i| {
            let rest = &s[i..];
            let line = rest.lines().next().unwrap_or("");
            !constant.iter().any(|c| rest.starts_with(c)) && !line.contains("Init::Const")
        }));
        found.sort_unstable();
        found
            .into_iter()
            .filter(|&i| !spans.iter().any(|&(a, b)| a <= i && i < b))
            .map(|i| {
                let line = s[..i].matches('\n').count();
                format!("{}: {}", line + 1, text.lines().nth(line).unwrap_or("").trim())
            })
            .collect()
    }

    #[test]
    fn test_code_draws_random_numbers_only_under_the_seed_lock() {
        // Tests run in parallel threads of one process. A draw outside `with_seed` in one test can
        // land between another test's seeding and its draws, so that test sees other numbers than
        // the ones it compares with (this failed a layer test about once in fifty runs).
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![];
        rust_files(&root.join("src"), &mut files);
        rust_files(&root.join("../tests"), &mut files);
        let mut unseeded = vec![];
        for file in files {
            let s = std::fs::read_to_string(&file).unwrap();
            // Library modules: their tests, which sit after `#[cfg(test)]` at the end.
            let from = match file.starts_with(root.join("src")) {
                true => s.find("#[cfg(test)]").map(|i| i + "#[cfg(test)]".len()),
                false => Some(0),
            };
            if let Some(from) = from {
                unseeded.extend(unseeded_draws(&s, from).into_iter().map(|d| format!("{}:{d}", file.display())));
            }
        }
        assert!(unseeded.is_empty(), "random draws outside `with_seed` in test code:\n{}", unseeded.join("\n"));
    }

    #[test]
    fn a_draw_outside_with_seed_is_found_and_one_inside_is_not() {
        let code = "let a = with_seed(1, || (Tensor::randn([2], o), f(Tensor::rand([1], o))));\n\
                    let vs = nn::VarStore::new(cpu);\n\
                    let b = nn::conv2d(vs.root() / \"c\", 1, 2, 3, c);\n\
                    let w = vs.root().var(\"w\", &[4], nn::Init::Const(0.0));\n";
        assert_eq!(unseeded_draws(code, 0), ["3: let b = nn::conv2d(vs.root() / \"c\", 1, 2, 3, c);"; 2]);
    }
}
