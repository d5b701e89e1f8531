//! `bench step`'s report: throughput and peak RSS per case, the scaling
//! table, where a step's time goes, and the sanity checks (first-step losses
//! at chance level, the same model on both sides).

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use vlp_bench::stats::{contention_line, noisy, optional, ratio};
use vlp_bench::step::{Measurement, HEADLINE, ONLY_IN_VLP, VOCAB_SIZE};

use super::{BenchStepArgs, Case, Mode};
use crate::bench::common;
use crate::device::DeviceSpec;

/// One JSON result row (bench ot's columns plus throughput and memory).
#[derive(Debug, Serialize)]
pub(super) struct Row {
    /// `speedup` = vlp samples/s over PyTorch samples/s.
    #[serde(flatten)]
    times: common::Row,
    vlp_samples_per_s: f64,
    reference_samples_per_s: Option<f64>,
    vlp_rss_mib: Option<f64>,
    reference_rss_mib: Option<f64>,
}

const REFERENCE_LABEL: &str = "PyTorch eager";

pub(super) fn report(cases: &[Case], args: &BenchStepArgs, spec: DeviceSpec) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut out = String::new();
    writeln!(
        out,
        "\n## Training step: vlp ({spec}) vs {REFERENCE_LABEL} (uniter-bench, {} threads, vlp training in {} micro-batches, median of {} × {} steps after {} warm-up)\n",
        args.threads, args.micro_batches, args.reps, args.steps, args.warmup
    )?;
    writeln!(
        out,
        "| benchmark | vlp samples/s | PyTorch samples/s | vlp / PyTorch | vlp peak RSS (MiB) | PyTorch peak RSS (MiB) | vlp / PyTorch RSS |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for case in cases {
        let reference = case.reference.as_ref();
        let row = Row {
            times: common::Row {
                benchmark: case.shape.benchmark(case.mode),
                vlp_ms: case.vlp.ms_per_step,
                reference: REFERENCE_LABEL.to_string(),
                reference_ms: reference.map(|r| r.ms_per_step),
                speedup: reference.map(|r| r.ms_per_step / case.vlp.ms_per_step),
            },
            vlp_samples_per_s: case.vlp.samples_per_s,
            reference_samples_per_s: reference.map(|r| r.samples_per_s),
            vlp_rss_mib: case.vlp.peak_rss_mib,
            reference_rss_mib: reference.and_then(|r| r.peak_rss_mib),
        };
        writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} | {} |",
            row.times.benchmark,
            row.vlp_samples_per_s,
            optional(row.reference_samples_per_s, 1),
            ratio(Some(row.vlp_samples_per_s), row.reference_samples_per_s, 2),
            optional(row.vlp_rss_mib, 0),
            optional(row.reference_rss_mib, 0),
            ratio(row.vlp_rss_mib, row.reference_rss_mib, 2),
        )?;
        rows.push(row);
    }

    // How cost grows when one dimension doubles (training, ms per step).
    let train: Vec<&Case> = cases.iter().filter(|c| c.mode == Mode::Train).collect();
    if let Some(base) = train.iter().find(|c| c.shape == HEADLINE) {
        if train.len() > 1 {
            writeln!(
                out,
                "\n### Scaling (training, ms per step; × = cost relative to b32-t32-r36)\n"
            )?;
            writeln!(
                out,
                "| shape | vlp ms/step | × | PyTorch ms/step | × | vlp / PyTorch samples/s |"
            )?;
            writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
            for c in &train {
                let growth = |m: Option<&Measurement>, b: Option<&Measurement>| match (m, b) {
                    (Some(m), Some(b)) => format!(
                        "{:.0} | {:.2}",
                        m.ms_per_step,
                        m.ms_per_step / b.ms_per_step
                    ),
                    _ => "- | -".into(),
                };
                writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    c.shape.name(),
                    growth(Some(&c.vlp), Some(&base.vlp)),
                    growth(c.reference.as_ref(), base.reference.as_ref()),
                    ratio(
                        Some(c.vlp.samples_per_s),
                        c.reference.as_ref().map(|r| r.samples_per_s),
                        2
                    ),
                )?;
            }
        }
    }

    writeln!(
        out,
        "\n### Where a step's time goes (ms per step, mean of the timed steps)\n"
    )?;
    writeln!(
        out,
        "| benchmark | side | forward + losses | backward | AdamW |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|")?;
    for case in cases {
        let sides = [
            ("vlp", Some(&case.vlp)),
            ("PyTorch", case.reference.as_ref()),
        ];
        for (side, m) in sides {
            if let Some(m) = m {
                let p = m.phases_ms;
                let (forward, backward) = if p.forward == 0.0 && p.backward > 0.0 {
                    (
                        "(overlapped)".to_string(),
                        format!("{:.0} (with forward)", p.backward),
                    )
                } else {
                    (format!("{:.0}", p.forward), format!("{:.0}", p.backward))
                };
                writeln!(
                    out,
                    "| {} | {side} | {forward} | {backward} | {:.0} |",
                    case.shape.benchmark(case.mode),
                    p.optimizer
                )?;
            }
        }
    }

    let head = &cases[0];
    writeln!(
        out,
        "\nSanity ({}): first-step losses vlp MLM {:.3} ITM {:.3}{}; ln 30522 = {:.3}, ln 2 = {:.3}. \
         Parameters: vlp {}{}.",
        head.shape.benchmark(head.mode),
        head.vlp.first_mlm_loss,
        head.vlp.first_itm_loss,
        head.reference.as_ref().map_or(String::new(), |r| format!(
            ", PyTorch MLM {:.3} ITM {:.3}",
            r.first_mlm_loss, r.first_itm_loss
        )),
        (VOCAB_SIZE as f64).ln(),
        2f64.ln(),
        head.vlp.parameters,
        head.reference
            .as_ref()
            .map_or(String::new(), |r| format!(", PyTorch {}", r.parameters)),
    )?;
    if let Some(warning) = head
        .reference
        .as_ref()
        .and_then(|r| model_mismatch(&head.vlp, r))
    {
        writeln!(out, "WARNING: {warning}")?;
    }
    let mut disturbed = Vec::new();
    for c in cases {
        let benchmark = c.shape.benchmark(c.mode);
        disturbed.extend(noisy(&benchmark, "vlp", c.vlp_others));
        disturbed.extend(noisy(&benchmark, "PyTorch", c.reference_others));
    }
    writeln!(out, "{}", contention_line(&disturbed))?;
    if let Some(v) = cases.iter().find_map(|c| c.reference_versions.as_ref()) {
        writeln!(out, "Reference: {v}")?;
    }
    print!("{out}");
    Ok(rows)
}

