import SluiceConfig
import SluiceHTTP1

extension GatewayError {
    /// The answer for a deadline that passed, naming the setting that set it.
    static func expired(_ expiry: ExchangeStateMachine<UpstreamConnection>.Expiry, pool: PoolConfiguration?, limits: LimitsConfiguration) -> GatewayError {
        switch expiry {
        case .queue:
            return .queueTimeout(pool: pool?.name ?? "", after: "\(pool?.queue.timeout ?? .zero)")
        case .connect:
            return .replicaTimeout(after: "the connect timeout (\(pool?.timeouts.connect ?? .zero)); the connection pool may be full")
        case .responseHeader:
            return .replicaTimeout(after: "the response_header timeout (\(pool?.timeouts.responseHeader ?? .zero))")
        case .client:
            return .clientTimeout(after: "\(limits.clientTimeout)")
        // (The handler answers neither of these: it closes, or cuts the begun answer.)
        case .keepalive:
            return .clientTimeout(after: "the keepalive timeout (\(limits.keepaliveTimeout))")
        case .idle:
            return .replicaTimeout(after: "the idle timeout (\(pool?.timeouts.idle ?? .zero))")
        }
    }
}

extension GatewayError {
    /// The answer for bytes that are not HTTP/1.1.
    init(_ error: HTTP1ParseError, maxHeaderBytes: Int) {
        switch error {
        case .headTooLarge: self = .headersTooLarge(limit: maxHeaderBytes)
        case .unsupportedTransferEncoding(let value): self = .unsupportedTransferEncoding(value)
        case .malformed(let reason): self = .malformed(reason)
        }
    }
}
