//! The float type a run trains in (survey §5: large-scale pre-training runs
//! in half precision). Burn 0.21 has no autocast: a run's precision is the
//! backend's default float type on its device, so parameters, activations,
//! gradients and AdamW's moments all take it. `bf16` keeps f32's exponent
//! range, so it trains without loss scaling and is the safe half precision
//! on GPUs; `f16` underflows small gradients and AdamW's ε and is for
//! inference or for users who know their model's range.

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;
use burn::tensor::{get_device_settings, set_default_dtypes, DType, Element, FloatDType};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// A run's float type (`precision` in the config, `--precision` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (default; every backend).
    #[default]
    F32,
    /// IEEE half precision (Flex on CPU; CUDA; WGPU where the adapter has
    /// `shader-f16`).
    F16,
    /// bfloat16 (Flex on CPU; CUDA on Ampere and later).
    Bf16,
}

impl Precision {
    /// Every precision, in the order the flag lists them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    /// The flag's and the config's name: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Burn's float type for this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// The precisions backend `B` computes in on `device`.
    pub fn supported<B: Backend>(device: &B::Device) -> Vec<Precision> {
        Precision::ALL
            .into_iter()
            .filter(|p| B::supports_dtype(device, DType::from(p.dtype())))
            .collect()
    }

    /// Makes this precision `device`'s default float type, so that every
    /// float tensor created on it from now on (parameters, data, optimiser
    /// state) takes it. Call it before the first tensor on the device:
    /// Burn fixes a device's float type at its first tensor, so a device
    /// already computing in another type is an error, as is a type the
    /// backend does not support; both name the key `precision`.
    pub fn apply<B: Backend>(self, device: &B::Device) -> Result<(), ConfigError> {
        let supported = Self::supported::<B>(device);
        if !supported.contains(&self) {
            let names: Vec<&str> = supported.iter().map(|p| p.name()).collect();
            return Err(ConfigError::invalid(
                "precision",
                format!(
                    "precision {self} is not supported by {} on {device:?} (it has: {})",
                    B::name(device),
                    names.join(", ")
                ),
            ));
        }
        let int = <B::IntElem as Element>::dtype();
        if set_default_dtypes::<B>(device, self.dtype(), int).is_err() {
            // Already fixed: fine when it is this precision.
            let current = get_device_settings::<B>(device).float_dtype;
            if current != self.dtype() {
                return Err(ConfigError::invalid(
                    "precision",
                    format!(
                        "precision {self}: {device:?} already computes in {current:?} in this \
                         process (a device's float type is fixed at its first tensor)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| format!("unknown precision '{text}': expected f32, f16 or bf16"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Flex, NdArray};

    #[test]
    fn names_parse_back_and_unknown_ones_are_refused() {
        for precision in Precision::ALL {
            assert_eq!(precision.name().parse::<Precision>(), Ok(precision));
        }
        assert!("fp8".parse::<Precision>().unwrap_err().contains("bf16"));
    }

    /// Flex computes in all three; NdArray in f32 only, and asking it for
    /// half precision names the key and what it has. (Setting a device's
    /// type is once per process, so runs in f16 and bf16 are tested as
    /// separate `cargo xtask pretrain` processes in xtask's CLI tests.)
    #[test]
    fn the_cpu_backends_support_what_they_compute_in() {
        assert_eq!(
            Precision::supported::<Flex>(&Default::default()),
            Precision::ALL
        );
        assert_eq!(
            Precision::supported::<NdArray>(&Default::default()),
            [Precision::F32]
        );
        let err = Precision::Bf16
            .apply::<NdArray>(&Default::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("precision") && err.contains("bf16") && err.contains("f32"),
            "{err}"
        );
        // f32 on a device already in use is fine: it is the default.
        let _ = burn::tensor::Tensor::<NdArray, 1>::zeros([1], &Default::default());
        Precision::F32
            .apply::<NdArray>(&Default::default())
            .unwrap();
    }
}
