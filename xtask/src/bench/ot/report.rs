//! `bench ot`'s report: the headline table, the sanity checks of the
//! distances against each other and the references, and the scaling table.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::{BenchOtArgs, Case, DIM, SINKHORN_ITERS, SINKHORN_REG};
use vlp_bench::stats::{contention_line, noisy};

use crate::bench::common::Row;

/// (vlp key, reference key, row prefix): the rows of the table.
const PAIRS: &[(&str, &str, &str)] = &[
    ("ipot", "ipot", "ipot"),
    ("ipot-kernel", "ipot", "ipot-host-kernel"),
    ("ipot-via-host-flex", "ipot", "ipot-via-host-flex"),
    ("ipot-tensor-ndarray", "ipot", "ipot-tensor-ndarray"),
    ("ipot-tensor-flex", "ipot", "ipot-tensor-flex"),
    ("exact", "emd2", "exact"),
    ("sinkhorn", "sinkhorn2", "sinkhorn"),
    ("sinkhorn", "sinkhorn2_log", "sinkhorn-vs-log"),
    (
        "sinkhorn-tensor-ndarray",
        "sinkhorn2",
        "sinkhorn-tensor-ndarray",
    ),
    ("sinkhorn-tensor-flex", "sinkhorn2", "sinkhorn-tensor-flex"),
    ("cost-ndarray", "cost", "cost-cosine-ndarray"),
    ("cost-flex", "cost", "cost-cosine-flex"),
    ("wra-ndarray", "wra", "wra-ndarray"),
    ("wra-flex", "wra", "wra-flex"),
];

/// What the reference script's result `key` measures.
fn label(key: &str) -> &'static str {
    match key {
        "ipot" => "PyTorch IPOT (UNITER)",
        "emd2" => "POT emd2 loop",
        "sinkhorn2" => "POT sinkhorn2 loop",
        "sinkhorn2_log" => "POT sinkhorn2 log loop",
        "cost" => "PyTorch cosine cost",
        _ => "PyTorch UNITER WRA distance",
    }
}

fn ref_ms(reference: Option<&Value>, case: &str, key: &str) -> Option<f64> {
    reference?
        .get("cases")?
        .get(case)?
        .get(key)?
        .get("ms")?
        .as_f64()
}

fn ref_dist(reference: Option<&Value>, case: &str, key: &str) -> Option<Vec<f64>> {
    let arr = reference?
        .get("cases")?
        .get(case)?
        .get(key)?
        .get("distances")?
        .as_array()?;
    arr.iter().map(Value::as_f64).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-12))
        .fold(0.0, f64::max)
}