/// How far a first-step loss may stand from chance level (ln of the class
/// count) at initialisation.
const CHANCE_TOLERANCE: f64 = 0.3;

/// Why vlp's and the reference's measurements do not describe the same
/// model at initialisation, if they do not: parameter counts that differ by
/// more than [`ONLY_IN_VLP`], or a first-step loss away from chance level.
fn model_mismatch(vlp: &Measurement, reference: &Measurement) -> Option<String> {
    if vlp.parameters != reference.parameters + ONLY_IN_VLP {
        return Some(format!(
            "vlp has {} parameters, PyTorch {} (expected {ONLY_IN_VLP} more in vlp): the models differ",
            vlp.parameters, reference.parameters
        ));
    }
    let chance = [(VOCAB_SIZE as f64).ln(), 2f64.ln()];
    for (side, m) in [("vlp", vlp), ("PyTorch", reference)] {
        for (name, loss, chance) in [
            ("MLM", m.first_mlm_loss, chance[0]),
            ("ITM", m.first_itm_loss, chance[1]),
        ] {
            if (loss - chance).abs() > CHANCE_TOLERANCE {
                return Some(format!(
                    "{side}'s first-step {name} loss {loss:.3} is not near chance ({chance:.3})"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use vlp_bench::step::Phases;

    fn measurement(parameters: usize, first_mlm_loss: f64) -> Measurement {
        Measurement {
            samples_per_s: 1.0,
            ms_per_step: 1.0,
            rep_seconds: vec![1.0],
            first_mlm_loss,
            first_itm_loss: 0.7,
            peak_rss_mib: None,
            parameters,
            phases_ms: Phases::default(),
        }
    }

    #[test]
    fn a_different_model_or_a_loss_off_chance_is_named() {
        let reference = measurement(1000, 10.3);
        assert_eq!(
            model_mismatch(&measurement(1000 + ONLY_IN_VLP, 10.4), &reference),
            None
        );
        let more = model_mismatch(&measurement(1001 + ONLY_IN_VLP, 10.4), &reference).unwrap();
        assert!(more.contains("PyTorch 1000"), "{more}");
        let off = model_mismatch(&measurement(1000 + ONLY_IN_VLP, 9.0), &reference).unwrap();
        assert!(off.starts_with("vlp's first-step MLM loss 9.000"), "{off}");
    }
}
