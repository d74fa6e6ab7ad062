//! COPY's text and CSV formats: the options that shape them, records read
//! from a stream of client bytes (split anywhere), and rows written.
//!
//! Text: one line per row, fields split by the delimiter (tab), `\N` for
//! NULL, backslash escapes (`\t`, `\n`, `\\`, octal, `\x` hex), `\.` alone
//! ends the data. CSV: fields split by the delimiter (comma), quoted with
//! `"` where they hold a delimiter, quote or newline (a quote inside is
//! doubled, or preceded by ESCAPE), an unquoted empty field is NULL, and
//! an optional header line.

use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use crate::error::{ErrorClass, Result, SqlError};

/// The shape of COPY data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyFormat {
    pub(crate) csv: bool,
    pub(crate) delimiter: u8,
    /// The text that stands for NULL.
    pub(crate) null: String,
    pub(crate) header: bool,
    pub(crate) quote: u8,
    pub(crate) escape: u8,
}

fn one_byte(c: char, what: &str) -> Result<u8> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        SqlError::new(
            ErrorClass::FeatureNotSupported,
            format!("COPY {what} must be a single one-byte character"),
        )
    })
}

impl CopyFormat {
    /// The format that COPY's options (either syntax) ask for.
    pub(crate) fn of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat> {
        let mut csv = false;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) =
            (None, None, false, None, None);
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_lowercase().as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "binary" => return Err(SqlError::unsupported("COPY in binary format")),
                    other => {
                        return Err(SqlError::new(
                            ErrorClass::InvalidParameterValue,
                            format!("COPY format \"{other}\" not recognized"),
                        ));
                    }
                },
                CopyOption::Delimiter(c) => delimiter = Some(one_byte(*c, "delimiter")?),
                CopyOption::Null(text) => null = Some(text.clone()),
                CopyOption::Header(on) => header = *on,
                CopyOption::Quote(c) => quote = Some(one_byte(*c, "quote")?),
                CopyOption::Escape(c) => escape = Some(one_byte(*c, "escape")?),
                // Rows are visible at commit either way.
                CopyOption::Freeze(_) => {}
                CopyOption::Encoding(name) if name.eq_ignore_ascii_case("utf8") => {}
                other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Delimiter(c) => delimiter = Some(one_byte(*c, "delimiter")?),
                CopyLegacyOption::Null(text) => null = Some(text.clone()),
                CopyLegacyOption::Binary => {
                    return Err(SqlError::unsupported("COPY in binary format"));
                }
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for option in csv_options {
                        match option {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(c) => quote = Some(one_byte(*c, "quote")?),
                            CopyLegacyCsvOption::Escape(c) => {
                                escape = Some(one_byte(*c, "escape")?);
                            }
                            other => {
                                return Err(SqlError::unsupported(format!("COPY option {other}")));
                            }
                        }
                    }
                }
                other => return Err(SqlError::unsupported(format!("COPY option {other}"))),
            }
        }
        let not_csv = |what: &str| {
            SqlError::new(
                ErrorClass::FeatureNotSupported,
                format!("COPY {what} available only in CSV mode"),
            )
        };
        if !csv && header {
            return Err(not_csv("HEADER"));
        }
        if !csv && quote.is_some() {
            return Err(not_csv("quote"));
        }
        if !csv && escape.is_some() {
            return Err(not_csv("escape"));
        }
        let quote = quote.unwrap_or(b'"');
        let delimiter = delimiter.unwrap_or(if csv { b',' } else { b'\t' });
        if delimiter == b'\n' || delimiter == b'\r' || (!csv && delimiter == b'\\') {
            return Err(SqlError::new(
                ErrorClass::InvalidParameterValue,
                "COPY delimiter cannot be newline, carriage return or backslash",
            ));
        }
        if csv && delimiter == quote {
            return Err(SqlError::new(
                ErrorClass::InvalidParameterValue,
                "COPY delimiter and quote must be different",
            ));
        }
        Ok(CopyFormat {
            csv,
            delimiter,
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
        })
    }
}

/// One record: its fields, `None` for NULL.
pub(crate) type Record = Vec<Option<String>>;

/// Records from client bytes that arrive in pieces.
#[derive(Debug)]
pub(crate) struct RecordReader {
    format: CopyFormat,
    /// Bytes not yet part of a whole record.
    pending: Vec<u8>,
    header_left: bool,
    /// `\.` was read: anything after it is ignored.
    ended: bool,
    /// Lines read so far (for messages).
    pub(crate) line: u64,
}

