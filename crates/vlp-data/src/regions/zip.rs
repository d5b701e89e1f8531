//! The little of the zip format an `.npz` needs: the central directory
//! (zip64 included, which NumPy writes with `force_zip64`) and members that
//! are stored (`np.savez`) or deflated (`np.savez_compressed`).
//!
//! Read here rather than with the `zip` crate: every maintained release of
//! it enables `memchr`'s default feature, which sits under all of Burn and
//! would force a full rebuild of the Burn stack for a few hundred lines.

use std::io::{Read, Seek, SeekFrom};

use flate2::read::DeflateDecoder;
use flate2::Crc;

const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY: u32 = 0x0606_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// One member of an archive, as its central-directory entry describes it.
#[derive(Debug, Clone)]
pub(crate) struct ZipMember {
    pub name: String,
    method: u16,
    encrypted: bool,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    local_header_offset: u64,
}

/// The members of an archive.
#[derive(Debug, Clone)]
pub(crate) struct ZipIndex {
    pub members: Vec<ZipMember>,
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| "truncated zip record".to_string())
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "truncated zip record".to_string())
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    Ok(u64::from(u32_at(bytes, at)?) | (u64::from(u32_at(bytes, at + 4)?) << 32))
}

fn read_at(reader: &mut (impl Read + Seek), offset: u64, len: u64) -> Result<Vec<u8>, String> {
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    reader
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 != len {
        return Err(format!(
            "archive ends {} bytes short of a record at offset {offset} (truncated file?)",
            len - bytes.len() as u64
        ));
    }
    Ok(bytes)
}

impl ZipIndex {
    /// Reads the central directory.
    pub fn read(reader: &mut (impl Read + Seek)) -> Result<Self, String> {
        let file_len = reader.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        // The end record is 22 bytes plus a comment of at most 65535 bytes;
        // NumPy writes no comment, so try the last 22 bytes first.
        let mut tail = Vec::new();
        let mut end = None;
        for tail_len in [file_len.min(22), file_len.min(22 + 65_535)] {
            tail = read_at(reader, file_len - tail_len, tail_len)?;
            end = (0..tail.len().saturating_sub(21))
                .rev()
                .find(|&i| u32_at(&tail, i) == Ok(END_OF_CENTRAL_DIRECTORY));
            if end.is_some() {
                break;
            }
        }
        let end =
            end.ok_or("no end-of-central-directory record (not a zip archive, or truncated)")?;
        let end_offset = file_len - tail.len() as u64 + end as u64;
        let mut entries = u64::from(u16_at(&tail, end + 10)?);
        let mut directory_len = u64::from(u32_at(&tail, end + 12)?);
        let mut directory_offset = u64::from(u32_at(&tail, end + 16)?);
        if entries == 0xFFFF || directory_len == 0xFFFF_FFFF || directory_offset == 0xFFFF_FFFF {
            // The locator is the 20 bytes right before the end record.
            let locator = end_offset
                .checked_sub(20)
                .map(|at| read_at(reader, at, 20))
                .transpose()?
                .filter(|locator| u32_at(locator, 0) == Ok(ZIP64_LOCATOR))
                .ok_or("zip64 sizes without a zip64 locator")?;
            let record = read_at(reader, u64_at(&locator, 8)?, 56)?;
            if u32_at(&record, 0)? != ZIP64_END_OF_CENTRAL_DIRECTORY {
                return Err("bad zip64 end-of-central-directory record".into());
            }
            entries = u64_at(&record, 32)?;
            directory_len = u64_at(&record, 40)?;
            directory_offset = u64_at(&record, 48)?;
        }
        if directory_offset.saturating_add(directory_len) > file_len {
            return Err("central directory lies past the end of the file (truncated file?)".into());
        }
        let directory = read_at(reader, directory_offset, directory_len)?;
        let mut members = Vec::new();
        let mut at = 0;
        for _ in 0..entries {
            let (member, len) = parse_central_header(&directory, at)?;
            members.push(member);
            at += len;
        }
        Ok(Self { members })
    }

    pub fn member(&self, name: &str) -> Option<&ZipMember> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// One central-directory entry at `at` and its length in bytes.
fn parse_central_header(directory: &[u8], at: usize) -> Result<(ZipMember, usize), String> {
    if u32_at(directory, at)? != CENTRAL_HEADER {
        return Err("bad central directory entry".into());
    }
    let name_len = usize::from(u16_at(directory, at + 28)?);
    let extra_len = usize::from(u16_at(directory, at + 30)?);
    let comment_len = usize::from(u16_at(directory, at + 32)?);
    let name = directory
        .get(at + 46..at + 46 + name_len)
        .ok_or("truncated central directory entry")?;
    let extra = directory
        .get(at + 46 + name_len..at + 46 + name_len + extra_len)
        .ok_or("truncated central directory entry")?;
    let mut member = ZipMember {
        name: String::from_utf8_lossy(name).into_owned(),
        method: u16_at(directory, at + 10)?,
        encrypted: u16_at(directory, at + 8)? & 1 == 1,
        crc32: u32_at(directory, at + 16)?,
        compressed_size: u64::from(u32_at(directory, at + 20)?),
        size: u64::from(u32_at(directory, at + 24)?),
        local_header_offset: u64::from(u32_at(directory, at + 42)?),
    };
    apply_zip64_extra(&mut member, extra)?;
    Ok((member, 46 + name_len + extra_len + comment_len))
}

/// Replaces saturated 32-bit fields with the zip64 extra field's values,
/// which come in a fixed order and only for the saturated fields.
fn apply_zip64_extra(member: &mut ZipMember, extra: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, at)?, usize::from(u16_at(extra, at + 2)?));
        let block = extra
            .get(at + 4..at + 4 + len)
            .ok_or("truncated zip extra field")?;
        if id == 0x0001 {
            let mut field = 0;
            for value in [
                &mut member.size,
                &mut member.compressed_size,
                &mut member.local_header_offset,
            ] {
                if *value == 0xFFFF_FFFF {
                    *value = u64_at(block, field)?;
                    field += 8;
                }
            }
        }
        at += 4 + len;
    }
    Ok(())
}

