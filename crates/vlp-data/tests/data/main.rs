//! The integration tests of vlp-data, in one binary: region-feature readers
//! against NumPy's files (`region_readers`) and the VQA accuracy against
//! the official evaluation (`vqa_accuracy_reference`).

mod region_readers;
mod vqa_accuracy_reference;
