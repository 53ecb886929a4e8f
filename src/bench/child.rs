//! Child processes of the benchmark: this same binary in another mode, measured by the
//! kernel's own accounting (`wait4` rusage: user + system CPU, peak RSS), never by parsing
//! another tool's output.

use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a child asked to stop (SIGTERM) gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the kernel measured of one finished child.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size, bytes.
    pub peak_rss_bytes: u64,
}

/// A running child: `maxq <args>`, stdout and stderr in files of the work directory.
pub struct Running {
    child: Child,
    started: Instant,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    sampler: Option<RssSampler>,
}

/// A finished child.
pub struct Finished {
    /// The kernel's figures.
    pub usage: Usage,
    /// What the child wrote to standard output.
    pub stdout: String,
    /// RSS samples `(seconds since start, bytes)`, when sampled.
    pub rss_samples: Vec<(f64, u64)>,
}

/// Starts `maxq <args>`; `name` names its log files in `dir`.
pub fn spawn(dir: &Path, name: &str, args: &[String]) -> anyhow::Result<Running> {
    let exe = std::env::current_exe().context("locating the maxq binary")?;
    let stdout = dir.join(format!("{name}.out"));
    let stderr = dir.join(format!("{name}.log"));
    tracing::info!(run = name, "maxq {}", args.join(" "));
    let child = Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn,maxq=info")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).with_context(|| format!("{}", stdout.display()))?)
        .stderr(File::create(&stderr).with_context(|| format!("{}", stderr.display()))?)
        .spawn()
        .context("starting a maxq child process")?;
    Ok(Running {
        child,
        started: Instant::now(),
        name: name.to_owned(),
        stdout,
        stderr,
        sampler: None,
    })
}

impl Running {
    /// Samples the child's RSS every `period` from `/proc` until it exits.
    pub fn sample_rss(&mut self, period: Duration) {
        self.sampler = Some(RssSampler::start(self.child.id(), self.started, period));
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks the child to stop (SIGTERM), kills it if it has not within the grace period,
    /// and reaps it. An error if it had to be killed.
    pub fn stop(self) -> anyhow::Result<Finished> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall on a child this process spawned and has not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        let mut child = self;
        while Instant::now() < deadline {
            if !child.running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.running() {
            let _ = child.child.kill();
            anyhow::bail!(
                "{} did not stop within {} s of SIGTERM (log: {})",
                child.name,
                STOP_GRACE.as_secs(),
                child.stderr.display()
            );
        }
        child.wait()
    }

    /// Waits for the child to exit; an error naming its log when it failed.
    pub fn wait(mut self) -> anyhow::Result<Finished> {
        let (status, usage) = wait4(&mut self.child, self.started)?;
        let rss_samples = self
            .sampler
            .take()
            .map(RssSampler::finish)
            .unwrap_or_default();
        if !status.success() {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            anyhow::bail!(
                "{} exited with {status} (log {}): {}",
                self.name,
                self.stderr.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        Ok(Finished {
            usage,
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            rss_samples,
        })
    }
}

/// Reaps `child` with `wait4`, which hands back the child's own resource usage.
fn wait4(child: &mut Child, started: Instant) -> anyhow::Result<(ExitStatus, Usage)> {
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child this process spawned.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: valid pointers to locals; `pid` is an unreaped child of this process.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break r;
        }
    };
    if reaped != pid {
        anyhow::bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let wall = started.elapsed();
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let usage = Usage {
        wall,
        cpu: seconds(rusage.ru_utime) + seconds(rusage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: rusage.ru_maxrss as u64 * 1024,
    };
    Ok((ExitStatus(status), usage))
}

/// A raw wait status.
#[derive(Clone, Copy, Debug)]
struct ExitStatus(libc::c_int);

impl ExitStatus {
    fn success(self) -> bool {
        libc::WIFEXITED(self.0) && libc::WEXITSTATUS(self.0) == 0
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if libc::WIFEXITED(self.0) {
            write!(f, "status {}", libc::WEXITSTATUS(self.0))
        } else if libc::WIFSIGNALED(self.0) {
            write!(f, "signal {}", libc::WTERMSIG(self.0))
        } else {
            write!(f, "wait status {}", self.0)
        }
    }
}

/// Reads `VmRSS` from `/proc/<pid>/status` periodically on a thread of its own.
struct RssSampler {
    done: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32, started: Instant, period: Duration) -> RssSampler {
        let done = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, out) = (done.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !stop.load(Relaxed) {
                if let Some(rss) = std::fs::read_to_string(&path).ok().and_then(|s| vm_rss(&s)) {
                    if let Ok(mut out) = out.lock() {
                        out.push((started.elapsed().as_secs_f64(), rss));
                    }
                }
                std::thread::park_timeout(period);
            }
        });
        RssSampler {
            done,
            samples,
            thread,
        }
    }

    fn finish(self) -> Vec<(f64, u64)> {
        self.done.store(true, Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The `VmRSS` line of a `/proc/<pid>/status` text, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system) this process has used so far: the in-process broker's share.
pub fn own_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it for this process.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut rusage) };
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    seconds(rusage.ru_utime) + seconds(rusage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_reads_the_kib_line() {
        let status = "Name:\tmaxq\nVmPeak:\t  900 kB\nVmRSS:\t  1234 kB\nThreads:\t3\n";
        assert_eq!(vm_rss(status), Some(1234 * 1024));
        assert_eq!(vm_rss("Name:\tmaxq\n"), None);
    }
}
