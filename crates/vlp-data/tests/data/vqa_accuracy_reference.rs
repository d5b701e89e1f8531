//! VQA accuracy against a reimplementation of the official `vqaEval.py`
//! (`tests/fixtures/gen_vqa_accuracy.py` writes `vqa_accuracy.json`).

use vlp_data::{vqa_accuracy, VqaAccuracy};
use vlp_test_support::fixture;

#[test]
fn vqa_accuracy_matches_the_official_evaluation() {
    let f = fixture!("vqa_accuracy.json");
    let mut scores = Vec::new();
    let mut max_difference = 0.0f64;
    for q in f["questions"].as_array().unwrap() {
        let humans: Vec<&str> = q["answers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let score = vqa_accuracy(q["prediction"].as_str().unwrap(), &humans);
        let expected = q["accuracy"].as_f64().unwrap();
        assert!(
            (f64::from(score) - expected).abs() < 1e-6,
            "question {}: {score} vs {expected}",
            q["question_id"]
        );
        max_difference = max_difference.max((f64::from(score) - expected).abs());
        scores.push((q["answer_type"].as_str().unwrap(), score));
    }
    // Percentages from f32 scores: compared as fractions, to 1e-6.
    let close = |got: f64, expected: f64| (got - expected).abs() / 100.0 < 1e-6;
    let accuracy = VqaAccuracy::from_scores(scores);
    assert_eq!(accuracy.questions, 13);
    let overall = f["overall"].as_f64().unwrap();
    assert!(close(accuracy.accuracy, overall), "{accuracy:?}");
    let expected = f["per_answer_type"].as_object().unwrap();
    assert_eq!(accuracy.per_answer_type.len(), expected.len());
    for (answer_type, value) in expected {
        let got = accuracy.per_answer_type[answer_type];
        assert!(close(got, value.as_f64().unwrap()), "{answer_type}: {got}");
    }
    println!("max per-question difference {max_difference:e}");
}

#[test]
fn no_question_is_zero_accuracy() {
    let accuracy = VqaAccuracy::from_scores(Vec::<(&str, f32)>::new());
    assert_eq!((accuracy.accuracy, accuracy.questions), (0.0, 0));
    assert!(accuracy.per_answer_type.is_empty());
}
