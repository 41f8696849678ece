//! Progress of long work (training, an evaluator's training): a live bar in a terminal, a
//! compact line every tenth elsewhere.

use std::io::IsTerminal;

/// A live progress bar in a terminal; a compact line every N steps elsewhere (notebooks, logs),
/// where carriage returns do not animate. `GAN_LAB_PROGRESS=bar|lines|off` overrides the choice.
pub enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { every: i64 },
    Off,
}

impl Progress {
    pub fn new(total: i64, start: i64) -> Progress {
        let mode = std::env::var("GAN_LAB_PROGRESS").unwrap_or_default();
        let terminal = std::io::stderr().is_terminal();
        match mode.as_str() {
            "off" => Progress::Off,
            "bar" => Progress::bar(total, start),
            "lines" => Progress::Lines { every: (total / 10).max(1) },
            _ if terminal => Progress::bar(total, start),
            _ => Progress::Lines { every: (total / 10).max(1) },
        }
    }

    fn bar(total: i64, start: i64) -> Progress {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps [{elapsed} < {eta}] {msg}")
                .expect("valid template"),
        );
        bar.set_position(start as u64);
        Progress::Bar(bar)
    }

    /// Moves to `step` of `total`; `message` (the latest losses) is formatted only when shown.
    pub fn update(&mut self, step: i64, total: i64, message: impl FnOnce() -> String) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(step as u64);
                bar.set_message(message());
            }
            Progress::Lines { every } if step % *every == 0 => {
                eprintln!("step {step:>6}/{total}  {}", message());
            }
            _ => {}
        }
    }

    /// A line that stays: above the bar in a terminal, as is elsewhere.
    pub fn note(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.println(line),
            Progress::Lines { .. } => eprintln!("{line}"),
            Progress::Off => {}
        }
    }

    pub fn finish(&mut self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}
