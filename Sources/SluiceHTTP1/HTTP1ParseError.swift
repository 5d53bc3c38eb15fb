/// Why bytes could not be read as HTTP/1.1.
public enum HTTP1ParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The head did not end within the limit.
    case headTooLarge
    case malformed(String)
    /// A request `Transfer-Encoding` other than exactly `chunked`.
    case unsupportedTransferEncoding(String)

    public var description: String {
        switch self {
        case .headTooLarge: "message head too large"
        case .malformed(let reason): reason
        case .unsupportedTransferEncoding(let value): "unsupported transfer-encoding: \(value)"
        }
    }
}