impl RecordReader {
    pub(crate) fn new(format: CopyFormat) -> RecordReader {
        RecordReader {
            header_left: format.header,
            format,
            pending: Vec::new(),
            ended: false,
            line: 0,
        }
    }

    /// Reads the whole records of `data` (after what was left before)
    /// into `out`, keeping an unfinished last one.
    pub(crate) fn push(&mut self, data: &[u8], out: &mut Vec<Record>) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.record_end(start) {
            let line = self.pending[start..end].to_vec();
            start = end + 1;
            self.record(&line, out)?;
            if self.ended {
                break;
            }
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// The end of the data: a last record without a newline.
    pub(crate) fn finish(&mut self, out: &mut Vec<Record>) -> Result<()> {
        if self.ended || self.pending.is_empty() {
            return Ok(());
        }
        if self.format.csv && self.csv_newline(&self.pending) == Err(true) {
            return Err(SqlError::new(
                ErrorClass::BadCopyFormat,
                "unterminated CSV quoted field",
            ));
        }
        let line = std::mem::take(&mut self.pending);
        self.record(&line, out)
    }

    /// The position of the newline that ends the record starting at
    /// `start`, if the pending bytes hold all of it.
    fn record_end(&self, start: usize) -> Option<usize> {
        let bytes = &self.pending[start..];
        let end = if self.format.csv {
            self.csv_newline(bytes).ok()
        } else {
            bytes.iter().position(|&b| b == b'\n')
        };
        end.map(|i| start + i)
    }

    /// The first newline of `bytes` outside quotes, else whether they end
    /// inside quotes.
    fn csv_newline(&self, bytes: &[u8]) -> Result<usize, bool> {
        let (quote, escape) = (self.format.quote, self.format.escape);
        let mut quoted = false;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if quoted && b == escape && bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            if b == quote {
                quoted = !quoted;
            } else if b == b'\n' && !quoted {
                return Ok(i);
            }
            i += 1;
        }
        Err(quoted)
    }

    fn record(&mut self, line: &[u8], out: &mut Vec<Record>) -> Result<()> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\." {
            self.ended = true;
            return Ok(());
        }
        if self.header_left {
            self.header_left = false;
            return Ok(());
        }
        out.push(if self.format.csv {
            self.csv_fields(line)?
        } else {
            self.text_fields(line)?
        });
        Ok(())
    }

    fn text_fields(&self, line: &[u8]) -> Result<Record> {
        let mut fields = Vec::new();
        let mut start = 0;
        let mut i = 0;
        loop {
            if i == line.len() || line[i] == self.format.delimiter {
                let raw = &line[start..i];
                fields.push(if raw == self.format.null.as_bytes() {
                    None
                } else {
                    Some(utf8(unescape(raw), self.line)?)
                });
                if i == line.len() {
                    return Ok(fields);
                }
                start = i + 1;
            } else if line[i] == b'\\' {
                // The escaped byte is data, even a delimiter.
                i += 1;
            }
            i += 1;
            i = i.min(line.len());
        }
    }

    fn csv_fields(&self, line: &[u8]) -> Result<Record> {
        let CopyFormat {
            delimiter,
            quote,
            escape,
            ..
        } = self.format;
        let mut fields = Vec::new();
        let mut i = 0;
        loop {
            let mut value = Vec::new();
            let mut was_quoted = false;
            let mut quoted = false;
            while i < line.len() {
                let b = line[i];
                if quoted {
                    if b == escape && line.get(i + 1) == Some(&quote) {
                        value.push(quote);
                        i += 2;
                        continue;
                    }
                    if b == quote {
                        quoted = false;
                    } else {
                        value.push(b);
                    }
                } else if b == quote {
                    quoted = true;
                    was_quoted = true;
                } else if b == delimiter {
                    break;
                } else {
                    value.push(b);
                }
                i += 1;
            }
            // Only an unquoted field can be NULL.
            fields.push(if !was_quoted && value == self.format.null.as_bytes() {
                None
            } else {
                Some(utf8(value, self.line)?)
            });
            if i >= line.len() {
                return Ok(fields);
            }
            i += 1;
        }
    }
}

fn utf8(bytes: Vec<u8>, line: u64) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        SqlError::new(
            ErrorClass::CharacterNotInRepertoire,
            format!("invalid byte sequence for encoding \"UTF8\" (COPY line {line})"),
        )
    })
}

/// A text-format field with its backslash escapes decoded.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' || i + 1 == raw.len() {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| char::from(*d).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    out
}

