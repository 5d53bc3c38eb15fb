import SluiceCore

/// Pending prefill: a cache-aware pick's uncached prompt bytes, counted on the replica from the
/// moment the request is sent until its streamed answer begins (or the exchange ends), so the
/// policy sees the prefill work it has queued there (`Replica.pendingPrefillBytes`).
extension ProxyServerHandler {
    /// Counts the exchange's uncached prompt bytes as pending prefill on `replica` (moving them
    /// there from where they were counted, on a retry), or stops counting them (nil).
    func countPrefill(_ exchange: Exchange, on replica: Replica?) {
        guard exchange.uncachedBytes > 0 else { return }
        exchange.prefillReplica?.addPendingPrefill(-exchange.uncachedBytes)
        exchange.prefillReplica = replica
        replica?.addPendingPrefill(exchange.uncachedBytes)
    }
}
