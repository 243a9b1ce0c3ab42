//! Primitive encoding: LEB128 varints, zigzag, length-prefixed bytes, and a
//! bounds-checked cursor whose errors name the field they were reading.

pub use crate::error::{FieldError, FieldProblem, Width};

/// Appends LEB128 / zigzag values to a byte buffer.
#[derive(Default, Debug)]
pub struct Enc {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Enc {
    /// One byte.
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Unsigned LEB128.
    #[inline]
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Signed, zigzag then LEB128.
    #[inline]
    pub fn zz(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Length-prefixed bytes.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Optional bytes: 0 for none, else length + 1 then the bytes.
    #[inline]
    pub fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.var(0),
            Some(b) => {
                self.var(b.len() as u64 + 1);
                self.buf.extend_from_slice(b);
            }
        }
    }

    /// Length-prefixed UTF-8.
    #[inline]
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Optional string, like [`Enc::opt_bytes`].
    #[inline]
    pub fn opt_str(&mut self, s: Option<&str>) {
        self.opt_bytes(s.map(str::as_bytes));
    }

    /// Optional varint: 0 for none, else value + 1 (values up to `u64::MAX - 1`
    /// fit; `u64::MAX` is written as a 2-word escape).
    #[inline]
    pub fn opt_var(&mut self, v: Option<u64>) {
        match v {
            None => self.var(0),
            Some(u64::MAX) => {
                self.var(u64::MAX);
                self.var(0);
            }
            Some(x) => self.var(x + 1),
        }
    }
}

/// A cursor over a record payload. Every read is bounds-checked; no length
/// read from the input is trusted beyond the bytes that are really there.
#[derive(Debug, Clone)]
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Result of a field read.
pub type DResult<T> = Result<T, FieldError>;

