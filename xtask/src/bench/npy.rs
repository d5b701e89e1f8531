//! A minimal `.npy` (NumPy format 1.0) writer: how the benches hand their
//! seeded inputs to the Python references.

use std::path::Path;

use anyhow::{Context, Result};

/// An element type [`write_npy`] can store.
pub(crate) trait NpyElement: Copy {
    /// numpy's `descr` of the little-endian type.
    const DESCR: &'static str;
    /// Appends the little-endian bytes of `self`.
    fn extend_le(self, bytes: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($($type:ty => $descr:literal),*) => {$(
        impl NpyElement for $type {
            const DESCR: &'static str = $descr;
            fn extend_le(self, bytes: &mut Vec<u8>) {
                bytes.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
npy_element!(f32 => "<f4", i64 => "<i8");

/// Writes `data` (row-major, `shape`) as a little-endian `.npy` file.
pub(crate) fn write_npy<T: NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = dims.join(", ");
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({dims},), }}",
        T::DESCR
    );
    // magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &v in data {
        v.extend_le(&mut bytes);
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