/// The uncompressed bytes of `member`, checked against its CRC-32.
pub(crate) fn read_member(
    reader: &mut (impl Read + Seek),
    member: &ZipMember,
) -> Result<Vec<u8>, String> {
    if member.encrypted {
        return Err("member is encrypted".into());
    }
    let header = read_at(reader, member.local_header_offset, 30)?;
    if u32_at(&header, 0)? != LOCAL_HEADER {
        return Err("bad local header".into());
    }
    let data_offset = member.local_header_offset
        + 30
        + u64::from(u16_at(&header, 26)?)
        + u64::from(u16_at(&header, 28)?);
    reader
        .seek(SeekFrom::Start(data_offset))
        .map_err(|e| e.to_string())?;
    let compressed = reader.take(member.compressed_size);
    let mut bytes = Vec::new();
    // One byte past the declared size, to notice a member that inflates
    // to more than its header says.
    let limit = member.size + 1;
    match member.method {
        STORED => compressed.take(limit).read_to_end(&mut bytes),
        DEFLATED => DeflateDecoder::new(compressed)
            .take(limit)
            .read_to_end(&mut bytes),
        other => {
            return Err(format!(
            "compression method {other} is not supported (NumPy writes stored or deflated members)"
        ))
        }
    }
    .map_err(|e| format!("cannot inflate: {e}"))?;
    if bytes.len() as u64 != member.size {
        return Err(format!(
            "holds {} bytes, its header says {} (truncated file?)",
            bytes.len(),
            member.size
        ));
    }
    let mut crc = Crc::new();
    crc.update(&bytes);
    if crc.sum() != member.crc32 {
        return Err("CRC-32 mismatch (corrupt data)".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/regions/npz/");
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    #[test]
    fn reads_stored_and_deflated_members() {
        for name in ["coco_000000000285.npz", "coco_000000000139.npz"] {
            let mut archive = Cursor::new(fixture(name));
            let index = ZipIndex::read(&mut archive).unwrap();
            let names: Vec<&str> = index.members.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(
                names,
                ["features.npy", "norm_bb.npy", "conf.npy", "soft_labels.npy"]
            );
            let member = index.member("features.npy").unwrap();
            let bytes = read_member(&mut archive, member).unwrap();
            assert!(bytes.starts_with(b"\x93NUMPY"));
        }
    }

    /// Rewrites an archive's end record the way zip64 writers do (saturated
    /// fields, then a zip64 end record and its locator), as archives of more
    /// than 65535 members or 4 GiB have it.
    fn with_zip64_end(bytes: &[u8]) -> Vec<u8> {
        let end = bytes.len() - 22;
        assert_eq!(u32_at(bytes, end), Ok(END_OF_CENTRAL_DIRECTORY));
        let entries = u64::from(u16_at(bytes, end + 10).unwrap());
        let directory_len = u64::from(u32_at(bytes, end + 12).unwrap());
        let directory_offset = u64::from(u32_at(bytes, end + 16).unwrap());
        let mut out = bytes[..end].to_vec();
        out.extend(ZIP64_END_OF_CENTRAL_DIRECTORY.to_le_bytes());
        out.extend(44u64.to_le_bytes());
        out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for value in [entries, entries, directory_len, directory_offset] {
            out.extend(value.to_le_bytes());
        }
        out.extend(ZIP64_LOCATOR.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((end as u64).to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend(END_OF_CENTRAL_DIRECTORY.to_le_bytes());
        out.extend([0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        out.extend([0xFF; 8]);
        out.extend([0, 0]);
        out
    }

    #[test]
    fn reads_zip64_end_records() {
        let plain = fixture("coco_000000000139.npz");
        let zip64 = with_zip64_end(&plain);
        let mut archive = Cursor::new(zip64);
        let index = ZipIndex::read(&mut archive).unwrap();
        let expected = ZipIndex::read(&mut Cursor::new(&plain)).unwrap();
        assert_eq!(index.members.len(), expected.members.len());
        let member = index.member("soft_labels.npy").unwrap();
        let bytes = read_member(&mut archive, member).unwrap();
        let reference = read_member(
            &mut Cursor::new(&plain),
            expected.member("soft_labels.npy").unwrap(),
        )
        .unwrap();
        assert_eq!(bytes, reference);
    }

    #[test]
    fn detects_corrupt_member_data() {
        let mut bytes = fixture("coco_000000000285.npz");
        let index = ZipIndex::read(&mut Cursor::new(&bytes)).unwrap();
        let member = index.member("features.npy").unwrap().clone();
        let clean = read_member(&mut Cursor::new(&bytes), &member).unwrap();
        // The stored member is the array file itself: flip its last byte.
        let start = bytes.windows(6).position(|w| w == b"\x93NUMPY").unwrap();
        bytes[start + member.size as usize - 1] ^= 0xFF;
        let error = read_member(&mut Cursor::new(&bytes), &member).unwrap_err();
        assert!(error.contains("CRC-32"), "{error}");
        assert_eq!(clean.len() as u64, member.size);
    }
}
