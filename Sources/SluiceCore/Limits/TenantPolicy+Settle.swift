/// Settling a token charge once the response ended, where it was charged.
extension TenantPolicy {
    /// Settles `charge`: `used` tokens (the replica's usage), or the estimate kept when unknown;
    /// nothing used when the request failed (`succeeded` false). The difference is refunded or
    /// charged on the token limits that charged it: here, on this instance's shares, or in the
    /// store (asked for only then; not waited for, and skipped while the store backs off: the
    /// estimate stays charged). `failed` is called if the store fails the settlement.
    ///
    /// Returns the difference settled (0 when nothing was).
    @discardableResult
    public func settle(
        _ charge: TokenCharge, used: Int?, succeeded: Bool, now: UInt64,
        store: @autoclosure () -> (any SharedLimitStore)? = nil, failed: @escaping () -> Void = {}
    ) -> Int {
        let difference = (used ?? (succeeded ? charge.tokens : 0)) - charge.tokens
        guard difference != 0 else { return 0 }
        let quota = tenants[charge.tenant].quota
        let counting = quota.bodyLimits(for: charge.model).filter { quota.bodyLimits[$0].countsTokens }
        switch charge.store {
        case .none:
            return 0
        case .local, .fallback:
            tenants[charge.tenant].state.withLock { state in
                state.adjustBody(counting, by: difference, now: now, fallback: charge.store == .fallback)
            }
            return difference
        case .shared:
            guard !counting.isEmpty, isBackendUp(at: now), let store = store() else { return 0 }
            let items = counting.map { quota.bodyLimits[$0].item(cost: difference) }
            store.decide(items, adjust: true) { result in
                if case .failure = result { failed() }
            }
            return difference
        }
    }
}
