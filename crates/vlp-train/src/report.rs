//! `report.html`: one page per run folder that gathers what survey §6
//! measures a pre-trained model by — the loss curves, the held-out metrics,
//! retrieval examples (a caption and the five images ranked first for it),
//! caption and answer examples — from the run's own files (`config.toml`,
//! `metrics.jsonl`, `curves.png`, `eval.json`) and the thumbnails its
//! evaluation writes into `report/`. A static page without scripts: it
//! opens from the file system, with every image beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vlp_data::synthetic::RgbImage;
use vlp_data::vqa_accuracy::VqaAccuracy;
use vlp_data::HostVisual;

use crate::checkpoint::{
    read_metrics, write_atomic, CONFIG_FILE, CURVES_FILE, EVAL_FILE, METRICS_FILE,
};
use crate::error::{Result, TrainError};
use crate::eval::{Captioning, HeldOutObjectives, Retrieval};
use crate::finetune::vqa::AnswerExample;

/// The page.
pub const REPORT_FILE: &str = "report.html";
/// The folder of its thumbnails.
pub const THUMBNAIL_DIR: &str = "report";

/// What `eval.json` may hold: a pre-training run's report or a VQA
/// fine-tuning's.
#[derive(Debug, Default, Deserialize)]
struct Measured {
    #[serde(default)]
    retrieval: Option<Retrieval>,
    #[serde(default)]
    captioning: Option<Captioning>,
    #[serde(default)]
    objectives: Option<HeldOutObjectives>,
    #[serde(default)]
    vqa: Option<VqaAccuracy>,
    #[serde(default)]
    examples: Vec<AnswerExample>,
}

/// The thumbnail of held-out pair `index`, relative to the run folder.
pub fn held_out_thumbnail(index: usize) -> String {
    format!("{THUMBNAIL_DIR}/heldout-{index}.png")
}

/// The thumbnail of answer example `index`, relative to the run folder.
pub fn answer_thumbnail(index: usize) -> String {
    format!("{THUMBNAIL_DIR}/answer-{index}.png")
}

/// The held-out pairs the page shows: every retrieval example's query
/// image and top images, and the captioned images (captioning's examples
/// are its first held-out images).
pub fn shown_pairs(
    retrieval: Option<&Retrieval>,
    captioning: Option<&Captioning>,
) -> BTreeSet<usize> {
    let mut shown = BTreeSet::new();
    for example in retrieval.iter().flat_map(|r| &r.examples) {
        shown.insert(example.image);
        shown.extend(example.top.iter().map(|&(image, _)| image));
    }
    shown.extend(captioning.map_or(0..0, |c| 0..c.examples.len()));
    shown
}

/// Writes `image` as the PNG `relative` (to `run`), creating its folder.
pub fn write_thumbnail(run: &Path, relative: &str, image: &RgbImage) -> Result<()> {
    let path = run.join(relative);
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|err| TrainError::file(folder, err))?;
    }
    image::save_buffer(
        &path,
        &image.pixels,
        image.width as u32,
        image.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|err| TrainError::file(&path, format!("cannot write the thumbnail: {err}")))
}

