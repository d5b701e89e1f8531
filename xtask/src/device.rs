//! Backend selection: which Burn backends this build has, parsing `--device`,
//! and the single generic entry point every command goes through.

use std::fmt;

use burn::tensor::backend::{AutodiffBackend, Device, DeviceId};

/// A backend and device chosen with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Burn's `ndarray` CPU backend.
    NdArray,
    /// Burn's `flex` pure-Rust CPU backend.
    Flex,
    /// WGPU (Vulkan, Metal, DX12); `None` lets wgpu pick the best adapter.
    Wgpu(Option<usize>),
    /// CUDA device number N.
    Cuda(usize),
}

/// The backends compiled into this build, in the order `--device` lists them.
pub fn compiled_backends() -> Vec<&'static str> {
    let compiled = [
        ("ndarray", cfg!(feature = "ndarray")),
        ("flex", cfg!(feature = "flex")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
    ];
    compiled
        .into_iter()
        .filter(|&(_, on)| on)
        .map(|(name, _)| name)
        .collect()
}

/// The device used when `--device` is not given: the first compiled-in CPU
/// backend (flex, then ndarray), else the first compiled-in one.
pub fn default_device() -> Option<DeviceSpec> {
    let names = compiled_backends();
    ["flex", "ndarray"]
        .into_iter()
        .find(|name| names.contains(name))
        .or_else(|| names.first().copied())
        .map(|name| DeviceSpec::parse(name).expect("compiled-in names parse"))
}

/// `device`, or the default one; an error when this build has no backend.
pub fn chosen(device: Option<DeviceSpec>) -> Result<DeviceSpec, crate::UsageError> {
    device.or_else(default_device).ok_or_else(|| {
        crate::UsageError(
            "this build has no backend; enable one of the features ndarray, flex, wgpu, cuda"
                .into(),
        )
    })
}

impl DeviceSpec {
    /// Parses `ndarray`, `flex`, `wgpu[:N]` or `cuda[:N]`, and checks that the
    /// backend is compiled into this build.
    pub fn parse(text: &str) -> Result<DeviceSpec, String> {
        let (name, index) = match text.split_once(':') {
            Some((name, index)) => {
                let index = index.parse::<usize>().map_err(|_| {
                    format!("invalid device index in '{text}': expected a number after ':'")
                })?;
                (name, Some(index))
            }
            None => (text, None),
        };
        let spec = match (name, index) {
            ("ndarray", None) => DeviceSpec::NdArray,
            ("flex", None) => DeviceSpec::Flex,
            ("wgpu", index) => DeviceSpec::Wgpu(index),
            ("cuda", index) => DeviceSpec::Cuda(index.unwrap_or(0)),
            ("ndarray" | "flex", Some(_)) => {
                return Err(format!("device '{name}' takes no index (got '{text}')"))
            }
            _ => {
                return Err(format!(
                    "unknown device '{text}'; this build has: {}",
                    compiled_backends().join(", ")
                ))
            }
        };
        if !compiled_backends().contains(&spec.backend_name()) {
            return Err(format!(
                "device '{text}' is not compiled into this build (it has: {}); rebuild with `--features {}`",
                compiled_backends().join(", "),
                spec.backend_name()
            ));
        }
        Ok(spec)
    }

    /// `device`'s backend's device with this spec's index (`cuda:1`, `wgpu:1`),
    /// or `device` itself for a spec without one: the further devices of a
    /// data-parallel run, whose first device `dispatch` made.
    pub fn device_like<B: AutodiffBackend>(&self, device: &B::Device) -> B::Device {
        let index = match self {
            DeviceSpec::Wgpu(index) => *index,
            DeviceSpec::Cuda(index) => Some(*index),
            _ => None,
        };
        match index {
            Some(index) => B::Device::from_id(DeviceId {
                type_id: device.to_id().type_id,
                index_id: index as u16,
            }),
            None => device.clone(),
        }
    }

    /// The cargo feature / backend name.
    pub fn backend_name(&self) -> &'static str {
        match self {
            DeviceSpec::NdArray => "ndarray",
            DeviceSpec::Flex => "flex",
            DeviceSpec::Wgpu(_) => "wgpu",
            DeviceSpec::Cuda(_) => "cuda",
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Wgpu(Some(index)) => write!(f, "wgpu:{index}"),
            DeviceSpec::Cuda(index) => write!(f, "cuda:{index}"),
            _ => f.write_str(self.backend_name()),
        }
    }
}

/// Work that runs on any autodiff backend: implement it once, generically,
/// and [`dispatch`] monomorphises it for each compiled-in backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs the job on backend `B`'s `device`.
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on the backend and device `spec` names; an error when that
/// backend is not compiled into this build.
pub fn dispatch<J: BackendJob>(spec: DeviceSpec, job: J) -> Result<J::Output, String> {
    Ok(match spec {
        #[cfg(feature = "ndarray")]
        DeviceSpec::NdArray => {
            job.run::<burn::backend::Autodiff<burn::backend::NdArray>>(Default::default())
        }
        #[cfg(feature = "flex")]
        DeviceSpec::Flex => {
            job.run::<burn::backend::Autodiff<burn::backend::Flex>>(Default::default())
        }
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu(index) => {
            use burn::backend::wgpu::WgpuDevice;
            let device = index.map_or(WgpuDevice::DefaultDevice, WgpuDevice::DiscreteGpu);
            job.run::<burn::backend::Autodiff<burn::backend::Wgpu>>(device)
        }
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(index) => job.run::<burn::backend::Autodiff<burn::backend::Cuda>>(
            burn::backend::cuda::CudaDevice::new(index),
        ),
        #[allow(unreachable_patterns)]
        other => {
            return Err(format!(
                "device '{other}' is not compiled into this build (it has: {})",
                compiled_backends().join(", ")
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compiled_in_devices_and_refuses_bad_indices() {
        assert_eq!(DeviceSpec::parse("ndarray"), Ok(DeviceSpec::NdArray));
        assert_eq!(DeviceSpec::parse("flex"), Ok(DeviceSpec::Flex));
        assert!(DeviceSpec::parse("flex:1").is_err());
        assert!(DeviceSpec::parse("cuda:x").unwrap_err().contains("index"));
    }
}
