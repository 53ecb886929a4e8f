//! Child processes of the benchmark: this same binary in another mode, measured by the
//! kernel's own accounting, never by parsing another tool's output: user + system CPU from
//! `wait4`, peak RSS from the child's `VmHWM` in `/proc`. Not `ru_maxrss`: Linux carries
//! the spawning process's RSS into it across `exec` (a `vfork` child starts on its
//! parent's address space), and the benchmark process can be large when it holds the
//! in-process broker's data.

use anyhow::Context;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a child's `/proc/<pid>/status` is read for its peak RSS.
const HWM_PERIOD: Duration = Duration::from_millis(20);

/// How long a child asked to stop (SIGTERM) gets before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the kernel measured of one finished child.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size (`VmHWM`, the last value read before exit), bytes.
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
    reaped: bool,
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

/// Starts `maxq <args>`, or `maxq-bench consume …` for the ceiling; `name` names its log
/// files in `dir`. `maxq` is the binary beside this one, as cargo builds them.
pub fn spawn(dir: &Path, name: &str, args: &[String]) -> anyhow::Result<Running> {
    let bench = std::env::current_exe().context("locating the maxq-bench binary")?;
    let exe = if args.first().is_some_and(|a| a == "consume") {
        bench
    } else {
        bench.with_file_name(format!("maxq{}", std::env::consts::EXE_SUFFIX))
    };
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
    let started = Instant::now();
    Ok(Running {
        sampler: Some(RssSampler::start(child.id(), started)),
        reaped: false,
        child,
        started,
        name: name.to_owned(),
        stdout,
        stderr,
    })
}

impl Running {
    /// Also records the child's RSS every `period` until it exits.
    pub fn sample_rss(&mut self, period: Duration) {
        if let Some(Ok(mut every)) = self.sampler.as_ref().map(|s| s.every.lock()) {
            *every = Some(period);
        }
    }

    /// The child's resident set size now.
    pub fn rss_now(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        Some(status_kib(&status, "VmRSS:")? * 1024)
    }

    /// Asks the child to stop (SIGTERM), kills it if it has not within the grace period,
    /// and reaps it. An error if it had to be killed.
    pub fn stop(self) -> anyhow::Result<Finished> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall on a child this process spawned and has not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(reaped) = reap(pid, libc::WNOHANG, self.started)? {
                return self.finish(reaped);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = reap(pid, 0, self.started);
        let mut this = self;
        this.reaped = true;
        anyhow::bail!(
            "{} did not stop within {} s of SIGTERM (log: {})",
            this.name,
            STOP_GRACE.as_secs(),
            this.stderr.display()
        )
    }

    /// Waits for the child to exit; an error naming its log when it failed.
    pub fn wait(self) -> anyhow::Result<Finished> {
        let pid = self.child.id() as libc::pid_t;
        match reap(pid, 0, self.started)? {
            Some(reaped) => self.finish(reaped),
            None => anyhow::bail!("wait4 returned without {} having exited", self.name),
        }
    }

    fn finish(mut self, (status, mut usage): (ExitStatus, Usage)) -> anyhow::Result<Finished> {
        self.reaped = true;
        let (peak, rss_samples) = self
            .sampler
            .take()
            .map(RssSampler::finish)
            .unwrap_or_default();
        usage.peak_rss_bytes = peak;
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

/// A child the benchmark gives up on (an error in its section) is killed, not left running.
impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: plain syscall on a child this process spawned and has not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = reap(pid, 0, self.started);
        }
    }
}

/// Reaps child `pid` with `wait4`, which hands back the child's own resource usage;
/// `None` when `flags` has `WNOHANG` and the child is still running.
fn reap(
    pid: libc::pid_t,
    flags: libc::c_int,
    started: Instant,
) -> anyhow::Result<Option<(ExitStatus, Usage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child this process spawned.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: valid pointers to locals; `pid` is an unreaped child of this process.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut rusage) };
        if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break r;
        }
    };
    if reaped == 0 {
        return Ok(None);
    }
    if reaped != pid {
        anyhow::bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let usage = Usage {
        wall: started.elapsed(),
        cpu: seconds(rusage.ru_utime) + seconds(rusage.ru_stime),
        peak_rss_bytes: 0,
    };
    Ok(Some((ExitStatus(status), usage)))
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

/// What a sampler has seen: the peak, and the RSS samples `(seconds, bytes)`.
#[derive(Default)]
struct Seen {
    peak: u64,
    samples: Vec<(f64, u64)>,
}

/// Reads `/proc/<pid>/status` every [`HWM_PERIOD`] on a thread of its own: the peak
/// (`VmHWM`), and `VmRSS` samples when asked for.
struct RssSampler {
    done: Arc<AtomicBool>,
    every: Arc<Mutex<Option<Duration>>>,
    seen: Arc<Mutex<Seen>>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32, started: Instant) -> RssSampler {
        let done = Arc::new(AtomicBool::new(false));
        let every = Arc::new(Mutex::new(None::<Duration>));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, period, out) = (done.clone(), every.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            let mut next_sample = Duration::ZERO;
            while !stop.load(Relaxed) {
                if let Ok(status) = std::fs::read_to_string(&path) {
                    let at = started.elapsed();
                    let period = period.lock().ok().and_then(|p| *p);
                    if let Ok(mut out) = out.lock() {
                        out.peak = out
                            .peak
                            .max(status_kib(&status, "VmHWM:").unwrap_or(0) * 1024);
                        if let (Some(period), Some(rss)) = (period, status_kib(&status, "VmRSS:")) {
                            if at >= next_sample {
                                out.samples.push((at.as_secs_f64(), rss * 1024));
                                next_sample = at + period;
                            }
                        }
                    }
                }
                std::thread::park_timeout(HWM_PERIOD);
            }
        });
        RssSampler {
            done,
            every,
            seen,
            thread,
        }
    }

    /// The peak seen, and the samples.
    fn finish(self) -> (u64, Vec<(f64, u64)>) {
        self.done.store(true, Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
        self.seen
            .lock()
            .map(|s| (s.peak, s.samples.clone()))
            .unwrap_or_default()
    }
}

/// A `Key:  N kB` line of a `/proc/<pid>/status` text, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
    fn status_kib_reads_the_kib_lines() {
        let status = "Name:\tmaxq\nVmHWM:\t  900 kB\nVmRSS:\t  1234 kB\nThreads:\t3\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1234));
        assert_eq!(status_kib(status, "VmHWM:"), Some(900));
        assert_eq!(status_kib("Name:\tmaxq\n", "VmRSS:"), None);
    }
}