/// Writes the thumbnails of the held-out pairs `shown` from their images
/// `visual` (as [`vlp_data::PretrainBatcher::held_out_pairs`] gives them);
/// models on detector regions have no pixels, and their page shows
/// captions only.
pub fn write_held_out_thumbnails(
    run: &Path,
    visual: &HostVisual,
    shown: &BTreeSet<usize>,
) -> Result<()> {
    if let HostVisual::Images(images) = visual {
        for &index in shown {
            if let Some(image) = images.get(index) {
                write_thumbnail(run, &held_out_thumbnail(index), image)?;
            }
        }
    }
    Ok(())
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An `<img>` of `relative` when that file exists in `run`, else the
/// placeholder text.
fn thumbnail(run: &Path, relative: &str, title: &str, class: &str) -> String {
    if run.join(relative).is_file() {
        format!(
            r#"<img class="{class}" src="{relative}" alt="{0}" title="{0}">"#,
            escape(title)
        )
    } else {
        format!(r#"<span class="{class} none">{}</span>"#, escape(title))
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}\
th:first-child,td:first-child{text-align:left}img.thumb{width:96px;height:96px;image-rendering:pixelated;\
border:3px solid #ddd;margin:2px}img.hit{border-color:#2a2}figure{display:inline-block;margin:0 4px;\
text-align:center;font-size:80%}.none{display:inline-block;width:96px;color:#888}pre{background:#f6f6f6;padding:1em}";

/// Writes `run/report.html` from the run folder's files and returns its
/// path. Sections whose file is missing are left out; an unreadable
/// `eval.json` or `metrics.jsonl` is an error naming it.
pub fn write_report(run: &Path) -> Result<PathBuf> {
    let name = run
        .file_name()
        .map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into());
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>vlp run {0}</title><style>{STYLE}</style></head><body>\n<h1>vlp run {0}</h1>\n",
        escape(&name)
    );
    let metrics = run.join(METRICS_FILE);
    if metrics.is_file() {
        let records = read_metrics(&metrics)?;
        html += "<h2>Training</h2>\n";
        if run.join(CURVES_FILE).is_file() {
            let _ = writeln!(
                html,
                r#"<img src="{CURVES_FILE}" alt="loss curves" width="900">"#
            );
        }
        if let Some(last) = records.last() {
            let mut rows = vec![("loss".to_string(), last.loss)];
            rows.extend(last.objectives.iter().map(|(k, v)| (k.clone(), *v)));
            let _ = write!(
                html,
                "<p>Step {} after {:.0} s ({:.1} samples/s, learning rate {:.2e}).</p>\n<table>",
                last.step, last.elapsed_seconds, last.samples_per_second, last.learning_rate
            );
            for (key, value) in rows {
                row(&mut html, &[escape(&key), format!("{value:.4}")]);
            }
            html += "</table>\n";
        }
    }
    let eval = run.join(EVAL_FILE);
    if eval.is_file() {
        let text = std::fs::read_to_string(&eval).map_err(|err| TrainError::file(&eval, err))?;
        let measured: Measured = serde_json::from_str(&text)
            .map_err(|err| TrainError::file(&eval, format!("not a run's report: {err}")))?;
        html += &held_out(run, &measured);
    }
    let config = run.join(CONFIG_FILE);
    if let Ok(text) = std::fs::read_to_string(&config) {
        let _ = write!(
            html,
            "<h2>Configuration</h2>\n<details><summary>{CONFIG_FILE}</summary><pre>{}</pre></details>\n",
            escape(&text)
        );
    }
    html += "</body></html>\n";
    let path = run.join(REPORT_FILE);
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// One table row of `cells`, already escaped.
fn row(html: &mut String, cells: &[String]) {
    html.push_str("<tr>");
    for cell in cells {
        let _ = write!(html, "<td>{cell}</td>");
    }
    html.push_str("</tr>");
}

/// The held-out sections of the page.
fn held_out(run: &Path, measured: &Measured) -> String {
    let mut html = String::from("<h2>Held-out evaluation</h2>\n");
    if let Some(r) = &measured.retrieval {
        let _ = write!(
            html,
            "<h3>Retrieval</h3><p>Over {} images and {} captions, ranked by {}.</p>\n\
             <table><tr><th></th><th>R@1</th><th>R@5</th><th>R@10</th></tr>",
            r.candidates,
            r.captions.max(r.candidates),
            escape(&r.ranked_by)
        );
        for (direction, recall) in [("text → image", &r.t2i), ("image → text", &r.i2t)] {
            let [r1, r5, r10] = [recall.r1, recall.r5, recall.r10].map(|r| format!("{r:.3}"));
            row(&mut html, &[direction.to_string(), r1, r5, r10]);
        }
        html += "</table>\n";
        for example in &r.examples {
            let _ = write!(html, "<p>“{}”<br>", escape(&example.query));
            for (rank, &(image, score)) in example.top.iter().enumerate() {
                let class = if image == example.image {
                    "thumb hit"
                } else {
                    "thumb"
                };
                let title = format!("held-out image {image}");
                let _ = write!(
                    html,
                    "<figure>{}<figcaption>#{} {score:.3}</figcaption></figure>",
                    thumbnail(run, &held_out_thumbnail(image), &title, class),
                    rank + 1
                );
            }
            html += "</p>\n";
        }
    }
    if let Some(c) = &measured.captioning {
        let _ = write!(
            html,
            "<h3>Captioning</h3><p>{} images, beam {}.</p>\n<table>\
             <tr><th>BLEU-1</th><th>BLEU-2</th><th>BLEU-3</th><th>BLEU-4</th><th>CIDEr-D</th><th>exact</th></tr>\
             <tr><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr></table>\n",
            c.images, c.beam_size, c.bleu1, c.bleu2, c.bleu3, c.bleu4, c.cider, c.exact_match
        );
        for (index, example) in c.examples.iter().enumerate() {
            let _ = writeln!(
                html,
                "<p>{} “{}” <small>(reference: “{}”)</small></p>",
                thumbnail(run, &held_out_thumbnail(index), "held-out image", "thumb"),
                escape(&example.generated),
                escape(&example.reference)
            );
        }
    }
    if let Some(v) = &measured.vqa {
        let _ = write!(
            html,
            "<h3>Visual question answering</h3><p>{} questions.</p>\n<table>\
             <tr><td>accuracy</td><td>{:.2}%</td></tr>",
            v.questions, v.accuracy
        );
        for (kind, accuracy) in &v.per_answer_type {
            row(&mut html, &[escape(kind), format!("{accuracy:.2}%")]);
        }
        html += "</table>\n";
        for (index, example) in measured.examples.iter().enumerate() {
            let _ = writeln!(
                html,
                "<p>{} {} → <b>{}</b> <small>(majority answer “{}”, score {:.2})</small></p>",
                thumbnail(run, &answer_thumbnail(index), &example.image, "thumb"),
                escape(&example.question),
                escape(&example.predicted),
                escape(&example.answer),
                example.score
            );
        }
    }
    if let Some(objectives) = &measured.objectives {
        html +=
            "<h3>Objectives</h3>\n<table><tr><th>objective</th><th>loss</th><th>metric</th></tr>";
        let sorted: BTreeMap<_, _> = objectives.iter().collect();
        for (name, score) in sorted {
            let metric = format!("{} {:.4}", escape(&score.metric_name), score.metric);
            row(
                &mut html,
                &[escape(name), format!("{:.4}", score.loss), metric],
            );
        }
        html += "</table>\n";
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::eval::{Recall, RetrievalExample};

    fn recall() -> Recall {
        Recall {
            r1: 0.5,
            r5: 1.0,
            r10: 1.0,
        }
    }

    /// The page shows every example with its thumbnails, escapes text and
    /// leaves out what the run folder lacks.
    #[test]
    fn the_page_links_the_thumbnails_it_wrote() {
        let run = std::env::temp_dir().join(format!("vlp-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).unwrap();
        let retrieval = Retrieval {
            t2i: recall(),
            i2t: recall(),
            candidates: 3,
            captions: 3,
            ranked_by: "embeddings".into(),
            examples: vec![RetrievalExample {
                query: "a <red> circle".into(),
                image: 1,
                top: vec![(2, 0.9), (1, 0.5), (0, 0.1)],
            }],
            t2i_frames_reversed: None,
        };
        let shown = shown_pairs(Some(&retrieval), None);
        assert_eq!(shown, BTreeSet::from([0, 1, 2]));
        let images: Vec<RgbImage> = (0..3u8)
            .map(|i| RgbImage {
                width: 2,
                height: 2,
                pixels: vec![i * 80; 12],
            })
            .collect();
        write_held_out_thumbnails(&run, &HostVisual::Images(images), &shown).unwrap();
        let written = image::open(run.join(held_out_thumbnail(2)))
            .unwrap()
            .to_rgb8();
        assert_eq!(written.get_pixel(1, 1).0, [160; 3]);
        let eval = serde_json::json!({ "retrieval": retrieval });
        std::fs::write(run.join(EVAL_FILE), eval.to_string()).unwrap();

        let page = std::fs::read_to_string(write_report(&run).unwrap()).unwrap();
        assert!(page.contains("a &lt;red&gt; circle"));
        for index in 0..3 {
            assert!(page.contains(&format!("src=\"{}\"", held_out_thumbnail(index))));
        }
        assert!(page.contains(r#"class="thumb hit" src="report/heldout-1.png""#));
        assert!(!page.contains(CURVES_FILE), "no curves were drawn");
        std::fs::remove_dir_all(&run).unwrap();
    }
}