/// Appends one row of fields (`None`: NULL) in `format`, with its newline.
pub(crate) fn write_row(format: &CopyFormat, fields: &[Option<String>], out: &mut Vec<u8>) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(format.delimiter);
        }
        let Some(value) = field else {
            out.extend_from_slice(format.null.as_bytes());
            continue;
        };
        if format.csv {
            write_csv_field(format, value.as_bytes(), out);
        } else {
            write_text_field(format, value.as_bytes(), out);
        }
    }
    out.push(b'\n');
}

fn write_text_field(format: &CopyFormat, value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' if format.delimiter == b'\t' => out.extend_from_slice(b"\\t"),
            b if b == format.delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

fn write_csv_field(format: &CopyFormat, value: &[u8], out: &mut Vec<u8>) {
    let needs_quotes = value == format.null.as_bytes()
        || value
            .iter()
            .any(|&b| b == format.delimiter || b == format.quote || b == b'\n' || b == b'\r')
        || value == b"\\.";
    if !needs_quotes {
        out.extend_from_slice(value);
        return;
    }
    out.push(format.quote);
    for &b in value {
        if b == format.quote || b == format.escape {
            out.push(format.escape);
        }
        out.push(b);
    }
    out.push(format.quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> CopyFormat {
        CopyFormat::of(&[], &[]).unwrap()
    }

    fn csv() -> CopyFormat {
        CopyFormat::of(&[CopyOption::Format("csv".into())], &[]).unwrap()
    }

    /// Every split of `data` into two pieces reads the same records.
    fn read_split(format: &CopyFormat, data: &[u8]) -> Vec<Record> {
        let mut whole = Vec::new();
        let mut reader = RecordReader::new(format.clone());
        reader.push(data, &mut whole).unwrap();
        reader.finish(&mut whole).unwrap();
        for cut in 0..=data.len() {
            let mut records = Vec::new();
            let mut reader = RecordReader::new(format.clone());
            reader.push(&data[..cut], &mut records).unwrap();
            reader.push(&data[cut..], &mut records).unwrap();
            reader.finish(&mut records).unwrap();
            assert_eq!(records, whole, "cut at {cut}");
        }
        whole
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn text_format_reads_escapes_nulls_and_the_end_marker() {
        let records = read_split(
            &text(),
            b"1\ta\\tb\t\\N\r\n2\t\\\\x\\101\\x41\t\n3\ttab\\\tin\tz\n\\.\nignored\n",
        );
        assert_eq!(
            records,
            vec![
                vec![some("1"), some("a\tb"), None],
                vec![some("2"), some("\\xAA"), some("")],
                vec![some("3"), some("tab\tin"), some("z")],
            ]
        );
    }

    #[test]
    fn csv_reads_quotes_embedded_newlines_nulls_and_a_header() {
        let format = CopyFormat::of(
            &[CopyOption::Format("csv".into()), CopyOption::Header(true)],
            &[],
        )
        .unwrap();
        let records = read_split(&format, b"k,v\n1,\"a,\"\"b\"\"\nc\"\n2,\n3,\"\"");
        assert_eq!(
            records,
            vec![
                vec![some("1"), some("a,\"b\"\nc")],
                vec![some("2"), None],
                vec![some("3"), some("")],
            ]
        );
        let mut reader = RecordReader::new(csv());
        let mut out = Vec::new();
        reader.push(b"1,\"open", &mut out).unwrap();
        assert_eq!(reader.finish(&mut out).unwrap_err().sqlstate(), "22P04");
    }

    #[test]
    fn written_rows_read_back() {
        for format in [text(), csv()] {
            let rows = vec![
                vec![some("1"), some("tab\tand\nnewline, \"quoted\" \\"), None],
                vec![some(""), some("\\."), some("x")],
            ];
            let mut data = Vec::new();
            for row in &rows {
                write_row(&format, row, &mut data);
            }
            assert_eq!(read_split(&format, &data), rows, "{format:?}");
        }
    }

    #[test]
    fn options_are_checked_as_postgresql_checks_them() {
        let error = CopyFormat::of(&[CopyOption::Header(true)], &[]).unwrap_err();
        assert_eq!(error.message, "COPY HEADER available only in CSV mode");
        let error = CopyFormat::of(&[CopyOption::Delimiter('é')], &[]).unwrap_err();
        assert_eq!(error.sqlstate(), "0A000");
        let format = CopyFormat::of(
            &[],
            &[CopyLegacyOption::Csv(vec![CopyLegacyCsvOption::Header])],
        )
        .unwrap();
        assert!(format.csv && format.header && format.delimiter == b',');
    }
}
