import SluiceConfig
import SluiceCore
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
        case .slowBody:
            return .slowBody(minRate: limits.minBodyRate, grace: "\(limits.bodyTimeout)")
        // (The handler answers neither of these: it closes, or cuts the begun answer.)
        case .keepalive:
            return .clientTimeout(after: "the keepalive timeout (\(limits.keepaliveTimeout))")
        case .idle:
            return .replicaTimeout(after: "the idle timeout (\(pool?.timeouts.idle ?? .zero))")
        }
    }
}

extension GatewayError {
    /// A batch's answer did not come within the pool's `response_header` timeout.
    static func batchTimedOut(_ pool: PoolConfiguration?) -> GatewayError {
        .replicaTimeout(after: pool.map { "the response_header timeout (\($0.timeouts.responseHeader)), as part of a batch" } ?? "its timeout")
    }

    /// What ends a stream of events cut short (`ClientWriter.endEvents`), by the status counted.
    static func streamCut(status: Int) -> GatewayError {
        switch status {
        case 504: .replicaTimeout(after: "its idle timeout, in the middle of the stream")
        case 400: .malformed("the client sent bytes that are not HTTP/1.1 in the middle of the stream")
        default: .replicaFailed("the replica's stream broke off before its end")
        }
    }

    /// The replica closed the connection before its answer began.
    static func replicaClosed(_ replica: Replica?, reused: Bool, error: (any Error)?) -> GatewayError {
        let name = replica.map { "\($0.id)" } ?? "the replica"
        let how = reused ? " (on a reused keep-alive connection)" : ""
        return .replicaFailed("\(name) closed the connection before answering\(how)\(error.map { ": \($0)" } ?? "")")
    }

    /// Sluice removes `Upgrade`, so a switch of protocols is the replica misbehaving (and its
    /// connection, now speaking something else, is closed).
    static func switchedProtocols(_ replica: Replica?) -> GatewayError {
        .replicaFailed("\(replica.map { "\($0.id)" } ?? "the replica") answered 101 Switching Protocols, which Sluice does not proxy")
    }

    /// The answer for bytes that are not HTTP/1.1.
    init(_ error: HTTP1ParseError, maxHeaderBytes: Int) {
        switch error {
        case .headTooLarge: self = .headersTooLarge(limit: maxHeaderBytes)
        case .unsupportedTransferEncoding(let value): self = .unsupportedTransferEncoding(value)
        case .malformed(let reason): self = .malformed(reason)
        }
    }
}
