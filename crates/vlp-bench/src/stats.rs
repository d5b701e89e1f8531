//! Statistics of the benches' reports: medians of repeated runs, ratios
//! between vlp and a reference, and how much of the CPU other processes
//! took while a figure was measured (`/proc` on Linux), so that disturbed
//! cells are flagged instead of quoted.

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        0.5 * (sorted[mid - 1] + sorted[mid])
    }
}

/// `a / b` as `1.23×` (with `digits` decimals), `-` when either is missing.
pub fn ratio(a: Option<f64>, b: Option<f64>, digits: usize) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.digits$}×", a / b),
        _ => "-".into(),
    }
}

/// `value` with `digits` decimals, `-` when missing.
pub fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// `(busy jiffies of all CPUs, total jiffies, own jiffies incl. waited-for
/// children)` from `/proc` (Linux); `None` elsewhere.
pub fn cpu_snapshot() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy =
        v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0);
    let total = busy + v.get(3)? + v.get(4)?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: utime is the 12th, then
    // stime, cutime, cstime.
    let rest: Vec<u64> = me
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((busy, total, rest.iter().sum()))
}

/// Fraction of the machine's CPU time used by *other* processes between two
/// [`cpu_snapshot`]s.
pub fn others_share(a: Option<(u64, u64, u64)>, b: Option<(u64, u64, u64)>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let total = b.1.checked_sub(a.1)?;
    if total == 0 {
        return None;
    }
    let others = (b.0.saturating_sub(a.0)).saturating_sub(b.2.saturating_sub(a.2));
    Some(others as f64 / total as f64)
}

/// Runs `measure` and returns its result with the share of the CPU other
/// processes used meanwhile.
pub fn watching_others<T, E>(
    measure: impl FnOnce() -> Result<T, E>,
) -> Result<(T, Option<f64>), E> {
    let before = cpu_snapshot();
    let value = measure()?;
    Ok((value, others_share(before, cpu_snapshot())))
}

/// Measurements where other processes used more than this share of the CPU are flagged.
const NOISY_SHARE: f64 = 0.1;

/// `what (side, N%)` for a measurement other processes disturbed (their
/// share of the CPU above 10%), `None` otherwise.
pub fn noisy(what: &str, side: &str, share: Option<f64>) -> Option<String> {
    share
        .filter(|&s| s > NOISY_SHARE)
        .map(|s| format!("{what} ({side}, {:.0}%)", s * 100.0))
}

/// The report's line on contention; `noisy` lists the disturbed
/// measurements ([`noisy`]).
pub fn contention_line(noisy: &[String]) -> String {
    if noisy.is_empty() {
        "Other processes used < 10% of the CPU during every measurement.".into()
    } else {
        format!(
            "WARNING: other processes used > 10% of the CPU while measuring {}; \
             rerun on an idle machine before quoting those cells.",
            noisy.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratios_and_contention_lines() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(ratio(Some(3.0), Some(2.0), 2), "1.50×");
        assert_eq!(ratio(Some(3.0), None, 1), "-");
        assert_eq!(ratio(Some(3.0), Some(0.0), 1), "-");
        assert_eq!(optional(Some(2.345), 1), "2.3");
        assert_eq!(noisy("b8", "vlp", Some(0.05)), None);
        let flagged = [
            noisy("b8", "vlp", Some(0.25)).unwrap(),
            noisy("b32", "PyTorch", Some(0.5)).unwrap(),
        ];
        assert_eq!(
            contention_line(&flagged),
            "WARNING: other processes used > 10% of the CPU while measuring b8 (vlp, 25%), \
             b32 (PyTorch, 50%); rerun on an idle machine before quoting those cells."
        );
        assert!(contention_line(&[]).starts_with("Other processes used < 10%"));
    }
}
