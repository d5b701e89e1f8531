//! Visual questions with answers about a scene: colour, shape, count,
//! existence and relation.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::scene::{Scene, SceneObject, COLOURS, SHAPES, SIZES};

/// What a question asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// The colour of an object.
    Colour,
    /// The shape of an object.
    Shape,
    /// How many objects of a kind there are.
    Count,
    /// Whether an object is there.
    Existence,
    /// How two objects lie relative to each other.
    Relation,
}

/// A question and its single correct answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VqaItem {
    /// What the question asks about.
    pub kind: QuestionKind,
    /// The question text.
    pub question: String,
    /// The answer (one word of the answer vocabulary).
    pub answer: String,
}

const COUNT_WORDS: [&str; 4] = ["zero", "one", "two", "three"];

/// The fixed answer vocabulary of the world's questions.
pub fn answer_vocabulary() -> Vec<String> {
    let mut answers: Vec<String> = COLOURS.iter().map(|(name, _)| name.to_string()).collect();
    answers.extend(SHAPES.iter().map(|s| s.to_string()));
    answers.extend(COUNT_WORDS[1..].iter().map(|s| s.to_string()));
    answers.extend(["yes".to_string(), "no".to_string()]);
    answers
}

/// One question of each kind about `scene`; objects are named by attributes
/// that single them out (no question is ambiguous).
pub fn questions(scene: &Scene, rng: &mut ChaCha8Rng) -> Vec<VqaItem> {
    let objects = &scene.objects;
    let pick = &objects[rng.random_range(0..objects.len())];
    let mut items = Vec::with_capacity(5);

    let same_size_shape = objects
        .iter()
        .filter(|o| o.size == pick.size && o.shape == pick.shape)
        .count();
    if same_size_shape == 1 {
        items.push(VqaItem {
            kind: QuestionKind::Colour,
            question: format!(
                "what colour is the {} {} ?",
                SIZES[pick.size].0, SHAPES[pick.shape]
            ),
            answer: COLOURS[pick.colour].0.to_string(),
        });
    }
    let same_size_colour = objects
        .iter()
        .filter(|o| o.size == pick.size && o.colour == pick.colour)
        .count();
    if same_size_colour == 1 {
        items.push(VqaItem {
            kind: QuestionKind::Shape,
            question: format!(
                "what shape is the {} {} object ?",
                SIZES[pick.size].0, COLOURS[pick.colour].0
            ),
            answer: SHAPES[pick.shape].to_string(),
        });
    }
    items.push(VqaItem {
        kind: QuestionKind::Count,
        question: "how many objects are there ?".to_string(),
        answer: COUNT_WORDS[objects.len()].to_string(),
    });

    let present = rng.random_bool(0.5);
    let asked = if present {
        *pick
    } else {
        loop {
            let candidate = SceneObject {
                colour: rng.random_range(0..COLOURS.len()),
                shape: rng.random_range(0..SHAPES.len()),
                size: rng.random_range(0..SIZES.len()),
                ..*pick
            };
            if objects.iter().all(|o| o.class_id() != candidate.class_id()) {
                break candidate;
            }
        }
    };
    items.push(VqaItem {
        kind: QuestionKind::Existence,
        question: format!("is there a {} ?", asked.phrase()),
        answer: if present { "yes" } else { "no" }.to_string(),
    });

    if let Some(i) =
        (!scene.relations.is_empty()).then(|| rng.random_range(0..scene.relations.len()))
    {
        let (a, b) = (&objects[i], &objects[i + 1]);
        if a.class_id() != b.class_id() {
            let truthful = rng.random_bool(0.5);
            let relation = if truthful {
                scene.relations[i]
            } else {
                scene.relations[i].inverse()
            };
            items.push(VqaItem {
                kind: QuestionKind::Relation,
                question: format!(
                    "is the {} {} the {} ?",
                    a.phrase(),
                    relation.phrase(),
                    b.phrase()
                ),
                answer: if truthful { "yes" } else { "no" }.to_string(),
            });
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn answers_are_in_the_vocabulary_and_true() {
        let vocabulary = answer_vocabulary();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..300 {
            let scene = Scene::sample(&mut rng, 64);
            for item in questions(&scene, &mut rng) {
                assert!(vocabulary.contains(&item.answer), "{item:?}");
                kinds.insert(item.kind);
                if item.kind == QuestionKind::Count {
                    assert_eq!(item.answer, COUNT_WORDS[scene.objects.len()]);
                }
                if item.kind == QuestionKind::Existence {
                    let asked = item
                        .question
                        .trim_start_matches("is there a ")
                        .trim_end_matches(" ?");
                    let present = scene.objects.iter().any(|o| o.phrase() == asked);
                    assert_eq!(item.answer == "yes", present, "{item:?}");
                }
            }
        }
        assert_eq!(kinds.len(), 5);
    }
}
