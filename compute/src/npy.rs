//! NumPy `.npy` files (format versions 1-3): reading little-endian float, integer and
//! bool arrays of up to 2 dimensions in C order, and writing f32 arrays. Enough for model
//! inputs and outputs; Fortran order and big-endian data are refused by name.

use crate::ComputeError;

fn err(msg: impl Into<String>) -> ComputeError {
    ComputeError::Input(msg.into())
}

/// An array's values: floats as f64, integers as i64 (both exact for the dtypes read).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Values,
}

/// The quoted value or the bracketed tuple after `'key':` in the header dict.
fn field<'h>(header: &'h str, key: &str) -> Result<&'h str, ComputeError> {
    let at = header
        .find(&format!("'{key}'"))
        .ok_or_else(|| err(format!("npy header has no {key}: {header}")))?;
    let rest = header[at + key.len() + 2..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or_else(|| err(format!("npy header: no ':' after {key}")))?
        .trim_start();
    let (open, close) = match rest.chars().next() {
        Some('\'') => ('\'', '\''),
        Some('(') => ('(', ')'),
        _ => {
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            return Ok(rest[..end].trim());
        }
    };
    let body = &rest[open.len_utf8()..];
    let end = body
        .find(close)
        .ok_or_else(|| err(format!("npy header: unterminated {key}")))?;
    Ok(&body[..end])
}

pub fn read(bytes: &[u8]) -> Result<Array, ComputeError> {
    let magic = b"\x93NUMPY";
    if bytes.len() < 10 || &bytes[..6] != magic {
        return Err(err("not an .npy file (no \\x93NUMPY magic)"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(format!("unsupported .npy format version {v}"))),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| err("truncated or non-text .npy header"))?;
    let descr = field(header, "descr")?;
    if field(header, "fortran_order")? != "False" {
        return Err(err(
            "Fortran-order arrays are not supported (save with order='C')",
        ));
    }
    let shape = field(header, "shape")?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| err(format!("bad shape entry {s:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if shape.len() > 2 {
        return Err(err(format!(
            "{}-dimensional arrays are not supported (1 or 2)",
            shape.len()
        )));
    }
    // The byte-order character, then the kind and size ("<f4"); any first character, not
    // only ASCII, must split on its boundary.
    let (endian, kind) = descr.split_at(descr.chars().next().map_or(0, char::len_utf8));
    let size: usize = kind
        .get(1..)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("unsupported dtype {descr:?}")))?;
    if endian == ">" && size > 1 {
        return Err(err(format!("big-endian dtype {descr:?} is not supported")));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| err("shape overflows"))?;
    let data = bytes.get(start + len..).unwrap_or(&[]);
    let needed = count
        .checked_mul(size)
        .ok_or_else(|| err("shape overflows"))?;
    if data.len() != needed {
        return Err(err(format!(
            "{descr} array of shape {shape:?} needs {needed} data bytes, the file has {}",
            data.len()
        )));
    }
    let chunks = data.chunks_exact(size.max(1));
    let arr = |c: &[u8]| -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        b
    };
    let values = match (kind.as_bytes().first(), size) {
        (Some(b'f'), 2) => Values::Float(
            chunks
                .map(|c| f64::from(half::f16::from_le_bytes([c[0], c[1]]).to_f32()))
                .collect(),
        ),
        (Some(b'f'), 4) => Values::Float(
            chunks
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        (Some(b'f'), 8) => Values::Float(chunks.map(|c| f64::from_le_bytes(arr(c))).collect()),
        (Some(b'i'), 1 | 2 | 4 | 8) => Values::Int(
            chunks
                .map(|c| {
                    // Sign-extend from the top byte.
                    let shift = 64 - 8 * c.len() as u32;
                    (i64::from_le_bytes(arr(c)) << shift) >> shift
                })
                .collect(),
        ),
        (Some(b'u'), 1 | 2 | 4) | (Some(b'b'), 1) => {
            Values::Int(chunks.map(|c| i64::from_le_bytes(arr(c))).collect())
        }
        (Some(b'u'), 8) => Values::Int(
            chunks
                .map(|c| i64::try_from(u64::from_le_bytes(arr(c))))
                .collect::<Result<_, _>>()
                .map_err(|_| err("u8 value beyond i64"))?,
        ),
        _ => return Err(err(format!("unsupported dtype {descr:?}"))),
    };
    Ok(Array { shape, values })
}

/// An f32 array as `.npy` (version 1, C order).
pub fn write_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytemuck::cast_slice(data));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The package's directory: at run time where the test runner says (a shared target
    /// directory may hold binaries built from another checkout), else where it was built.
    pub(crate) fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/{name}", manifest_dir());
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Found by the fuzzer: a multi-byte first character in `descr` split mid-character;
    /// an oversized shape overflowed the byte count.
    #[test]
    fn hostile_headers_are_refused_not_panicked_on() {
        let mut bytes = write_f32(&[2, 3], &[1.0; 6]);
        let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
        bytes.splice(at..at + 1, "\u{414}".bytes());
        assert!(read(&bytes).is_err());
        let huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }";
        let mut h = b"\x93NUMPY\x01\x00".to_vec();
        h.extend_from_slice(&(huge.len() as u16).to_le_bytes());
        h.extend_from_slice(huge.as_bytes());
        assert!(read(&h).is_err());
    }

    /// Files written by numpy 2.4 (`np.save`), checked in under tests/data.
    #[test]
    fn numpy_files_read_back_exactly() {
        let f = read(&fixture("features_f4.npy")).unwrap();
        assert_eq!(f.shape, vec![2, 3]);
        let want = [1.5f32, -2.0, 3.25, 0.0, 1e-3, -7.0]
            .map(f64::from)
            .to_vec();
        assert_eq!(f.values, Values::Float(want));
        let t = read(&fixture("tokens_i8.npy")).unwrap();
        assert_eq!(
            (t.shape, t.values),
            (vec![2, 4], Values::Int(vec![1, 2, 3, 60, 5, 4, 0, 9]))
        );
        let v = read(&fixture("vector_f8.npy")).unwrap();
        assert_eq!(
            (v.shape, v.values),
            (vec![3], Values::Float(vec![0.5, -1.0, 2.0]))
        );
        assert_eq!(
            read(&fixture("tokens_i4.npy")).unwrap().values,
            Values::Int(vec![-1, 7])
        );
        let e = read(&fixture("fortran.npy")).unwrap_err().to_string();
        assert!(e.contains("Fortran"), "{e}");
    }

    #[test]
    fn written_arrays_read_back_and_bad_files_are_named() {
        for shape in [vec![3], vec![2, 2], vec![0, 5]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = write_f32(&shape, &data);
            // The header pads the data start to 64 bytes, as numpy does.
            assert_eq!((bytes.len() - n * 4) % 64, 0);
            let back = read(&bytes).unwrap();
            let want = data.iter().map(|v| f64::from(*v)).collect();
            assert_eq!((back.shape, back.values), (shape, Values::Float(want)));
        }
        assert!(read(b"hello").unwrap_err().to_string().contains("magic"));
        let mut short = write_f32(&[4], &[1.0; 4]);
        short.pop();
        assert!(read(&short)
            .unwrap_err()
            .to_string()
            .contains("needs 16 data bytes"));
        let three_d = write_f32(&[1, 2, 2], &[1.0; 4]);
        assert!(read(&three_d)
            .unwrap_err()
            .to_string()
            .contains("3-dimensional"));
    }
}
