//! Image-text matching (survey §4.4): a 2-way classifier on the pooled fused
//! `[CLS]` decides whether the text describes the image.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::loss::cross_entropy;

#[derive(Config, Debug)]
pub struct ItmHeadConfig {
    pub hidden_size: usize,
}

/// `[B, H]` pooled → `[B, 2]` logits (class 1 = match).
#[derive(Module, Debug)]
pub struct ItmHead<B: Backend> {
    pub classifier: Linear<B>,
}

impl ItmHeadConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ItmHead<B> {
        ItmHead {
            classifier: LinearConfig::new(self.hidden_size, 2).init(device),
        }
    }
}

impl<B: Backend> ItmHead<B> {
    pub fn forward(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        self.classifier.forward(pooled)
    }
}

/// ITM loss: cross-entropy of the match logits against `labels` `[B]` (1 = match).
pub fn itm_loss<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    cross_entropy(logits, labels)
}
