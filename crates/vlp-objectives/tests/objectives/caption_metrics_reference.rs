//! Captioning metrics against pycocoevalcap (`gen_caption_metrics.py`) and
//! NLTK's `corpus_bleu` (`gen_objectives.py`).

use serde_json::Value;
use vlp_objectives::{cider_d, corpus_bleu};
use vlp_test_support::fixtures::f64s;

type Corpus = (Vec<Vec<String>>, Vec<Vec<Vec<String>>>);

fn words(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn captions(value: &Value) -> Vec<Vec<String>> {
    value.as_array().unwrap().iter().map(words).collect()
}

fn max_difference(got: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(expected)
        .map(|(g, e)| (g - e).abs())
        .fold(0.0, f64::max)
}

#[test]
fn bleu_and_cider_d_match_pycocoevalcap() {
    let f = vlp_test_support::fixture!("caption_metrics.json");
    for corpus in f["corpora"].as_array().unwrap() {
        let (candidates, references): Corpus = corpus["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (words(&e["candidate"]), captions(&e["references"])))
            .unzip();
        let bleu = corpus_bleu(&candidates, &references).unwrap();
        let diff = max_difference(&bleu, &f64s(&corpus["bleu"]));
        assert!(diff < 1e-6, "BLEU-1..4 {bleu:?} vs {}", corpus["bleu"]);
        let cider = cider_d(&candidates, &references).unwrap();
        let expected = corpus["cider"].as_f64().unwrap();
        assert!(
            (cider.corpus - expected).abs() < 1e-6,
            "CIDEr-D {}",
            cider.corpus
        );
        let per = f64s(&corpus["cider_per_candidate"]);
        let diff = max_difference(&cider.per_candidate, &per);
        assert!(diff < 1e-6, "{:?} vs {per:?}", cider.per_candidate);
    }
    let one = vec!["a".to_string()];
    assert!(corpus_bleu(std::slice::from_ref(&one), &[]).is_err());
    assert!(cider_d(&[one], &[vec![]]).is_err());
}

/// NLTK differs from pycocoevalcap by the latter's 1e-15 and 1e-9 terms
/// (without a match of some order NLTK gives ~1e-77, pycocoevalcap a small
/// positive value) and by counting at least one n-gram of each order per
/// candidate (pycocoevalcap: none when the candidate is shorter than n);
/// they agree when every order matches and every candidate has 4 words.
#[test]
fn bleu4_matches_nltk_corpus_bleu_where_every_order_matches() {
    let f = vlp_test_support::fixture!("objectives/caption.json");
    let mut compared = 0;
    for case in f["bleu"].as_array().unwrap() {
        let candidates = captions(&case["candidates"]);
        let references: Vec<Vec<Vec<String>>> = case["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(captions)
            .collect();
        let got = corpus_bleu(&candidates, &references).unwrap()[3];
        let expected = case["bleu"].as_f64().unwrap();
        let long = candidates.iter().all(|c| c.len() >= 4);
        if expected > 1e-6 && long {
            assert!((got - expected).abs() < 1e-6, "got {got}, nltk {expected}");
            compared += 1;
        } else if !long {
            assert!(got > expected, "got {got}, nltk {expected}");
        } else {
            assert!(got < 1e-3, "got {got}, nltk {expected}");
        }
    }
    assert_eq!(compared, 2);
}
