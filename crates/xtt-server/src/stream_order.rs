//! XTT-SESSION §3 on a stream, shared by the server's TCP driver and the device's TCP link.

use xtt_proto::record::SessionId;

/// XTT-SESSION §3 on a stream: after a session's first record on a connection, each of its
/// records there must carry exactly the next number. The session's sliding window (which
/// every transport shares, for records that cross connections when a device moves) already
/// refuses numbers seen before; this adds that nothing was taken out of a TCP stream. A record
/// that breaks the order closes the connection: the device reconnects, and its first record on
/// the new connection starts the count again. Both ends keep one per connection (the server in
/// `sessions::tcp`, the device in [`crate::session_client`]).
#[derive(Debug, Default)]
pub(crate) struct StreamOrder {
    /// The session and number of the last authentic record on this connection.
    last: Option<(SessionId, u32)>,
}

impl StreamOrder {
    /// Whether a record numbered `seq` of session `id` may come next (checked on the header,
    /// before the record opens; a forged header can only get the connection closed, which
    /// anyone able to write into the stream can do anyway).
    pub(crate) fn expects(&self, id: &SessionId, seq: u32) -> bool {
        match self.last {
            Some((last_id, last)) if last_id == *id => last.checked_add(1) == Some(seq),
            _ => true,
        }
    }

    /// The record opened: the count goes on from it.
    pub(crate) fn accepted(&mut self, id: SessionId, seq: u32) {
        self.last = Some((id, seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_connection_takes_exactly_the_next_number_after_a_sessions_first() {
        let (a, b) = (SessionId([1; 16]), SessionId([2; 16]));
        let mut order = StreamOrder::default();
        assert!(
            order.expects(&a, 17),
            "a connection's first record may have any number"
        );
        order.accepted(a, 17);
        assert!(order.expects(&a, 18));
        assert!(!order.expects(&a, 19), "a gap");
        assert!(!order.expects(&a, 17), "a repeat");
        assert!(!order.expects(&a, 16), "an older one");
        assert!(
            order.expects(&b, 3),
            "another session's first record on the connection"
        );
        order.accepted(a, u32::MAX);
        assert!(!order.expects(&a, 0), "no number follows the last one");
    }
}
