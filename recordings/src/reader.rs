//! Reading recordings: a streaming [`Reader`] over any `Read`, bounded
//! memory, that never panics and says where and why it stopped.

use crate::encode::{Record, State};
pub use crate::error::{ErrorKind, ReadProblem};
use crate::error::{IoAction, IoCause, JsonCause, ReadProblem as P};
use crate::format::{
    self, FORMAT_VERSION, Header, MAGIC, MAX_HEADER, MAX_PAYLOAD, SYNC_MARKER, rtype,
};
use crate::item::Item;
use std::io::Read;
use std::path::Path;

/// A read failure: file, byte offset, what. (The cause is in the message,
/// not also a `source`: printed with `{:#}`, an error chain then says each
/// fact once.)
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: offset {offset}: {problem}")]
pub struct ReadError {
    /// File name as given.
    pub file: String,
    /// Byte offset of the record (or header field) at fault.
    pub offset: u64,
    /// What (names the field where one is at fault).
    pub problem: ReadProblem,
}

impl ReadError {
    /// Class (each problem has one).
    pub fn kind(&self) -> ErrorKind {
        self.problem.kind()
    }
}

/// How reading ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// At the end record: the file is complete.
    End {
        /// Offset of the end record.
        offset: u64,
        /// Items the writer wrote.
        items: u64,
        /// Items the recorder dropped.
        dropped: u64,
    },
    /// At an error (the last one, when resynchronizing).
    Error(ReadError),
}

impl Stop {
    /// True for a complete, undamaged file.
    pub fn is_clean(&self) -> bool {
        matches!(self, Stop::End { .. })
    }
}

/// A sync point: decoding can start at `offset` with item `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPoint {
    /// Byte offset of the first frame after the sync point.
    pub offset: u64,
    /// Index of the next item.
    pub index: u64,
}

/// An item with its place in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the item stream, from 0 (stable: lost ranges keep their numbers).
    pub index: u64,
    /// Byte offset of its record.
    pub offset: u64,
    /// The item.
    pub item: Item,
}

/// Reader options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// After a damaged record, report it and go on at the next sync point
    /// (default: stop at the first damage).
    pub resync: bool,
    /// Remember every sync point (for an index).
    pub collect_syncs: bool,
}

/// A streaming reader. Iterate for `Result<Entry, ReadError>`: without
/// resync the first error ends the iteration; [`Reader::stop`] says how it
/// ended.
pub struct Reader<R: Read> {
    src: R,
    file: String,
    header: Header,
    data_start: u64,
    buf: Vec<u8>,
    pos: usize,
    base: u64,
    eof: bool,
    state: State,
    next_index: u64,
    stop: Option<Stop>,
    opts: ReadOptions,
    resyncing: bool,
    errors: Vec<ReadError>,
    syncs: Vec<SyncPoint>,
    clock: Option<u64>,
    read_err: Option<std::io::Error>,
}

impl<R: Read> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("file", &self.file)
            .field("offset", &(self.base + self.pos as u64))
            .field("next_index", &self.next_index)
            .finish()
    }
}

impl Reader<std::io::BufReader<std::fs::File>> {
    /// Open a file and read its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        Self::open_with(path, ReadOptions::default())
    }

    /// [`Reader::open`] with options.
    pub fn open_with(path: impl AsRef<Path>, opts: ReadOptions) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| ReadError {
            file: name.clone(),
            offset: 0,
            problem: P::Io {
                action: IoAction::Open,
                cause: IoCause::from(&e),
            },
        })?;
        Reader::new(std::io::BufReader::with_capacity(1 << 16, f), &name, opts)
    }
}

impl<R: Read> Reader<R> {
    /// Read the header from `src` (named `file` in messages).
    pub fn new(src: R, file: &str, opts: ReadOptions) -> Result<Self, ReadError> {
        // A reader at offset 0 until the header says where the data starts.
        let start = SyncPoint {
            offset: 0,
            index: 0,
        };
        let mut r = Reader::resume(src, file, Header::new(""), start, opts);
        r.read_header()?;
        if opts.collect_syncs {
            r.syncs.push(SyncPoint {
                offset: r.data_start,
                index: 0,
            });
        }
        Ok(r)
    }

