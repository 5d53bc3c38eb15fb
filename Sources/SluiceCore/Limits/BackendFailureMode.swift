/// What a shared limit decision becomes when the store fails (or failed less than
/// `TenantPolicy.backendRetry` ago): `limits.on_backend_failure`, never accidental.
public enum BackendFailureMode: String, Sendable, Equatable, CaseIterable {
    /// Let the request in, uncharged.
    case allow
    /// Refuse it (the gateway answers 503).
    case deny
    /// Decide on this instance's share of each limit (`limit / instances`).
    case local
}
