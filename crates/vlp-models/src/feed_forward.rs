//! Position-wise feed-forward block: `dense → activation → dense` (BERT's
//! `intermediate.dense` and `output.dense`, CLIP's `mlp.fc1` and `mlp.fc2`).

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid};

/// The non-linearity between the two dense layers.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x Φ(x)` (BERT's and ViT's `"gelu"`).
    Gelu,
    /// `x σ(1.702 x)`, the sigmoid approximation of GELU OpenAI's CLIP was
    /// trained with (`"quick_gelu"`).
    QuickGelu,
}

impl Activation {
    /// The activation a Hugging Face config names in `hidden_act`, if supported.
    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "quick_gelu" => Some(Self::QuickGelu),
            _ => None,
        }
    }

    /// The activation, elementwise.
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Gelu => gelu(x),
            Self::QuickGelu => x.clone() * sigmoid(x * 1.702),
        }
    }
}

/// Configuration of [`FeedForward`].
#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    /// Input and output width.
    pub hidden_size: usize,
    /// Width of the inner layer (4 × hidden in BERT and ViT).
    pub intermediate_size: usize,
    /// Dropout on the output.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Non-linearity between the dense layers.
    #[config(default = "Activation::Gelu")]
    pub activation: Activation,
}

/// `[.., H] → [.., I] → activation → [.., H] → dropout`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// `[H, I]` (`intermediate.dense`, `mlp.fc1`).
    pub intermediate: Linear<B>,
    /// `[I, H]` (`output.dense`, `mlp.fc2`).
    pub output: Linear<B>,
    /// Dropout on the output.
    pub dropout: Dropout,
    /// Non-linearity between the dense layers.
    pub activation: Activation,
}

impl FeedForwardConfig {
    /// The block: inner dense, then outer dense.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FeedForward<B> {
        FeedForward {
            intermediate: LinearConfig::new(self.hidden_size, self.intermediate_size).init(device),
            output: LinearConfig::new(self.intermediate_size, self.hidden_size).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            activation: self.activation,
        }
    }
}

impl<B: Backend> FeedForward<B> {
    /// `[.., H]` → `[.., H]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let inner = self.activation.forward(self.intermediate.forward(x));
        self.dropout.forward(self.output.forward(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{TensorData, Tolerance};

    #[test]
    fn activations_match_their_formulas() {
        let xs = [-3.0f32, -1.0, -0.25, 0.0, 0.5, 2.0];
        let x = Tensor::<NdArray, 1>::from_floats(xs, &Default::default());
        // Φ(x) = (1 + erf(x / √2)) / 2, with erf(x / √2) = P(|Z| < |x|) from a normal table.
        let erf = [
            -0.997_300_2f32,
            -0.682_689_5,
            -0.197_412_7,
            0.0,
            0.382_924_9,
            0.954_499_7,
        ];
        let gelu: Vec<f32> = xs
            .iter()
            .zip(erf)
            .map(|(x, e)| x * (1.0 + e) / 2.0)
            .collect();
        let quick: Vec<f32> = xs.iter().map(|x| x / (1.0 + (-1.702 * x).exp())).collect();
        Activation::Gelu
            .forward(x.clone())
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::from(gelu.as_slice()),
                Tolerance::absolute(1e-5),
            );
        Activation::QuickGelu
            .forward(x)
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::from(quick.as_slice()),
                Tolerance::absolute(1e-6),
            );
    }
}