    /// Start reading frames at `offset` (a sync point's offset) with item
    /// `index`; `src` must be positioned at `offset`. Used by [`crate::Replay`].
    pub fn resume(
        src: R,
        file: &str,
        header: Header,
        point: SyncPoint,
        opts: ReadOptions,
    ) -> Reader<R> {
        Reader {
            src,
            file: file.to_string(),
            header,
            data_start: point.offset,
            buf: Vec::with_capacity(1 << 16),
            pos: 0,
            base: point.offset,
            eof: false,
            state: State::default(),
            next_index: point.index,
            stop: None,
            opts,
            resyncing: false,
            errors: Vec::new(),
            syncs: Vec::new(),
            clock: None,
            read_err: None,
        }
    }

    fn err(&self, offset: u64, problem: ReadProblem) -> ReadError {
        ReadError {
            file: self.file.clone(),
            offset,
            problem,
        }
    }

    /// The read failure `read_err` holds.
    fn read_failed(&self, offset: u64, e: &std::io::Error) -> ReadError {
        self.err(
            offset,
            P::Io {
                action: IoAction::Read,
                cause: IoCause::from(e),
            },
        )
    }

    /// Make `n` bytes available at `pos` if the file has them; false at EOF.
    fn ensure(&mut self, n: usize) -> bool {
        while self.buf.len() - self.pos < n {
            if self.eof {
                return false;
            }
            if self.pos > 0 && self.pos >= self.buf.len() / 2 {
                self.buf.drain(..self.pos);
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let want = (n - (self.buf.len() - self.pos)).max(1 << 16);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let got = loop {
                match self.src.read(&mut self.buf[old..]) {
                    Ok(k) => break k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.read_err = Some(e);
                        break 0;
                    }
                }
            };
            self.buf.truncate(old + got);
            if got == 0 {
                self.eof = true;
            }
        }
        true
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn read_header(&mut self) -> Result<(), ReadError> {
        let have = |r: &mut Self, n: usize| {
            r.ensure(n);
            r.buf.len() - r.pos
        };
        let got = have(self, 16);
        if let Some(e) = self.read_err.take() {
            return Err(self.read_failed(0, &e));
        }
        if got == 0 {
            return Err(self.err(0, P::Empty));
        }
        let first = &self.buf[..got.min(8)];
        if first != &MAGIC[..first.len()] || got < 8 {
            if first == &MAGIC[..first.len()] {
                return Err(self.err(0, P::FixedPartCut { got }));
            }
            let start = first.to_vec();
            return Err(self.err(0, P::NotARecording { start }));
        }
        if got < 16 {
            return Err(self.err(got as u64, P::FixedPartCut { got }));
        }
        let version = u16::from_le_bytes([self.buf[8], self.buf[9]]);
        let len = u32::from_le_bytes([self.buf[12], self.buf[13], self.buf[14], self.buf[15]]);
        if version > FORMAT_VERSION {
            return Err(self.err(8, P::NewerVersion { version }));
        }
        if version == 0 {
            return Err(self.err(8, P::VersionZero));
        }
        if len > MAX_HEADER {
            return Err(self.err(12, P::HeaderTooLong { len }));
        }
        let total = 16 + len as usize + 4;
        let got = have(self, total);
        if got < total {
            return Err(self.err(got as u64, P::HeaderCut { needs: total, got }));
        }
        let stored = u32::from_le_bytes(
            self.buf[16 + len as usize..total]
                .try_into()
                .unwrap_or([0; 4]),
        );
        let computed = crc32fast::hash(&self.buf[8..16 + len as usize]);
        if stored != computed {
            return Err(self.err(16 + len as u64, P::HeaderChecksum { stored, computed }));
        }
        let body = &self.buf[16..16 + len as usize];
        let header: Header = serde_json::from_slice(body).map_err(|e| {
            let cause = JsonCause::from(&e);
            self.err(16, P::HeaderJson { cause })
        })?;
        self.header = header;
        self.pos = total;
        self.data_start = total as u64;
        Ok(())
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// File name as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Offset of the first record.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// How reading ended (None while items remain).
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Errors seen so far (more than one only when resynchronizing).
    pub fn errors(&self) -> &[ReadError] {
        &self.errors
    }

    /// Sync points seen (with [`ReadOptions::collect_syncs`]).
    pub fn syncs(&self) -> &[SyncPoint] {
        &self.syncs
    }

    /// The engine's time origin on CLOCK_MONOTONIC, from the last clock
    /// record read so far.
    pub fn clock(&self) -> Option<u64> {
        self.clock
    }

    /// Index the next item will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// `problem`, unless a read failed (the real reason the bytes are missing).
    fn io_or(&mut self, offset: u64, problem: ReadProblem) -> ReadError {
        match self.read_err.take() {
            Some(e) => self.read_failed(offset, &e),
            None => self.err(offset, problem),
        }
    }

    /// Next frame: (offset, type, payload bounds in buf). None at a clean EOF.
    fn frame(&mut self) -> Result<Option<(u64, u8, usize, usize)>, ReadError> {
        let at = self.offset();
        if !self.ensure(1) {
            if let Some(e) = self.read_err.take() {
                return Err(self.read_failed(at, &e));
            }
            return Ok(None);
        }
        // Length varint.
        let mut len: u64 = 0;
        let mut nlen = 0usize;
        loop {
            if !self.ensure(nlen + 1) {
                let left = self.buf.len() - self.pos;
                return Err(self.io_or(at, P::LengthCut { at, left }));
            }
            let b = self.buf[self.pos + nlen];
            nlen += 1;
            len |= ((b & 0x7f) as u64) << (7 * (nlen as u32 - 1));
            if b & 0x80 == 0 {
                break;
            }
            if nlen >= 5 {
                return Err(self.err(at, P::LengthTooManyBytes { at }));
            }
        }
        if len > MAX_PAYLOAD {
            return Err(self.err(at, P::LengthTooLarge { at, len }));
        }
        let need = nlen + 1 + len as usize + 4;
        if !self.ensure(need) {
            let have = self.buf.len() - self.pos;
            let needs = need;
            return Err(self.io_or(at, P::RecordCut { at, needs, have }));
        }
        let p = self.pos;
        let rt = self.buf[p + nlen];
        let pay = p + nlen + 1;
        let end = pay + len as usize;
        let stored = u32::from_le_bytes(self.buf[end..end + 4].try_into().unwrap_or([0; 4]));
        let computed = format::frame_crc(&self.buf[p..p + nlen], rt, &self.buf[pay..end]);
        if stored != computed {
            let record_type = rt;
            return Err(self.err(
                at,
                P::RecordChecksum {
                    at,
                    record_type,
                    len,
                    stored,
                    computed,
                },
            ));
        }
        if !rtype::known(rt) {
            return Err(self.err(
                at,
                P::UnknownRecordType {
                    at,
                    record_type: rt,
                },
            ));
        }
        self.pos = end + 4;
        Ok(Some((at, rt, pay, end)))
    }

    /// Look for the next sync frame after a damaged one; true when found
    /// (positioned at it). Works on absolute offsets: `ensure` may compact
    /// the buffer, but only ever drops bytes before `pos`.
    fn resync(&mut self) -> bool {
        const M: usize = SYNC_MARKER.len();
        // Start one byte after the damaged frame's start.
        let mut scan = self.offset() + 1;
        loop {
            if scan > self.base + self.buf.len() as u64 {
                // Past what is buffered: read on from the end.
                self.pos = self.buf.len();
                if !self.ensure(1) {
                    return false;
                }
                continue;
            }
            self.pos = (scan - self.base) as usize;
            if !self.ensure(M + 2) {
                self.pos = self.buf.len();
                return false;
            }
            let found = self.buf[self.pos..]
                .windows(M)
                .enumerate()
                .find(|(i, w)| *i >= 2 && *w == SYNC_MARKER)
                .map(|(i, _)| i);
            let Some(i) = found else {
                // Keep the last M + 1 bytes: a marker and the two bytes
                // before it may straddle the boundary.
                let avail = self.buf.len() - self.pos;
                if avail > M + 1 {
                    scan = self.base + (self.buf.len() - (M + 1)) as u64;
                    continue;
                }
                if !self.ensure(avail + 1) {
                    self.pos = self.buf.len();
                    return false;
                }
                continue;
            };
            let start = scan + i as u64 - 2;
            self.pos = (start - self.base) as usize;
            let (lenb, tb) = (self.buf[self.pos], self.buf[self.pos + 1]);
            if lenb < 0x80 && tb == rtype::SYNC && self.ensure(2 + lenb as usize + 4) {
                // `ensure` may have moved the buffer; `pos` still marks `start`.
                let s = self.pos;
                let n = lenb as usize;
                let stored =
                    u32::from_le_bytes(self.buf[s + 2 + n..s + 6 + n].try_into().unwrap_or([0; 4]));
                let computed = format::frame_crc(
                    &self.buf[s..s + 1],
                    rtype::SYNC,
                    &self.buf[s + 2..s + 2 + n],
                );
                if stored == computed {
                    return true;
                }
            }
            // Not a real sync frame: look past this marker.
            scan = start + 3;
        }
    }

    fn fail(&mut self, e: ReadError) -> Option<Result<Entry, ReadError>> {
        self.errors.push(e.clone());
        let final_ = !self.opts.resync
            || matches!(
                e.kind(),
                ErrorKind::Io | ErrorKind::TrailingData | ErrorKind::NotARecording
            )
            || (self.eof && matches!(e.problem, P::NoEndRecord { .. }));
        if final_ {
            self.stop = Some(Stop::Error(e.clone()));
        } else {
            self.resyncing = true;
            self.pos = (e.offset.saturating_sub(self.base)) as usize;
            self.pos = self.pos.min(self.buf.len());
        }
        Some(Err(e))
    }

    /// The next item, or the error that stopped (or interrupted) reading.
    pub fn next_entry(&mut self) -> Option<Result<Entry, ReadError>> {
        loop {
            if self.stop.is_some() {
                return None;
            }
            if self.resyncing {
                self.resyncing = false;
                if !self.resync() {
                    let at = self.offset();
                    let last = self.errors.last().cloned();
                    let e = self.err(at, P::NoSyncAfterDamage);
                    self.stop = Some(Stop::Error(last.unwrap_or(e)));
                    return None;
                }
            }
            let (at, rt, a, b) = match self.frame() {
                Ok(Some(f)) => f,
                Ok(None) => {
                    let at = self.offset();
                    let items = self.next_index;
                    let e = self.err(at, P::NoEndRecord { at, items });
                    self.errors.push(e.clone());
                    self.stop = Some(Stop::Error(e.clone()));
                    return Some(Err(e));
                }
                Err(e) => return self.fail(e),
            };
            let rec = {
                let payload = &self.buf[a..b];
                crate::decode::decode_record(&mut self.state, rt, payload)
            };
            let rec = match rec {
                Ok(r) => r,
                Err(field) => {
                    let record_type = rt;
                    let e = self.err(
                        at,
                        P::Malformed {
                            at,
                            record_type,
                            field,
                        },
                    );
                    return self.fail(e);
                }
            };
            match rec {
                Record::Sync { next_index } => {
                    self.state.reset();
                    if next_index != self.next_index && !self.opts.resync {
                        let read = self.next_index;
                        let says = next_index;
                        let e = self.err(at, P::SyncIndex { at, says, read });
                        return self.fail(e);
                    }
                    self.next_index = next_index;
                    if self.opts.collect_syncs {
                        self.syncs.push(SyncPoint {
                            offset: self.offset(),
                            index: next_index,
                        });
                    }
                }
                Record::Clock {
                    engine_origin_mono_ns,
                } => self.clock = Some(engine_origin_mono_ns),
                Record::End { items, dropped } => {
                    // Anything after the end record is damage.
                    let after = self.offset();
                    if self.ensure(1) {
                        let n = {
                            let mut n = (self.buf.len() - self.pos) as u64;
                            while self.ensure((n as usize) + 1) {
                                n = (self.buf.len() - self.pos) as u64;
                                if n > 1 << 20 {
                                    break;
                                }
                            }
                            n
                        };
                        let e = self.err(
                            after,
                            P::TrailingData {
                                end_at: at,
                                bytes: n,
                            },
                        );
                        self.errors.push(e.clone());
                        self.stop = Some(Stop::Error(e.clone()));
                        return Some(Err(e));
                    }
                    if items != self.next_index && self.errors.is_empty() {
                        let read = self.next_index;
                        let e = self.err(
                            at,
                            P::EndCount {
                                written: items,
                                read,
                            },
                        );
                        return self.fail(e);
                    }
                    self.stop = Some(Stop::End {
                        offset: at,
                        items,
                        dropped,
                    });
                    return None;
                }
                Record::Item(item) => {
                    let index = self.next_index;
                    self.next_index += 1;
                    return Some(Ok(Entry {
                        index,
                        offset: at,
                        item,
                    }));
                }
            }
        }
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Entry, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}

/// Read every item of an in-memory recording (tests, fuzzing): the items,
/// and how reading stopped. Never panics.
pub fn read_all(bytes: &[u8], opts: ReadOptions) -> (Vec<Entry>, Result<Stop, ReadError>) {
    let mut r = match Reader::new(bytes, "<memory>", opts) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut v = Vec::new();
    v.extend(r.by_ref().flatten());
    let stop = r.stop().cloned().unwrap_or_else(|| {
        Stop::Error(ReadError {
            file: "<memory>".into(),
            offset: 0,
            problem: P::NoReason,
        })
    });
    (v, Ok(stop))
}
