/// How a client connection (or an HTTP/2 stream) reached the gateway: the `protocol` label of
/// `sluice_downstream_requests_total`, and the `x-forwarded-proto` replicas are told.
enum ClientProtocol: Int, Sendable, CaseIterable {
    /// HTTP/1.1 in cleartext.
    case http1
    /// HTTP/2 in cleartext, with prior knowledge.
    case h2c
    /// HTTP/1.1 over TLS.
    case http1TLS
    /// HTTP/2 over TLS (ALPN `h2`).
    case h2

    var label: String {
        switch self {
        case .http1: "http1"
        case .h2c: "h2c"
        case .http1TLS: "http1-tls"
        case .h2: "h2"
        }
    }

    var isTLS: Bool { self == .http1TLS || self == .h2 }
    var isHTTP2: Bool { self == .h2c || self == .h2 }
}
