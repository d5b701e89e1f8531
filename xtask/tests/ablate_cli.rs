//! `cargo xtask ablate` end to end on three tiny runs: a markdown row per
//! objective with held-out numbers at initialisation and after training, the
//! same numbers in the JSON file, retrieval ranked by the ITM head without
//! ITC (none without either), task sampling, and a one-line error for an
//! unknown run.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("runner starts")
}

#[test]
fn two_tiny_runs_print_a_table_and_write_json() {
    let json = std::env::temp_dir().join(format!("vlp-ablate-{}.json", std::process::id()));
    let output = xtask(&[
        "ablate",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--runs",
        "mrfr,mlm+itm+wra,uniter-mix-sampled",
        "--device",
        "ndarray",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| ")).collect();
    // Header, then one row per objective: mrfr; itm, mlm, wra; itm, mlm, mrc_kl, mrfr.
    assert_eq!(rows.len(), 9, "{stdout}");
    assert!(rows[1].starts_with("| mrfr | mrfr |") && rows[1].contains("| mse |"));
    assert!(
        rows[1].ends_with("| – | – | – |"),
        "no ITM, no ITC: {}",
        rows[1]
    );
    assert!(rows[4].starts_with("| mlm+itm+wra | wra |") && rows[4].contains("| gap |"));
    assert!(rows[4].ends_with("| matching |"), "{}", rows[4]);
    assert!(
        rows[7].starts_with("| uniter-mix-sampled | mrc_kl |"),
        "{}",
        rows[7]
    );

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = results.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let mrfr = &runs[0]["trained"]["mrfr"];
    // MRFR's metric is its loss, the mean squared error.
    assert_eq!(mrfr["loss"], mrfr["metric"]);
    assert!(runs[0]["retrieval"].is_null());
    assert_eq!(runs[1]["retrieval"]["candidates"], 100);
    assert_eq!(runs[1]["retrieval"]["ranked_by"], "matching");
    for name in ["itm", "mlm", "wra"] {
        assert!(runs[1]["init"][name]["loss"].as_f64().unwrap().is_finite());
    }
    std::fs::remove_file(&json).unwrap();

    let bad = xtask(&["ablate", "--runs", "mlm+fly"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unknown run \"mlm+fly\""), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