impl<'a> Dec<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The unread rest, consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.pos..];
        self.pos = self.buf.len();
        r
    }

    /// An error at the current position.
    pub fn err(&self, field: &'static str, problem: FieldProblem) -> FieldError {
        FieldError {
            field,
            at: self.pos,
            problem,
        }
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self, field: &'static str) -> DResult<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.err(field, FieldProblem::Ends)),
        }
    }

    /// Unsigned LEB128 (at most 10 bytes, no overflow).
    #[inline]
    pub fn var(&mut self, field: &'static str) -> DResult<u64> {
        let start = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                self.pos = start;
                return Err(self.err(field, FieldProblem::EndsInVarint));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                self.pos = start;
                return Err(self.err(field, FieldProblem::VarintOverflow));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                self.pos = start;
                return Err(self.err(field, FieldProblem::VarintTooLong));
            }
        }
    }

    /// Zigzag varint.
    #[inline]
    pub fn zz(&mut self, field: &'static str) -> DResult<i64> {
        let v = self.var(field)?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Varint that must fit in `u32`.
    #[inline]
    pub fn u32(&mut self, field: &'static str) -> DResult<u32> {
        let at = self.pos;
        let v = self.var(field)?;
        narrow(field, at, v, Width::U32)
    }

    /// Varint that must fit in `u16`.
    #[inline]
    pub fn u16(&mut self, field: &'static str) -> DResult<u16> {
        let at = self.pos;
        let v = self.var(field)?;
        narrow(field, at, v, Width::U16)
    }

    /// Zigzag varint that must fit in `i32`.
    #[inline]
    pub fn i32(&mut self, field: &'static str) -> DResult<i32> {
        let at = self.pos;
        let v = self.zz(field)?;
        narrow(field, at, v, Width::I32)
    }

    /// A length that must not exceed the bytes left (each counted element
    /// takes at least one byte, so this also bounds element counts).
    #[inline]
    pub fn len(&mut self, field: &'static str) -> DResult<usize> {
        let at = self.pos;
        let n = self.var(field)?;
        if n > self.remaining() as u64 {
            return Err(FieldError {
                field,
                at,
                problem: FieldProblem::LengthExceeds {
                    len: n,
                    left: self.remaining(),
                },
            });
        }
        Ok(n as usize)
    }

    /// `n` raw bytes.
    #[inline]
    pub fn raw(&mut self, n: usize, field: &'static str) -> DResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(
                field,
                FieldProblem::NeedsBytes {
                    needs: n,
                    left: self.remaining(),
                },
            ));
        }
        let r = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(r)
    }

    /// Length-prefixed bytes.
    #[inline]
    pub fn bytes(&mut self, field: &'static str) -> DResult<Vec<u8>> {
        let n = self.len(field)?;
        Ok(self.raw(n, field)?.to_vec())
    }

    /// Optional bytes.
    #[inline]
    pub fn opt_bytes(&mut self, field: &'static str) -> DResult<Option<Vec<u8>>> {
        let at = self.pos;
        let n = self.var(field)?;
        if n == 0 {
            return Ok(None);
        }
        let n = n - 1;
        if n > self.remaining() as u64 {
            return Err(FieldError {
                field,
                at,
                problem: FieldProblem::LengthExceeds {
                    len: n,
                    left: self.remaining(),
                },
            });
        }
        Ok(Some(self.raw(n as usize, field)?.to_vec()))
    }

    /// Length-prefixed UTF-8.
    #[inline]
    pub fn str(&mut self, field: &'static str) -> DResult<String> {
        let at = self.pos;
        let b = self.bytes(field)?;
        String::from_utf8(b).map_err(|e| FieldError {
            field,
            at,
            problem: FieldProblem::NotUtf8(e.utf8_error()),
        })
    }

    /// Optional string.
    #[inline]
    pub fn opt_str(&mut self, field: &'static str) -> DResult<Option<String>> {
        let at = self.pos;
        match self.opt_bytes(field)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b).map(Some).map_err(|e| FieldError {
                field,
                at,
                problem: FieldProblem::NotUtf8(e.utf8_error()),
            }),
        }
    }

    /// Optional varint (see [`Enc::opt_var`]).
    #[inline]
    pub fn opt_var(&mut self, field: &'static str) -> DResult<Option<u64>> {
        match self.var(field)? {
            0 => Ok(None),
            u64::MAX => {
                let at = self.pos;
                match self.var(field)? {
                    0 => Ok(Some(u64::MAX)),
                    v => Err(FieldError {
                        field,
                        at,
                        problem: FieldProblem::BadEscape { escape: v },
                    }),
                }
            }
            v => Ok(Some(v - 1)),
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, field: &'static str) -> DResult<()> {
        if self.remaining() != 0 {
            return Err(self.err(
                field,
                FieldProblem::TrailingBytes {
                    extra: self.remaining(),
                },
            ));
        }
        Ok(())
    }
}

/// `v` as a narrower integer, or the error naming `field` at `at`.
#[inline]
fn narrow<S, T>(field: &'static str, at: usize, v: S, width: Width) -> DResult<T>
where
    S: Copy + Into<i128>,
    T: TryFrom<S>,
{
    T::try_from(v).map_err(|_| FieldError {
        field,
        at,
        problem: FieldProblem::TooWide {
            value: v.into(),
            width,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<u64>(), s in any::<i64>(), o in proptest::option::of(any::<u64>())) {
            let mut e = Enc::default();
            e.var(v);
            e.zz(s);
            e.opt_var(o);
            let mut d = Dec::new(&e.buf);
            prop_assert_eq!(d.var("v").unwrap(), v);
            prop_assert_eq!(d.zz("s").unwrap(), s);
            prop_assert_eq!(d.opt_var("o").unwrap(), o);
            d.finish("end").unwrap();
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut d = Dec::new(&b);
            let _ = d.var("a");
            let _ = d.bytes("b");
            let _ = d.opt_str("c");
            let _ = d.i32("d");
            let _ = d.opt_var("e");
        }
    }

    #[test]
    fn overlong_and_overflowing_varints_are_errors() {
        let mut d = Dec::new(&[0xff; 11]);
        assert!(d.var("x").is_err());
        let mut d = Dec::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        let e = d.var("x").unwrap_err();
        assert_eq!(e.problem, FieldProblem::VarintOverflow, "{e}");
        let mut d = Dec::new(&[0x05, 1, 2]);
        let e = d.bytes("key").unwrap_err();
        assert!(e.to_string().contains("`key`"), "{e}");
    }
}