pub(super) fn report(
    cases: &[Case],
    reference: Option<&Value>,
    args: &BenchOtArgs,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut out = String::new();
    let head = &cases[0];
    writeln!(
        out,
        "\n## Optimal transport: vlp-ot vs references ({} threads, D = {DIM}, median of {} runs after {} warm-up)\n",
        args.threads, head.reps, args.warmup
    )?;
    writeln!(
        out,
        "| benchmark | vlp (ms) | reference | reference (ms) | speedup |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|")?;
    for case in cases {
        for &(vk, rk, prefix) in PAIRS {
            let Some(&vms) = case.vlp_ms.get(vk) else {
                continue;
            };
            let suffix = if vk.starts_with("cost") || vk.starts_with("wra") {
                format!("{}x{DIM}", case.name)
            } else {
                case.name.clone()
            };
            let rms = ref_ms(reference, &case.name, rk);
            let row = Row {
                benchmark: format!("{prefix}-{suffix}"),
                vlp_ms: vms,
                reference: label(rk).to_string(),
                reference_ms: rms,
                speedup: rms.map(|r| r / vms),
            };
            if case.headline {
                writeln!(
                    out,
                    "| {} | {:.3} | {} | {} | {} |",
                    row.benchmark,
                    row.vlp_ms,
                    row.reference,
                    rms.map_or("-".into(), |r| format!("{r:.3}")),
                    row.speedup.map_or("-".into(), |s| format!("{s:.1}×"))
                )?;
            }
            rows.push(row);
        }
    }

    // Sanity: same problems, same answers.
    writeln!(out, "\nSanity ({}):", head.name)?;
    let vd = |k: &str| head.vlp_dist.get(k).cloned().unwrap_or_default();
    let exact = vd("exact");
    let ipot_d = vd("ipot");
    let gap: Vec<f64> = ipot_d
        .iter()
        .zip(&exact)
        .map(|(i, e)| (i - e) / e * 100.0)
        .collect();
    writeln!(
        out,
        "- vlp IPOT vs vlp exact: IPOT is {:.3}% to {:.3}% above the optimum",
        gap.iter().cloned().fold(f64::INFINITY, f64::min),
        gap.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
    )?;
    for k in [
        "ipot-kernel",
        "ipot-tensor-ndarray",
        "ipot-tensor-flex",
        "wra-ndarray",
        "wra-flex",
    ] {
        if let Some(d) = head.vlp_dist.get(k) {
            writeln!(
                out,
                "- vlp {k} vs vlp ipot: max relative difference {:.2e}",
                max_rel_diff(d, &ipot_d)
            )?;
        }
    }
    let sk_d = vd("sinkhorn");
    for k in ["sinkhorn-tensor-ndarray", "sinkhorn-tensor-flex"] {
        if let Some(d) = head.vlp_dist.get(k) {
            writeln!(
                out,
                "- vlp {k} (f32) vs vlp sinkhorn (f64): max relative difference {:.2e}",
                max_rel_diff(d, &sk_d)
            )?;
        }
    }
    for (vk, rk, what) in [
        ("ipot", "ipot", "PyTorch IPOT"),
        ("wra-ndarray", "wra", "PyTorch WRA distance"),
        ("exact", "emd2", "POT emd2"),
        ("sinkhorn", "sinkhorn2", "POT sinkhorn2"),
        ("sinkhorn", "sinkhorn2_log", "POT sinkhorn2 log"),
    ] {
        if let (Some(v), Some(r)) = (head.vlp_dist.get(vk), ref_dist(reference, &head.name, rk)) {
            let abs = max_abs_diff(v, &r);
            writeln!(
                out,
                "- vlp {vk} vs {what}: max |Δ| {abs:.2e}, max relative {:.2e} over {} problems",
                max_rel_diff(v, &r),
                v.len()
            )?;
        }
    }
    // Distances must agree across all scaling cells too (loud failure otherwise).
    for case in cases {
        if let (Some(v), Some(r)) = (
            case.vlp_dist.get("exact"),
            ref_dist(reference, &case.name, "emd2"),
        ) {
            let abs = max_abs_diff(v, &r);
            if abs > 1e-6 {
                writeln!(
                    out,
                    "- WARNING {}: vlp exact differs from POT emd2 by {abs:.2e}",
                    case.name
                )?;
            }
        }
    }

    if cases.len() > 1 {
        writeln!(
            out,
            "\n### Scaling (median ms; speedup = reference / vlp)\n"
        )?;
        writeln!(
            out,
            "| B | M×N | IPOT vlp | IPOT PyTorch | × | exact vlp | POT emd2 | × | Sinkhorn vlp | POT sinkhorn2 | × |"
        )?;
        writeln!(
            out,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        let mut sorted: Vec<&Case> = cases.iter().collect();
        sorted.sort_by_key(|c| (c.m, c.b));
        for c in sorted {
            let cell = |vk: &str, rk: &str| -> String {
                let v = c.vlp_ms[vk];
                match ref_ms(reference, &c.name, rk) {
                    Some(r) => format!("{v:.3} | {r:.3} | {:.1}×", r / v),
                    None => format!("{v:.3} | - | -"),
                }
            };
            writeln!(
                out,
                "| {} | {}×{} | {} | {} | {} |",
                c.b,
                c.m,
                c.n,
                cell("ipot", "ipot"),
                cell("exact", "emd2"),
                cell("sinkhorn", "sinkhorn2")
            )?;
        }
    }
    let mut disturbed = Vec::new();
    for c in cases {
        let reference_share = reference.and_then(|r| {
            r.get("cases")?
                .get(&c.name)?
                .get("others_cpu_share")?
                .as_f64()
        });
        disturbed.extend(noisy(&c.name, "vlp side", c.others_share));
        disturbed.extend(noisy(&c.name, "reference side", reference_share));
    }
    writeln!(out, "\n{}", contention_line(&disturbed))?;
    if let Some(v) = reference.and_then(|r| r.get("versions")) {
        writeln!(out, "\nReferences: {v}")?;
    }
    writeln!(
        out,
        "IPOT: beta 0.5, 50 iterations, k = 1. Sinkhorn: eps {SINKHORN_REG}, exactly {SINKHORN_ITERS} iterations on both sides."
    )?;
    print!("{out}");
    Ok(rows)
}
