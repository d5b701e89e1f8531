//! NumPy `.npy` arrays: floats (`float16`, `float32`, `float64`, either
//! byte order, C or Fortran order) read into `f32`, and `f32` / `i64`
//! arrays written (format 1.0, little-endian, C order: what `np.load`
//! reads; the NPZ export and the benchmarks' inputs for Python).
//!
//! A header parser of a few lines instead of `npyz`/`ndarray-npy`: both
//! parse the header with `py_literal`, whose `pest` and `num-bigint`
//! dependencies change feature sets shared with Burn and force a rebuild of
//! the Burn stack.

/// An array in C order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NpyArray {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a whole `.npy` file.
pub(crate) fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err("not an .npy array (bad magic)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let len = bytes.get(8..12).ok_or("truncated .npy header")?;
            (
                u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize,
                12,
            )
        }
        version => return Err(format!(".npy format version {version} is not supported")),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = string_value(header, "descr")?;
    let fortran_order = match raw_value(header, "fortran_order")? {
        v if v.starts_with("True") => true,
        v if v.starts_with("False") => false,
        _ => return Err("fortran_order is neither True nor False".into()),
    };
    let shape = shape_value(header)?;
    let (little_endian, size) = float_type(&descr)?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("shape overflows")?;
    let data = &bytes[header_start + header_len..];
    if Some(data.len()) != count.checked_mul(size) {
        return Err(format!(
            "data holds {} bytes, shape {shape:?} of {descr} needs {}",
            data.len(),
            count.saturating_mul(size)
        ));
    }
    let values = decode_floats(data, size, little_endian);
    let values = if fortran_order && shape.len() > 1 {
        fortran_to_c(&values, &shape)
    } else {
        values
    };
    Ok(NpyArray { shape, values })
}

/// The text after `'key':` in the header dict.
fn raw_value<'a>(header: &'a str, key: &str) -> Result<&'a str, String> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))
        .ok_or_else(|| format!("the .npy header has no {key}"))?;
    let rest = header[at + key.len() + 2..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or_else(|| format!("malformed {key} in the .npy header"))?;
    Ok(rest.trim_start())
}

fn string_value(header: &str, key: &str) -> Result<String, String> {
    let rest = raw_value(header, key)?;
    let quote = rest
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| {
            format!("{key} is not a plain dtype string (structured arrays are not supported)")
        })?;
    let end = rest[1..]
        .find(quote)
        .ok_or_else(|| format!("unterminated {key} in the .npy header"))?;
    Ok(rest[1..1 + end].to_string())
}

fn shape_value(header: &str) -> Result<Vec<usize>, String> {
    let rest = raw_value(header, "shape")?;
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(inner, _)| inner)
        .ok_or("shape is not a tuple")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse()
                .map_err(|_| format!("bad shape entry {d:?}"))
        })
        .collect()
}

/// `(little endian, bytes per value)` of a float dtype string such as `<f4`.
fn float_type(descr: &str) -> Result<(bool, usize), String> {
    let mut chars = descr.chars();
    let little_endian = match chars.next() {
        Some('<' | '|' | '=') => cfg!(target_endian = "little") || descr.starts_with('<'),
        Some('>') => false,
        _ => return Err(format!("dtype {descr} has no byte order")),
    };
    match chars.as_str() {
        "f2" | "e" => Ok((little_endian, 2)),
        "f4" | "f" => Ok((little_endian, 4)),
        "f8" | "d" => Ok((little_endian, 8)),
        _ => Err(format!("dtype {descr} is not float16, float32 or float64")),
    }
}

fn decode_floats(data: &[u8], size: usize, little_endian: bool) -> Vec<f32> {
    let order = |mut b: [u8; 8]| {
        if !little_endian {
            b[..size].reverse();
        }
        b
    };
    let word = |chunk: &[u8]| {
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(chunk);
        order(b)
    };
    let chunks = data.chunks_exact(size);
    match size {
        2 => chunks
            .map(|c| {
                let b = word(c);
                half::f16::from_le_bytes([b[0], b[1]]).to_f32()
            })
            .collect(),
        4 => chunks
            .map(|c| {
                let b = word(c);
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            })
            .collect(),
        _ => chunks.map(|c| f64::from_le_bytes(word(c)) as f32).collect(),
    }
}

/// Reorders Fortran-order (first index fastest) values into C order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; shape.len()];
    for _ in 0..values.len() {
        let mut offset = 0;
        let mut stride = 1;
        for (i, &d) in index.iter().zip(shape) {
            offset += i * stride;
            stride *= d;
        }
        out.push(values[offset]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// An element type [`npy_bytes`] writes.
pub trait NpyElement: Copy {
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

/// The bytes of an `.npy` file (format 1.0) holding `values`, row-major with
/// `shape`.
pub fn npy_bytes<T: NpyElement>(values: &[T], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({},), }}",
        T::DESCR,
        dims.join(", ")
    );
    // magic (6) + version (2) + length (2) + header + '\n': a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(values));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for &value in values {
        value.extend_le(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_float_arrays_in_any_byte_and_axis_order() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let header = "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }";
        let array = parse_npy(&npy(header, &data)).unwrap();
        assert_eq!(array.shape, [2, 3]);
        // Column-major [[1, 3, 5], [2, 4, 6]].
        assert_eq!(array.values, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let half: Vec<u8> = [0x3c00u16, 0xc000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let header = "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }";
        assert_eq!(parse_npy(&npy(header, &half)).unwrap().values, [1.0, -2.0]);
    }

    #[test]
    fn written_arrays_read_back_with_numpy_headers() {
        let bytes = npy_bytes(&[1.5f32, -2.0, 0.25, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!((bytes.len() - 6 * 4) % 64, 0, "the header pads to 64 bytes");
        let array = parse_npy(&bytes).unwrap();
        assert_eq!(array.shape, vec![2, 3]);
        assert_eq!(array.values, vec![1.5, -2.0, 0.25, 4.0, 5.0, 6.0]);
        let ints = npy_bytes(&[7i64, -1], &[2]);
        let header = String::from_utf8_lossy(&ints[10..ints.len() - 16]);
        assert!(header.contains("'descr': '<i8'") && header.contains("'shape': (2,)"));
        assert_eq!(&ints[ints.len() - 16..ints.len() - 8], &7i64.to_le_bytes());
    }

    #[test]
    fn rejects_wrong_types_and_lengths() {
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }";
        assert!(parse_npy(&npy(header, &[0; 8]))
            .unwrap_err()
            .contains("not float16"));
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        assert!(parse_npy(&npy(header, &[0; 8]))
            .unwrap_err()
            .contains("needs 12"));
        assert!(parse_npy(b"PK\x03\x04").unwrap_err().contains("magic"));
    }
}
