//! Resident memory of this process, from `/proc/self/status` (Linux).

/// Current and peak resident set size, in MiB; `None` where /proc is unavailable.
pub fn resident_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak (VmHWM) to the current RSS, so the next peak is one measurement's own.
pub fn reset_peak() {
    // Writing 5 to clear_refs resets the peak RSS (Linux ≥ 4.0); where it fails the peak
    // simply stays process-wide.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
