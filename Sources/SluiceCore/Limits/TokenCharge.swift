/// What a request was charged once its body was read, for the settlement.
public struct TokenCharge: Sendable, Equatable {
    /// Where the estimate was charged, which is where it is settled.
    public enum Store: Sendable, Equatable {
        /// This process's limits (`limits.backend: local`).
        case local
        /// The shared store.
        case shared
        /// This instance's share, while the shared store failed (`on_backend_failure: local`).
        case fallback
        /// Nowhere: let in uncharged (shadow mode over a limit, or `on_backend_failure: allow`).
        case none
    }

    public let tenant: Int
    public let model: String?
    /// The tokens charged (the estimate).
    public let tokens: Int
    public let store: Store

    public init(tenant: Int, model: String?, tokens: Int, store: Store) {
        self.tenant = tenant
        self.model = model
        self.tokens = tokens
        self.store = store
    }
}
