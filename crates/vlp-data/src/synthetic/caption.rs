//! Captions: several phrasings that all state the same facts about a scene.

use super::scene::{Scene, SceneObject};

/// How many distinct phrasings [`caption`] offers for every scene.
pub const NUM_PHRASINGS: usize = 4;

fn a(object: &SceneObject) -> String {
    format!("a {}", object.phrase())
}

fn the(object: &SceneObject) -> String {
    format!("the {}", object.phrase())
}

/// Caption number `phrasing` (taken modulo [`NUM_PHRASINGS`]) of `scene`.
/// Every phrasing mentions every object with its attributes and each stated
/// relation, so all of them carry the scene's [`Scene::description_key`].
pub fn caption(scene: &Scene, phrasing: usize) -> String {
    let o = &scene.objects;
    let r = &scene.relations;
    let phrasing = phrasing % NUM_PHRASINGS;
    match (o.len(), phrasing) {
        (1, 0) => a(&o[0]),
        (1, 1) => format!("there is {}", a(&o[0])),
        (1, 2) => format!("a picture of {}", a(&o[0])),
        (1, _) => format!("the image shows {} on a dark background", a(&o[0])),
        (2, 0) => format!("{} {} {}", a(&o[0]), r[0].phrase(), a(&o[1])),
        (2, 1) => format!("{} {} {}", a(&o[1]), r[0].inverse().phrase(), a(&o[0])),
        (2, 2) => format!("there is {} {} {}", a(&o[0]), r[0].phrase(), a(&o[1])),
        (2, _) => format!(
            "the image shows {} and {} , {} is {} {}",
            a(&o[0]),
            a(&o[1]),
            the(&o[0]),
            r[0].phrase(),
            the(&o[1])
        ),
        (_, 0) => format!(
            "{} {} {} , which is {} {}",
            a(&o[0]),
            r[0].phrase(),
            a(&o[1]),
            r[1].phrase(),
            a(&o[2])
        ),
        (_, 1) => format!(
            "{} {} {} , which is {} {}",
            a(&o[2]),
            r[1].inverse().phrase(),
            a(&o[1]),
            r[0].inverse().phrase(),
            a(&o[0])
        ),
        (_, 2) => format!(
            "there is {} {} {} and {} is {} {}",
            a(&o[0]),
            r[0].phrase(),
            a(&o[1]),
            the(&o[1]),
            r[1].phrase(),
            a(&o[2])
        ),
        (_, _) => format!(
            "{} is {} {} and {} {}",
            the(&o[1]),
            r[0].inverse().phrase(),
            the(&o[0]),
            r[1].phrase(),
            a(&o[2])
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::scene::{Relation, COLOURS, SHAPES, SIZES};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_phrasing_mentions_every_object_and_relation() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..200 {
            let scene = Scene::sample(&mut rng, 64);
            for phrasing in 0..NUM_PHRASINGS {
                let text = caption(&scene, phrasing);
                for object in &scene.objects {
                    assert!(text.contains(&object.phrase()), "{text}");
                }
                for relation in &scene.relations {
                    assert!(
                        text.contains(relation.phrase())
                            || text.contains(relation.inverse().phrase()),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn phrasings_differ() {
        let object = |colour, shape, x| crate::synthetic::scene::SceneObject {
            colour,
            shape,
            size: 0,
            centre: (x, 10.0),
            radius: 3.0,
        };
        let scene = Scene {
            image_size: 64,
            objects: vec![object(0, 0, 10.0), object(2, 1, 40.0)],
            relations: vec![Relation::LeftOf],
        };
        let texts: Vec<String> = (0..NUM_PHRASINGS).map(|p| caption(&scene, p)).collect();
        assert_eq!(
            texts[0],
            "a small red circle to the left of a small blue square"
        );
        assert_eq!(
            texts[1],
            "a small blue square to the right of a small red circle"
        );
        let unique: std::collections::HashSet<_> = texts.iter().collect();
        assert_eq!(unique.len(), NUM_PHRASINGS);
        assert!(COLOURS.len() >= 8 && SHAPES.len() >= 5 && SIZES.len() >= 2);
    }
}
