/// Where limits shared by several gateway instances live (Redis: `RedisRateLimiter`): GCRA
/// (see `GCRA`) decided on the store's own clock, several limits at a time.
///
/// A callback rather than a future or `async`: the gateway's store answers on its event loop,
/// and the policy's continuation runs right there, with no hop and no NIO type in SluiceCore.
public protocol SharedLimitStore {
    /// Decides `items` together, all or none: every item is charged its cost only if each
    /// admits it; with `adjust`, every cost is applied unconditionally (settling a charge, a
    /// negative cost a refund that never moves a limit before now). One decision per item, in
    /// order.
    ///
    /// `then` is called exactly once: at once, or later on the thread the store answers on,
    /// which must be the caller's (the closure is not `@Sendable`); a failure (the store down,
    /// too slow, a bad answer) is decided by the caller's `BackendFailureMode`.
    func decide(_ items: [LimitItem], adjust: Bool, then: @escaping (Result<[GCRA.Decision], any Error>) -> Void)
}
