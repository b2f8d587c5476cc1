//! Turning the app's stdout/stderr bytes into [`LogRecord`] JSON lines.
//!
//! Each `\n`-terminated line read is one record; a partial line at the end of a read
//! (a buffer boundary, or EOF) is a record of its own, so nothing waits in memory for a
//! newline that may never come. No byte is dropped: the only thing carried over to the
//! next read is an incomplete UTF-8 sequence (at most 3 bytes) at the very end of a
//! read, which would otherwise be turned into replacement characters.

use std::time::SystemTime;

use crate::protocol::LogRecord;

/// Splits one stream's reads into record texts.
#[derive(Debug, Default)]
pub struct LineSplitter {
    carry: Vec<u8>,
}

/// Length of the UTF-8 sequence a leading byte starts, or `None` for a continuation
/// or invalid byte.
fn sequence_len(b: u8) -> Option<usize> {
    match b {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

/// How many bytes at the end of `seg` are the start of a UTF-8 sequence cut short.
fn incomplete_tail(seg: &[u8]) -> usize {
    let start = seg.len().saturating_sub(3);
    for i in (start..seg.len()).rev() {
        if let Some(len) = sequence_len(seg[i]) {
            let have = seg.len() - i;
            return if len > have { have } else { 0 };
        }
        if seg[i] & 0xc0 != 0x80 {
            return 0;
        }
    }
    0
}

impl LineSplitter {
    /// Split `chunk` (the bytes of one read; `eof` when the stream has ended) into the
    /// texts of the records to write, in order.
    pub fn split(&mut self, chunk: &[u8], eof: bool) -> Vec<String> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut rest: &[u8] = &data;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            out.push(String::from_utf8_lossy(&rest[..=nl]).into_owned());
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            let keep = if eof { 0 } else { incomplete_tail(rest) };
            let (now, later) = rest.split_at(rest.len() - keep);
            if !now.is_empty() {
                out.push(String::from_utf8_lossy(now).into_owned());
            }
            self.carry = later.to_vec();
        }
        out
    }
}

/// One record as the JSON line (with its `\n`) to append to the log file.
pub fn record_line(stream: &str, log: String, now: SystemTime) -> Vec<u8> {
    let record = LogRecord {
        time: humantime::format_rfc3339_nanos(now).to_string(),
        stream: stream.to_string(),
        log,
    };
    let mut line = serde_json::to_vec(&record).expect("a LogRecord always serialises");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_and_partial_tails_become_records() {
        let mut s = LineSplitter::default();
        assert_eq!(s.split(b"a\nbc\nde", false), vec!["a\n", "bc\n", "de"]);
        assert_eq!(s.split(b"f\n", false), vec!["f\n"]);
        assert_eq!(s.split(b"", true), Vec::<String>::new());
        assert_eq!(s.split(b"\n\n", false), vec!["\n", "\n"]);
        assert_eq!(s.split(b"tail", true), vec!["tail"]);
    }

    #[test]
    fn a_cut_utf8_sequence_is_carried_not_mangled() {
        let text = "h\u{e9}\u{20ac}\u{1f600}\n".as_bytes();
        for cut in 0..text.len() {
            let mut s = LineSplitter::default();
            let mut got = s.split(&text[..cut], false);
            got.extend(s.split(&text[cut..], true));
            assert_eq!(got.concat(), "h\u{e9}\u{20ac}\u{1f600}\n", "cut at {cut}");
        }
        // Invalid bytes are not held back forever.
        let mut s = LineSplitter::default();
        assert_eq!(s.split(b"x\xff", false), vec!["x\u{fffd}"]);
        let mut s = LineSplitter::default();
        assert_eq!(s.split(b"x\xe2\x82", false), vec!["x"]);
        assert_eq!(s.split(b"", true), vec!["\u{fffd}"]);
    }

    #[test]
    fn record_line_is_one_json_line() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_767_323_045, 123_456_789);
        let line = record_line("stderr", "boom\n".into(), t);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"time\":\"2026-01-02T03:04:05.123456789Z\",\"stream\":\"stderr\",\"log\":\"boom\\n\"}\n"
        );
    }
}
