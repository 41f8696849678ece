//! Running one exercise test in a process of its own, so that student code cannot decide its
//! own grade: a time limit, a memory limit, no network where the system allows it, and a verdict
//! read from a channel the code under test does not write to.
//!
//! The verdict is libtest's log file (`--logfile`), which libtest writes after the test function
//! has returned. Its path holds a random token made for each run, in a folder only this user can
//! read. A test passes when its process exits 0 *and* the log says `ok <name>`: text a test
//! prints (`test result: ok. 1 passed`) and `std::process::exit(0)` from inside the test earn
//! nothing, because the log is then never written.

use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What one test process may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall time before the process (and every process it started) is killed.
    pub timeout: Duration,
    /// Address space of the process, in bytes (libtorch alone maps about 2 GB).
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(120), memory: 8 << 30 }
    }
}

/// How one test ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub passed: bool,
    /// Why it failed, for the student: the panic message or what stopped the process.
    pub hint: Option<String>,
    pub seconds: f64,
}

/// Random hex from the system's generator, for names no other process can guess.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the clock and the process id still make the name unique per run.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether test processes get a network namespace of their own, and if not, why (said once in
/// every report).
pub fn network_isolation() -> &'static std::result::Result<(), String> {
    static PROBE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            let mut cmd = Command::new("true");
            isolate(&mut cmd, None, true);
            match cmd.status() {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!("tests run with the machine's network (the isolated probe exited with {s})")),
                Err(e) => Err(format!("tests run with the machine's network (no network namespace: {e})")),
            }
        }
        #[cfg(not(target_os = "linux"))]
        Err("tests run with the machine's network (network namespaces are Linux-only)".into())
    })
}

/// Makes `cmd` start in a process group of its own (so a timeout kills its children too), with
/// an address-space limit and, when `no_network`, in a new network namespace.
fn isolate(cmd: &mut Command, memory: Option<u64>, no_network: bool) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only async-signal-safe calls (setpgid, setrlimit, unshare).
        unsafe {
            cmd.pre_exec(move || {
                libc::setpgid(0, 0);
                if let Some(bytes) = memory {
                    let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                #[cfg(target_os = "linux")]
                if no_network && libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let _ = (memory, no_network);
}

/// The failure's first useful line: the panic message, with `todo!` stubs said plainly.
pub fn hint_from(output: &str) -> Option<String> {
    for line in output.lines() {
        if let Some(at) = line.find("memory allocation of").filter(|_| line.trim_end().ends_with("failed")) {
            return Some(format!("ran out of memory ({})", &line[at..].trim_end()));
        }
        if line.contains("std::bad_alloc") {
            return Some("ran out of memory (std::bad_alloc in libtorch)".into());
        }
    }
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let message = lines.next().unwrap_or("").trim();
            if let Some(rest) = message.strip_prefix("not yet implemented: ") {
                return Some(format!("not implemented yet ({rest})"));
            }
            return Some(message.chars().take(200).collect());
        }
    }
    None
}

/// Runs the test `name` of the libtest binary `exe` in `cwd`, within `limits`.
pub fn run_test(exe: &Path, name: &str, cwd: &Path, limits: Limits) -> Result<Outcome> {
    let dir = private_dir()?;
    let log: PathBuf = dir.join(format!("{}.log", token()));
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", name, "--test-threads=1", "--logfile"])
        .arg(&log)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    isolate(&mut cmd, Some(limits.memory), network_isolation().is_ok());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", exe.display()))?;
    let (mut stdout, mut stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    // At most 64 kB of what the test prints is kept: enough for a panic message.
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stdout).take(64 << 10).read_to_end(&mut text);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        text.push(b'\n');
        text.extend(err);
        String::from_utf8_lossy(&text).into_owned()
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > limits.timeout {
            kill_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the test started in its group goes too, so the pipes close and nothing lingers.
    kill_group(&mut child);
    let output = reader.join().unwrap_or_default();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let seconds = started.elapsed().as_secs_f64();
    let ok_line = format!("ok {name}");
    let logged_ok = logged.lines().any(|l| l.trim_end() == ok_line || l.starts_with(&format!("{ok_line} <")));
    let (passed, hint) = match status {
        None => (false, Some(format!("stopped after {} s: an endless loop?", limits.timeout.as_secs()))),
        Some(s) if s.success() && logged_ok => (true, None),
        Some(s) if s.success() => {
            (false, Some("the test process exited before the test finished (std::process::exit?)".into()))
        }
        Some(s) => (false, Some(hint_from(&output).unwrap_or_else(|| ended_without_panic(s)))),
    };
    Ok(Outcome { passed, hint, seconds })
}

fn ended_without_panic(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let what = match signal {
                libc::SIGABRT => " (abort: std::process::abort, or memory ran out)",
                libc::SIGSEGV => " (segmentation fault)",
                libc::SIGKILL => " (killed)",
                _ => "",
            };
            return format!("the test process was ended by signal {signal}{what}");
        }
    }
    format!("failed without a panic message ({status})")
}

fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    // SAFETY: kill(2) on the process group the child leads (set up in `isolate`).
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The folder for the log files, which only this user can enter: made on first use, removed by
/// [`remove_private_dir`].
static PRIVATE_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

fn private_dir() -> Result<PathBuf> {
    let mut dir = PRIVATE_DIR.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = dir.as_ref() {
        return Ok(d.clone());
    }
    let made = std::env::temp_dir().join(format!("gan-lab-grade-{}", token()));
    std::fs::create_dir(&made).with_context(|| format!("cannot create {}", made.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o700))?;
    }
    *dir = Some(made.clone());
    Ok(made)
}

/// Removes the log folder once grading is over.
pub fn remove_private_dir() {
    if let Some(d) = PRIVATE_DIR.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = std::fs::remove_dir_all(d);
    }
}
