import NIOCore
import NIOHTTP1

/// The error answers Sluice itself gives, in the OpenAI shape `{"error":{"message","type","code"}}`
/// so that OpenAI SDKs surface the message instead of a parse failure.
public struct GatewayError: Error, Sendable, Equatable {
    public var status: HTTPResponseStatus
    public var message: String
    public var type: String
    public var code: String

    public init(status: HTTPResponseStatus, message: String, type: String, code: String) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
    }

    /// A tenant limit refused the request (429); the answer carries when to come back.
    public static func rateLimited(_ message: String) -> GatewayError {
        .init(status: .tooManyRequests, message: message, type: "requests", code: "rate_limit_exceeded")
    }

    public static func badJSON(_ detail: String) -> GatewayError {
        .init(status: .badRequest, message: "The request body is not valid JSON: \(detail).", type: "invalid_request_error", code: "invalid_json")
    }

    public static func noRoute(path: String, model: String?) -> GatewayError {
        let what = model.map { "model \"\($0)\" on \(path)" } ?? path
        return .init(status: .notFound, message: "No pool serves \(what).", type: "invalid_request_error", code: "no_route")
    }

    public static func bodyTooLarge(limit: Int) -> GatewayError {
        .init(status: .payloadTooLarge, message: "The request body exceeds the limit of \(limit) bytes.", type: "invalid_request_error", code: "request_too_large")
    }

    public static func inspectTooLarge(limit: Int) -> GatewayError {
        .init(status: .payloadTooLarge, message: "Sluice must read this request's body (to route it by model or key, or to count its tokens against a limit), but the body exceeds the \(limit) bytes it reads (limits.max_inspect_bytes).", type: "invalid_request_error", code: "request_too_large")
    }

    public static func headersTooLarge(limit: Int) -> GatewayError {
        .init(status: .init(statusCode: 431, reasonPhrase: "Request Header Fields Too Large"), message: "The request headers exceed the limit of \(limit) bytes.", type: "invalid_request_error", code: "headers_too_large")
    }

    public static func malformed(_ reason: String) -> GatewayError {
        .init(status: .badRequest, message: "The request is not valid HTTP/1.1: \(reason).", type: "invalid_request_error", code: "bad_request")
    }

    public static func replicaFailed(_ detail: String) -> GatewayError {
        .init(status: .badGateway, message: "The model replica failed: \(detail).", type: "server_error", code: "replica_failed")
    }

    public static func noHealthyReplica(pool: String) -> GatewayError {
        .init(status: .serviceUnavailable, message: "Pool \"\(pool)\" has no healthy replica right now; retry shortly.", type: "server_error", code: "no_healthy_replica")
    }

    public static func queueFull(pool: String, waiting: Int) -> GatewayError {
        .init(status: .serviceUnavailable, message: "Pool \"\(pool)\" is at capacity: every replica is at max_concurrent_per_replica and \(waiting) requests already wait. Retry after the time in the Retry-After header.", type: "server_error", code: "queue_full")
    }

    public static func queueTimeout(pool: String, after: String) -> GatewayError {
        .init(status: .serviceUnavailable, message: "Pool \"\(pool)\" had no free replica slot within the queue timeout (\(after)). Retry after the time in the Retry-After header.", type: "server_error", code: "queue_timeout")
    }

    public static func replicaTimeout(after: String) -> GatewayError {
        .init(status: .gatewayTimeout, message: "The model replica did not answer within \(after).", type: "server_error", code: "replica_timeout")
    }

    public static func unsupportedTransferEncoding(_ value: String) -> GatewayError {
        .init(status: .notImplemented, message: "Transfer-Encoding \"\(value)\" is not supported; only chunked is.", type: "invalid_request_error", code: "unsupported_transfer_encoding")
    }

    public static func clientTimeout(after: String) -> GatewayError {
        .init(status: .requestTimeout, message: "The request was not received in full: the client sent nothing for \(after).", type: "invalid_request_error", code: "request_timeout")
    }

    public static func slowBody(minRate: Int, grace: String) -> GatewayError {
        .init(
            status: .requestTimeout,
            message: "The request body came too slowly: it must arrive within \(grace) of the head plus one second per \(minRate) bytes (limits.body_timeout, limits.min_body_rate).",
            type: "invalid_request_error", code: "request_timeout")
    }

    public func jsonBody() -> String {
        "{\"error\":{\"message\":\(jsonString(message)),\"type\":\(jsonString(type)),\"code\":\(jsonString(code))}}"
    }
}

/// Encodes a Swift string as a JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    out.reserveCapacity(text.utf8.count + 2)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
