//! ringside recordings: format, writer, reader, replay, export.
