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
        case .client, .keepalive, .idle:
            return .clientTimeout(after: "\(limits.clientTimeout)")
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
