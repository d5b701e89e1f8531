//! A run's `report.html` as a reader meets it: opened in headless Chromium
//! (Debian's `chromium`, driven by `scripts/check_report.py` through
//! Playwright), it renders, every image loads and nothing goes wrong on
//! the console. `.ci/run` installs the browser and Playwright and sets
//! `VLP_BROWSER_TESTS=required`; elsewhere a machine without them skips the
//! check and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::explain::{COLUMNS, LABEL, TILE};

const CHROMIUM: &str = "/usr/bin/chromium";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_report.py")
}

/// Whether the browser and Playwright are here; with
/// `VLP_BROWSER_TESTS=required` (CI) they must be.
fn browser_available() -> bool {
    let playwright = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    let found = Path::new(CHROMIUM).is_file() && playwright;
    if !found {
        assert!(
            std::env::var("VLP_BROWSER_TESTS").as_deref() != Ok("required"),
            "VLP_BROWSER_TESTS=required, but {CHROMIUM} or Playwright's Python package \
             is missing (.ci/run installs both)"
        );
        eprintln!("skipped the report's browser check: no {CHROMIUM} or no Playwright (pip install playwright)");
    }
    found
}

/// Opens `page` in headless Chromium and asserts that it has `title` in its
/// title, no console error, failed request or uncaught exception, and
/// exactly `images` images, all loaded; returns their `src` attributes.
pub fn assert_renders(page: &Path, title: &str, images: usize) -> Vec<String> {
    assert!(page.is_file(), "{} missing", page.display());
    if !browser_available() {
        return Vec::new();
    }
    let output = Command::new("python3")
        .arg(script())
        .arg(page)
        .args(["--chromium", CHROMIUM])
        .output()
        .expect("python3 starts");
    assert!(output.status.success(), "{output:?}");
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(seen["title"].as_str().unwrap().contains(title), "{seen}");
    let shown = seen["images"].as_array().unwrap();
    assert_eq!(shown.len(), images, "{seen}");
    for image in shown {
        assert_eq!(image["loaded"], true, "{image}");
        assert!(image["width"].as_u64().unwrap() > 0, "{image}");
    }
    shown
        .iter()
        .map(|image| image["src"].as_str().unwrap().to_string())
        .collect()
}

/// `explain` of `image` with `caption` on the single-stream `run` (a
/// `grid` × `grid` patch model): the transport plan has IPOT's uniform
/// marginals, each word's attention over the patches is a distribution,
/// and both maps are drawn with one tile per word.
pub fn assert_explains(run: &Path, image: &Path, caption: &str, grid: usize, out: &Path) {
    let path = |p: &Path| p.display().to_string();
    let output = super::xtask(&[
        "explain",
        &path(run),
        &path(image),
        caption,
        "--out",
        &path(out),
        "--device",
        "ndarray",
    ]);
    assert!(output.status.success(), "{output:?}");
    let explained = super::read_json(&out.join("explain.json"));
    let words = explained["words"].as_array().unwrap().len();
    assert!(words > 0, "{explained}");
    assert_eq!(explained["grid"], grid);
    let matrix = |key: &str| -> Vec<f64> {
        let values: Vec<f64> = explained[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values.len(), words * grid * grid, "{key}");
        values
    };
    let patches = grid * grid;
    let plan = matrix("plan");
    for word in 0..words {
        let row: f64 = plan[word * patches..(word + 1) * patches].iter().sum();
        assert!(
            (row - 1.0 / words as f64).abs() < 1e-3,
            "plan row {word}: {row}"
        );
    }
    for patch in 0..patches {
        let column: f64 = (0..words).map(|w| plan[w * patches + patch]).sum();
        assert!(
            (column - 1.0 / patches as f64).abs() < 1e-3,
            "plan column {patch}: {column}"
        );
    }
    let attention = matrix("attention");
    for (word, row) in attention.chunks(patches).enumerate() {
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "attention row {word}: {sum}");
    }
    for share in explained["image_share"].as_array().unwrap() {
        let share = share.as_f64().unwrap();
        assert!(share > 0.0 && share < 1.0, "{explained}");
    }
    let columns = words.min(COLUMNS) as u32;
    let rows = words.div_ceil(COLUMNS) as u32;
    for name in ["ot_plan.png", "attention.png"] {
        let picture = image::open(out.join(name)).unwrap();
        assert_eq!(
            (picture.width(), picture.height()),
            (columns * TILE, LABEL + rows * (TILE + LABEL)),
            "{name}"
        );
    }
}
