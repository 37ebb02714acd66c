//! Rows into a table by binary COPY, handed to the connection in large chunks.
//!
//! tokio-postgres's `BinaryCopyInWriter` hands its connection every 4 KiB it encodes, through a
//! channel that holds one message: a batch of 200 events of 2 KB went out as about 100 messages,
//! each a wake of the connection's task, a write to the socket and a read by PostgreSQL's backend.
//! `CopyWriter` encodes the same format (PostgreSQL's binary COPY: a header, a tuple per row, a
//! trailer; `Rows`) and sends it in chunks of `CHUNK` or the whole batch when it is smaller.

use std::pin::Pin;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::CopyInSink;

use crate::infra::error::AppError;

/// How much encoded data is handed to the connection at once.
pub const CHUNK: usize = 256 * 1024;

/// Rows encoded in PostgreSQL's binary COPY format, in one buffer.
pub struct Rows<'t> {
    types: &'t [Type],
    buf: BytesMut,
}

impl<'t> Rows<'t> {
    /// The format's header; every row then has a value of each of `types`, in order.
    pub fn new(types: &'t [Type]) -> Rows<'t> {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0); // flags
        buf.put_i32(0); // header extension
        Rows { types, buf }
    }

    /// Adds a row. A value that does not encode as its column's type is named by its column.
    ///
    /// # Panics
    /// When the row has not one value per column.
    pub fn push(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), AppError> {
        assert_eq!(values.len(), self.types.len(), "one value per column");
        self.buf.put_i16(self.types.len() as i16);
        for (i, (value, ty)) in values.iter().zip(self.types).enumerate() {
            let at = self.buf.len();
            self.buf.put_i32(0);
            let encoded = value
                .to_sql_checked(ty, &mut self.buf)
                .map_err(|e| AppError::Internal(format!("copy: column {}: {e}", i + 1)))?;
            let len = match encoded {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(self.buf.len() - at - 4)
                    .map_err(|_| AppError::Internal(format!("copy: column {} is over 2 GiB", i + 1)))?,
            };
            self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// Bytes encoded and not yet taken.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What is encoded so far, to be sent before the rest.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// The rest, with the format's trailer.
    pub fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

/// Writes rows to a `COPY … from stdin (format binary)` in chunks of `CHUNK`.
pub struct CopyWriter<'t> {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    rows: Rows<'t>,
}

impl<'t> CopyWriter<'t> {
    pub fn new(sink: CopyInSink<Bytes>, types: &'t [Type]) -> CopyWriter<'t> {
        CopyWriter { sink: Box::pin(sink), rows: Rows::new(types) }
    }

    pub async fn write(&mut self, values: &[&(dyn ToSql + Sync)]) -> Result<(), AppError> {
        self.rows.push(values)?;
        if self.rows.len() >= CHUNK {
            self.sink.send(self.rows.take()).await?;
        }
        Ok(())
    }

    /// Sends what is left and ends the COPY; answers the rows it added. Dropped before this, the
    /// COPY is aborted (and with it the transaction).
    pub async fn finish(mut self) -> Result<u64, AppError> {
        self.sink.send(self.rows.finish()).await?;
        Ok(self.sink.as_mut().finish().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_encoded_as_postgresql_reads_binary_copy() {
        let types = [Type::INT8, Type::TEXT];
        let mut rows = Rows::new(&types);
        rows.push(&[&7i64, &"ab"]).expect("a row");
        rows.push(&[&-1i64, &None::<&str>]).expect("a row of a null");
        let first = rows.take();
        let rest = rows.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, b'a', b'b']);
        expected.extend_from_slice(&[0, 2, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!([first, rest].concat(), expected);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_column() {
        let types = [Type::INT8, Type::INT8];
        let mut rows = Rows::new(&types);
        let err = rows.push(&[&1i64, &"not a number"]).expect_err("a text for an int8");
        assert!(err.to_string().contains("column 2"), "{err}");
    }
}
