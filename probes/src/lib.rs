//! ringside kernel tracepoint probes (see issue 4).
