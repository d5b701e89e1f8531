//! The synthetic world as a [`SampleSource`]: scenes of one split with all
//! their phrasings and questions, images as rendered pixels.

use crate::synthetic::{caption, Split, SyntheticWorld, NUM_PHRASINGS};
use crate::DataError;

use super::{answer_type, normalize_answer, ImageRef, Sample, SampleSource, VqaQuestion};

/// Scenes `indices` of one split of a [`SyntheticWorld`]. Images are
/// [`ImageRef::Pixels`]: the renders as the batcher uses them, so a source
/// built on the world gives the same pixels (no encode/decode round trip,
/// no rounding, no cost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticSource {
    world: SyntheticWorld,
    split: Split,
    indices: Vec<usize>,
}

impl SyntheticSource {
    /// Scenes `0..len` of `split` (descriptions may repeat: a training set).
    pub fn new(world: SyntheticWorld, split: Split, len: usize) -> Self {
        Self {
            world,
            split,
            indices: (0..len).collect(),
        }
    }

    /// The first `len` scenes of `split` with pairwise distinct descriptions
    /// ([`SyntheticWorld::distinct_indices`]: an evaluation set).
    pub fn distinct(world: SyntheticWorld, split: Split, len: usize) -> Self {
        Self {
            world,
            split,
            indices: world.distinct_indices(split, len),
        }
    }

    /// The split.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The world's scene index of each sample.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The sample of the world's scene `index` (not a position of this
    /// source): key `split-index`, every phrasing as a caption, every
    /// question with ten agreeing humans (as the batcher scores them).
    pub fn scene_sample(&self, index: usize) -> Sample {
        let sample = self.world.sample(self.split, index);
        let key = format!("{}-{index}", split_name(self.split));
        let questions = self
            .world
            .questions(self.split, index)
            .into_iter()
            .enumerate()
            .map(|(q, item)| VqaQuestion {
                id: format!("{key}-{q}"),
                question: item.question,
                answers: vec![item.answer.clone(); 10],
                answer_type: Some(answer_type(&normalize_answer(&item.answer)).to_string()),
                answer: Some(item.answer),
            })
            .collect();
        Sample {
            captions: (0..NUM_PHRASINGS)
                .map(|p| caption(&sample.scene, p))
                .collect(),
            key,
            image: ImageRef::Pixels(sample.image),
            questions,
        }
    }
}

/// The split's name in file names and keys: `train`, `val`, `test`.
pub(crate) fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Val => "val",
        Split::Test => "test",
    }
}

impl SampleSource for SyntheticSource {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<Sample, DataError> {
        let &scene = self
            .indices
            .get(index)
            .ok_or_else(|| DataError::SampleIndex {
                origin: format!("the synthetic world's {} split", split_name(self.split)),
                index,
                len: self.indices.len(),
            })?;
        Ok(self.scene_sample(scene))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_the_worlds_scenes() {
        let world = SyntheticWorld::new(3, 32);
        let source = SyntheticSource::distinct(world, Split::Test, 3);
        let sample = source.get(1).unwrap();
        let index = source.indices()[1];
        let expected = world.sample(Split::Test, index);
        assert_eq!(sample.image, ImageRef::Pixels(expected.image));
        assert_eq!(sample.captions[2], caption(&expected.scene, 2));
        assert_eq!(sample.key, format!("test-{index}"));
        let questions = world.questions(Split::Test, index);
        assert_eq!(sample.questions.len(), questions.len());
        assert_eq!(sample.questions[0].answers[9], questions[0].answer);
        assert!(source.get(3).unwrap_err().to_string().contains("has 3"));
    }
}
