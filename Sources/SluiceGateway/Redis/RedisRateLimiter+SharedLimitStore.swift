import NIOCore
import SluiceCore

/// The tenant policy's shared store: `decideAll`, its answer handed on on this limiter's loop
/// (where the policy asked), with no hop.
extension RedisRateLimiter: SharedLimitStore {
    package func decide(_ items: [LimitItem], adjust: Bool, then: @escaping (Result<[GCRA.Decision], any Error>) -> Void) {
        decideAll(items, adjust: adjust).assumeIsolated().whenComplete(then)
    }
}
